//! The ONNX backend called exactly as the module calls it: through the plugin's C ABI
//! (its entry table, linked into this process), with a cancel flag and
//! MODEL_EXECUTION_TIMEOUT 5000 (the module's defaults), on the calling thread. Next to
//! the plain `OnnxBackend::run`, it tells the cost of the ABI and of the run's watchers
//! from that of the module's threads and round trip.

use std::ffi::{c_void, CStr};
use std::ptr;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};

use anyhow::{bail, ensure, Context, Result};
use redisai_plugin_api::abi::{
    RaiConfigKey, RaiDType, RaiDevice, RaiDeviceKind, RaiError, RaiHostApi, RaiModel,
    RaiModelOptions, RaiPluginApi, RaiRunOptions, RaiTensorOut, RaiTensorView,
};
use redisai_plugin_api::{RAI_PLUGIN_ABI_MAJOR, RAI_PLUGIN_ABI_MINOR};

/// The settings `config_get` answers with (the process has one plugin instance).
static INTRA_OP: AtomicI64 = AtomicI64::new(0);
static INTER_OP: AtomicI64 = AtomicI64::new(0);
/// MODEL_EXECUTION_TIMEOUT's default in the module.
const EXECUTION_TIMEOUT_MS: i64 = 5000;

unsafe extern "C" fn config_get(key: u32) -> i64 {
    match key {
        k if k == RaiConfigKey::IntraOpParallelism as u32 => INTRA_OP.load(Ordering::Relaxed),
        k if k == RaiConfigKey::InterOpParallelism as u32 => INTER_OP.load(Ordering::Relaxed),
        k if k == RaiConfigKey::ModelExecutionTimeoutMs as u32 => EXECUTION_TIMEOUT_MS,
        _ => 0,
    }
}

static HOST: RaiHostApi = RaiHostApi {
    abi_major: RAI_PLUGIN_ABI_MAJOR,
    abi_minor: RAI_PLUGIN_ABI_MINOR,
    struct_size: std::mem::size_of::<RaiHostApi>(),
    log: None,
    config_get: Some(config_get),
    redis_command: None,
    reply_free: None,
    model_execute: None,
    host_tensor_release: None,
    output_alloc: None,
};

const CPU: RaiDevice = RaiDevice {
    kind: RaiDeviceKind::Cpu,
    id: 0,
};

/// Turns a plugin error into an `Err` with its message, and frees it.
fn check(api: &RaiPluginApi, error: *mut RaiError) -> Result<()> {
    if error.is_null() {
        return Ok(());
    }
    let message = match api.error_message {
        // SAFETY: a live error of this plugin; its message lives until `error_free`.
        Some(message) => unsafe { CStr::from_ptr(message(error)) }
            .to_string_lossy()
            .into_owned(),
        None => "unknown error".into(),
    };
    if let Some(free) = api.error_free {
        // SAFETY: freed once, here.
        unsafe { free(error) };
    }
    bail!("{message}")
}

/// A model loaded through the plugin's ABI.
pub struct PluginCall {
    api: &'static RaiPluginApi,
    model: *mut RaiModel,
    cancel: AtomicU32,
}

impl PluginCall {
    /// Initialises the plugin (once per process) with these thread settings and loads
    /// the model.
    pub fn load(intra_op: i64, inter_op: i64, blob: &[u8]) -> Result<Self> {
        INTRA_OP.store(intra_op, Ordering::Relaxed);
        INTER_OP.store(inter_op, Ordering::Relaxed);
        // SAFETY: the entry returns a table that lives for the whole process.
        let api = unsafe { redisai_onnxruntime::redisai_plugin_entry().as_ref() }
            .context("the ONNX plugin returned no function table")?;
        ensure!(
            api.abi_major == RAI_PLUGIN_ABI_MAJOR,
            "plugin ABI {}, expected {RAI_PLUGIN_ABI_MAJOR}",
            api.abi_major
        );
        let init = api.init.context("the plugin has no init")?;
        // SAFETY: HOST is a static table; init may be called again (it is idempotent).
        check(api, unsafe { init(&HOST) }).context("plugin init")?;
        let load = api.model_load.context("the plugin cannot load models")?;
        let options = RaiModelOptions {
            device: CPU,
            batch_size: 0,
            input_names: ptr::null(),
            n_input_names: 0,
            output_names: ptr::null(),
            n_output_names: 0,
        };
        let mut model = ptr::null_mut();
        // SAFETY: the options and blob are valid for the call; `model` receives the model.
        check(api, unsafe {
            load(&options, blob.as_ptr(), blob.len(), &mut model)
        })
        .context("model load through the plugin ABI")?;
        ensure!(!model.is_null(), "the plugin loaded no model");
        Ok(PluginCall {
            api,
            model,
            cancel: AtomicU32::new(0),
        })
    }

    /// Runs the model on one FLOAT input; returns the output's length in bytes.
    pub fn run(&self, shape: &[i64], data: &[u8]) -> Result<usize> {
        let run = self.api.model_run.context("the plugin cannot run models")?;
        let release = self.api.tensor_release.context("no tensor_release")?;
        let input = RaiTensorView {
            dtype: RaiDType::Float,
            device: CPU,
            ndim: shape.len(),
            shape: shape.as_ptr(),
            strides: ptr::null(),
            data: data.as_ptr().cast::<c_void>(),
            byte_len: data.len(),
        };
        let options = RaiRunOptions {
            timeout_ms: 0,
            cancel: self.cancel.as_ptr().cast_const(),
            host_ctx: std::ptr::null_mut(),
        };
        let mut output = RaiTensorOut {
            view: RaiTensorView {
                data: ptr::null(),
                shape: ptr::null(),
                ndim: 0,
                byte_len: 0,
                ..input
            },
            owner: ptr::null_mut(),
        };
        // SAFETY: the input view, options and flag outlive the call; `output` has room
        // for the one output.
        check(self.api, unsafe {
            run(self.model, &options, &input, 1, &mut output, 1)
        })?;
        let len = output.view.byte_len;
        // SAFETY: the output's owner, released once.
        unsafe { release(output.owner) };
        Ok(len)
    }
}

impl Drop for PluginCall {
    fn drop(&mut self) {
        if let Some(free) = self.api.model_free {
            // SAFETY: loaded by this plugin, freed once.
            unsafe { free(self.model) };
        }
    }
}
