//! The exported C table, driven the way the core drives it: init with a host table, load,
//! run, release, errors, timeouts and cancellation. In its own binary: `init` makes the
//! plugin's one instance.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{ensure_runtime_lib, f32s, model_bytes, Input};
use redisai_plugin_api::abi::{RAI_PLUGIN_ABI_MAJOR, RAI_PLUGIN_ABI_MINOR};
use redisai_plugin_api::sdk::DType;
use redisai_plugin_testkit::host::{set_timeout_ms, HOST};
use redisai_plugin_testkit::table::{Plugin, RunOptions, CPU, GPU0};
use redisai_tflite::redisai_plugin_entry;

#[test]
fn the_c_table_end_to_end() {
    ensure_runtime_lib();
    // SAFETY: the plugin's entry point returns its static table.
    let plugin = unsafe { Plugin::from_entry(redisai_plugin_entry) };
    let api = plugin.api();
    assert_eq!(
        (api.abi_major, api.abi_minor),
        (RAI_PLUGIN_ABI_MAJOR, RAI_PLUGIN_ABI_MINOR)
    );
    assert_eq!(plugin.name(), c"TFLITE");
    assert_eq!(plugin.runtime_version(), c"2.3.0");
    assert_eq!(api.device_mask, 1);
    // Every dtype but STRING.
    assert_eq!(api.dtype_mask, 0x1ff);
    assert_eq!(api.flags, 0);
    assert!(api.script_load.is_none());

    assert_eq!(plugin.init(&HOST), Ok(()));

    let model = plugin
        .load(CPU, &model_bytes("add.tflite"), &[], &[])
        .expect("add loads");
    assert_eq!(model.input_names(), ["a", "b"]);
    assert_eq!(model.output_names(), ["c"]);
    let out = model
        .run(
            &[Input::f32(&[2], &[1.0, 2.0]), Input::f32(&[2], &[3.0, 4.0])],
            1,
        )
        .expect("run");
    assert_eq!(out[0].dtype, DType::Float);
    assert_eq!(out[0].shape, [2]);
    assert_eq!(f32s(&out[0].data), [4.0, 6.0]);
    let err = model
        .run(&[Input::f32(&[2], &[1.0, 2.0])], 1)
        .expect_err("one input");
    assert_eq!(
        err,
        "Number of keys given as INPUTS here does not match model definition"
    );
    drop(model);

    let err = plugin
        .load(CPU, b"garbage", &[], &[])
        .expect_err("a corrupt blob");
    assert!(err.contains("not a TFLite model"), "{err}");
    let err = plugin
        .load(GPU0, &model_bytes("add.tflite"), &[], &[])
        .expect_err("no GPU");
    assert!(err.contains("CPU only"), "{err}");

    // Timeouts from the host's config and from the run options: LiteRT checks between
    // operations and stops the endless loop.
    let looping = plugin
        .load(CPU, &model_bytes("endless_loop.tflite"), &[], &[])
        .expect("loads");
    let x = [Input::f32(&[1], &[0.0])];
    let started = Instant::now();
    let err = looping
        .run_with(RunOptions::timeout(150), &x, 1)
        .expect_err("times out");
    assert!(err.contains("timed out after 150 ms"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
    set_timeout_ms(100);
    let err = looping
        .run_with(RunOptions::timeout(0), &x, 1)
        .expect_err("times out");
    assert!(err.contains("timed out after 100 ms"), "{err}");
    let err = looping
        .run_with(RunOptions::timeout(5000), &x, 1)
        .expect_err("times out");
    assert!(
        err.contains("timed out after 100 ms"),
        "the smaller limit wins: {err}"
    );
    set_timeout_ms(0);

    // The host's cancel flag stops a run from another thread.
    let flag = Arc::new(AtomicU32::new(0));
    let setter = {
        let flag = Arc::clone(&flag);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            flag.store(1, Ordering::SeqCst);
        })
    };
    let err = looping
        .run_with(RunOptions::cancel(&flag), &x, 1)
        .expect_err("cancelled");
    assert!(err.contains("model run cancelled"), "{err}");
    setter.join().expect("setter");
    // A flag already set stops the run at once.
    let err = looping
        .run_with(RunOptions::cancel(&flag), &x, 1)
        .expect_err("cancelled");
    assert!(err.contains("model run cancelled"), "{err}");
    drop(looping);

    // Models still run after a stopped run, and without a limit.
    let model = plugin
        .load(CPU, &model_bytes("two_outputs.tflite"), &[], &[])
        .expect("loads");
    let out = model
        .run_with(
            RunOptions::cancel(&AtomicU32::new(0)),
            &[Input::f32(&[1, 2], &[1.0, 2.0])],
            2,
        )
        .expect("runs");
    assert_eq!(f32s(&out[1].data), [1.0, 4.0]);
    drop(model);

    // A second init is harmless.
    assert_eq!(plugin.init(&HOST), Ok(()));
}
