//! The backend's load and run, in process, on the test models of tests/models/onnx and on
//! models written here.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::onnx::{elem, model, Node, Ty};
use common::{
    backend, backend_with, f32s, i64s, load, model_bytes, run, run_err, views, Input, Settings,
};
use redisai_plugin_api::sdk::{DType, OwnedTensor};
use redisai_plugin_testkit::checks;

#[test]
fn add() {
    let backend = backend();
    let model = load(&backend, "add.onnx");
    assert_eq!(model.input_names(), ["a", "b"]);
    assert_eq!(model.output_names(), ["c"]);
    let out = run(&backend, &model, &checks::add_inputs(), 1);
    assert_eq!(out.len(), 1);
    checks::add_output(out[0].dtype, &out[0].shape, &out[0].data);
}

#[test]
fn add_any_rank_and_empty_tensors() {
    let backend = backend();
    let model = load(&backend, "add_any_rank.onnx");
    let out = run(
        &backend,
        &model,
        &[
            Input::f32(&[2, 2], &[1.0, 2.0, 3.0, 4.0]),
            Input::f32(&[2, 2], &[10.0, 20.0, 30.0, 40.0]),
        ],
        1,
    );
    assert_eq!(out[0].shape, [2, 2]);
    assert_eq!(f32s(&out[0].data), [11.0, 22.0, 33.0, 44.0]);
    // Scalars and empty tensors.
    let out = run(
        &backend,
        &model,
        &[Input::f32(&[], &[1.5]), Input::f32(&[], &[2.0])],
        1,
    );
    assert_eq!(out[0].shape, Vec::<i64>::new());
    assert_eq!(f32s(&out[0].data), [3.5]);
    let out = run(
        &backend,
        &model,
        &[Input::f32(&[0, 3], &[]), Input::f32(&[0, 3], &[])],
        1,
    );
    assert_eq!(out[0].shape, [0, 3]);
    assert!(out[0].data.is_empty());
}

/// y = relu(x W1 + b1) W2 + b2 with the weights of mlp_weights.json.
fn mlp_reference(weights: &serde_json::Value, x: &[f32]) -> Vec<f32> {
    let matrix = |name: &str| -> Vec<Vec<f64>> {
        weights[name]
            .as_array()
            .expect(name)
            .iter()
            .map(|row| {
                row.as_array()
                    .expect("row")
                    .iter()
                    .map(|v| v.as_f64().expect("number"))
                    .collect()
            })
            .collect()
    };
    let vector = |name: &str| -> Vec<f64> {
        weights[name]
            .as_array()
            .expect(name)
            .iter()
            .map(|v| v.as_f64().expect("number"))
            .collect()
    };
    let (w1, b1, w2, b2) = (matrix("W1"), vector("b1"), matrix("W2"), vector("b2"));
    let mut y = Vec::new();
    for row in x.chunks(4) {
        let hidden: Vec<f64> = (0..b1.len())
            .map(|j| (0..4).map(|k| f64::from(row[k]) * w1[k][j]).sum::<f64>() + b1[j])
            .map(|h| h.max(0.0))
            .collect();
        for j in 0..b2.len() {
            y.push(
                (hidden
                    .iter()
                    .enumerate()
                    .map(|(k, h)| h * w2[k][j])
                    .sum::<f64>()
                    + b2[j]) as f32,
            );
        }
    }
    y
}

#[test]
fn mlp_matches_its_weights() {
    let weights: serde_json::Value =
        serde_json::from_slice(&model_bytes("mlp_weights.json")).expect("mlp_weights.json");
    let backend = backend();
    let model = load(&backend, "mlp.onnx");
    assert_eq!(model.input_names(), ["x"]);
    assert_eq!(model.output_names(), ["y"]);

    // The examples in the JSON file (exact: the weights are multiples of 1/8).
    for example in weights["examples"].as_array().expect("examples") {
        let x: Vec<f32> = example["x"]
            .as_array()
            .expect("x")
            .iter()
            .flat_map(|row| {
                row.as_array()
                    .expect("row")
                    .iter()
                    .map(|v| v.as_f64().expect("x") as f32)
            })
            .collect();
        let y: Vec<f32> = example["y"]
            .as_array()
            .expect("y")
            .iter()
            .flat_map(|row| {
                row.as_array()
                    .expect("row")
                    .iter()
                    .map(|v| v.as_f64().expect("y") as f32)
            })
            .collect();
        let n = (x.len() / 4) as i64;
        let out = run(&backend, &model, &[Input::f32(&[n, 4], &x)], 1);
        assert_eq!(out[0].shape, [n, 3]);
        assert_eq!(f32s(&out[0].data), y);
    }
    // The README's sample.
    let out = run(
        &backend,
        &model,
        &[Input::f32(&[1, 4], &[1.0, 2.0, 3.0, 4.0])],
        1,
    );
    assert_eq!(f32s(&out[0].data), [0.421875, 1.8125, 0.015625]);

    // A larger batch of small integers against the reference computation.
    let x: Vec<f32> = (0..64 * 4).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
    let out = run(&backend, &model, &[Input::f32(&[64, 4], &x)], 1);
    assert_eq!(out[0].shape, [64, 3]);
    assert_eq!(f32s(&out[0].data), mlp_reference(&weights, &x));
}

#[test]
fn two_outputs_in_model_order() {
    let backend = backend();
    let model = load(&backend, "two_outputs.onnx");
    assert_eq!(model.output_names(), ["sum", "prod"]);
    let out = run(
        &backend,
        &model,
        &[Input::f32(&[2, 2], &[1.0, 2.0, 3.0, 4.0])],
        2,
    );
    assert_eq!(out.len(), 2);
    assert_eq!(out[0].shape, [2, 2]);
    assert_eq!(f32s(&out[0].data), [2.0, 4.0, 6.0, 8.0]);
    assert_eq!(f32s(&out[1].data), [1.0, 4.0, 9.0, 16.0]);
}

#[test]
fn string_identity() {
    let backend = backend();
    let model = load(&backend, "string_identity.onnx");
    let values: [&[u8]; 4] = [b"hello", b"", "w\u{f6}rld".as_bytes(), b"a b c"];
    let input = Input::strings(&[4], &values);
    let out = run(&backend, &model, std::slice::from_ref(&input), 1);
    assert_eq!(out[0].dtype, DType::String);
    assert_eq!(out[0].shape, [4]);
    assert_eq!(out[0].data, input.data);

    let bad = Input::strings(&[2], &[b"ok", b"\xff\xfe"]);
    let err = run_err(&backend, &model, &[bad], 1);
    assert!(err.contains("UTF-8") && err.contains("'s'"), "{err}");

    let short = Input::strings(&[3], &[b"a", b"b"]);
    let err = run_err(&backend, &model, &[short], 1);
    assert!(err.contains("2 elements"), "{err}");
}

#[test]
fn int64_and_bool() {
    let backend = backend();
    let model = load(&backend, "int_ops.onnx");
    let out = run(&backend, &model, &[Input::i64(&[3], &[-2, 0, 3])], 2);
    assert_eq!(out[0].dtype, DType::Int64);
    assert_eq!(i64s(&out[0].data), [-1, 1, 4]);
    assert_eq!(out[1].dtype, DType::Bool);
    assert_eq!(out[1].shape, [3]);
    assert_eq!(out[1].data, [0, 0, 1]);
}

/// One model with an Identity per dtype: every dtype goes in and comes back.
#[test]
fn every_dtype_both_ways() {
    let types = [
        (DType::Float, elem::FLOAT),
        (DType::Double, elem::DOUBLE),
        (DType::Int8, elem::INT8),
        (DType::Int16, elem::INT16),
        (DType::Int32, elem::INT32),
        (DType::Int64, elem::INT64),
        (DType::Uint8, elem::UINT8),
        (DType::Uint16, elem::UINT16),
        (DType::Bool, elem::BOOL),
        (DType::String, elem::STRING),
    ];
    let names: Vec<(String, String)> = (0..types.len())
        .map(|i| (format!("x{i}"), format!("y{i}")))
        .collect();
    let nodes: Vec<Node<'_>> = Vec::new();
    let ins: Vec<[&str; 1]> = names.iter().map(|(x, _)| [x.as_str()]).collect();
    let outs: Vec<[&str; 1]> = names.iter().map(|(_, y)| [y.as_str()]).collect();
    let mut nodes = nodes;
    for i in 0..types.len() {
        nodes.push(Node("Identity", &ins[i], &outs[i]));
    }
    let inputs: Vec<(&str, Ty)> = names
        .iter()
        .zip(&types)
        .map(|((x, _), (_, e))| (x.as_str(), Ty::Tensor(*e, None)))
        .collect();
    let outputs: Vec<(&str, Ty)> = names
        .iter()
        .zip(&types)
        .map(|((_, y), (_, e))| (y.as_str(), Ty::Tensor(*e, None)))
        .collect();
    let blob = model(&nodes, &inputs, &outputs);

    let backend = backend();
    let model = backend
        .load(&blob)
        .map_err(|e| e.to_string())
        .expect("identity model loads");
    let shape = [2i64, 3];
    let data = |dtype: DType| -> Vec<u8> {
        match dtype {
            DType::Float => {
                common::le_bytes(&[1.5f32, -2.0, 0.0, 3.25, f32::MAX, f32::MIN_POSITIVE])
            }
            DType::Double => common::le_bytes(&[1.5f64, -2.0, 0.0, 3.25, f64::MAX, 1e-300]),
            DType::Int8 => common::le_bytes(&[1i8, -2, 0, 127, -128, 5]),
            DType::Int16 => common::le_bytes(&[1i16, -2, 0, i16::MAX, i16::MIN, 5]),
            DType::Int32 => common::le_bytes(&[1i32, -2, 0, i32::MAX, i32::MIN, 5]),
            DType::Int64 => common::le_bytes(&[1i64, -2, 0, i64::MAX, i64::MIN, 5]),
            DType::Uint8 => common::le_bytes(&[1u8, 2, 0, 255, 128, 5]),
            DType::Uint16 => common::le_bytes(&[1u16, 2, 0, u16::MAX, 32768, 5]),
            DType::Bool => vec![1, 0, 0, 1, 1, 0],
            DType::String => b"a\0bc\0\0d e\0\xc3\xa9\0last\0".to_vec(),
        }
    };
    let inputs: Vec<Input> = types
        .iter()
        .map(|(d, _)| Input::new(*d, &shape, data(*d)))
        .collect();
    let out = run(&backend, &model, &inputs, types.len());
    for ((dtype, _), (input, output)) in types.iter().zip(inputs.iter().zip(&out)) {
        assert_eq!(output.dtype, *dtype);
        assert_eq!(output.shape, shape, "{dtype:?}");
        assert_eq!(output.data, input.data, "{dtype:?}");
    }

    // Misaligned numeric data is copied, not misread.
    let mut inputs = inputs;
    for input in &mut inputs {
        if input.dtype != DType::String {
            let mut shifted = vec![0u8];
            shifted.extend_from_slice(&input.data);
            // Keep the storage, view it from offset 1.
            input.data = shifted;
        }
    }
    let shifted: Vec<_> = inputs
        .iter()
        .map(|input| {
            let mut view = input.view();
            if input.dtype != DType::String {
                view.data = &input.data[1..];
            }
            view
        })
        .collect();
    let out = backend
        .run(&model, 0, &shifted, types.len())
        .map_err(|e| e.to_string())
        .expect("run");
    for (view, output) in shifted.iter().zip(&out) {
        assert_eq!(output.data, view.data, "{:?}", view.dtype);
    }
}

#[test]
fn wrong_dtype_is_named() {
    let backend = backend();
    let model = load(&backend, "add.onnx");
    let ints = Input::new(DType::Int32, &[2], common::le_bytes(&[1i32, 2]));
    let err = run_err(&backend, &model, &[ints, Input::f32(&[2], &[3.0, 4.0])], 1);
    assert_eq!(
        err,
        "input 0 ('a') has dtype INT32, the model expects FLOAT"
    );
}

#[test]
fn counts_and_sizes_are_checked() {
    let backend = backend();
    let model = load(&backend, "add.onnx");
    let err = run_err(&backend, &model, &[Input::f32(&[2], &[1.0, 2.0])], 1);
    assert_eq!(
        err,
        "Number of keys given as INPUTS here does not match model definition"
    );
    let two = || [Input::f32(&[2], &[1.0, 2.0]), Input::f32(&[2], &[3.0, 4.0])];
    let err = run_err(&backend, &model, &two(), 2);
    assert_eq!(
        err,
        "Number of keys given as OUTPUTS here does not match model definition"
    );
    let err = run_err(
        &backend,
        &model,
        &[Input::f32(&[3], &[1.0, 2.0]), Input::f32(&[2], &[3.0, 4.0])],
        1,
    );
    assert!(err.contains("8 bytes") && err.contains("needs 12"), "{err}");
    let err = run_err(
        &backend,
        &model,
        &[Input::f32(&[-1], &[]), Input::f32(&[2], &[3.0, 4.0])],
        1,
    );
    assert!(err.contains("negative"), "{err}");
    // Shapes whose element count overflows are refused before ONNX Runtime sees them.
    let huge = Input::new(DType::Float, &[1 << 33, 1 << 33, 0], Vec::new());
    let err = run_err(&backend, &model, &[huge, Input::f32(&[2], &[3.0, 4.0])], 1);
    assert!(err.contains("too many elements"), "{err}");
    // Mismatched lengths are ONNX Runtime's to report: an error, not a crash.
    let err = run_err(
        &backend,
        &model,
        &[
            Input::f32(&[2], &[1.0, 2.0]),
            Input::f32(&[3], &[3.0, 4.0, 5.0]),
        ],
        1,
    );
    assert!(!err.is_empty());
    // Wrong rank for mlp's [N, 4].
    let mlp = load(&backend, "mlp.onnx");
    let err = run_err(
        &backend,
        &mlp,
        &[Input::f32(&[4], &[1.0, 2.0, 3.0, 4.0])],
        1,
    );
    assert!(err.to_lowercase().contains("rank"), "{err}");
    // BOOL bytes other than 0 and 1.
    let int_ops = load(&backend, "int_ops.onnx");
    let err = run_err(
        &backend,
        &int_ops,
        &[Input::new(DType::Bool, &[1], vec![2])],
        2,
    );
    assert!(err.contains("dtype BOOL"), "{err}");
}

#[test]
fn bad_bool_bytes_are_refused() {
    let blob = model(
        &[Node("Not", &["x"], &["y"])],
        &[("x", Ty::Tensor(elem::BOOL, Some(vec![-1])))],
        &[("y", Ty::Tensor(elem::BOOL, Some(vec![-1])))],
    );
    let backend = backend();
    let model = backend
        .load(&blob)
        .map_err(|e| e.to_string())
        .expect("Not model loads");
    let out = run(
        &backend,
        &model,
        &[Input::new(DType::Bool, &[3], vec![0, 1, 0])],
        1,
    );
    assert_eq!(out[0].data, [1, 0, 1]);
    let err = run_err(
        &backend,
        &model,
        &[Input::new(DType::Bool, &[2], vec![0, 7])],
        1,
    );
    assert_eq!(
        err,
        "input 0 ('x') is BOOL but has bytes other than 0 and 1"
    );
}

#[test]
fn corrupt_blobs_are_errors() {
    let backend = backend();
    for blob in [
        b"definitely not an ONNX model".to_vec(),
        model_bytes("mlp.onnx")[..100].to_vec(),
        vec![0xff; 4096],
    ] {
        match backend.load(&blob) {
            Ok(_) => panic!("a corrupt blob loaded"),
            Err(err) => {
                eprintln!("corrupt blob: {}", err);
                assert!(!err.to_string().is_empty());
            }
        }
    }
    let err = backend.load(&[]).err().expect("an empty blob is refused");
    assert_eq!(err.to_string(), "the ONNX model blob is empty");
}

#[test]
fn unsupported_element_types_are_refused_at_load() {
    let blob = model(
        &[Node("Identity", &["x"], &["y"])],
        &[("x", Ty::Tensor(elem::FLOAT16, Some(vec![-1])))],
        &[("y", Ty::Tensor(elem::FLOAT16, Some(vec![-1])))],
    );
    let backend = backend();
    let err = backend.load(&blob).err().expect("FLOAT16 is refused");
    assert_eq!(
        err.to_string(),
        "model input 0 ('x') has element type FLOAT16, which RedisAI tensors cannot hold"
    );
}

fn assert_times_out(result: Result<Vec<OwnedTensor>, redisai_plugin_api::sdk::Error>, ms: u64) {
    match result {
        Ok(_) => panic!("the endless loop finished"),
        Err(err) => {
            assert!(
                err.to_string()
                    .contains(&format!("timed out after {ms} ms")),
                "{}",
                err
            );
            // RedisAI's clients match ONNX Runtime's own text.
            assert!(
                err.to_string()
                    .contains("Exiting due to terminate flag being set to true"),
                "{}",
                err
            );
        }
    }
}

#[test]
fn endless_loop_times_out_with_the_run_timeout() {
    let backend = backend();
    let model = load(&backend, "endless_loop.onnx");
    let input = [Input::f32(&[2], &[0.0, 1.0])];
    let start = Instant::now();
    assert_times_out(backend.run(&model, 300, &views(&input), 1), 300);
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    // The model still works afterwards (the terminate flag is per run).
    let start = Instant::now();
    assert_times_out(backend.run(&model, 200, &views(&input), 1), 200);
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn model_execution_timeout_applies_and_the_smaller_wins() {
    let settings = Settings::default();
    let backend = backend_with(settings.clone());
    let model = load(&backend, "endless_loop.onnx");
    let input = [Input::f32(&[1], &[0.0])];
    // Set after the load: read at run time.
    Settings::set(&settings.timeout_ms, 250);
    assert_times_out(backend.run(&model, 0, &views(&input), 1), 250);
    assert_times_out(backend.run(&model, 120, &views(&input), 1), 120);
    Settings::set(&settings.timeout_ms, 150);
    assert_times_out(backend.run(&model, 60_000, &views(&input), 1), 150);

    // A run that finishes in time is not disturbed by its deadline.
    let add = load(&backend, "add.onnx");
    for _ in 0..50 {
        let out = backend
            .run(
                &add,
                10_000,
                &views(&[Input::f32(&[1], &[1.0]), Input::f32(&[1], &[2.0])]),
                1,
            )
            .map_err(|e| e.to_string())
            .expect("run");
        assert_eq!(f32s(&out[0].data), [3.0]);
    }
}

#[test]
fn concurrent_runs_of_one_model() {
    let weights: serde_json::Value =
        serde_json::from_slice(&model_bytes("mlp_weights.json")).expect("mlp_weights.json");
    let backend = Arc::new(backend());
    let model = Arc::new(load(&backend, "mlp.onnx"));
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let (backend, model, weights) =
                (Arc::clone(&backend), Arc::clone(&model), weights.clone());
            std::thread::spawn(move || {
                for i in 0..40 {
                    let x: Vec<f32> = (0..8)
                        .map(|k| ((t * 13 + i * 5 + k) % 9) as f32 - 4.0)
                        .collect();
                    let out = run(&backend, &model, &[Input::f32(&[2, 4], &x)], 1);
                    assert_eq!(f32s(&out[0].data), mlp_reference(&weights, &x));
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("thread");
    }
}

#[test]
fn thread_settings_load_and_run() {
    let settings = Settings::default();
    Settings::set(&settings.intra, 1);
    Settings::set(&settings.inter, 2);
    let backend = backend_with(settings.clone());
    let model = load(&backend, "two_outputs.onnx");
    let out = run(&backend, &model, &[Input::f32(&[1, 2], &[3.0, 4.0])], 2);
    assert_eq!(f32s(&out[1].data), [9.0, 16.0]);
    Settings::set(&settings.intra, 3);
    Settings::set(&settings.inter, 0);
    let model = load(&backend, "two_outputs.onnx");
    let out = run(&backend, &model, &[Input::f32(&[1, 2], &[3.0, 4.0])], 2);
    assert_eq!(f32s(&out[0].data), [6.0, 8.0]);
}
