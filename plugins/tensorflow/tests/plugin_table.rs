//! The exported C table, driven the way the core drives it: init with a host table, load
//! (with INPUTS/OUTPUTS names), run, release, errors, timeouts and cancellation. In its own
//! binary: `init` makes the plugin's one instance.

mod common;

use std::sync::atomic::AtomicU32;
use std::time::Duration;

use common::{ensure_runtime_lib, f32s, model_bytes, values, Input};
use redisai_plugin_api::sdk::DType;
use redisai_plugin_testkit::checks::{self, Facts};
use redisai_plugin_testkit::host::HOST;
use redisai_plugin_testkit::table::{Plugin, RunOptions, CPU, GPU0};
use redisai_tensorflow::redisai_plugin_entry;

#[test]
fn the_c_table_end_to_end() {
    ensure_runtime_lib();
    // SAFETY: the plugin's entry point returns its static table.
    let plugin = unsafe { Plugin::from_entry(redisai_plugin_entry) };
    checks::table_facts(
        &plugin,
        &Facts {
            name: c"TF",
            runtime_version: c"2.21.0",
            device_mask: 1,
            // Every dtype, STRING included.
            dtype_mask: 0x3ff,
            flags: redisai_plugin_api::abi::RAI_PLUGIN_FLAG_INTERRUPTIBLE_RUN,
            scripts: false,
        },
    );

    assert_eq!(plugin.init(&HOST), Ok(()));

    let mul = model_bytes("mul.pb");
    let model = plugin
        .load(CPU, &mul, &[c"a", c"b"], &[c"mul"])
        .expect("mul loads");
    assert_eq!(model.input_names(), ["a", "b"]);
    assert_eq!(model.output_names(), ["mul"]);
    let x = [2.0, 3.0, 2.0, 3.0];
    let out = model
        .run(&[Input::f32(&[2, 2], &x), Input::f32(&[2, 2], &x)], 1)
        .expect("run");
    assert_eq!(out[0].dtype, DType::Float);
    assert_eq!(out[0].shape, [2, 2]);
    assert_eq!(f32s(&out[0].data), [4.0, 9.0, 4.0, 9.0]);
    assert_eq!(
        model.last_run_lent(),
        [true],
        "copied once, into the memory the host lent"
    );
    checks::too_few_inputs(&model, &[Input::f32(&[2], &[1.0, 2.0])], 1);
    drop(model);

    let err = plugin
        .load(CPU, b"\xff\xff garbage", &[c"a"], &[c"b"])
        .expect_err("a corrupt blob");
    assert_eq!(err, "Invalid GraphDef");
    let err = plugin
        .load(CPU, &mul, &[c"a", c"x"], &[c"mul"])
        .expect_err("no such input");
    assert_eq!(err, "ERR Input node named \"x\" not found in TF graph.");
    let err = plugin
        .load(CPU, &mul, &[c"a", c"b"], &[])
        .expect_err("no outputs");
    assert!(err.contains("OUTPUTS"), "{err}");
    let err = plugin
        .load(GPU0, &mul, &[c"a", c"b"], &[c"mul"])
        .expect_err("no GPU");
    assert!(err.contains("CPU only"), "{err}");

    // Timeouts from the host's config and from the run options stop a loop of 10^12 steps.
    let looping = plugin
        .load(CPU, &model_bytes("count_loop.pb"), &[c"limit"], &[c"count"])
        .expect("loads");
    let forever = [Input::i64(&[], &[1_000_000_000_000])];
    checks::timeouts(&looping, &forever, 1);

    // The host's cancel flag stops a run from another thread.
    checks::cancellation(&looping, &forever, 1, Duration::from_millis(200));
    // The model runs again afterwards (on a new session), with or without a flag.
    let out = looping
        .run_with(
            RunOptions::cancel(&AtomicU32::new(0)),
            &[Input::i64(&[], &[5])],
            1,
        )
        .expect("runs");
    assert_eq!(values::<i64>(&out[0].data), [5]);
    let out = looping
        .run_with(RunOptions::timeout(0), &[Input::i64(&[], &[6])], 1)
        .expect("runs");
    assert_eq!(values::<i64>(&out[0].data), [6]);
    drop(looping);

    // A second init is harmless.
    assert_eq!(plugin.init(&HOST), Ok(()));
}
