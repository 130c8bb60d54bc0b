//! Checks every plugin's C table passes, parametrised by what differs between plugins
//! (names, masks, models, inputs).

use std::ffi::CStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redisai_plugin_api::abi::{RAI_PLUGIN_ABI_MAJOR, RAI_PLUGIN_ABI_MINOR};
use redisai_plugin_api::sdk::DType;

use crate::host::set_timeout_ms;
use crate::table::{Model, Plugin, RunOptions, CPU};
use crate::tensors::{f32s, Input};

/// What a plugin's table says about itself.
pub struct Facts<'a> {
    pub name: &'a CStr,
    pub runtime_version: &'a CStr,
    pub device_mask: u32,
    pub dtype_mask: u32,
    pub flags: u32,
    /// Whether it loads scripts (`script_load`).
    pub scripts: bool,
}

/// The table has this ABI's version and says `facts` about itself.
pub fn table_facts(plugin: &Plugin, facts: &Facts<'_>) {
    let api = plugin.api();
    assert_eq!(
        (api.abi_major, api.abi_minor),
        (RAI_PLUGIN_ABI_MAJOR, RAI_PLUGIN_ABI_MINOR)
    );
    assert_eq!(plugin.name(), facts.name);
    assert_eq!(plugin.runtime_version(), facts.runtime_version);
    assert_eq!(api.device_mask, facts.device_mask);
    assert_eq!(api.dtype_mask, facts.dtype_mask);
    assert_eq!(api.flags, facts.flags);
    assert_eq!(api.script_load.is_some(), facts.scripts);
}

/// A run with fewer inputs than the model has fails with the core's message.
pub fn too_few_inputs(model: &Model, too_few: &[Input], n_outputs: usize) {
    let err = model.run(too_few, n_outputs).expect_err("too few inputs");
    assert_eq!(
        err,
        "Number of keys given as INPUTS here does not match model definition"
    );
}

/// The inputs the tests give the `add` models (`c = a + b`, FLOAT): `[1, 2]` and `[3, 4]`.
pub fn add_inputs() -> [Input; 2] {
    [Input::f32(&[2], &[1.0, 2.0]), Input::f32(&[2], &[3.0, 4.0])]
}

/// The output of an `add` model on [`add_inputs`]: FLOAT `[4, 6]` of shape `[2]`.
pub fn add_output(dtype: DType, shape: &[i64], data: &[u8]) {
    assert_eq!(dtype, DType::Float);
    assert_eq!(shape, [2]);
    assert_eq!(f32s(data), [4.0, 6.0]);
}

/// An `add` model (`blob`) through the C table: it loads on the CPU without INPUTS or
/// OUTPUTS names; inputs `a` and `b`, output `c`; it adds, into memory the host lends
/// (ABI 1.5: the plugin makes at most one copy); a run with one input fails.
pub fn add_model(plugin: &Plugin, blob: &[u8]) {
    let model = plugin.load(CPU, blob, &[], &[]).expect("add loads");
    assert_eq!(model.input_names(), ["a", "b"]);
    assert_eq!(model.output_names(), ["c"]);
    let out = model.run(&add_inputs(), 1).expect("add runs");
    add_output(out[0].dtype, &out[0].shape, &out[0].data);
    assert_eq!(
        model.last_run_lent(),
        [true],
        "the output is not in the memory the host lent"
    );
    too_few_inputs(&model, &[Input::f32(&[2], &[1.0, 2.0])], 1);
}

/// A run of `model` on `forever` (inputs it never ends on by itself) stops at the run's own
/// limit (150 ms, well before 10 s), at the host's MODEL_EXECUTION_TIMEOUT (100 ms) and,
/// with both, at the smaller. Leaves the host's timeout at 0.
pub fn timeouts(model: &Model, forever: &[Input], n_outputs: usize) {
    let started = Instant::now();
    let err = model
        .run_with(RunOptions::timeout(150), forever, n_outputs)
        .expect_err("times out");
    assert!(err.contains("timed out after 150 ms"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
    set_timeout_ms(100);
    let err = model
        .run_with(RunOptions::timeout(0), forever, n_outputs)
        .expect_err("times out");
    assert!(err.contains("timed out after 100 ms"), "{err}");
    let err = model
        .run_with(RunOptions::timeout(5000), forever, n_outputs)
        .expect_err("times out");
    assert!(
        err.contains("timed out after 100 ms"),
        "the smaller limit wins: {err}"
    );
    set_timeout_ms(0);
}

/// The host's cancel flag, set from another thread after `delay`, stops a run of `model`
/// on `forever` (well before 10 s); a flag already set stops the run at once.
pub fn cancellation(model: &Model, forever: &[Input], n_outputs: usize, delay: Duration) {
    let flag = Arc::new(AtomicU32::new(0));
    let setter = {
        let flag = Arc::clone(&flag);
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            flag.store(1, Ordering::SeqCst);
        })
    };
    let started = Instant::now();
    let err = model
        .run_with(RunOptions::cancel(&flag), forever, n_outputs)
        .expect_err("cancelled");
    assert!(err.contains("model run cancelled"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
    setter.join().expect("the thread that sets the flag");
    let err = model
        .run_with(RunOptions::cancel(&flag), forever, n_outputs)
        .expect_err("cancelled");
    assert!(err.contains("model run cancelled"), "{err}");
}
