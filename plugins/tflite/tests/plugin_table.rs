//! The exported C table, driven the way the core drives it: init with a host table, load,
//! run, release, errors, timeouts and cancellation. In its own binary: `init` makes the
//! plugin's one instance.

mod common;

use std::ffi::{c_char, c_void, CStr};
use std::ptr;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{ensure_runtime_lib, f32s, model_bytes, Input};
use redisai_plugin_api::abi::{
    RaiConfigKey, RaiDevice, RaiDeviceKind, RaiError, RaiHostApi, RaiModel, RaiModelOptions,
    RaiPluginApi, RaiRunOptions, RaiTensorOut, RaiTensorView, RAI_PLUGIN_ABI_MAJOR,
    RAI_PLUGIN_ABI_MINOR,
};
use redisai_plugin_api::sdk::DType;
use redisai_tflite::redisai_plugin_entry;

static TIMEOUT_MS: AtomicI64 = AtomicI64::new(0);

unsafe extern "C" fn host_log(_level: u32, _message: *const c_char) {}

unsafe extern "C" fn host_config(key: u32) -> i64 {
    if key == RaiConfigKey::ModelExecutionTimeoutMs as u32 {
        TIMEOUT_MS.load(Ordering::SeqCst)
    } else {
        0
    }
}

static HOST: RaiHostApi = RaiHostApi {
    abi_major: RAI_PLUGIN_ABI_MAJOR,
    abi_minor: RAI_PLUGIN_ABI_MINOR,
    struct_size: std::mem::size_of::<RaiHostApi>(),
    log: Some(host_log),
    config_get: Some(host_config),
    redis_command: None,
    reply_free: None,
    model_execute: None,
    host_tensor_release: None,
};

const CPU: RaiDevice = RaiDevice {
    kind: RaiDeviceKind::Cpu,
    id: 0,
};

fn table() -> &'static RaiPluginApi {
    // SAFETY: the entry point returns a pointer to a static table.
    unsafe { &*redisai_plugin_entry() }
}

/// Takes an error's message and frees it.
fn take_error(api: &RaiPluginApi, err: *mut RaiError) -> Option<String> {
    if err.is_null() {
        return None;
    }
    let message = api.error_message.expect("error_message");
    let free = api.error_free.expect("error_free");
    // SAFETY: `err` is a live error of this plugin; freed once, after reading.
    let text = unsafe { CStr::from_ptr(message(err)) }
        .to_string_lossy()
        .into_owned();
    // SAFETY: as above.
    unsafe { free(err) };
    Some(text)
}

fn load(api: &RaiPluginApi, device: RaiDevice, blob: &[u8]) -> Result<*mut RaiModel, String> {
    let options = RaiModelOptions {
        device,
        batch_size: 0,
        input_names: ptr::null(),
        n_input_names: 0,
        output_names: ptr::null(),
        n_output_names: 0,
    };
    let mut model: *mut RaiModel = ptr::null_mut();
    let model_load = api.model_load.expect("model_load");
    // SAFETY: options, blob and the out-pointer are valid for the call.
    let err = unsafe { model_load(&options, blob.as_ptr(), blob.len(), &mut model) };
    match take_error(api, err) {
        Some(message) => Err(message),
        None => Ok(model),
    }
}

fn view(input: &Input) -> RaiTensorView {
    RaiTensorView {
        dtype: input.dtype,
        device: CPU,
        ndim: input.shape.len(),
        shape: input.shape.as_ptr(),
        strides: ptr::null(),
        data: input.data.as_ptr().cast::<c_void>(),
        byte_len: input.data.len(),
    }
}

/// An output copied out of the plugin: dtype, shape, data.
type Output = (DType, Vec<i64>, Vec<u8>);

/// Runs and copies the outputs out (releasing them).
fn run(
    api: &RaiPluginApi,
    model: *mut RaiModel,
    timeout_ms: u64,
    cancel: Option<&AtomicU32>,
    inputs: &[Input],
    n_outputs: usize,
) -> Result<Vec<Output>, String> {
    let views: Vec<RaiTensorView> = inputs.iter().map(view).collect();
    let empty = RaiTensorOut {
        view: view(&Input::f32(&[], &[0.0])),
        owner: ptr::null_mut(),
    };
    let mut outputs = vec![empty; n_outputs];
    let options = RaiRunOptions {
        timeout_ms,
        cancel: cancel.map_or(ptr::null(), |flag| flag.as_ptr().cast_const()),
        host_ctx: std::ptr::null_mut(),
    };
    let model_run = api.model_run.expect("model_run");
    // SAFETY: the views point into `inputs`, alive for the call; `outputs` has room for
    // `n_outputs`; the cancel flag outlives the call.
    let err = unsafe {
        model_run(
            model,
            &options,
            views.as_ptr(),
            views.len(),
            outputs.as_mut_ptr(),
            n_outputs,
        )
    };
    if let Some(message) = take_error(api, err) {
        return Err(message);
    }
    let release = api.tensor_release.expect("tensor_release");
    Ok(outputs
        .iter()
        .map(|out| {
            let v = out.view;
            // SAFETY: the plugin filled the view; it stays valid until released below.
            let shape = unsafe { std::slice::from_raw_parts(v.shape, v.ndim) }.to_vec();
            let data = if v.byte_len == 0 {
                Vec::new()
            } else {
                // SAFETY: as above.
                unsafe { std::slice::from_raw_parts(v.data.cast::<u8>(), v.byte_len) }.to_vec()
            };
            // SAFETY: each output is released once.
            unsafe { release(out.owner) };
            (v.dtype, shape, data)
        })
        .collect())
}

fn names(api: &RaiPluginApi, model: *mut RaiModel, inputs: bool) -> Vec<String> {
    let (count, name) = if inputs {
        (
            api.model_input_count.expect("count"),
            api.model_input_name.expect("name"),
        )
    } else {
        (
            api.model_output_count.expect("count"),
            api.model_output_name.expect("name"),
        )
    };
    // SAFETY: `model` is a live model of this plugin.
    let n = unsafe { count(model) };
    (0..n)
        .map(|i| {
            // SAFETY: as above; names live as long as the model.
            unsafe { CStr::from_ptr(name(model, i)) }
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

fn free(api: &RaiPluginApi, model: *mut RaiModel) {
    let free = api.model_free.expect("model_free");
    // SAFETY: each model is freed once.
    unsafe { free(model) };
}

#[test]
fn the_c_table_end_to_end() {
    ensure_runtime_lib();
    let api = table();
    assert_eq!(
        (api.abi_major, api.abi_minor),
        (RAI_PLUGIN_ABI_MAJOR, RAI_PLUGIN_ABI_MINOR)
    );
    // SAFETY: static NUL-terminated strings.
    let name = unsafe { CStr::from_ptr(api.name) };
    // SAFETY: as above.
    let version = unsafe { CStr::from_ptr(api.runtime_version) };
    assert_eq!(name, c"TFLITE");
    assert_eq!(version, c"2.3.0");
    assert_eq!(api.device_mask, 1);
    // Every dtype but STRING.
    assert_eq!(api.dtype_mask, 0x1ff);
    assert_eq!(api.flags, 0);
    assert!(api.script_load.is_none());

    let init = api.init.expect("init");
    // SAFETY: HOST is a static table that lives for the process.
    assert_eq!(take_error(api, unsafe { init(&HOST) }), None);

    let model = load(api, CPU, &model_bytes("add.tflite")).expect("add loads");
    assert_eq!(names(api, model, true), ["a", "b"]);
    assert_eq!(names(api, model, false), ["c"]);
    let out = run(
        api,
        model,
        0,
        None,
        &[Input::f32(&[2], &[1.0, 2.0]), Input::f32(&[2], &[3.0, 4.0])],
        1,
    )
    .expect("run");
    assert_eq!(out[0].0, DType::Float);
    assert_eq!(out[0].1, [2]);
    assert_eq!(f32s(&out[0].2), [4.0, 6.0]);
    let err = run(api, model, 0, None, &[Input::f32(&[2], &[1.0, 2.0])], 1).expect_err("one input");
    assert_eq!(
        err,
        "Number of keys given as INPUTS here does not match model definition"
    );
    free(api, model);

    let err = load(api, CPU, b"garbage").expect_err("a corrupt blob");
    assert!(err.contains("not a TFLite model"), "{err}");
    let gpu = RaiDevice {
        kind: RaiDeviceKind::Gpu,
        id: 0,
    };
    let err = load(api, gpu, &model_bytes("add.tflite")).expect_err("no GPU");
    assert!(err.contains("CPU only"), "{err}");

    // Timeouts from the host's config and from the run options: LiteRT checks between
    // operations and stops the endless loop.
    let looping = load(api, CPU, &model_bytes("endless_loop.tflite")).expect("loads");
    let x = [Input::f32(&[1], &[0.0])];
    let started = Instant::now();
    let err = run(api, looping, 150, None, &x, 1).expect_err("times out");
    assert!(err.contains("timed out after 150 ms"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
    TIMEOUT_MS.store(100, Ordering::SeqCst);
    let err = run(api, looping, 0, None, &x, 1).expect_err("times out");
    assert!(err.contains("timed out after 100 ms"), "{err}");
    let err = run(api, looping, 5000, None, &x, 1).expect_err("times out");
    assert!(
        err.contains("timed out after 100 ms"),
        "the smaller limit wins: {err}"
    );
    TIMEOUT_MS.store(0, Ordering::SeqCst);

    // The host's cancel flag stops a run from another thread.
    let flag = Arc::new(AtomicU32::new(0));
    let setter = {
        let flag = Arc::clone(&flag);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            flag.store(1, Ordering::SeqCst);
        })
    };
    let err = run(api, looping, 0, Some(&flag), &x, 1).expect_err("cancelled");
    assert!(err.contains("model run cancelled"), "{err}");
    setter.join().expect("setter");
    // A flag already set stops the run at once.
    let err = run(api, looping, 0, Some(&flag), &x, 1).expect_err("cancelled");
    assert!(err.contains("model run cancelled"), "{err}");
    free(api, looping);

    // Models still run after a stopped run, and without a limit.
    let model = load(api, CPU, &model_bytes("two_outputs.tflite")).expect("loads");
    let out = run(
        api,
        model,
        0,
        Some(&AtomicU32::new(0)),
        &[Input::f32(&[1, 2], &[1.0, 2.0])],
        2,
    )
    .expect("runs");
    assert_eq!(f32s(&out[1].2), [1.0, 4.0]);
    free(api, model);

    // A second init is harmless.
    // SAFETY: as above.
    assert_eq!(take_error(api, unsafe { init(&HOST) }), None);
}
