//! BACKEND_MEMORY_LIMIT: a process-wide arena shared by the sessions loaded under a limit.
//! One test in its own binary, since the arena belongs to the process's one environment.

mod common;

use common::onnx::{elem, model_with_weights, Node, Ty, Weight};
use common::{backend_with, f32s, model_bytes, views, Input, Settings};
use redisai_onnxruntime::OnnxModel;
use redisai_plugin_testkit::ok;

#[test]
fn memory_limit_bounds_the_sessions_loaded_under_it() {
    let settings = Settings::default();
    let backend = backend_with(settings.clone());
    let blob = model_bytes("state_update.onnx");
    // [1, 262144] floats: 1 MiB in, 1 MiB out, 1 MiB for the intermediate product.
    let state = || [Input::f32(&[1, 262_144], &vec![2.0; 262_144])];
    let check_ok = |model: &OnnxModel| {
        let out = ok(backend.run(model, 0, &views(&state()), 1), "run");
        let values = f32s(&out[0].data);
        assert_eq!(values.len(), 262_144);
        assert!(values.iter().all(|&v| (v - 1.99).abs() < 1e-6));
    };

    // 1 MB (10^6 bytes) cannot hold a 1 MiB output.
    Settings::set(&settings.memory_mb, 1);
    let small = ok(backend.load(&blob), "the model itself is tiny");
    let err = backend
        .run(&small, 0, &views(&state()), 1)
        .expect_err("the run needs more than 1 MB");
    eprintln!("1 MB limit: {}", err);
    assert!(
        err.to_string().starts_with(
            "Onnxruntime memory limit exceeded, memory allocation failed (BACKEND_MEMORY_LIMIT is 1 MB): "
        ),
        "{}",
        err
    );

    // Weights count against the limit as well: 2 MB of them do not load under 1 MB.
    let weights = vec![0.5f32; 500_000];
    let heavy = model_with_weights(
        &[Node("Add", &["x", "w"], &["y"])],
        &[("x", Ty::Tensor(elem::FLOAT, Some(vec![500_000])))],
        &[("y", Ty::Tensor(elem::FLOAT, Some(vec![500_000])))],
        &[Weight("w", &[500_000], &weights)],
    );
    let err = backend.load(&heavy).err().expect("weights are counted");
    assert!(
        err.to_string()
            .contains("would pass BACKEND_MEMORY_LIMIT (1 MB)"),
        "{}",
        err
    );

    // A model loaded under a larger limit runs; the earlier one keeps its small arena.
    Settings::set(&settings.memory_mb, 64);
    let large = ok(backend.load(&blob), "load");
    check_ok(&large);
    assert!(backend.run(&small, 0, &views(&state()), 1).is_err());

    // Without a limit, sessions use their own default arenas again.
    Settings::set(&settings.memory_mb, 0);
    let free = ok(backend.load(&blob), "load");
    check_ok(&free);
    check_ok(&large);
}
