//! The backend's load and run, in process, on the test graphs of tests/models/tf (see
//! tests/models/tf/README.md for what each computes).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{
    backend, backend_with, f32s, le_bytes, load, load_err, model_bytes, run, run_err, test_image,
    values, views, zlib_input, Input, Settings, ZLIB_TEXT_UNIT,
};
use redisai_plugin_api::sdk::DType;

#[test]
fn mul() {
    let backend = backend();
    assert!(
        backend.version().starts_with("2.21"),
        "{}",
        backend.version()
    );
    let model = load(&backend, "mul.pb", &["a", "b"], &["mul"]);
    assert_eq!(model.input_names(), ["a", "b"]);
    assert_eq!(model.output_names(), ["mul"]);
    let x = [2.0, 3.0, 2.0, 3.0];
    let out = run(
        &backend,
        &model,
        &[Input::f32(&[2, 2], &x), Input::f32(&[2, 2], &x)],
        1,
    );
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].dtype, DType::Float);
    assert_eq!(out[0].shape, [2, 2]);
    assert_eq!(f32s(&out[0].data), [4.0, 9.0, 4.0, 9.0]);
    // Any shape the op takes, scalars and broadcasting included, run after run.
    let out = run(
        &backend,
        &model,
        &[Input::f32(&[], &[3.0]), Input::f32(&[3], &[1.0, 2.0, 3.0])],
        1,
    );
    assert_eq!(out[0].shape, [3]);
    assert_eq!(f32s(&out[0].data), [3.0, 6.0, 9.0]);
    let out = run(
        &backend,
        &model,
        &[Input::f32(&[0], &[]), Input::f32(&[0], &[])],
        1,
    );
    assert_eq!(out[0].shape, [0]);
    assert!(out[0].data.is_empty());
}

fn w1(i: usize, j: usize) -> f32 {
    ((i * 8 + j) % 5) as f32 / 8.0 - 0.25
}
fn b1(j: usize) -> f32 {
    (j % 3) as f32 / 8.0 - 0.125
}
fn w2(j: usize, k: usize) -> f32 {
    ((j * 3 + k) % 7) as f32 / 8.0 - 0.375
}
fn b2(k: usize) -> f32 {
    k as f32 / 8.0 - 0.125
}

/// The MLP of make_tf_models.py, computed here: (hidden, y) for one row.
fn mlp_row(x: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let hidden: Vec<f32> = (0..8)
        .map(|j| {
            let sum: f32 = (0..4).map(|i| x[i] * w1(i, j)).sum::<f32>() + b1(j);
            sum.max(0.0)
        })
        .collect();
    let y = (0..3)
        .map(|k| (0..8).map(|j| hidden[j] * w2(j, k)).sum::<f32>() + b2(k))
        .collect();
    (hidden, y)
}

#[test]
fn mlp_in_batches_and_outputs_in_the_order_asked() {
    let backend = backend();
    let model = load(&backend, "mlp.pb", &["x"], &["y", "hidden"]);
    for rows in [1usize, 3, 8] {
        let x: Vec<f32> = (0..rows * 4).map(|v| (v % 9) as f32 - 4.0).collect();
        let out = run(&backend, &model, &[Input::f32(&[rows as i64, 4], &x)], 2);
        assert_eq!(out[0].shape, [rows as i64, 3]);
        assert_eq!(out[1].shape, [rows as i64, 8]);
        let (mut hidden, mut y) = (Vec::new(), Vec::new());
        for row in x.chunks(4) {
            let (h, o) = mlp_row(row);
            hidden.extend(h);
            y.extend(o);
        }
        assert_eq!(f32s(&out[0].data), y, "{rows} rows");
        assert_eq!(f32s(&out[1].data), hidden, "{rows} rows");
    }
    // The graph's placeholder is [?, 4]: TensorFlow refuses other widths, and says why.
    let err = run_err(
        &backend,
        &model,
        &[Input::f32(&[1, 3], &[1.0, 2.0, 3.0])],
        2,
    );
    // TensorFlow's own message, as RedisAI passed it on.
    assert!(err.contains("Matrix size-incompatible"), "{err}");
}

#[test]
fn names_with_output_indices() {
    let backend = backend();
    let model = load(
        &backend,
        "split.pb",
        &["x:0"],
        &["halves:1", "halves", "second_twice:0"],
    );
    assert_eq!(
        model.output_names(),
        ["halves:1", "halves", "second_twice:0"]
    );
    let out = run(
        &backend,
        &model,
        &[Input::f32(&[4], &[1.0, 2.0, 3.0, 4.0])],
        3,
    );
    assert_eq!(f32s(&out[0].data), [3.0, 4.0]);
    assert_eq!(f32s(&out[1].data), [1.0, 2.0]);
    assert_eq!(f32s(&out[2].data), [9.0, 16.0]);

    let blob = model_bytes("split.pb");
    let err = load_err(&backend, &blob, &["x"], &["halves:2"]);
    assert_eq!(
        err,
        "Output \"halves:2\": the operation \"halves\" has 2 output(s), there is no output 2"
    );
    let err = load_err(&backend, &blob, &["x:x"], &["halves"]);
    assert!(
        err.contains("'x:x' is not a TensorFlow tensor name"),
        "{err}"
    );
}

#[test]
fn every_dtype_in_and_out() {
    let backend = backend();
    let names = [
        "float", "double", "int8", "int16", "int32", "int64", "uint8", "uint16", "bool",
    ];
    let inputs: Vec<String> = names.iter().map(|n| format!("in_{n}")).collect();
    let mut outputs: Vec<String> = names.iter().map(|n| format!("out_{n}")).collect();
    outputs.push("not_bool".into());
    outputs.push("neg_int64".into());
    let inputs_ref: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let outputs_ref: Vec<&str> = outputs.iter().map(String::as_str).collect();
    let model = load(&backend, "types.pb", &inputs_ref, &outputs_ref);
    let tensors = [
        Input::new(DType::Float, &[2], le_bytes(&[1.5f32, -2.0])),
        Input::new(DType::Double, &[2], le_bytes(&[1e300f64, -0.5])),
        Input::new(DType::Int8, &[2], le_bytes(&[-128i8, 127])),
        Input::new(DType::Int16, &[2], le_bytes(&[-32768i16, 7])),
        Input::new(DType::Int32, &[2], le_bytes(&[i32::MIN, 42])),
        Input::new(DType::Int64, &[2], le_bytes(&[i64::MAX, -3])),
        Input::new(DType::Uint8, &[2], le_bytes(&[0u8, 255])),
        Input::new(DType::Uint16, &[2], le_bytes(&[65535u16, 1])),
        Input::new(DType::Bool, &[3], vec![1, 0, 1]),
    ];
    let out = run(&backend, &model, &tensors, outputs.len());
    for (i, input) in tensors.iter().enumerate() {
        assert_eq!(out[i].dtype, input.dtype, "{}", outputs[i]);
        assert_eq!(out[i].shape, input.shape, "{}", outputs[i]);
        assert_eq!(out[i].data, input.data, "{}", outputs[i]);
    }
    assert_eq!(out[9].dtype, DType::Bool);
    assert_eq!(out[9].data, [0, 1, 0]);
    assert_eq!(out[10].dtype, DType::Int64);
    assert_eq!(values::<i64>(&out[10].data), [-i64::MAX, 3]);

    // An input of another dtype than the graph's is refused before the run.
    let mut wrong = tensors;
    wrong[0] = Input::new(DType::Int32, &[2], le_bytes(&[1i32, 2]));
    let err = run_err(&backend, &model, &wrong, outputs.len());
    assert_eq!(
        err,
        "input 0 ('in_float') has dtype INT32, the graph expects FLOAT"
    );
}

#[test]
fn strings_in_and_out() {
    let backend = backend();
    let model = load(&backend, "strings.pb", &["s"], &["out", "len"]);
    let long = vec![b'x'; 1000];
    let elements: [&[u8]; 4] = [b"", b"a", "h\u{e9}llo world".as_bytes(), &long];
    let out = run(&backend, &model, &[Input::strings(&[2, 2], &elements)], 2);
    assert_eq!(out[0].dtype, DType::String);
    assert_eq!(out[0].shape, [2, 2]);
    let expected = Input::strings(&[2, 2], &elements);
    assert_eq!(out[0].data, expected.data);
    assert_eq!(out[1].dtype, DType::Int32);
    assert_eq!(values::<i32>(&out[1].data), [0, 1, 12, 1000]);
    // A scalar, and an empty tensor.
    let out = run(&backend, &model, &[Input::strings(&[], &[b"one"])], 2);
    assert_eq!(out[0].data, b"one\0");
    assert_eq!(out[0].shape, [] as [i64; 0]);
    let out = run(&backend, &model, &[Input::strings(&[0], &[])], 2);
    assert!(out[0].data.is_empty());
    // Element count and shape must agree.
    let err = run_err(&backend, &model, &[Input::strings(&[3], &[b"a", b"b"])], 2);
    assert!(err.contains("has 2 elements, 3 were expected"), "{err}");
}

#[test]
fn png_through_tensorflows_zlib() {
    let backend = backend();
    let model = load(&backend, "png.pb", &["image"], &["decoded", "png_size"]);
    // 1 MiB of pixels: deflate (EncodePng) and inflate (DecodePng) in TensorFlow's zlib.
    let (width, height) = (512usize, 512usize);
    let image = test_image(width, height);
    let shape = [height as i64, width as i64, 4];
    let out = run(
        &backend,
        &model,
        &[Input::new(DType::Uint8, &shape, image.clone())],
        2,
    );
    assert_eq!(out[0].shape, shape);
    assert!(
        out[0].data == image,
        "the PNG round trip changed the pixels"
    );
    let size = values::<i32>(&out[1].data)[0];
    assert!(size > 1000 && (size as usize) < image.len(), "{size}");

    // The PNG itself cannot be a RedisAI STRING (it holds NUL bytes): a clear error.
    let raw = load(&backend, "png.pb", &["image"], &["png"]);
    let err = run_err(
        &backend,
        &raw,
        &[Input::new(DType::Uint8, &[2, 2, 1], vec![0, 1, 2, 3])],
        1,
    );
    assert!(err.contains("output 0 ('png')"), "{err}");
    assert!(err.contains("NUL byte"), "{err}");
}

#[test]
fn zlib_streams_through_tensorflows_zlib() {
    let backend = backend();
    let model = load(&backend, "zlib.pb", &["data"], &["text", "size"]);
    let out = run(&backend, &model, &[zlib_input()], 2);
    assert_eq!(out[0].dtype, DType::String);
    let mut text = ZLIB_TEXT_UNIT.repeat(1 << 15);
    assert_eq!(text.len(), 1 << 20);
    text.push(0);
    assert!(out[0].data == text, "the decompressed text differs");
    assert_eq!(values::<i32>(&out[1].data), [1 << 20]);
    // Damaged data: TensorFlow's error, not a crash.
    let err = run_err(
        &backend,
        &model,
        &[Input::strings(&[], &[b"bm90IHpsaWIgZGF0YQ"])],
        2,
    );
    assert!(err.contains("incorrect header check"), "{err}");
}

#[test]
fn bad_graphs_and_names_are_refused_at_load() {
    let backend = backend();
    let err = load_err(&backend, b"\xff\xff\xff not a graph", &["a"], &["b"]);
    // TensorFlow's own text, as RedisAI gave it.
    assert_eq!(err, "Invalid GraphDef");

    // An op TensorFlow does not know is not on the load policy's allow-list either.
    let err = load_err(&backend, &model_bytes("unknown_op.pb"), &["a"], &["y"]);
    assert_eq!(
        err,
        "model uses a forbidden operation: NoSuchOpForRedisAITests (not on the allow-list)"
    );

    let err = load_err(&backend, &model_bytes("dangling_input.pb"), &["a"], &["y"]);
    assert!(err.contains("missing"), "{err}");

    let mul = model_bytes("mul.pb");
    let err = load_err(&backend, &mul, &["a", "nope"], &["mul"]);
    // RedisAI's texts, with their code (the input's ends with a full stop).
    assert_eq!(err, "ERR Input node named \"nope\" not found in TF graph.");
    let err = load_err(&backend, &mul, &["a", "b"], &["c"]);
    assert_eq!(err, "ERR Output node named \"c\" not found in TF graph");
    let err = load_err(&backend, &mul, &["a", "b"], &[]);
    assert!(
        err.contains("needs the names of the graph's outputs"),
        "{err}"
    );
    // A blob that parses as an empty graph has none of the names.
    let err = load_err(&backend, b"", &["a"], &["mul"]);
    assert_eq!(err, "ERR Input node named \"a\" not found in TF graph.");
}

#[test]
fn run_checks_counts_and_sizes() {
    let backend = backend();
    let model = load(&backend, "mul.pb", &["a", "b"], &["mul"]);
    let one = Input::f32(&[1], &[1.0]);
    let err = run_err(&backend, &model, &[Input::f32(&[1], &[1.0])], 1);
    assert_eq!(
        err,
        "Number of keys given as INPUTS here does not match model definition"
    );
    let two = [Input::f32(&[1], &[1.0]), Input::f32(&[1], &[1.0])];
    let err = run_err(&backend, &model, &two, 2);
    assert_eq!(
        err,
        "Number of keys given as OUTPUTS here does not match model definition"
    );
    let short = Input::new(DType::Float, &[2], vec![0; 4]);
    let err = run_err(&backend, &model, &[one, short], 1);
    assert_eq!(
        err,
        "input 1 ('b'): a FLOAT tensor of shape [2] has 4 bytes of data, 8 were expected"
    );
}

#[test]
fn graphs_without_inputs_run() {
    let backend = backend();
    // The MLP's weights are constants: fetch one with no inputs at all.
    let model = load(&backend, "mlp.pb", &[], &["b2"]);
    let out = run(&backend, &model, &[], 1);
    assert_eq!(f32s(&out[0].data), [-0.125, 0.0, 0.125]);
}

#[test]
fn timeouts_stop_a_long_loop() {
    let settings = Settings::default();
    let backend = backend_with(settings.clone());
    let model = load(&backend, "count_loop.pb", &["limit"], &["count"]);
    let out = run(&backend, &model, &[Input::i64(&[], &[1000])], 1);
    assert_eq!(values::<i64>(&out[0].data), [1000]);
    let out = run(&backend, &model, &[Input::i64(&[1], &[20])], 1);
    assert_eq!(out[0].shape, [1]);
    assert_eq!(values::<i64>(&out[0].data), [20]);

    // 10^12 iterations would take hours: the run's own timeout stops it.
    let forever = [Input::i64(&[], &[1_000_000_000_000])];
    let started = Instant::now();
    let err = backend
        .run(&model, 200, &views(&forever), 1)
        .expect_err("times out")
        .to_string();
    assert!(
        err.starts_with("model execution timed out after 200 ms"),
        "{err}"
    );
    assert!(err.contains("DEADLINE_EXCEEDED"), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );

    // MODEL_EXECUTION_TIMEOUT, and the smaller limit wins.
    Settings::set(&settings.timeout_ms, 100);
    let err = backend
        .run(&model, 0, &views(&forever), 1)
        .expect_err("x")
        .to_string();
    assert!(
        err.starts_with("model execution timed out after 100 ms"),
        "{err}"
    );
    let err = backend
        .run(&model, 5000, &views(&forever), 1)
        .expect_err("x")
        .to_string();
    assert!(
        err.starts_with("model execution timed out after 100 ms"),
        "{err}"
    );
    Settings::set(&settings.timeout_ms, 0);

    // The model still runs afterwards.
    let out = run(&backend, &model, &[Input::i64(&[], &[7])], 1);
    assert_eq!(values::<i64>(&out[0].data), [7]);
}

#[test]
fn concurrent_runs_of_different_models() {
    let backend = Arc::new(backend());
    let models: Vec<_> = (0..4)
        .map(|_| Arc::new(load(&backend, "mlp.pb", &["x"], &["y"])))
        .collect();
    let threads: Vec<_> = models
        .iter()
        .enumerate()
        .map(|(t, model)| {
            let backend = Arc::clone(&backend);
            let model = Arc::clone(model);
            std::thread::spawn(move || {
                for i in 0..50 {
                    let x: Vec<f32> = (0..4).map(|v| (v + i + t) as f32 / 4.0).collect();
                    let out = run(&backend, &model, &[Input::f32(&[1, 4], &x)], 1);
                    assert_eq!(f32s(&out[0].data), mlp_row(&x).1);
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("thread");
    }
}
