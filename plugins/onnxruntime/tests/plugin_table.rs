//! The exported C table, driven the way the core drives it: init with a host table, load,
//! run, release, errors. In its own binary: `init` makes the plugin's one instance.

mod common;

use common::{ensure_runtime_lib, f32s, model_bytes, Input};
use redisai_onnxruntime::redisai_plugin_entry;
use redisai_plugin_api::abi::{RaiLogLevel, RAI_PLUGIN_ABI_MAJOR, RAI_PLUGIN_ABI_MINOR};
use redisai_plugin_api::sdk::DType;
use redisai_plugin_testkit::host::{self, set_timeout_ms, HOST};
use redisai_plugin_testkit::table::{Plugin, RunOptions, CPU};

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
    assert_eq!(plugin.name(), c"ONNX");
    assert_eq!(plugin.runtime_version(), c"1.32.0");
    assert_eq!(api.device_mask, 1);
    assert_eq!(api.dtype_mask, 0x3ff);
    assert_eq!(api.flags, 0);
    assert!(api.script_load.is_none());

    assert_eq!(plugin.init(&HOST), Ok(()));

    let model = plugin
        .load(CPU, &model_bytes("add.onnx"), &[], &[])
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
    assert!(err.contains("protobuf"), "{err}");

    // Timeouts from the host's config and from the run options.
    let looping = plugin
        .load(CPU, &model_bytes("endless_loop.onnx"), &[], &[])
        .expect("loads");
    let x = [Input::f32(&[1], &[0.0])];
    let err = looping
        .run_with(RunOptions::timeout(150), &x, 1)
        .expect_err("times out");
    assert!(err.contains("timed out after 150 ms"), "{err}");
    set_timeout_ms(100);
    let err = looping
        .run_with(RunOptions::timeout(0), &x, 1)
        .expect_err("times out");
    assert!(err.contains("timed out after 100 ms"), "{err}");
    drop(looping);

    // ONNX Runtime's warnings reach the host's log.
    let log = host::log();
    assert!(
        log.iter()
            .any(|(level, line)| *level == RaiLogLevel::Warning as u32
                && line.starts_with("onnxruntime ")
                && line.contains("terminate flag")),
        "{log:?}"
    );

    drop(log);

    // A second init is harmless.
    assert_eq!(plugin.init(&HOST), Ok(()));
}
