//! Scripts through a plugin's exported C table: load with entry points, run a function
//! the AI.SCRIPTEXECUTE way (tensors, keys, args) or the AI.SCRIPTRUN way (tensors as
//! parameters), copy the outputs out.

use std::ffi::{c_char, CString};
use std::ptr;

use redisai_plugin_api::abi::{
    RaiDevice, RaiScript, RaiScriptCall, RaiTensorView, RAI_SCRIPT_CALL_LISTS,
    RAI_SCRIPT_CALL_POSITIONAL,
};

use crate::table::{empty_out, Output, Plugin, RunOptions};
use crate::tensors::Input;

/// How a script function is called besides its tensors.
#[derive(Clone, Copy, Debug)]
pub enum Call<'a> {
    /// AI.SCRIPTEXECUTE: three lists (tensors, keys, args).
    Lists {
        keys: &'a [&'a str],
        args: &'a [&'a str],
    },
    /// AI.SCRIPTRUN: the tensors are the function's parameters; those from `variadic` on
    /// (after `$`) its list of tensors.
    Positional { variadic: Option<usize> },
}

/// A script loaded by a [`Plugin`]; freed when dropped.
pub struct Script {
    plugin: Plugin,
    raw: *mut RaiScript,
}

impl Plugin {
    /// Compiles `source` for `device` with its entry points.
    pub fn load_script(
        &self,
        device: RaiDevice,
        source: &str,
        entry_points: &[&str],
    ) -> Result<Script, String> {
        let source = CString::new(source).map_err(|err| format!("source: {err}"))?;
        let names = c_strings(entry_points)?;
        let name_ptrs: Vec<*const c_char> = names.iter().map(|n| n.as_ptr()).collect();
        let mut script = ptr::null_mut();
        let script_load = self.api().script_load.expect("the table has script_load");
        // SAFETY: the source, the names and the out-pointer live for the call.
        let err = unsafe {
            script_load(
                device,
                source.as_ptr(),
                name_ptrs.as_ptr(),
                name_ptrs.len(),
                &mut script,
            )
        };
        // SAFETY: an error the plugin just returned.
        unsafe { self.take_error(err) }?;
        assert!(!script.is_null(), "script_load succeeded without a script");
        Ok(Script {
            plugin: *self,
            raw: script,
        })
    }
}

impl Script {
    /// Runs `function` on `inputs`, with room for `max_outputs` outputs.
    pub fn run(
        &self,
        function: &str,
        call: Call<'_>,
        inputs: &[Input],
        max_outputs: usize,
        options: RunOptions<'_>,
    ) -> Result<Vec<Output>, String> {
        let function = CString::new(function).map_err(|err| format!("function: {err}"))?;
        let views: Vec<RaiTensorView> = inputs.iter().map(Input::abi_view).collect();
        let (keys, args, convention, variadic) = match call {
            Call::Lists { keys, args } => (keys, args, RAI_SCRIPT_CALL_LISTS, -1),
            Call::Positional { variadic } => (
                &[][..],
                &[][..],
                RAI_SCRIPT_CALL_POSITIONAL,
                variadic.map_or(-1, |index| index as i64),
            ),
        };
        let (keys, args) = (c_strings(keys)?, c_strings(args)?);
        let key_ptrs: Vec<*const c_char> = keys.iter().map(|k| k.as_ptr()).collect();
        let arg_ptrs: Vec<*const c_char> = args.iter().map(|a| a.as_ptr()).collect();
        let call = RaiScriptCall {
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
        let run_options = options.abi();
        let mut outputs = vec![empty_out(); max_outputs];
        let mut count = 0usize;
        let script_run = self
            .plugin
            .api()
            .script_run
            .expect("the table has script_run");
        // SAFETY: `self.raw` is a live script of this plugin; everything the call points
        // to lives for the call; `outputs` has room for `max_outputs`.
        let err = unsafe {
            script_run(
                self.raw,
                &run_options,
                &call,
                outputs.as_mut_ptr(),
                max_outputs,
                &mut count,
            )
        };
        // SAFETY: an error the plugin just returned.
        unsafe { self.plugin.take_error(err) }?;
        assert!(
            count <= max_outputs,
            "{count} outputs in room for {max_outputs}"
        );
        Ok(self.plugin.take_outputs(&outputs[..count]))
    }
}

impl std::fmt::Debug for Script {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Script").field(&self.raw).finish()
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        let free = self
            .plugin
            .api()
            .script_free
            .expect("the table has script_free");
        // SAFETY: a live script of this plugin, freed once.
        unsafe { free(self.raw) };
    }
}

fn c_strings(items: &[&str]) -> Result<Vec<CString>, String> {
    items
        .iter()
        .map(|item| CString::new(*item).map_err(|err| format!("{item:?}: {err}")))
        .collect()
}
