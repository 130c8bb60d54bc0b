//! A backend plugin opened from its backend folder (`dist/backends/<name>/<name>.so`)
//! with `dlopen`, as the module opens it, and called through its C ABI on the calling
//! thread: the in-process baseline of the TF, TFLite and TORCH rows. (The plugins cannot be
//! linked in as Rust crates next to the ONNX one: each exports the same entry symbol.)
//! Runs get no cancel flag and no timeout, so the baseline is the plugin's runtime call
//! and nothing of what the module adds around it.

use std::ffi::{c_char, c_void, CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr;
use std::sync::atomic::{AtomicI64, Ordering};

use anyhow::{bail, ensure, Context, Result};
use redisai_plugin_api::abi::{
    RaiConfigKey, RaiDType, RaiDevice, RaiDeviceKind, RaiError, RaiHostApi, RaiModel,
    RaiModelOptions, RaiPluginApi, RaiRunOptions, RaiTensorOut, RaiTensorView,
};
use redisai_plugin_api::{RAI_PLUGIN_ABI_MAJOR, RAI_PLUGIN_ABI_MINOR};

/// The thread settings `config_get` answers with (shared by the plugins opened here).
static INTRA_OP: AtomicI64 = AtomicI64::new(0);
static INTER_OP: AtomicI64 = AtomicI64::new(0);

unsafe extern "C" fn config_get(key: u32) -> i64 {
    match key {
        k if k == RaiConfigKey::IntraOpParallelism as u32 => INTRA_OP.load(Ordering::Relaxed),
        k if k == RaiConfigKey::InterOpParallelism as u32 => INTER_OP.load(Ordering::Relaxed),
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

fn dl_error() -> String {
    // SAFETY: dlerror returns null or a NUL-terminated string, copied at once.
    let text = unsafe { libc::dlerror() };
    if text.is_null() {
        "unknown dynamic loader error".into()
    } else {
        // SAFETY: see above.
        unsafe { CStr::from_ptr(text) }
            .to_string_lossy()
            .into_owned()
    }
}

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

/// An opened plugin's function table (the library is never closed).
pub struct LoadedPlugin {
    api: &'static RaiPluginApi,
}

impl LoadedPlugin {
    /// Opens the plugin at `path` and initialises it with these thread settings.
    pub fn open(path: &Path, intra_op: i64, inter_op: i64) -> Result<Self> {
        INTRA_OP.store(intra_op, Ordering::Relaxed);
        INTER_OP.store(inter_op, Ordering::Relaxed);
        let c_path = CString::new(path.as_os_str().as_bytes())
            .with_context(|| format!("{}: a NUL in the path", path.display()))?;
        // SAFETY: a NUL-terminated path; the plugin's initialisers run (as in the module).
        let handle = unsafe { libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        ensure!(
            !handle.is_null(),
            "dlopen {}: {}",
            path.display(),
            dl_error()
        );
        // SAFETY: a live handle and a NUL-terminated name.
        let entry = unsafe { libc::dlsym(handle, c"redisai_plugin_entry".as_ptr()) };
        ensure!(
            !entry.is_null(),
            "{}: no redisai_plugin_entry: {}",
            path.display(),
            dl_error()
        );
        type Entry = unsafe extern "C" fn() -> *const RaiPluginApi;
        // SAFETY: the ABI's entry symbol has this signature.
        let entry = unsafe { std::mem::transmute::<*mut c_void, Entry>(entry) };
        // SAFETY: the entry returns a table that lives as long as the library, which is
        // never closed.
        let api = unsafe { entry().as_ref() }
            .with_context(|| format!("{}: no function table", path.display()))?;
        ensure!(
            api.abi_major == RAI_PLUGIN_ABI_MAJOR,
            "{}: plugin ABI {}, expected {RAI_PLUGIN_ABI_MAJOR}",
            path.display(),
            api.abi_major
        );
        let init = api.init.context("the plugin has no init")?;
        // SAFETY: HOST is a static table.
        check(api, unsafe { init(&HOST) }).with_context(|| format!("{}: init", path.display()))?;
        Ok(LoadedPlugin { api })
    }

    /// Loads a model; `inputs` and `outputs` are TF's node names (empty for others).
    pub fn load(&self, blob: &[u8], inputs: &[&str], outputs: &[&str]) -> Result<PluginModel> {
        let load = self
            .api
            .model_load
            .context("the plugin cannot load models")?;
        let to_c = |names: &[&str]| -> Result<Vec<CString>> {
            names
                .iter()
                .map(|n| CString::new(*n).context("a NUL in a name"))
                .collect()
        };
        let (inputs, outputs) = (to_c(inputs)?, to_c(outputs)?);
        let input_ptrs: Vec<*const c_char> = inputs.iter().map(|n| n.as_ptr()).collect();
        let output_ptrs: Vec<*const c_char> = outputs.iter().map(|n| n.as_ptr()).collect();
        let options = RaiModelOptions {
            device: CPU,
            batch_size: 0,
            input_names: input_ptrs.as_ptr(),
            n_input_names: input_ptrs.len(),
            output_names: output_ptrs.as_ptr(),
            n_output_names: output_ptrs.len(),
        };
        let mut model = ptr::null_mut();
        // SAFETY: the options, names and blob are valid for the call; `model` receives
        // the model.
        check(self.api, unsafe {
            load(&options, blob.as_ptr(), blob.len(), &mut model)
        })
        .context("model load through the plugin ABI")?;
        ensure!(!model.is_null(), "the plugin loaded no model");
        Ok(PluginModel {
            api: self.api,
            model,
        })
    }
}

/// A model loaded through a plugin's ABI, freed on drop.
pub struct PluginModel {
    api: &'static RaiPluginApi,
    model: *mut RaiModel,
}

impl PluginModel {
    /// Runs the model on one FLOAT input with one output; returns the output's bytes.
    pub fn run(&self, shape: &[i64], data: &[u8]) -> Result<Vec<u8>> {
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
            cancel: ptr::null(),
            host_ctx: ptr::null_mut(),
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
        // SAFETY: the input view and options outlive the call; `output` has room for
        // the one output.
        check(self.api, unsafe {
            run(self.model, &options, &input, 1, &mut output, 1)
        })?;
        let bytes = if output.view.data.is_null() || output.view.byte_len == 0 {
            Vec::new()
        } else {
            // SAFETY: the plugin's output: `byte_len` bytes at `data`, alive until the
            // owner is released below.
            unsafe {
                std::slice::from_raw_parts(output.view.data.cast::<u8>(), output.view.byte_len)
            }
            .to_vec()
        };
        // SAFETY: the output's owner, released once.
        unsafe { release(output.owner) };
        Ok(bytes)
    }
}

impl Drop for PluginModel {
    fn drop(&mut self) {
        if let Some(free) = self.api.model_free {
            // SAFETY: loaded by this plugin, freed once.
            unsafe { free(self.model) };
        }
    }
}
