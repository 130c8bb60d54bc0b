//! The exported C table, driven the way the core drives it: init with a host table, load,
//! run, release, errors. In its own binary: `init` makes the plugin's one instance.

mod common;

use std::ffi::{c_char, c_void, CStr};
use std::ptr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

use common::{ensure_runtime_lib, f32s, model_bytes, Input};
use redisai_onnxruntime::redisai_plugin_entry;
use redisai_plugin_api::abi::{
    RaiConfigKey, RaiDevice, RaiDeviceKind, RaiError, RaiHostApi, RaiLogLevel, RaiModel,
    RaiModelOptions, RaiPluginApi, RaiRunOptions, RaiTensorOut, RaiTensorView,
    RAI_PLUGIN_ABI_MAJOR, RAI_PLUGIN_ABI_MINOR,
};
use redisai_plugin_api::sdk::DType;

static TIMEOUT_MS: AtomicI64 = AtomicI64::new(0);
static LOG: Mutex<Vec<(u32, String)>> = Mutex::new(Vec::new());

unsafe extern "C" fn host_log(level: u32, message: *const c_char) {
    // SAFETY: the plugin passes a NUL-terminated string valid for the call.
    let text = unsafe { CStr::from_ptr(message) }
        .to_string_lossy()
        .into_owned();
    LOG.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((level, text));
}

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

fn load(api: &RaiPluginApi, blob: &[u8]) -> Result<*mut RaiModel, String> {
    let options = RaiModelOptions {
        device: CPU,
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
        cancel: std::ptr::null(),
        host_ctx: std::ptr::null_mut(),
    };
    let model_run = api.model_run.expect("model_run");
    // SAFETY: the views point into `inputs`, alive for the call; `outputs` has room for
    // `n_outputs`.
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
    assert_eq!(name, c"ONNX");
    assert_eq!(version, c"1.32.0");
    assert_eq!(api.device_mask, 1);
    assert_eq!(api.dtype_mask, 0x3ff);
    assert_eq!(api.flags, 0);
    assert!(api.script_load.is_none());

    let init = api.init.expect("init");
    // SAFETY: HOST is a static table that lives for the process.
    assert_eq!(take_error(api, unsafe { init(&HOST) }), None);

    let model = load(api, &model_bytes("add.onnx")).expect("add loads");
    assert_eq!(names(api, model, true), ["a", "b"]);
    assert_eq!(names(api, model, false), ["c"]);
    let out = run(
        api,
        model,
        0,
        &[Input::f32(&[2], &[1.0, 2.0]), Input::f32(&[2], &[3.0, 4.0])],
        1,
    )
    .expect("run");
    assert_eq!(out[0].0, DType::Float);
    assert_eq!(out[0].1, [2]);
    assert_eq!(f32s(&out[0].2), [4.0, 6.0]);
    let err = run(api, model, 0, &[Input::f32(&[2], &[1.0, 2.0])], 1).expect_err("one input");
    assert_eq!(
        err,
        "Number of keys given as INPUTS here does not match model definition"
    );
    let free = api.model_free.expect("model_free");
    // SAFETY: freed once.
    unsafe { free(model) };

    let err = load(api, b"garbage").expect_err("a corrupt blob");
    assert!(err.contains("protobuf"), "{err}");

    // Timeouts from the host's config and from the run options.
    let looping = load(api, &model_bytes("endless_loop.onnx")).expect("loads");
    let x = [Input::f32(&[1], &[0.0])];
    let err = run(api, looping, 150, &x, 1).expect_err("times out");
    assert!(err.contains("timed out after 150 ms"), "{err}");
    TIMEOUT_MS.store(100, Ordering::SeqCst);
    let err = run(api, looping, 0, &x, 1).expect_err("times out");
    assert!(err.contains("timed out after 100 ms"), "{err}");
    // SAFETY: freed once.
    unsafe { free(looping) };

    // ONNX Runtime's warnings reach the host's log.
    let log = LOG.lock().unwrap_or_else(|e| e.into_inner());
    assert!(
        log.iter()
            .any(|(level, line)| *level == RaiLogLevel::Warning as u32
                && line.starts_with("onnxruntime ")
                && line.contains("terminate flag")),
        "{log:?}"
    );

    drop(log);

    // A second init is harmless.
    // SAFETY: as above.
    assert_eq!(take_error(api, unsafe { init(&HOST) }), None);
}
