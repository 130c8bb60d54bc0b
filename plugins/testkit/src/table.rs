//! A driver over a plugin's exported C table, used the way the core uses it: init with a
//! host table, load (with or without INPUTS/OUTPUTS names), run with a timeout and a
//! cancel flag, copy the outputs out and release them, take errors' text.

use std::ffi::{c_char, c_void, CStr};
use std::ptr;
use std::sync::atomic::AtomicU32;
use std::sync::Mutex;

use crate::host::LentCall;
use crate::tensors::Input;
use redisai_plugin_api::abi::{
    RaiDevice, RaiDeviceKind, RaiError, RaiHostApi, RaiModel, RaiModelOptions, RaiPluginApi,
    RaiRunOptions, RaiTensorOut, RaiTensorView,
};

/// The CPU.
pub const CPU: RaiDevice = RaiDevice {
    kind: RaiDeviceKind::Cpu,
    id: 0,
};

/// The first GPU.
pub const GPU0: RaiDevice = RaiDevice {
    kind: RaiDeviceKind::Gpu,
    id: 0,
};

/// A plugin's exported table.
#[derive(Clone, Copy)]
pub struct Plugin {
    api: &'static RaiPluginApi,
}

/// An output copied out of the plugin: a tensor with its own storage, like an input.
pub type Output = Input;

/// What a run gets besides its tensors.
#[derive(Clone, Copy)]
pub struct RunOptions<'a> {
    /// The run's own limit in milliseconds; 0: none (the host's config may still set one).
    pub timeout_ms: u64,
    /// The host's cancel flag (nonzero: stop).
    pub cancel: Option<&'a AtomicU32>,
    /// The context the plugin passes back to the host's services (null: none).
    pub host_ctx: *mut c_void,
}

impl Default for RunOptions<'_> {
    fn default() -> Self {
        RunOptions {
            timeout_ms: 0,
            cancel: None,
            host_ctx: ptr::null_mut(),
        }
    }
}

impl RunOptions<'static> {
    /// A run with a limit of its own (0: none) and no cancel flag.
    pub fn timeout(timeout_ms: u64) -> RunOptions<'static> {
        RunOptions {
            timeout_ms,
            ..RunOptions::default()
        }
    }

    /// A run whose calls into the host's services carry `host_ctx`.
    pub fn host_ctx(host_ctx: *mut c_void) -> RunOptions<'static> {
        RunOptions {
            host_ctx,
            ..RunOptions::default()
        }
    }
}

impl<'a> RunOptions<'a> {
    /// A run with the host's cancel flag and no limit of its own.
    pub fn cancel(flag: &'a AtomicU32) -> RunOptions<'a> {
        RunOptions {
            cancel: Some(flag),
            ..RunOptions::default()
        }
    }

    /// The C ABI's options; valid while the cancel flag is.
    pub(crate) fn abi(&self) -> RaiRunOptions {
        RaiRunOptions {
            timeout_ms: self.timeout_ms,
            cancel: self
                .cancel
                .map_or(ptr::null(), |flag| flag.as_ptr().cast_const()),
            host_ctx: self.host_ctx,
        }
    }
}

impl Plugin {
    /// The table `entry` (a plugin's `redisai_plugin_entry`) returns.
    ///
    /// # Safety
    ///
    /// `entry` must return a pointer to a table that lives for the process and whose
    /// functions keep the C ABI's contract (as every plugin's entry point does).
    pub unsafe fn from_entry(entry: unsafe extern "C" fn() -> *const RaiPluginApi) -> Plugin {
        // SAFETY: the caller promises a pointer to a static table.
        let api = unsafe { &*entry() };
        Plugin { api }
    }

    /// The table itself, for its plain fields (versions, masks, flags).
    pub fn api(&self) -> &'static RaiPluginApi {
        self.api
    }

    /// The plugin's name (`api.name`).
    pub fn name(&self) -> &'static CStr {
        // SAFETY: a static NUL-terminated string, by the ABI's contract.
        unsafe { CStr::from_ptr(self.api.name) }
    }

    /// The runtime's version (`api.runtime_version`).
    pub fn runtime_version(&self) -> &'static CStr {
        // SAFETY: a static NUL-terminated string, by the ABI's contract.
        unsafe { CStr::from_ptr(self.api.runtime_version) }
    }

    /// Calls `init` with `host`.
    pub fn init(&self, host: &'static RaiHostApi) -> Result<(), String> {
        let init = self.api.init.expect("the table has init");
        // SAFETY: `host` is a table that lives for the process; the error is the plugin's.
        unsafe { self.take_error(init(host)) }
    }

    /// Takes an error's message and frees it; `Ok` for no error.
    ///
    /// # Safety
    ///
    /// `err` is null or an error this plugin returned and nobody has freed.
    pub unsafe fn take_error(&self, err: *mut RaiError) -> Result<(), String> {
        if err.is_null() {
            return Ok(());
        }
        let message = self.api.error_message.expect("the table has error_message");
        let free = self.api.error_free.expect("the table has error_free");
        // SAFETY: `err` is a live error of this plugin (the caller's promise); its message
        // is read before it is freed, once.
        let text = unsafe { CStr::from_ptr(message(err)) }
            .to_string_lossy()
            .into_owned();
        // SAFETY: as above.
        unsafe { free(err) };
        Err(text)
    }

    /// Copies `outputs` (filled by this plugin) out and releases them.
    pub(crate) fn take_outputs(&self, outputs: &[RaiTensorOut]) -> Vec<Output> {
        let release = self
            .api
            .tensor_release
            .expect("the table has tensor_release");
        outputs
            .iter()
            .map(|out| {
                let v = out.view;
                let shape = if v.ndim == 0 {
                    Vec::new()
                } else {
                    // SAFETY: the plugin filled the view; it stays valid until released
                    // below.
                    unsafe { std::slice::from_raw_parts(v.shape, v.ndim) }.to_vec()
                };
                let data = if v.byte_len == 0 {
                    Vec::new()
                } else {
                    // SAFETY: as above.
                    unsafe { std::slice::from_raw_parts(v.data.cast::<u8>(), v.byte_len) }.to_vec()
                };
                // SAFETY: each output is released once.
                unsafe { release(out.owner) };
                Output::new(v.dtype, &shape, data)
            })
            .collect()
    }

    /// Loads `blob` on `device`, naming its INPUTS and OUTPUTS (empty: none given, as for
    /// the backends that read them from the model).
    pub fn load(
        &self,
        device: RaiDevice,
        blob: &[u8],
        inputs: &[&CStr],
        outputs: &[&CStr],
    ) -> Result<Model, String> {
        let inputs: Vec<*const c_char> = inputs.iter().map(|name| name.as_ptr()).collect();
        let outputs: Vec<*const c_char> = outputs.iter().map(|name| name.as_ptr()).collect();
        let options = RaiModelOptions {
            device,
            batch_size: 0,
            input_names: if inputs.is_empty() {
                ptr::null()
            } else {
                inputs.as_ptr()
            },
            n_input_names: inputs.len(),
            output_names: if outputs.is_empty() {
                ptr::null()
            } else {
                outputs.as_ptr()
            },
            n_output_names: outputs.len(),
        };
        let mut model: *mut RaiModel = ptr::null_mut();
        let model_load = self.api.model_load.expect("the table has model_load");
        // SAFETY: the options (and the names they point to), the blob and the out-pointer
        // are valid for the call.
        let err = unsafe { model_load(&options, blob.as_ptr(), blob.len(), &mut model) };
        // SAFETY: an error the plugin just returned.
        unsafe { self.take_error(err) }?;
        assert!(!model.is_null(), "model_load succeeded without a model");
        Ok(Model {
            plugin: *self,
            raw: model,
            last_lent: Mutex::new(Vec::new()),
        })
    }
}

/// A model loaded by a [`Plugin`]; freed when dropped.
pub struct Model {
    plugin: Plugin,
    raw: *mut RaiModel,
    /// Per output of the last successful run: whether the plugin wrote it into memory
    /// the host lent ([`LentCall`]), which the core adopts without a copy.
    last_lent: Mutex<Vec<bool>>,
}

impl Model {
    /// Runs with no limit of its own and no cancel flag.
    pub fn run(&self, inputs: &[Input], n_outputs: usize) -> Result<Vec<Output>, String> {
        self.run_with(RunOptions::default(), inputs, n_outputs)
    }

    /// Runs and copies the outputs out (releasing them).
    pub fn run_with(
        &self,
        options: RunOptions<'_>,
        inputs: &[Input],
        n_outputs: usize,
    ) -> Result<Vec<Output>, String> {
        let views: Vec<RaiTensorView> = inputs.iter().map(Input::abi_view).collect();
        let mut outputs = vec![empty_out(); n_outputs];
        let run_options = options.abi();
        let model_run = self.plugin.api.model_run.expect("the table has model_run");
        let lent = LentCall::enter();
        // SAFETY: `self.raw` is a live model of this plugin; the views point into
        // `inputs`, alive for the call; `outputs` has room for `n_outputs`; the cancel
        // flag outlives the call.
        let err = unsafe {
            model_run(
                self.raw,
                &run_options,
                views.as_ptr(),
                views.len(),
                outputs.as_mut_ptr(),
                n_outputs,
            )
        };
        // SAFETY: an error the plugin just returned.
        unsafe { self.plugin.take_error(err) }?;
        *self.last_lent.lock().unwrap_or_else(|e| e.into_inner()) = outputs
            .iter()
            .map(|out| lent.was_lent(out.view.data, out.view.byte_len))
            .collect();
        Ok(self.plugin.take_outputs(&outputs))
    }

    /// Per output of the last successful run: whether it was in memory the host lent
    /// (ABI 1.5), so that the core takes it without a copy.
    pub fn last_run_lent(&self) -> Vec<bool> {
        self.last_lent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The plugin's own handle, for a host that runs the model itself (`model_execute`);
    /// valid while `self` is.
    pub fn as_raw(&self) -> *mut RaiModel {
        self.raw
    }

    /// The model's input names, in order.
    pub fn input_names(&self) -> Vec<String> {
        let api = self.plugin.api;
        self.names(
            api.model_input_count
                .expect("the table has model_input_count"),
            api.model_input_name
                .expect("the table has model_input_name"),
        )
    }

    /// The model's output names, in order.
    pub fn output_names(&self) -> Vec<String> {
        let api = self.plugin.api;
        self.names(
            api.model_output_count
                .expect("the table has model_output_count"),
            api.model_output_name
                .expect("the table has model_output_name"),
        )
    }

    fn names(
        &self,
        count: unsafe extern "C" fn(*const RaiModel) -> usize,
        name: unsafe extern "C" fn(*const RaiModel, usize) -> *const c_char,
    ) -> Vec<String> {
        // SAFETY: `self.raw` is a live model of this plugin.
        let n = unsafe { count(self.raw) };
        (0..n)
            .map(|i| {
                // SAFETY: as above, `i` is below the count; names live as long as the model.
                unsafe { CStr::from_ptr(name(self.raw, i)) }
                    .to_string_lossy()
                    .into_owned()
            })
            .collect()
    }
}

/// Room for an output the plugin fills (its dangling view is never read).
pub(crate) fn empty_out() -> RaiTensorOut {
    RaiTensorOut {
        view: Input::f32(&[], &[]).abi_view(),
        owner: ptr::null_mut(),
    }
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Model").field(&self.raw).finish()
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        let free = self
            .plugin
            .api
            .model_free
            .expect("the table has model_free");
        // SAFETY: a live model of this plugin, freed once.
        unsafe { free(self.raw) };
    }
}
