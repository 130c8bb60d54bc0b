//! A backend plugin called through its C ABI on the calling thread, as the module's
//! run-queue workers call it: the in-process baselines of bench-execute and bench-models.
//! A plugin is either opened from its backend folder (`dist/backends/<name>/<name>.so`)
//! with `dlopen`, as the module opens it, or linked into the process (the ONNX one: the
//! others cannot be linked next to it, as each exports the same entry symbol).

use std::ffi::{c_char, c_void, CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};
use std::sync::Mutex;

use anyhow::{bail, ensure, Context, Result};
use redisai_plugin_api::abi::{
    RaiConfigKey, RaiDType, RaiDevice, RaiDeviceKind, RaiError, RaiHostApi, RaiModel,
    RaiModelOptions, RaiPluginApi, RaiRunOptions, RaiTensorOut, RaiTensorView,
    RAI_PLUGIN_FLAG_CONCURRENT_RUN,
};
use redisai_plugin_api::{RAI_PLUGIN_ABI_MAJOR, RAI_PLUGIN_ABI_MINOR};

/// The thread settings `config_get` answers with: the module's INTRA_OP_PARALLELISM and
/// INTER_OP_PARALLELISM, the same for every plugin of the process (as in the module).
static INTRA_OP: AtomicI64 = AtomicI64::new(0);
static INTER_OP: AtomicI64 = AtomicI64::new(0);
/// MODEL_EXECUTION_TIMEOUT's default in the module.
const MODULE_EXECUTION_TIMEOUT_MS: i64 = 5000;

/// Sets the thread settings every plugin initialised afterwards gets.
pub fn set_thread_settings(intra_op: i64, inter_op: i64) {
    INTRA_OP.store(intra_op, Ordering::Relaxed);
    INTER_OP.store(inter_op, Ordering::Relaxed);
}

fn thread_setting(key: u32) -> Option<i64> {
    match key {
        k if k == RaiConfigKey::IntraOpParallelism as u32 => Some(INTRA_OP.load(Ordering::Relaxed)),
        k if k == RaiConfigKey::InterOpParallelism as u32 => Some(INTER_OP.load(Ordering::Relaxed)),
        _ => None,
    }
}

unsafe extern "C" fn config_threads_only(key: u32) -> i64 {
    thread_setting(key).unwrap_or(0)
}

unsafe extern "C" fn config_with_module_timeout(key: u32) -> i64 {
    match key {
        k if k == RaiConfigKey::ModelExecutionTimeoutMs as u32 => MODULE_EXECUTION_TIMEOUT_MS,
        k => thread_setting(k).unwrap_or(0),
    }
}

/// What the host tells a plugin at `init` besides the thread settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HostConfig {
    /// No execution timeout: the baseline is the runtime call and nothing around it.
    ThreadsOnly,
    /// The module's default MODEL_EXECUTION_TIMEOUT too, so the plugin starts the same
    /// run watchers as under the module.
    ModuleDefaults,
}

const fn host_api(config_get: unsafe extern "C" fn(u32) -> i64) -> RaiHostApi {
    RaiHostApi {
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
    }
}

static HOST_THREADS_ONLY: RaiHostApi = host_api(config_threads_only);
static HOST_MODULE_DEFAULTS: RaiHostApi = host_api(config_with_module_timeout);

const CPU: RaiDevice = RaiDevice {
    kind: RaiDeviceKind::Cpu,
    id: 0,
};

fn dl_error() -> String {
    // SAFETY: dlerror returns null or a NUL-terminated string, copied at once.
    let text = unsafe { libc::dlerror() };
    if text.is_null() {
        return "unknown dynamic loader error".into();
    }
    // SAFETY: see above.
    unsafe { CStr::from_ptr(text) }
        .to_string_lossy()
        .into_owned()
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

/// The ABI's entry symbol.
pub type PluginEntry = unsafe extern "C" fn() -> *const RaiPluginApi;

/// An initialised plugin's function table (a `dlopen`ed library is never closed).
pub struct Plugin {
    api: &'static RaiPluginApi,
}

impl Plugin {
    /// Opens the plugin at `path` and initialises it (with the settings of
    /// [`set_thread_settings`] and no execution timeout).
    pub fn open(path: &Path) -> Result<Self> {
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
        // SAFETY: the ABI's entry symbol has this signature.
        let entry = unsafe { std::mem::transmute::<*mut c_void, PluginEntry>(entry) };
        Self::from_entry(entry, HostConfig::ThreadsOnly)
            .with_context(|| format!("{}", path.display()))
    }

    /// Initialises the plugin whose entry is `entry` (one linked into the process, or one
    /// `dlopen`ed and never closed). Init may be called again: plugins make it idempotent.
    pub fn from_entry(entry: PluginEntry, host: HostConfig) -> Result<Self> {
        // SAFETY: the entry returns null or a table that lives as long as the library,
        // which stays loaded for the whole process.
        let api = unsafe { entry().as_ref() }.context("the plugin returned no function table")?;
        ensure!(
            api.abi_major == RAI_PLUGIN_ABI_MAJOR,
            "plugin ABI {}, expected {RAI_PLUGIN_ABI_MAJOR}",
            api.abi_major
        );
        let init = api.init.context("the plugin has no init")?;
        let host = match host {
            HostConfig::ThreadsOnly => &HOST_THREADS_ONLY,
            HostConfig::ModuleDefaults => &HOST_MODULE_DEFAULTS,
        };
        // SAFETY: a static host table; init is called before anything else of the plugin.
        check(api, unsafe { init(host) }).context("plugin init")?;
        Ok(Plugin { api })
    }

    /// Loads a model; `inputs` and `outputs` are the node names TF needs (the others
    /// get none, as the module passes them only when the command has INPUTS/OUTPUTS).
    pub fn load(&self, blob: &[u8], inputs: &[&str], outputs: &[&str]) -> Result<Model> {
        let load = self
            .api
            .model_load
            .context("the plugin cannot load models")?;
        let to_c = |names: &[&str]| -> Result<Vec<CString>> {
            names
                .iter()
                .map(|n| CString::new(*n).with_context(|| format!("a NUL in name {n:?}")))
                .collect()
        };
        let (inputs, outputs) = (to_c(inputs)?, to_c(outputs)?);
        let input_ptrs: Vec<*const c_char> = inputs.iter().map(|n| n.as_ptr()).collect();
        let output_ptrs: Vec<*const c_char> = outputs.iter().map(|n| n.as_ptr()).collect();
        let or_null = |ptrs: &[*const c_char]| {
            if ptrs.is_empty() {
                ptr::null()
            } else {
                ptrs.as_ptr()
            }
        };
        let options = RaiModelOptions {
            device: CPU,
            batch_size: 0,
            input_names: or_null(&input_ptrs),
            n_input_names: input_ptrs.len(),
            output_names: or_null(&output_ptrs),
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
        let concurrent = self.api.flags & RAI_PLUGIN_FLAG_CONCURRENT_RUN != 0;
        Ok(Model {
            api: self.api,
            model,
            serialize: (!concurrent).then(|| Mutex::new(())),
            cancel: None,
        })
    }
}

/// One input tensor: its dtype, shape and bytes.
pub struct Input<'a> {
    pub dtype: RaiDType,
    pub shape: &'a [i64],
    pub data: &'a [u8],
}

impl<'a> Input<'a> {
    /// A FLOAT tensor.
    pub fn float(shape: &'a [i64], data: &'a [u8]) -> Self {
        Input {
            dtype: RaiDType::Float,
            shape,
            data,
        }
    }
}

/// A model loaded through a plugin's ABI, freed on drop.
pub struct Model {
    api: &'static RaiPluginApi,
    model: *mut RaiModel,
    /// Held around each run when the plugin does not allow concurrent runs of one model
    /// (the host serialises them the same way).
    serialize: Option<Mutex<()>>,
    /// The cancel flag passed with each run, as the module passes one.
    cancel: Option<AtomicU32>,
}

// SAFETY: the model is only used through the plugin's functions, which the ABI allows
// from any thread: loads and frees one at a time (ownership), runs concurrently only with
// RAI_PLUGIN_FLAG_CONCURRENT_RUN, otherwise under `serialize`.
unsafe impl Send for Model {}
// SAFETY: see above.
unsafe impl Sync for Model {}

impl Model {
    /// Runs the model on one FLOAT input; returns a copy of its one output.
    pub fn run_float(&self, shape: &[i64], data: &[u8]) -> Result<Vec<u8>> {
        let mut output = Vec::new();
        self.run(&Input::float(shape, data), Some(&mut output))?;
        Ok(output)
    }

    /// Passes a (never raised) cancel flag with each run, so the plugin watches it as
    /// it does under the module.
    pub fn with_cancel_flag(mut self) -> Self {
        self.cancel = Some(AtomicU32::new(0));
        self
    }

    /// Runs the model on one input; returns the length of its one output, copied into
    /// `copy_to` when given (as the module copies it into its own tensor).
    pub fn run(&self, input: &Input, copy_to: Option<&mut Vec<u8>>) -> Result<usize> {
        let run = self.api.model_run.context("the plugin cannot run models")?;
        let release = self.api.tensor_release.context("no tensor_release")?;
        let view = RaiTensorView {
            dtype: input.dtype,
            device: CPU,
            ndim: input.shape.len(),
            shape: input.shape.as_ptr(),
            strides: ptr::null(),
            data: input.data.as_ptr().cast::<c_void>(),
            byte_len: input.data.len(),
        };
        let options = RaiRunOptions {
            timeout_ms: 0,
            cancel: self
                .cancel
                .as_ref()
                .map_or(ptr::null(), |flag| flag.as_ptr().cast_const()),
            host_ctx: ptr::null_mut(),
        };
        let mut output = RaiTensorOut {
            view: RaiTensorView {
                data: ptr::null(),
                shape: ptr::null(),
                ndim: 0,
                byte_len: 0,
                ..view
            },
            owner: ptr::null_mut(),
        };
        let _turn = self
            .serialize
            .as_ref()
            .map(|lock| lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        // SAFETY: the input view, options and cancel flag outlive the call; `output` has
        // room for the one output.
        check(self.api, unsafe {
            run(self.model, &options, &view, 1, &mut output, 1)
        })?;
        let len = output.view.byte_len;
        if let Some(buffer) = copy_to {
            buffer.clear();
            if !output.view.data.is_null() && len > 0 {
                // SAFETY: the plugin's output: `len` bytes at `data`, alive until the
                // owner is released below.
                buffer.extend_from_slice(unsafe {
                    std::slice::from_raw_parts(output.view.data.cast::<u8>(), len)
                });
            }
        }
        // SAFETY: the output's owner, released once.
        unsafe { release(output.owner) };
        Ok(len)
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        if let Some(free) = self.api.model_free {
            // SAFETY: loaded by this plugin, freed once.
            unsafe { free(self.model) };
        }
    }
}
