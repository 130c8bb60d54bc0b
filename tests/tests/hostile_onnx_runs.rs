//! Stored ONNX models that crashed the server (found by fuzz_live), against a live server:
//! each is refused by AI.MODELSTORE or its AI.MODELEXECUTE fails with an error, and the
//! server keeps answering. The plugin's own tests (plugins/onnxruntime/tests/hostile_runs.rs)
//! show that ONNX Runtime alone crashes on them.

use redisai_tests::protobuf::Pb;
use redisai_tests::redis::{Connection, Value};
use redisai_tests::{error_text, run, run_str, Server};

const FLOAT: i64 = 1;
const INT32: i64 = 6;
const INT64: i64 = 7;

fn node(op: &str, inputs: &[&str]) -> Pb {
    inputs
        .iter()
        .fold(Pb::default(), |n, i| n.str(1, i))
        .str(2, "y")
        .str(3, "n0")
        .str(4, op)
}

fn tensor(name: &str, elem: i64, dims: &[i64], raw: Vec<u8>) -> Pb {
    dims.iter()
        .fold(Pb::default(), |t, &d| t.int(1, d))
        .int(2, elem)
        .str(8, name)
        .bytes(9, &raw)
}

fn f32s(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// `node` with `x` FLOAT (shape `dims`, or none) in, `y` of `out` out.
fn model(node: Pb, initializers: &[Pb], dims: Option<&[i64]>, out: i64, opset: i64) -> Vec<u8> {
    let mut x = Pb::default().int(1, FLOAT);
    if let Some(dims) = dims {
        x = x.msg(
            2,
            dims.iter()
                .fold(Pb::default(), |s, &d| s.msg(1, Pb::default().int(1, d))),
        );
    }
    let mut g = Pb::default().msg(1, node).str(2, "g");
    for t in initializers {
        g = g.msg(5, t.clone());
    }
    g = g
        .msg(
            11,
            Pb::default().str(1, "x").msg(2, Pb::default().msg(1, x)),
        )
        .msg(
            12,
            Pb::default()
                .str(1, "y")
                .msg(2, Pb::default().msg(1, Pb::default().int(1, out))),
        );
    Pb::default()
        .int(1, 8)
        .msg(7, g)
        .msg(8, Pb::default().str(1, "").int(2, opset))
        .0
}

fn store(c: &mut Connection, key: &str, blob: &[u8]) -> Result<(), String> {
    let args: Vec<&[u8]> = vec![
        b"AI.MODELSTORE",
        key.as_bytes(),
        b"ONNX",
        b"CPU",
        b"BLOB",
        blob,
    ];
    match run(c, &args) {
        Ok(Value::Okay) => Ok(()),
        other => Err(error_text(other)),
    }
}

fn execute(c: &mut Connection, key: &str, shape: &[i64]) -> Result<Value, String> {
    let n: i64 = shape.iter().product();
    let dims: Vec<String> = shape.iter().map(i64::to_string).collect();
    let values: Vec<String> = (0..n).map(|i| format!("{}", 0.25 + i as f32)).collect();
    run_str(
        c,
        &format!(
            "AI.TENSORSET in FLOAT {} VALUES {}",
            dims.join(" "),
            values.join(" ")
        ),
    )
    .map_err(|e| e.to_string())?;
    run_str(
        c,
        &format!("AI.MODELEXECUTE {key} INPUTS 1 in OUTPUTS 1 out"),
    )
    .map_err(|e| e.to_string())
}

fn alive(c: &mut Connection) {
    assert_eq!(
        run_str(c, "PING").expect("the server answers"),
        Value::SimpleString("PONG".into())
    );
}

#[test]
fn crashing_models_are_refused_or_fail_their_runs() {
    let server = Server::start();
    let mut c = server.client();
    // Mean(x, ""): refused when stored.
    for op in ["Mean", "Sum", "Max", "Min"] {
        let blob = model(node(op, &["x", ""]), &[], Some(&[4]), FLOAT, 17);
        let err = store(&mut c, "m", &blob).expect_err("stored");
        assert!(
            err.contains(&format!("model uses a forbidden operation: {op} (an empty input name in a variadic position")),
            "{err}"
        );
        alive(&mut c);
    }
    // Wrong ranks on inputs that declare no shape: the run fails, twice.
    let cases: Vec<(&str, Vec<u8>, &[i64])> = vec![
        (
            "Resize",
            model(
                node("Resize", &["x", "", "scales"]),
                &[tensor("scales", FLOAT, &[1], f32s(&[0.5]))],
                None,
                FLOAT,
                13,
            ),
            &[1, 4],
        ),
        (
            "Multinomial",
            model(node("Multinomial", &["x"]), &[], None, INT32, 17),
            &[4],
        ),
        (
            "ReverseSequence",
            model(
                node("ReverseSequence", &["x", "lens"]),
                &[tensor("lens", INT64, &[1], 1i64.to_le_bytes().to_vec())],
                None,
                FLOAT,
                17,
            ),
            &[4],
        ),
        (
            "RoiAlign",
            model(
                node("RoiAlign", &["x", "rois", "batch"]),
                &[
                    tensor("rois", FLOAT, &[1, 4], f32s(&[0.0, 0.0, 1.0, 1.0])),
                    tensor("batch", INT64, &[1], 0i64.to_le_bytes().to_vec()),
                ],
                None,
                FLOAT,
                17,
            ),
            &[4],
        ),
    ];
    for (name, blob, shape) in cases {
        store(&mut c, "m", &blob).unwrap_or_else(|err| panic!("{name}: {err}"));
        for _ in 0..2 {
            let err = execute(&mut c, "m", shape).expect_err(name);
            assert!(
                err.contains("the model cannot run on these inputs"),
                "{name}: {err}"
            );
            alive(&mut c);
        }
    }
    // ReverseSequence with the rank it takes runs.
    let blob = model(
        node("ReverseSequence", &["x", "lens"]),
        &[tensor("lens", INT64, &[1], 2i64.to_le_bytes().to_vec())],
        None,
        FLOAT,
        17,
    );
    store(&mut c, "m", &blob).expect("stored");
    execute(&mut c, "m", &[2, 1]).expect("runs");
    // LayerNormalization(x, scale, ""): crashed at store; now stored and run.
    let ln = node("LayerNormalization", &["x", "scale", ""])
        .msg(5, Pb::default().str(1, "axis").int(3, -1).int(20, 2));
    let blob = model(
        ln,
        &[tensor("scale", FLOAT, &[4], f32s(&[2.0; 4]))],
        Some(&[1, 4]),
        FLOAT,
        18,
    );
    store(&mut c, "ln", &blob).expect("stored");
    execute(&mut c, "ln", &[1, 4]).expect("runs");
    alive(&mut c);
}
