//! The backend's load and run, in process, on the test models of tests/models/tflite
//! (see tests/models/tflite/README.md for what each computes).

mod common;

use std::sync::Arc;

use common::{backend, f32s, le_bytes, load, run, run_err, values, Input};
use redisai_plugin_api::sdk::DType;
use redisai_plugin_testkit::checks;

#[test]
fn add() {
    let backend = backend();
    let model = load(&backend, "add.tflite");
    assert_eq!(model.input_names(), ["a", "b"]);
    assert_eq!(model.output_names(), ["c"]);
    let out = run(&backend, &model, &checks::add_inputs(), 1);
    assert_eq!(out.len(), 1);
    checks::add_output(out[0].dtype, &out[0].shape, &out[0].data);
}

#[test]
fn inputs_are_resized_to_the_shapes_given() {
    let backend = backend();
    let model = load(&backend, "add.tflite");
    let cases: [(&[i64], usize); 5] = [
        (&[3], 3),
        (&[2, 2], 4),
        (&[1, 2, 3], 6),
        (&[2], 2),
        (&[5], 5),
    ];
    for (shape, n) in cases {
        let a: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let b: Vec<f32> = (0..n).map(|i| 10.0 * i as f32).collect();
        let out = run(
            &backend,
            &model,
            &[Input::f32(shape, &a), Input::f32(shape, &b)],
            1,
        );
        assert_eq!(out[0].shape, shape);
        let want: Vec<f32> = (0..n).map(|i| 11.0 * i as f32).collect();
        assert_eq!(f32s(&out[0].data), want);
    }
    // Broadcasting.
    let out = run(
        &backend,
        &model,
        &[
            Input::f32(&[2, 2], &[1.0, 2.0, 3.0, 4.0]),
            Input::f32(&[1], &[10.0]),
        ],
        1,
    );
    assert_eq!(out[0].shape, [2, 2]);
    assert_eq!(f32s(&out[0].data), [11.0, 12.0, 13.0, 14.0]);
    // Shapes the operation cannot take: an error, and the model still works afterwards.
    let err = run_err(
        &backend,
        &model,
        &[
            Input::f32(&[2], &[1.0, 2.0]),
            Input::f32(&[3], &[1.0, 2.0, 3.0]),
        ],
        1,
    );
    assert!(err.contains("cannot run with these input shapes"), "{err}");
    assert!(
        err.contains("failed to prepare"),
        "LiteRT's reason is in the message: {err}"
    );
    // LiteRT cannot resize an input to a scalar or to an empty tensor.
    let err = run_err(
        &backend,
        &model,
        &[Input::f32(&[], &[1.5]), Input::f32(&[], &[2.0])],
        1,
    );
    assert_eq!(
        err,
        "input 0 ('a') has shape [], the model's is [2]: LiteRT resizes inputs only to shapes of rank 1 or more without zero dimensions"
    );
    let empty = || Input::f32(&[0, 3], &[]);
    let err = run_err(&backend, &model, &[empty(), empty()], 1);
    assert!(
        err.starts_with("input 0 ('a') has shape [0, 3], the model's is [2]"),
        "{err}"
    );
    let out = run(
        &backend,
        &model,
        &[Input::f32(&[2], &[1.0, 2.0]), Input::f32(&[2], &[3.0, 4.0])],
        1,
    );
    assert_eq!(f32s(&out[0].data), [4.0, 6.0]);
}

/// y = relu(x W1 + b1) W2 + b2 with the weights of make_tflite_models.py; the weights
/// are multiples of 1/8, so the results are exact.
#[test]
fn mlp_single_and_batched() {
    let backend = backend();
    let model = load(&backend, "mlp.tflite");
    assert_eq!(model.input_names(), ["x"]);
    assert_eq!(model.output_names(), ["y"]);
    let row1 = [1.0, 2.0, 3.0, 4.0];
    let row2 = [-1.0, 0.5, 0.0, 2.0];
    let y1 = [2.046875, 0.8125, -0.40625];
    let y2 = [0.6171875, 0.2265625, -0.1875];
    for _ in 0..2 {
        let out = run(&backend, &model, &[Input::f32(&[1, 4], &row1)], 1);
        assert_eq!(out[0].shape, [1, 3]);
        assert_eq!(f32s(&out[0].data), y1);
        let both: Vec<f32> = row1.iter().chain(&row2).copied().collect();
        let out = run(&backend, &model, &[Input::f32(&[2, 4], &both)], 1);
        assert_eq!(out[0].shape, [2, 3]);
        let want: Vec<f32> = y1.iter().chain(&y2).copied().collect();
        assert_eq!(f32s(&out[0].data), want);
    }
    let err = run_err(
        &backend,
        &model,
        &[Input::f32(&[1, 3], &[1.0, 2.0, 3.0])],
        1,
    );
    assert!(err.contains("cannot run with these input shapes"), "{err}");
}

/// The outputs come in the subgraph's order with their tensors' names, although the
/// model's SignatureDef lists them the other way round under other names.
#[test]
fn outputs_follow_the_subgraph_not_the_signature() {
    let backend = backend();
    let model = load(&backend, "two_outputs.tflite");
    assert_eq!(model.input_names(), ["x"]);
    assert_eq!(model.output_names(), ["sum", "prod"]);
    let out = run(
        &backend,
        &model,
        &[Input::f32(&[2, 2], &[1.0, 2.0, 3.0, 4.0])],
        2,
    );
    assert_eq!(f32s(&out[0].data), [2.0, 4.0, 6.0, 8.0]);
    assert_eq!(f32s(&out[1].data), [1.0, 4.0, 9.0, 16.0]);
    assert_eq!(out[1].shape, [2, 2]);
}

#[test]
fn quantized_int8_fully_connected() {
    let backend = backend();
    let model = load(&backend, "fc_int8.tflite");
    let x: [i8; 8] = [0, 2, 4, 6, -2, 10, -10, 100];
    let out = run(
        &backend,
        &model,
        &[Input::new(DType::Int8, &[2, 4], le_bytes(&x))],
        1,
    );
    assert_eq!(out[0].dtype, DType::Int8);
    assert_eq!(out[0].shape, [2, 3]);
    assert_eq!(values::<i8>(&out[0].data), [21, 43, 15, -39, 127, 58]);
}

#[test]
fn quantized_uint8_add() {
    let backend = backend();
    let model = load(&backend, "add_uint8.tflite");
    let a: [u8; 4] = [10, 12, 30, 200];
    let b: [u8; 4] = [0, 4, 8, 255];
    let out = run(
        &backend,
        &model,
        &[
            Input::new(DType::Uint8, &[4], a.to_vec()),
            Input::new(DType::Uint8, &[4], b.to_vec()),
        ],
        1,
    );
    assert_eq!(out[0].dtype, DType::Uint8);
    assert_eq!(out[0].data, [20, 22, 32, 179]);
}

/// Every dtype the backend takes, as an input and as an output.
#[test]
fn all_dtypes_in_and_out() {
    let backend = backend();
    let model = load(&backend, "casts.tflite");
    assert_eq!(
        model.input_names(),
        ["f64", "i16", "b", "i32", "u8", "i8", "f32", "i64", "u16"]
    );
    let inputs = [
        Input::new(DType::Double, &[3], le_bytes(&[1.5f64, -2.25, 1e40])),
        Input::new(DType::Int16, &[3], le_bytes(&[-3i16, 0, 32767])),
        Input::new(DType::Bool, &[3], vec![1, 0, 1]),
        Input::new(DType::Int32, &[3], le_bytes(&[-7i32, 0, i32::MAX])),
        Input::new(DType::Uint8, &[3], vec![0, 1, 255]),
        Input::new(DType::Int8, &[3], le_bytes(&[-128i8, 0, 127])),
        Input::f32(&[3], &[0.0, 7.9, 255.0]),
        Input::new(DType::Int64, &[3], le_bytes(&[5i64, 0, 65535])),
        Input::new(DType::Uint16, &[3], le_bytes(&[1u16, 0, 127])),
    ];
    let out = run(&backend, &model, &inputs, 9);
    let dtypes: Vec<DType> = out.iter().map(|t| t.dtype).collect();
    assert_eq!(
        dtypes,
        [
            DType::Float,
            DType::Int64,
            DType::Int32,
            DType::Double,
            DType::Bool,
            DType::Int16,
            DType::Uint8,
            DType::Uint16,
            DType::Int8
        ]
    );
    assert!(out.iter().all(|t| t.shape == [3]));
    assert_eq!(f32s(&out[0].data), [1.5, -2.25, f32::INFINITY]);
    assert_eq!(values::<i64>(&out[1].data), [-3, 0, 32767]);
    assert_eq!(values::<i32>(&out[2].data), [1, 0, 1]);
    assert_eq!(values::<f64>(&out[3].data), [-7.0, 0.0, 2147483647.0]);
    assert_eq!(out[4].data, [0, 1, 1]);
    assert_eq!(values::<i16>(&out[5].data), [-128, 0, 127]);
    assert_eq!(out[6].data, [0, 7, 255]);
    assert_eq!(values::<u16>(&out[7].data), [5, 0, 65535]);
    assert_eq!(values::<i8>(&out[8].data), [1, 0, 127]);
}

#[test]
fn wrong_inputs_are_errors() {
    let backend = backend();
    let model = load(&backend, "add.tflite");
    let a = Input::f32(&[2], &[1.0, 2.0]);
    let b = || Input::f32(&[2], &[3.0, 4.0]);
    let err = run_err(&backend, &model, &[Input::f32(&[2], &[1.0, 2.0])], 1);
    assert_eq!(
        err,
        "Number of keys given as INPUTS here does not match model definition"
    );
    let err = run_err(&backend, &model, &[Input::f32(&[2], &[1.0, 2.0]), b()], 2);
    assert_eq!(
        err,
        "Number of keys given as OUTPUTS here does not match model definition"
    );
    let ints = Input::new(DType::Int32, &[2], le_bytes(&[1i32, 2]));
    let err = run_err(&backend, &model, &[ints, b()], 1);
    assert_eq!(
        err,
        "input 0 ('a') has dtype INT32, the model expects FLOAT"
    );
    let short = Input::new(DType::Float, &[3], le_bytes(&[1.0f32, 2.0]));
    let err = run_err(&backend, &model, &[short, b()], 1);
    assert_eq!(
        err,
        "input 0 ('a') has 8 bytes of data, its shape [3] of FLOAT needs 12"
    );
    let err = run_err(&backend, &model, &[Input::f32(&[1; 9], &[1.0]), b()], 1);
    assert!(err.contains("at most 8"), "{err}");
    // The model still runs.
    let out = run(&backend, &model, &[a, b()], 1);
    assert_eq!(f32s(&out[0].data), [4.0, 6.0]);

    let casts = load(&backend, "casts.tflite");
    let mut inputs: Vec<Input> = vec![
        Input::new(DType::Double, &[1], le_bytes(&[1.0f64])),
        Input::new(DType::Int16, &[1], le_bytes(&[1i16])),
        Input::new(DType::Bool, &[1], vec![2]),
    ];
    inputs.extend([
        Input::new(DType::Int32, &[1], le_bytes(&[1i32])),
        Input::new(DType::Uint8, &[1], vec![1]),
        Input::new(DType::Int8, &[1], vec![1]),
        Input::f32(&[1], &[1.0]),
        Input::new(DType::Int64, &[1], le_bytes(&[1i64])),
        Input::new(DType::Uint16, &[1], le_bytes(&[1u16])),
    ]);
    let err = run_err(&backend, &casts, &inputs, 9);
    assert_eq!(
        err,
        "input 2 ('b') is BOOL but has bytes other than 0 and 1"
    );
}

/// Several models loaded at once, run from several threads (runs of one model are
/// serialised by the backend, runs of different models overlap).
#[test]
fn concurrent_runs_of_several_models() {
    let backend = Arc::new(backend());
    let add = Arc::new(load(&backend, "add.tflite"));
    let mlp = Arc::new(load(&backend, "mlp.tflite"));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (backend, add, mlp) = (Arc::clone(&backend), Arc::clone(&add), Arc::clone(&mlp));
            std::thread::spawn(move || {
                for i in 0..50 {
                    let n = 1 + (t + i) % 4;
                    let a: Vec<f32> = (0..n).map(|k| (k + t) as f32).collect();
                    let out = run(
                        &backend,
                        &add,
                        &[Input::f32(&[n as i64], &a), Input::f32(&[n as i64], &a)],
                        1,
                    );
                    let want: Vec<f32> = a.iter().map(|v| v * 2.0).collect();
                    assert_eq!(f32s(&out[0].data), want);
                    let out = run(
                        &backend,
                        &mlp,
                        &[Input::f32(&[1, 4], &[1.0, 2.0, 3.0, 4.0])],
                        1,
                    );
                    assert_eq!(f32s(&out[0].data), [2.046875, 0.8125, -0.40625]);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("no thread panicked");
    }
}
