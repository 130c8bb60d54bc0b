//! BACKEND_MEMORY_LIMIT 256 against a run whose intermediate tensor is 2 GB (Expand of a
//! one-element input to [2^29] floats, then ReduceSum): the run fails with an error, the
//! process lives, the arena gives nothing away; the backend's counters (ABI minor 3)
//! follow loads and frees. One test in its own binary, since the arena belongs to the
//! process's one environment.

mod common;

use common::onnx::{elem, model, Node, Ty};
use common::{backend_with, f32s, views, Input, Settings};
use redisai_plugin_testkit::ok;

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    kb * 1024
}

#[test]
fn a_2gb_intermediate_is_refused_under_256_mb_and_counters_follow_models() {
    let settings = Settings::default();
    Settings::set(&settings.memory_mb, 256);
    let backend = backend_with(settings.clone());
    let before = backend.memory_stats();
    eprintln!("before: {before:?}");

    let blob = model(
        &[
            Node("Expand", &["x", "shape"], &["big"]),
            Node("ReduceSum", &["big"], &["y"]),
        ],
        &[
            ("x", Ty::Tensor(elem::FLOAT, Some(vec![1]))),
            ("shape", Ty::Tensor(elem::INT64, Some(vec![1]))),
        ],
        &[("y", Ty::Tensor(elem::FLOAT, Some(vec![1])))],
    );
    let model = ok(backend.load(&blob), "load");
    let loaded = backend.memory_stats();
    eprintln!("loaded: {loaded:?}");
    assert_eq!(model.memory_bytes(), blob.len() as u64);
    assert_eq!(loaded.weights, before.weights + blob.len() as u64);
    assert_eq!(loaded.limit, 256_000_000);

    let rss_before = rss_bytes();
    let huge = [Input::f32(&[1], &[1.0]), Input::i64(&[1], &[1 << 29])];
    let err = backend
        .run(&model, 0, &views(&huge), 1)
        .expect_err("a 2 GB intermediate under 256 MB");
    eprintln!("2 GB run: {}", err);
    assert!(
        err.to_string()
            .starts_with("Onnxruntime memory limit exceeded, memory allocation failed (BACKEND_MEMORY_LIMIT is 256 MB): "),
        "{}",
        err
    );
    let after = backend.memory_stats();
    eprintln!(
        "after the refused run: {after:?}, RSS {} -> {}",
        rss_before,
        rss_bytes()
    );
    assert!(after.held <= 256_000_000 + after.weights, "{after:?}");
    assert!(rss_bytes() < rss_before + 100_000_000);

    // 40 MB passes under the same limit.
    let fits = [Input::f32(&[1], &[1.0]), Input::i64(&[1], &[10_000_000])];
    let out = ok(
        backend.run(&model, 0, &views(&fits), 1),
        "a 40 MB intermediate",
    );
    assert_eq!(f32s(&out[0].data), vec![10_000_000.0]);
    let ran = backend.memory_stats();
    eprintln!("after the 40 MB run: {ran:?}");
    assert!(ran.peak >= ran.held && ran.held <= 256_000_000 + ran.weights);

    // Weights count against the limit: a model larger than what is left is refused at load.
    Settings::set(&settings.memory_mb, 1);
    let weights = vec![0.5f32; 500_000];
    let heavy = common::onnx::model_with_weights(
        &[Node("Add", &["x", "w"], &["y"])],
        &[("x", Ty::Tensor(elem::FLOAT, Some(vec![500_000])))],
        &[("y", Ty::Tensor(elem::FLOAT, Some(vec![500_000])))],
        &[common::onnx::Weight("w", &[500_000], &weights)],
    );
    let refused = backend
        .load(&heavy)
        .err()
        .expect("2 MB of weights under 1 MB");
    assert!(
        refused
            .to_string()
            .starts_with("Onnxruntime memory limit exceeded: a model of"),
        "{}",
        refused
    );
    assert_eq!(backend.memory_stats().weights, ran.weights);

    // A model whose input declares no shape gets a session per rank it is fed, each one
    // more copy of the weights: those count against the limit as well.
    Settings::set(&settings.memory_mb, 3);
    let any_rank = common::onnx::model_with_weights(
        &[Node("Add", &["x", "w"], &["y"])],
        &[("x", Ty::Tensor(elem::FLOAT, None))],
        &[("y", Ty::Tensor(elem::FLOAT, None))],
        &[common::onnx::Weight("w", &[500_000], &weights)],
    );
    let any_rank = backend.load(&any_rank).expect("2 MB of weights under 3 MB");
    let x = [Input::f32(&[500_000], &weights)];
    let refused = backend
        .run(&any_rank, 0, &views(&x), 1)
        .expect_err("a second copy of the weights under 3 MB");
    assert!(
        refused
            .to_string()
            .starts_with("Onnxruntime memory limit exceeded: a model of"),
        "{}",
        refused
    );
    Settings::set(&settings.memory_mb, 256);
    let out = backend
        .run(&any_rank, 0, &views(&x), 1)
        .expect("runs once the session fits");
    assert_eq!(f32s(&out[0].data)[0], 1.0);
    drop(any_rank);

    drop(model);
    let freed = backend.memory_stats();
    eprintln!("freed: {freed:?}");
    assert_eq!(freed.weights, before.weights);
}
