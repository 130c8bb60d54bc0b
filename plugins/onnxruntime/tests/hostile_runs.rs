//! Stored models that crashed the server in AI.MODELEXECUTE (found by the live fuzzer):
//! a variadic operator with an empty input name (`Mean(x, "")`: a segfault inside ONNX
//! Runtime), and operators given an input of the wrong rank by a model that does not
//! declare the input's shape (Resize, Multinomial, ReverseSequence, RoiAlign: ONNX
//! Runtime's GSL contract checks call `std::terminate`). Each is now refused at load, or
//! its run fails with an error; none reaches a kernel that would crash.

mod common;

use common::hostile::{node, value_info};
use common::onnx::{elem, Pb};
use common::{backend, views, Input};
use redisai_onnxruntime::OnnxBackend;

/// An INT64 or FLOAT initializer.
fn init_i64(name: &str, dims: &[i64], values: &[i64]) -> Pb {
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    dims.iter()
        .fold(Pb::default(), |m, &d| m.int(1, d))
        .int(2, elem::INT64)
        .str(8, name)
        .bytes(9, &raw)
}

fn init_f32(name: &str, dims: &[i64], values: &[f32]) -> Pb {
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    dims.iter()
        .fold(Pb::default(), |m, &d| m.int(1, d))
        .int(2, elem::FLOAT)
        .str(8, name)
        .bytes(9, &raw)
}

/// Input `x` (FLOAT): no shape (`None`), or these dims (-1 symbolic).
fn input_x(dims: Option<&[i64]>) -> Pb {
    let mut tensor = Pb::default().int(1, elem::FLOAT);
    if let Some(dims) = dims {
        let shape = dims.iter().enumerate().fold(Pb::default(), |s, (i, &d)| {
            s.msg(
                1,
                if d < 0 {
                    Pb::default().str(2, &format!("d{i}"))
                } else {
                    Pb::default().int(1, d)
                },
            )
        });
        tensor = tensor.msg(2, shape);
    }
    Pb::default()
        .str(1, "x")
        .msg(2, Pb::default().msg(1, tensor))
}

/// One node `op(inputs) -> y`, with initializers; output `y` of `out_elem`, no shape.
fn model_of(op: Pb, initializers: &[Pb], x: Option<&[i64]>, out_elem: i64, opset: i64) -> Vec<u8> {
    let mut graph = Pb::default().msg(1, op).str(2, "g");
    for t in initializers {
        graph = graph.msg(5, t.clone());
    }
    let out = Pb::default()
        .str(1, "y")
        .msg(2, Pb::default().msg(1, Pb::default().int(1, out_elem)));
    graph = graph.msg(11, input_x(x)).msg(12, out);
    Pb::default()
        .int(1, 8)
        .str(2, "redisai-onnxruntime-tests")
        .msg(7, graph)
        .msg(8, Pb::default().str(1, "").int(2, opset))
        .0
}

struct Case {
    name: &'static str,
    node: Pb,
    initializers: Vec<Pb>,
    out_elem: i64,
    opset: i64,
    /// The rank the operator needs.
    declared: &'static [i64],
    /// An input of another rank, which crashed the server.
    wrong: Input,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "Resize with scales [0.5] on [1,4]",
            node: node("Resize", "", &["x", "", "scales"], &["y"]),
            initializers: vec![init_f32("scales", &[1], &[0.5])],
            out_elem: elem::FLOAT,
            opset: 13,
            declared: &[-1],
            wrong: Input::f32(&[1, 4], &[1.0, 2.0, 3.0, 4.0]),
        },
        Case {
            name: "Multinomial on a 1-D input",
            node: node("Multinomial", "", &["x"], &["y"]),
            initializers: vec![],
            out_elem: elem::INT32,
            opset: 17,
            declared: &[-1, -1],
            wrong: Input::f32(&[4], &[0.1, 0.2, 0.3, 0.4]),
        },
        Case {
            name: "ReverseSequence on a 1-D input",
            node: node("ReverseSequence", "", &["x", "lens"], &["y"]),
            initializers: vec![init_i64("lens", &[1], &[1])],
            out_elem: elem::FLOAT,
            opset: 17,
            declared: &[-1, -1],
            wrong: Input::f32(&[4], &[1.0, 2.0, 3.0, 4.0]),
        },
        Case {
            name: "RoiAlign on a 1-D input",
            node: node("RoiAlign", "", &["x", "rois", "batch"], &["y"]),
            initializers: vec![
                init_f32("rois", &[1, 4], &[0.0, 0.0, 1.0, 1.0]),
                init_i64("batch", &[1], &[0]),
            ],
            out_elem: elem::FLOAT,
            opset: 17,
            declared: &[-1, -1, -1, -1],
            wrong: Input::f32(&[4], &[1.0, 2.0, 3.0, 4.0]),
        },
    ]
}

fn refused(backend: &OnnxBackend, bytes: &[u8]) -> String {
    match backend.load(bytes) {
        Ok(_) => panic!("the model was loaded"),
        Err(err) => err.to_string(),
    }
}

/// A model whose input declares no shape loads; each run gets a session for the ranks it
/// gives, which ONNX Runtime's shape inference checks at that session's load: a rank the
/// operator cannot take fails the run.
#[test]
fn an_undeclared_input_shape_fails_the_run_with_a_wrong_rank() {
    let backend = backend();
    for case in cases() {
        let bytes = model_of(
            case.node.clone(),
            &case.initializers,
            None,
            case.out_elem,
            case.opset,
        );
        let model = backend
            .load(&bytes)
            .unwrap_or_else(|err| panic!("{}: {}", case.name, err));
        let rank = case.wrong.shape.len();
        for _ in 0..2 {
            let err = backend
                .run(&model, 0, &views(std::slice::from_ref(&case.wrong)), 1)
                .err()
                .unwrap_or_else(|| panic!("{}: the run succeeded", case.name));
            assert!(
                err.to_string().starts_with(&format!(
                    "the model cannot run on these inputs ('x' of rank {rank}; it declares no shape for them): "
                )),
                "{}: {}",
                case.name,
                err
            );
        }
    }
    // The right rank runs, then the wrong one still fails, then the right one runs again.
    let bytes = model_of(
        node("ReverseSequence", "", &["x", "lens"], &["y"]),
        &[init_i64("lens", &[1], &[2])],
        None,
        elem::FLOAT,
        17,
    );
    let model = backend.load(&bytes).expect("loads");
    let good = Input::f32(&[2, 1], &[1.0, 2.0]);
    let bad = Input::f32(&[2], &[1.0, 2.0]);
    for _ in 0..2 {
        let out = backend
            .run(&model, 0, &views(std::slice::from_ref(&good)), 1)
            .expect("runs");
        assert_eq!(common::f32s(&out[0].data), [2.0, 1.0]);
        assert!(backend
            .run(&model, 0, &views(std::slice::from_ref(&bad)), 1)
            .is_err());
    }
    // More rank combinations than the model keeps sessions for.
    let bytes = model_of(
        node("Identity", "", &["x"], &["y"]),
        &[],
        None,
        elem::FLOAT,
        17,
    );
    let model = backend.load(&bytes).expect("loads");
    for round in 0..2 {
        for rank in 0..10usize {
            let shape = vec![1i64; rank];
            let out = backend
                .run(&model, 0, &views(&[Input::f32(&shape, &[7.0])]), 1)
                .unwrap_or_else(|err| panic!("round {round} rank {rank}: {}", err));
            assert_eq!(out[0].shape, shape);
        }
    }
    // No type at all, or no element type: refused.
    let graph = Pb::default()
        .msg(1, node("Identity", "", &["x"], &["y"]))
        .msg(11, Pb::default().str(1, "x"))
        .msg(12, value_info("y", elem::FLOAT, &[4]));
    let text = refused(&backend, &common::hostile::model(graph, Pb::default()));
    assert_eq!(text, "model input 'x' has no declared type: it has no type");
    let untyped = Pb::default()
        .str(1, "x")
        .msg(2, Pb::default().msg(1, Pb::default().msg(2, Pb::default())));
    let graph = Pb::default()
        .msg(1, node("Identity", "", &["x"], &["y"]))
        .msg(11, untyped)
        .msg(12, value_info("y", elem::FLOAT, &[4]));
    let text = refused(&backend, &common::hostile::model(graph, Pb::default()));
    assert_eq!(
        text,
        "model input 'x' has no declared type: its tensor type has no element type"
    );
}

#[test]
fn a_wrong_rank_fails_the_run_or_the_load() {
    let backend = backend();
    for case in cases() {
        let bytes = model_of(
            case.node.clone(),
            &case.initializers,
            Some(case.declared),
            case.out_elem,
            case.opset,
        );
        let model = match backend.load(&bytes) {
            Ok(model) => model,
            // Shape inference may refuse it (Resize: scales for rank 1, input of rank 1 is fine).
            Err(err) => panic!("{}: declared model refused: {}", case.name, err),
        };
        let err = backend
            .run(&model, 0, &views(&[case.wrong]), 1)
            .err()
            .unwrap_or_else(|| panic!("{}: the run succeeded", case.name));
        assert!(
            err.to_string()
                .starts_with("Invalid rank for input: x Got: "),
            "{}: {}",
            case.name,
            err
        );
    }
    // A declared rank the operator cannot take is refused by shape inference at load.
    for case in cases() {
        let dims: Vec<i64> = vec![-1; case.wrong.shape.len()];
        let bytes = model_of(
            case.node.clone(),
            &case.initializers,
            Some(&dims),
            case.out_elem,
            case.opset,
        );
        if let Ok(model) = backend.load(&bytes) {
            let result = backend.run(&model, 0, &views(&[case.wrong]), 1);
            panic!(
                "{}: loaded with the rank the operator cannot take; run: {:?}",
                case.name,
                result.map(|_| ()).map_err(|e| e.to_string())
            );
        }
    }
}

#[test]
fn fixed_dimensions_are_checked_before_the_run() {
    let backend = backend();
    let bytes = model_of(
        node("Identity", "", &["x"], &["y"]),
        &[],
        Some(&[-1, 4]),
        elem::FLOAT,
        17,
    );
    let model = backend.load(&bytes).expect("loads");
    let err = backend
        .run(&model, 0, &views(&[Input::f32(&[1, 5], &[0.0; 5])]), 1)
        .expect_err("the run fails");
    assert_eq!(
        err.to_string(),
        "Got invalid dimensions for input: x for the following indices index: 1 Got: 5 Expected: 4 Please fix either the inputs or the model."
    );
    let ok = backend
        .run(&model, 0, &views(&[Input::f32(&[2, 4], &[0.0; 8])]), 1)
        .expect("runs");
    assert_eq!(ok[0].shape, vec![2, 4]);
}

#[test]
fn an_empty_variadic_input_is_refused_at_load() {
    let backend = backend();
    for op in ["Mean", "Sum", "Max", "Min", "Concat", "Einsum"] {
        for (inputs, domain) in [
            (&["x", ""][..], ""),
            (&["", "x"][..], ""),
            (&["x", ""][..], "ai.onnx"),
        ] {
            let bytes = model_of(
                node(op, domain, inputs, &["y"]),
                &[],
                Some(&[4]),
                elem::FLOAT,
                17,
            );
            assert_eq!(
                refused(&backend, &bytes),
                format!("model uses a forbidden operation: {op} (an empty input name in a variadic position: only an optional input may be omitted)"),
                "{op} {inputs:?}"
            );
        }
    }
    // The same operators with all inputs named still run.
    let bytes = model_of(
        node("Mean", "", &["x", "x"], &["y"]),
        &[],
        Some(&[4]),
        elem::FLOAT,
        17,
    );
    let model = backend.load(&bytes).expect("loads");
    let out = backend
        .run(
            &model,
            0,
            &views(&[Input::f32(&[4], &[1.0, 2.0, 3.0, 4.0])]),
            1,
        )
        .expect("runs");
    assert_eq!(common::f32s(&out[0].data), [1.0, 2.0, 3.0, 4.0]);
    // An omitted optional input (Resize's roi) is fine.
    let bytes = model_of(
        node("Resize", "", &["x", "", "scales"], &["y"]),
        &[init_f32("scales", &[1], &[2.0])],
        Some(&[-1]),
        elem::FLOAT,
        13,
    );
    let model = backend.load(&bytes).expect("loads");
    let out = backend
        .run(&model, 0, &views(&[Input::f32(&[2], &[1.0, 2.0])]), 1)
        .expect("runs");
    assert_eq!(out[0].shape, vec![4]);
}

const LAYER_NORM: &str = "LayerNormalization(x, scale, \"\")";

/// `LayerNormalization(x, scale, "")` (axis -1, scale 2) on x FLOAT [1, 4]: a trailing
/// omitted optional input, which ONNX Runtime's level-2 optimizations dereference when
/// the model is loaded (SIGSEGV; found by the fuzzer, seed 3 case 19123).
fn layer_norm_model() -> Vec<u8> {
    let ln = node("LayerNormalization", "", &["x", "scale", ""], &["y"])
        .msg(5, Pb::default().str(1, "axis").int(3, -1).int(20, 2));
    model_of(
        ln,
        &[init_f32("scale", &[4], &[2.0; 4])],
        Some(&[1, 4]),
        elem::FLOAT,
        18,
    )
}

#[test]
fn a_trailing_omitted_input_is_dropped_before_onnx_runtime_loads_the_model() {
    let backend = backend();
    let model = backend.load(&layer_norm_model()).expect("loads");
    let out = backend
        .run(
            &model,
            0,
            &views(&[Input::f32(&[1, 4], &[1.0, 1.0, 3.0, 3.0])]),
            1,
        )
        .expect("runs");
    let y = common::f32s(&out[0].data);
    let want = [-2.0, -2.0, 2.0, 2.0];
    assert!(
        y.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-3),
        "{y:?}"
    );
}

/// The crashing models, as they were stored: no declared input shape, or an empty
/// variadic input.
fn crashing_models() -> Vec<(String, Vec<u8>, Vec<i64>)> {
    let mut models: Vec<(String, Vec<u8>, Vec<i64>)> = cases()
        .into_iter()
        .map(|case| {
            (
                case.name.to_owned(),
                model_of(
                    case.node,
                    &case.initializers,
                    None,
                    case.out_elem,
                    case.opset,
                ),
                case.wrong.shape,
            )
        })
        .collect();
    models.push((LAYER_NORM.to_owned(), layer_norm_model(), vec![1, 4]));
    models.push((
        "Mean(x, \"\")".to_owned(),
        model_of(
            node("Mean", "", &["x", ""], &["y"]),
            &[],
            Some(&[4]),
            elem::FLOAT,
            17,
        ),
        vec![4],
    ));
    models
}

/// Runs crashing model `REDISAI_CRASH_CASE` with ONNX Runtime alone (no policy) on a
/// FLOAT [4] input: run by [`onnx_runtime_alone_crashes_on_them`] in a child process.
#[test]
#[ignore = "crashes the process: run as a child by onnx_runtime_alone_crashes_on_them"]
fn crash_child() {
    let Ok(case) = std::env::var("REDISAI_CRASH_CASE") else {
        return;
    };
    let (name, bytes, shape) = &crashing_models()[case.parse::<usize>().expect("case")];
    common::ensure_runtime_lib();
    let rt = redisai_onnxruntime::runtime::runtime().expect("runtime");
    let mut session = ort::session::Session::builder(rt.env())
        .and_then(|mut b| b.commit_from_memory(bytes))
        .expect("ONNX Runtime alone loads it");
    let n: i64 = shape.iter().product();
    let x =
        ort::value::Tensor::from_array((shape.clone(), vec![0.25f32; n as usize])).expect("tensor");
    let inputs: Vec<ort::session::SessionInputValue<'_>> = vec![x.into()];
    let result = session
        .run(inputs.as_slice())
        .map(|_| ())
        .map_err(|e| e.to_string());
    eprintln!("{name}: ONNX Runtime alone gave {result:?}");
}

/// What these models did before the checks: ONNX Runtime alone kills the process (the
/// Resize, Multinomial, ReverseSequence and RoiAlign ones by SIGABRT: GSL's contract
/// check calls `std::terminate` on the caller's thread, "terminate called without an
/// active exception"; Mean by SIGSEGV); the backend refuses the Mean model at load and
/// fails the others' runs with an error.
#[test]
fn onnx_runtime_alone_crashes_on_them() {
    use std::os::unix::process::ExitStatusExt;
    let backend = backend();
    let exe = std::env::current_exe().expect("test binary");
    for (i, (name, bytes, shape)) in crashing_models().iter().enumerate() {
        let model = backend.load(bytes);
        if name == LAYER_NORM {
            model.unwrap_or_else(|err| panic!("{name}: {}", err));
        } else if let Ok(model) = model {
            let n: i64 = shape.iter().product();
            let x = Input::f32(shape, &vec![0.25; n as usize]);
            let result = backend.run(&model, 0, &views(&[x]), 1);
            assert!(result.is_err(), "{name}: the run succeeded");
        }
        let out = std::process::Command::new(&exe)
            .args([
                "--ignored",
                "--exact",
                "crash_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("REDISAI_CRASH_CASE", i.to_string())
            .output()
            .expect("child");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.signal().is_some(),
            "{name}: ONNX Runtime alone did not crash ({:?}): {stderr}",
            out.status
        );
        eprintln!("{name}: {:?}", out.status);
    }
}
