//! The exported C table, driven the way the core drives it: init with a host table, load,
//! run, release, errors. In its own binary: `init` makes the plugin's one instance.

mod common;

use common::{ensure_runtime_lib, model_bytes, Input};
use redisai_onnxruntime::redisai_plugin_entry;
use redisai_plugin_api::abi::RaiLogLevel;
use redisai_plugin_testkit::checks::{self, Facts};
use redisai_plugin_testkit::host::{self, HOST};
use redisai_plugin_testkit::table::{Plugin, CPU};

#[test]
fn the_c_table_end_to_end() {
    ensure_runtime_lib();
    // SAFETY: the plugin's entry point returns its static table.
    let plugin = unsafe { Plugin::from_entry(redisai_plugin_entry) };
    checks::table_facts(
        &plugin,
        &Facts {
            name: c"ONNX",
            runtime_version: c"1.32.0",
            device_mask: 1,
            dtype_mask: 0x3ff,
            flags: redisai_plugin_api::abi::RAI_PLUGIN_FLAG_INTERRUPTIBLE_RUN,
            scripts: false,
        },
    );

    assert_eq!(plugin.init(&HOST), Ok(()));

    checks::add_model(&plugin, &model_bytes("add.onnx"));

    let err = plugin
        .load(CPU, b"garbage", &[], &[])
        .expect_err("a corrupt blob");
    assert!(err.contains("protobuf"), "{err}");

    // Timeouts from the host's config and from the run options.
    let looping = plugin
        .load(CPU, &model_bytes("endless_loop.onnx"), &[], &[])
        .expect("loads");
    let x = [Input::f32(&[1], &[0.0])];
    checks::timeouts(&looping, &x, 1);
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
