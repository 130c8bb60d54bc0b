//! A script compiled by a plugin (TorchScript for the TORCH backend), and calling its
//! functions.

use std::ffi::{c_char, c_void, CString};
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex};

use redisai_plugin_api::abi::{
    RaiRunOptions, RaiScript, RaiScriptCall, RaiTensorOut, RAI_SCRIPT_CALL_LISTS,
    RAI_SCRIPT_CALL_POSITIONAL,
};

use super::lent::LentScope;
use super::plugin_model::{
    output_to_tensor, rai_device, release_output, tensor_view, RawTensorOut,
};
use super::{Backend, BackendError, OutputBudget};
use crate::device::Device;
use crate::script::Calling;
use crate::tensor::Tensor;

/// Most outputs a script function may return when the caller gave no OUTPUTS.
pub const MAX_UNDECLARED_OUTPUTS: usize = 64;

/// A script owned by a plugin; freed through the plugin when dropped.
pub struct PluginScript {
    backend: Arc<Backend>,
    raw: *mut RaiScript,
    /// Held around runs unless the plugin declares concurrent runs safe.
    run_lock: Option<Mutex<()>>,
}

// SAFETY: the plugin ABI allows a script to be used from any thread; runs are
// serialised by `run_lock` unless the plugin declares concurrent runs safe.
unsafe impl Send for PluginScript {}
// SAFETY: as above.
unsafe impl Sync for PluginScript {}

/// One call of a script function.
pub struct ScriptCallArgs<'a> {
    pub function: &'a str,
    pub inputs: &'a [&'a Tensor],
    pub keys: &'a [Vec<u8>],
    pub args: &'a [Vec<u8>],
    pub calling: Calling,
    /// How many outputs the caller wants (0: whatever the function returns, ignored).
    pub n_outputs: usize,
}

impl Backend {
    /// Whether the plugin compiles scripts.
    pub fn has_scripts(&self) -> bool {
        self.api.script_load.is_some() && self.api.script_run.is_some()
    }

    /// Compiles `source`; `entry_points` are the functions callers may run.
    pub fn load_script(
        self: &Arc<Self>,
        device: Device,
        source: &[u8],
        entry_points: &[String],
    ) -> Result<PluginScript, String> {
        let (Some(load), true) = (self.api.script_load, self.api.script_run.is_some()) else {
            return Err(format!("backend {} does not support scripts", self.name));
        };
        let source = CString::new(source).map_err(|_| "script SOURCE contains NUL".to_owned())?;
        let names: Vec<CString> = entry_points
            .iter()
            .map(|n| {
                CString::new(n.as_str()).map_err(|_| format!("entry point '{n}' contains NUL"))
            })
            .collect::<Result<_, _>>()?;
        let name_ptrs: Vec<*const c_char> = names.iter().map(|n| n.as_ptr()).collect();
        let mut raw: *mut RaiScript = std::ptr::null_mut();
        // SAFETY: every pointer refers to data that outlives the call.
        let error = unsafe {
            load(
                rai_device(device),
                source.as_ptr(),
                name_ptrs.as_ptr(),
                name_ptrs.len(),
                &mut raw,
            )
        };
        if let Some(error) = self.take_error(error) {
            return Err(error.message);
        }
        if raw.is_null() {
            return Err(format!("backend {} returned no script", self.name));
        }
        Ok(PluginScript {
            backend: Arc::clone(self),
            raw,
            run_lock: (!self.concurrent_run()).then(|| Mutex::new(())),
        })
    }
}

/// `RaiScriptCall`'s `convention` and `variadic` for `calling` (a plugin of an older
/// minor never reads them and calls every function with the three lists).
fn raw_calling(calling: Calling) -> (u32, i64) {
    match calling {
        Calling::Lists => (RAI_SCRIPT_CALL_LISTS, -1),
        Calling::Positional { variadic } => (
            RAI_SCRIPT_CALL_POSITIONAL,
            variadic
                .and_then(|index| i64::try_from(index).ok())
                .unwrap_or(-1),
        ),
    }
}

/// C strings of byte arguments (NUL bytes cannot cross; they are refused).
fn c_strings(items: &[Vec<u8>], what: &str) -> Result<Vec<CString>, String> {
    items
        .iter()
        .map(|item| {
            CString::new(item.as_slice()).map_err(|_| format!("ERR {what} must not contain NUL"))
        })
        .collect()
}

impl PluginScript {
    pub fn backend(&self) -> &Arc<Backend> {
        &self.backend
    }

    /// Runs one function. `host_ctx` is handed to the plugin for the host services; the
    /// outputs the host allocates are charged to `budget` first (see [`OutputBudget`]).
    pub fn run(
        &self,
        call: &ScriptCallArgs<'_>,
        timeout_ms: u64,
        cancel: &AtomicU32,
        host_ctx: *mut c_void,
        budget: &OutputBudget,
    ) -> Result<Vec<Tensor>, BackendError> {
        let run = self
            .backend
            .api
            .script_run
            .ok_or("the plugin cannot run scripts")?;
        let function = CString::new(call.function)
            .map_err(|_| "ERR function name must not contain NUL".to_owned())?;
        let keys = c_strings(call.keys, "KEYS")?;
        let args = c_strings(call.args, "ARGS")?;
        let key_ptrs: Vec<*const c_char> = keys.iter().map(|k| k.as_ptr()).collect();
        let arg_ptrs: Vec<*const c_char> = args.iter().map(|a| a.as_ptr()).collect();
        let views: Vec<_> = call.inputs.iter().map(|t| tensor_view(t)).collect();
        let (convention, variadic) = raw_calling(call.calling);
        let raw_call = RaiScriptCall {
            function: function.as_ptr(),
            inputs: views.as_ptr(),
            n_inputs: views.len(),
            keys: key_ptrs.as_ptr(),
            n_keys: key_ptrs.len(),
            args: arg_ptrs.as_ptr(),
            n_args: arg_ptrs.len(),
            convention,
            variadic,
        };
        let max_outputs = call.n_outputs.max(MAX_UNDECLARED_OUTPUTS);
        let mut outputs: Vec<RawTensorOut> =
            (0..max_outputs).map(|_| RawTensorOut::empty()).collect();
        let options = RaiRunOptions {
            timeout_ms,
            cancel: cancel.as_ptr().cast_const(),
            host_ctx,
        };
        let mut produced = 0usize;
        let _guard = self
            .run_lock
            .as_ref()
            .map(|lock| lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        // Open until the outputs are converted (see `PluginModel::run`).
        let lent = LentScope::enter(budget);
        // SAFETY: every pointer refers to data that outlives the call; `outputs` has
        // room for `max_outputs` entries laid out as `RaiTensorOut`.
        let error = unsafe {
            run(
                self.raw,
                &options,
                &raw_call,
                outputs.as_mut_ptr().cast::<RaiTensorOut>(),
                max_outputs,
                &mut produced,
            )
        };
        if let Some(error) = self.backend.take_error(error) {
            return Err(lent.plugin_error(error));
        }
        // A plugin claiming more outputs than there was room for is not trusted past
        // the room it had.
        let produced = produced.min(max_outputs);
        let converted: Vec<Result<Tensor, BackendError>> = outputs[..produced]
            .iter()
            .map(|out| output_to_tensor(&self.backend, out, &lent))
            .collect();
        for out in &outputs[..produced] {
            release_output(&self.backend, out);
        }
        let tensors = converted.into_iter().collect::<Result<Vec<_>, _>>()?;
        if call.n_outputs > 0 && tensors.len() != call.n_outputs {
            return Err(BackendError::failed(format!(
                "ERR function {} returned {} tensors but {} OUTPUTS were given",
                call.function,
                tensors.len(),
                call.n_outputs
            )));
        }
        Ok(tensors)
    }
}

impl Drop for PluginScript {
    fn drop(&mut self) {
        if let Some(free) = self.backend.api.script_free {
            // SAFETY: the script is freed exactly once, when its last user is gone.
            unsafe { free(self.raw) };
        }
    }
}
