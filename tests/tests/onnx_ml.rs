//! ONNX-ML outputs end to end on the ONNX Runtime backend plugin: a classifier's ZipMap (a
//! sequence of maps from class label to probability) comes back as a FLOAT [N, classes]
//! tensor in label order, a sequence of tensors of one shape comes back stacked, and a
//! model with an output type the backend cannot return is refused at AI.MODELSTORE with
//! the output's name and type. The models are written here, protobuf by hand (what
//! skl2onnx writes for a classifier, in small), so no Python is needed.

use redisai_tests::protobuf::Pb as Msg;
use redisai_tests::redis::{Connection, Value};
use redisai_tests::{error_text, run, run_str, Server};

/// ONNX TensorProto.DataType values.
const FLOAT: i64 = 1;
const INT64: i64 = 7;
const STRING: i64 = 8;

/// TypeProto of a tensor of `elem` whose dimensions are given (-1: symbolic) or not.
fn tensor(elem: i64, dims: Option<&[i64]>) -> Msg {
    let mut t = Msg::default().int(1, elem);
    if let Some(dims) = dims {
        let shape = dims.iter().enumerate().fold(Msg::default(), |s, (i, &d)| {
            let dim = if d < 0 {
                Msg::default().str(2, &format!("d{i}"))
            } else {
                Msg::default().int(1, d)
            };
            s.msg(1, dim)
        });
        t = t.msg(2, shape);
    }
    Msg::default().msg(1, t)
}

fn sequence(element: Msg) -> Msg {
    Msg::default().msg(4, Msg::default().msg(1, element))
}

fn map(key: i64, value: Msg) -> Msg {
    Msg::default().msg(5, Msg::default().int(1, key).msg(2, value))
}

/// A NodeProto: op, domain, inputs, outputs, attributes (AttributeProto messages).
fn node(op: &str, domain: &str, inputs: &[&str], outputs: &[&str], attrs: Vec<Msg>) -> Msg {
    let mut n = Msg::default();
    for input in inputs {
        n = n.str(1, input);
    }
    for output in outputs {
        n = n.str(2, output);
    }
    n = n.str(3, &format!("{op}_{}", outputs[0])).str(4, op);
    for attr in attrs {
        n = n.msg(5, attr);
    }
    n.str(7, domain)
}

fn ints(name: &str, values: &[i64]) -> Msg {
    values
        .iter()
        .fold(Msg::default().str(1, name).int(20, 7), |m, &v| m.int(8, v))
}

fn int(name: &str, v: i64) -> Msg {
    Msg::default().str(1, name).int(20, 2).int(3, v)
}

/// A ModelProto (IR 8; opsets 17 and ai.onnx.ml 3).
fn model(nodes: Vec<Msg>, inputs: &[(&str, Msg)], outputs: &[(&str, Msg)]) -> Vec<u8> {
    let mut graph = nodes
        .into_iter()
        .fold(Msg::default(), |g, n| g.msg(1, n))
        .str(2, "g");
    for (name, ty) in inputs {
        graph = graph.msg(11, Msg::default().str(1, name).msg(2, ty.clone()));
    }
    for (name, ty) in outputs {
        graph = graph.msg(12, Msg::default().str(1, name).msg(2, ty.clone()));
    }
    Msg::default()
        .int(1, 8)
        .str(2, "onnx_ml e2e")
        .msg(7, graph)
        .msg(8, Msg::default().str(1, "").int(2, 17))
        .msg(8, Msg::default().str(1, "ai.onnx.ml").int(2, 3))
        .0
}

/// X FLOAT [N, 3] scores -> `output_label` INT64 [N] (ArgMax) and `output_probability`,
/// the scores through a ZipMap whose labels are 10, 2, 7 (columns 0, 1, 2 of X).
fn classifier() -> Vec<u8> {
    model(
        vec![
            node(
                "ArgMax",
                "",
                &["X"],
                &["output_label"],
                vec![int("axis", 1), int("keepdims", 0)],
            ),
            node(
                "ZipMap",
                "ai.onnx.ml",
                &["X"],
                &["output_probability"],
                vec![ints("classlabels_int64s", &[10, 2, 7])],
            ),
        ],
        &[("X", tensor(FLOAT, Some(&[-1, 3])))],
        &[
            ("output_label", tensor(INT64, Some(&[-1]))),
            (
                "output_probability",
                sequence(map(INT64, tensor(FLOAT, None))),
            ),
        ],
    )
}

/// a, b FLOAT [N] -> `s`, the sequence [a, b] (of `elem` tensors).
fn pair(elem: i64) -> Vec<u8> {
    model(
        vec![node("SequenceConstruct", "", &["a", "b"], &["s"], vec![])],
        &[
            ("a", tensor(elem, Some(&[-1]))),
            ("b", tensor(elem, Some(&[-1]))),
        ],
        &[("s", sequence(tensor(elem, None)))],
    )
}

fn store(c: &mut Connection, key: &str, blob: &[u8]) -> redisai_tests::redis::RedisResult<Value> {
    run(
        c,
        &[
            b"AI.MODELSTORE",
            key.as_bytes(),
            b"ONNX",
            b"CPU",
            b"BLOB",
            blob,
        ],
    )
}

fn floats(value: Value) -> Vec<f32> {
    match value {
        Value::BulkString(bytes) => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        other => panic!("expected a blob, got {other:?}"),
    }
}

fn meta(c: &mut Connection, key: &str) -> (String, Vec<i64>) {
    let Value::Array(fields) = run_str(c, &format!("AI.TENSORGET {key} META")).expect("META")
    else {
        panic!("META is an array")
    };
    let dtype = match &fields[1] {
        Value::SimpleString(s) => s.clone(),
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        other => panic!("dtype {other:?}"),
    };
    let Value::Array(dims) = &fields[3] else {
        panic!("shape {:?}", fields[3])
    };
    let dims = dims
        .iter()
        .map(|d| match d {
            Value::Int(n) => *n,
            other => panic!("dim {other:?}"),
        })
        .collect();
    (dtype, dims)
}

#[test]
fn zipmap_probabilities_are_a_tensor_in_label_order() {
    let server = Server::start();
    let mut c = server.client();
    assert_eq!(
        store(&mut c, "clf", &classifier()).expect("store"),
        Value::Okay
    );
    run_str(
        &mut c,
        "AI.TENSORSET x FLOAT 2 3 VALUES 0.1 0.2 0.7 0.5 0.3 0.2",
    )
    .expect("x");
    assert_eq!(
        run_str(
            &mut c,
            "AI.MODELEXECUTE clf INPUTS 1 x OUTPUTS 2 label proba"
        )
        .expect("run"),
        Value::Okay
    );
    assert_eq!(meta(&mut c, "label"), ("INT64".to_owned(), vec![2]));
    assert_eq!(meta(&mut c, "proba"), ("FLOAT".to_owned(), vec![2, 3]));
    // Labels in ascending order: 2, 7, 10, i.e. columns 1, 2, 0 of x.
    assert_eq!(
        floats(run_str(&mut c, "AI.TENSORGET proba BLOB").expect("get")),
        [0.2, 0.7, 0.1, 0.3, 0.2, 0.5]
    );

    // Through a DAG too, and with autobatching.
    let text = run_str(
        &mut c,
        "AI.DAGEXECUTE LOAD 1 x PERSIST 1 p2 |> AI.MODELEXECUTE clf INPUTS 1 x OUTPUTS 2 l2 p2",
    );
    assert!(text.is_ok(), "{text:?}");
    assert_eq!(meta(&mut c, "p2"), ("FLOAT".to_owned(), vec![2, 3]));
    let blob = classifier();
    let reply = run(
        &mut c,
        &[
            b"AI.MODELSTORE",
            b"batched",
            b"ONNX",
            b"CPU",
            b"BATCHSIZE",
            b"8",
            b"BLOB",
            &blob,
        ],
    );
    assert_eq!(reply.expect("store batched"), Value::Okay);
    assert_eq!(
        run_str(&mut c, "AI.MODELEXECUTE batched INPUTS 1 x OUTPUTS 2 l3 p3").expect("run"),
        Value::Okay
    );
    assert_eq!(
        floats(run_str(&mut c, "AI.TENSORGET p3 BLOB").expect("get")),
        [0.2, 0.7, 0.1, 0.3, 0.2, 0.5]
    );

    // A row of the wrong width fails the run, and the server goes on.
    run_str(&mut c, "AI.TENSORSET bad FLOAT 1 2 VALUES 1 2").expect("bad");
    let text = error_text(run_str(
        &mut c,
        "AI.MODELEXECUTE clf INPUTS 1 bad OUTPUTS 2 l4 p4",
    ));
    assert!(text.starts_with("ERR"), "{text}");
    assert_eq!(run_str(&mut c, "EXISTS p4").expect("exists"), Value::Int(0));

    // The model survives a reload (an RDB load stores it again through the backend).
    run_str(&mut c, "DEBUG RELOAD").expect("reload");
    assert_eq!(
        run_str(
            &mut c,
            "AI.MODELEXECUTE clf INPUTS 1 x OUTPUTS 2 label proba"
        )
        .expect("run"),
        Value::Okay
    );
    assert_eq!(meta(&mut c, "proba"), ("FLOAT".to_owned(), vec![2, 3]));
}

#[test]
fn sequences_of_tensors_are_stacked() {
    let server = Server::start();
    let mut c = server.client();
    assert_eq!(
        store(&mut c, "pair", &pair(FLOAT)).expect("store"),
        Value::Okay
    );
    run_str(&mut c, "AI.TENSORSET a FLOAT 3 VALUES 1 2 3").expect("a");
    run_str(&mut c, "AI.TENSORSET b FLOAT 3 VALUES 4 5 6").expect("b");
    assert_eq!(
        run_str(&mut c, "AI.MODELEXECUTE pair INPUTS 2 a b OUTPUTS 1 s").expect("run"),
        Value::Okay
    );
    assert_eq!(meta(&mut c, "s"), ("FLOAT".to_owned(), vec![2, 3]));
    assert_eq!(
        floats(run_str(&mut c, "AI.TENSORGET s BLOB").expect("get")),
        [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    );
    // Tensors of different shapes cannot be stacked: the run fails, nothing is written.
    run_str(&mut c, "AI.TENSORSET b FLOAT 2 VALUES 4 5").expect("b");
    let text = error_text(run_str(
        &mut c,
        "AI.MODELEXECUTE pair INPUTS 2 a b OUTPUTS 1 s2",
    ));
    assert!(
        text.contains("differ in shape ([3] at 0, [2] at 1)"),
        "{text}"
    );
    assert_eq!(run_str(&mut c, "EXISTS s2").expect("exists"), Value::Int(0));
}

#[test]
fn unsupported_output_types_are_refused_at_store() {
    let server = Server::start();
    let mut c = server.client();
    let text = error_text(store(&mut c, "strings", &pair(STRING)));
    assert!(
        text.contains(
            "model output 0 ('s') is of type seq(tensor(STRING)), a sequence of STRING tensors"
        ),
        "{text}"
    );
    let optional = model(
        vec![node("Optional", "", &["x"], &["o"], vec![])],
        &[("x", tensor(FLOAT, Some(&[-1])))],
        &[(
            "o",
            Msg::default().msg(9, Msg::default().msg(1, tensor(FLOAT, None))),
        )],
    );
    let text = error_text(store(&mut c, "optional", &optional));
    assert!(
        text.contains("model output 0 ('o') is of type optional(tensor(FLOAT)), an optional value"),
        "{text}"
    );
    assert_eq!(
        run_str(&mut c, "EXISTS strings optional").expect("exists"),
        Value::Int(0)
    );
    assert_eq!(
        run_str(&mut c, "PING").expect("alive"),
        Value::SimpleString("PONG".into())
    );
}
