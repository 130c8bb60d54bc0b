//! The exported C table, driven the way the core drives it: init with a host table, load,
//! run, release, errors, timeouts and cancellation. In its own binary: `init` makes the
//! plugin's one instance.

mod common;

use std::sync::atomic::AtomicU32;
use std::time::Duration;

use common::{ensure_runtime_lib, f32s, model_bytes, Input};
use redisai_plugin_testkit::checks::{self, Facts};
use redisai_plugin_testkit::host::HOST;
use redisai_plugin_testkit::table::{Plugin, RunOptions, CPU, GPU0};
use redisai_tflite::redisai_plugin_entry;

#[test]
fn the_c_table_end_to_end() {
    ensure_runtime_lib();
    // SAFETY: the plugin's entry point returns its static table.
    let plugin = unsafe { Plugin::from_entry(redisai_plugin_entry) };
    checks::table_facts(
        &plugin,
        &Facts {
            name: c"TFLITE",
            runtime_version: c"2.3.0",
            device_mask: 1,
            // Every dtype but STRING.
            dtype_mask: 0x1ff,
            flags: redisai_plugin_api::abi::RAI_PLUGIN_FLAG_INTERRUPTIBLE_RUN,
            scripts: false,
        },
    );

    assert_eq!(plugin.init(&HOST), Ok(()));

    checks::add_model(&plugin, &model_bytes("add.tflite"));

    let err = plugin
        .load(CPU, b"garbage", &[], &[])
        .expect_err("a corrupt blob");
    assert_eq!(err, "Failed to load model from buffer");
    let err = plugin
        .load(GPU0, &model_bytes("add.tflite"), &[], &[])
        .expect_err("no GPU");
    assert!(err.contains("CPU only"), "{err}");

    // Timeouts from the host's config and from the run options, and the host's cancel
    // flag: LiteRT checks between operations and stops the endless loop.
    let looping = plugin
        .load(CPU, &model_bytes("endless_loop.tflite"), &[], &[])
        .expect("loads");
    let x = [Input::f32(&[1], &[0.0])];
    checks::timeouts(&looping, &x, 1);
    checks::cancellation(&looping, &x, 1, Duration::from_millis(100));
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
