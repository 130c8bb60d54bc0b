//! Loaded TorchScript modules and scripts, and the test helpers that make modules.

// The shim's functions, types and helpers are the parent's.
use super::*;

/// A loaded TorchScript module.
pub struct Module {
    raw: *mut RtModule,
    inputs: Vec<String>,
    outputs: usize,
}

// SAFETY: a TorchScript module's forward may run from several threads at once (the JIT
// executor locks what it shares); loading and freeing happen on one thread.
unsafe impl Send for Module {}
// SAFETY: as above.
unsafe impl Sync for Module {}

impl Module {
    /// Bytes of the module's parameters and buffers (its weights); `None` when libtorch
    /// cannot tell.
    pub fn memory_bytes(&self) -> Option<u64> {
        // SAFETY: `raw` is a live module until drop; the shim catches every exception.
        let bytes = unsafe { rt_module_memory(self.raw) };
        (bytes != u64::MAX).then_some(bytes)
    }

    /// Loads a serialised TorchScript module (a `.pt` file's bytes) onto the CPU.
    pub fn load(blob: &[u8]) -> Result<Module> {
        Module::load_on(blob, TorchDevice::Cpu)
    }

    /// Loads a serialised TorchScript module onto `device` (its parameters are mapped
    /// there); runs copy the inputs to the device and the outputs back to the CPU.
    ///
    /// The module is checked against the sandbox policy ([`policy`]) before it is
    /// returned: a model that could run a forbidden operation is refused.
    pub fn load_on(blob: &[u8], device: TorchDevice) -> Result<Module> {
        let code = device.code()?;
        policy::install()?;
        take_forbidden();
        let mut raw = ptr::null_mut();
        // SAFETY: `blob` is valid for its length; `raw` receives an owned module.
        check(unsafe { rt_module_load(blob.as_ptr(), blob.len(), code, &mut raw) })
            .map_err(|err| policy::explain(err, What::Model))?;
        // SAFETY: `raw` is live; names are copied out.
        let inputs = (0..unsafe { rt_module_input_count(raw) })
            .map(|index| {
                // SAFETY: index in range; the name lives as long as the module.
                let name = unsafe { rt_module_input_name(raw, index) };
                if name.is_null() {
                    String::new()
                } else {
                    // SAFETY: a NUL-terminated string owned by the module.
                    unsafe { CStr::from_ptr(name) }
                        .to_string_lossy()
                        .into_owned()
                }
            })
            .collect();
        // SAFETY: `raw` is live.
        let outputs = unsafe { rt_module_output_count(raw) };
        let module = Module {
            raw,
            inputs,
            outputs,
        };
        policy::check(module.operations()?.iter().map(String::as_str), What::Model)?;
        Ok(module)
    }

    /// What the module can run: the node kinds of every graph reachable from it and the
    /// custom classes its values have (see [`policy`]), sorted, each once.
    pub fn operations(&self) -> Result<Vec<String>> {
        // SAFETY: `self.raw` is live; the out-pointers are valid.
        lines_of(|out, len| unsafe { rt_module_operations(self.raw, out, len) })
    }

    /// Names of `forward`'s arguments (after `self`).
    pub fn input_names(&self) -> &[String] {
        &self.inputs
    }

    /// How many tensors `forward` declares it returns (0 when it does not say, e.g. a list).
    pub fn output_count(&self) -> usize {
        self.outputs
    }

    /// Runs `forward` on copies of `inputs`.
    pub fn forward(&self, inputs: &[TensorRef<'_>]) -> Result<Vec<OwnedTensor>> {
        let views: Vec<RtView> = inputs.iter().map(view_of).collect();
        let mut out = ptr::null_mut();
        take_forbidden();
        // SAFETY: the views borrow `inputs` for the call; `out` receives owned outputs.
        check(unsafe { rt_module_forward(self.raw, views.as_ptr(), views.len(), &mut out) })
            .map_err(|err| policy::explain(err, What::Model))?;
        Outputs(out).to_owned()
    }
}

impl Drop for Module {
    fn drop(&mut self) {
        // SAFETY: freed once; the shim catches every exception.
        unsafe { rt_module_free(self.raw) };
    }
}

/// A compiled TorchScript script.
pub struct Script {
    raw: *mut RtScript,
}

// SAFETY: compiled functions may run from several threads at once; loading and freeing
// happen on one thread.
unsafe impl Send for Script {}
// SAFETY: as above.
unsafe impl Sync for Script {}

impl Script {
    /// Compiles `source`; each of `entry_points` must be a function of it with the
    /// signature `(tensors: List[Tensor], keys: List[str], args: List[str])`.
    pub fn load(source: &str, entry_points: &[String]) -> Result<Script> {
        Script::load_on(source, entry_points, TorchDevice::Cpu)
    }

    /// As [`Script::load`], for a script whose functions get their tensors on `device`.
    ///
    /// The script is checked against the sandbox policy ([`policy`]): one that could run
    /// a forbidden operation is refused.
    pub fn load_on(source: &str, entry_points: &[String], device: TorchDevice) -> Result<Script> {
        let code = device.code()?;
        let source = c_string(source, "the script source")?;
        let names = c_strings(entry_points, "an entry point name")?;
        let ptrs: Vec<*const c_char> = names.iter().map(|name| name.as_ptr()).collect();
        policy::install()?;
        take_forbidden();
        let mut raw = ptr::null_mut();
        // SAFETY: all strings live for the call; `raw` receives an owned script.
        check(unsafe {
            rt_script_load(source.as_ptr(), ptrs.as_ptr(), ptrs.len(), code, &mut raw)
        })
        .map_err(|err| policy::explain(err, What::Script))?;
        let script = Script { raw };
        policy::check(
            script.operations()?.iter().map(String::as_str),
            What::Script,
        )?;
        Ok(script)
    }

    /// What the script can run: the node kinds of every graph of its compilation unit
    /// (see [`policy`]), sorted, each once.
    pub fn operations(&self) -> Result<Vec<String>> {
        // SAFETY: `self.raw` is live; the out-pointers are valid.
        lines_of(|out, len| unsafe { rt_script_operations(self.raw, out, len) })
    }

    /// Calls `function(inputs, keys, args)`; returns the tensors it returns.
    pub fn run(
        &self,
        function: &str,
        inputs: &[TensorRef<'_>],
        keys: &[String],
        args: &[String],
    ) -> Result<Vec<OwnedTensor>> {
        let function = c_string(function, "the function name")?;
        let views: Vec<RtView> = inputs.iter().map(view_of).collect();
        let keys = c_strings(keys, "a key")?;
        let args = c_strings(args, "an argument")?;
        let key_ptrs: Vec<*const c_char> = keys.iter().map(|s| s.as_ptr()).collect();
        let arg_ptrs: Vec<*const c_char> = args.iter().map(|s| s.as_ptr()).collect();
        let mut out = ptr::null_mut();
        take_forbidden();
        // SAFETY: every pointer borrows data that outlives the call; `out` receives owned
        // outputs.
        check(unsafe {
            rt_script_run(
                self.raw,
                function.as_ptr(),
                views.as_ptr(),
                views.len(),
                key_ptrs.as_ptr(),
                key_ptrs.len(),
                arg_ptrs.as_ptr(),
                arg_ptrs.len(),
                &mut out,
            )
        })
        .map_err(|err| policy::explain(err, What::Script))?;
        Outputs(out).to_owned()
    }

    /// Calls `function` the deprecated `AI.SCRIPTRUN` way: the inputs are its own
    /// parameters, those from `variadic` on (after `$`) its `List[Tensor]` parameter. A
    /// function with the three-list signature gets them as in [`Script::run`].
    pub fn run_positional(
        &self,
        function: &str,
        inputs: &[TensorRef<'_>],
        variadic: Option<usize>,
    ) -> Result<Vec<OwnedTensor>> {
        let function = c_string(function, "the function name")?;
        let views: Vec<RtView> = inputs.iter().map(view_of).collect();
        let variadic = match variadic {
            Some(index) => i64::try_from(index)
                .map_err(|_| Error::new("the index of the inputs after $ is out of range"))?,
            None => -1,
        };
        let mut out = ptr::null_mut();
        take_forbidden();
        // SAFETY: every pointer borrows data that outlives the call; `out` receives owned
        // outputs.
        check(unsafe {
            rt_script_run_positional(
                self.raw,
                function.as_ptr(),
                views.as_ptr(),
                views.len(),
                variadic,
                &mut out,
            )
        })
        .map_err(|err| policy::explain(err, What::Script))?;
        Outputs(out).to_owned()
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        // SAFETY: freed once; the shim catches every exception.
        unsafe { rt_script_free(self.raw) };
    }
}

/// Builds a serialised TorchScript module (a `.pt` file's bytes) from TorchScript
/// source, whose methods may use `params` as `self.<name>`: for tests and tools.
pub fn make_module(source: &str, params: &[(&str, TensorRef<'_>)]) -> Result<Vec<u8>> {
    let source = c_string(source, "the module source")?;
    let names: Vec<CString> = params
        .iter()
        .map(|(name, _)| c_string(name, "a parameter name"))
        .collect::<Result<_>>()?;
    let name_ptrs: Vec<*const c_char> = names.iter().map(|n| n.as_ptr()).collect();
    let views: Vec<RtView> = params.iter().map(|(_, t)| view_of(t)).collect();
    let mut out = ptr::null_mut();
    let mut len = 0usize;
    // SAFETY: every pointer borrows data that outlives the call; `out` receives a malloc'd
    // buffer of `len` bytes.
    check(unsafe {
        rt_make_module(
            source.as_ptr(),
            name_ptrs.as_ptr(),
            views.as_ptr(),
            views.len(),
            &mut out,
            &mut len,
        )
    })?;
    // SAFETY: the shim returned `len` bytes at `out`, freed once after the copy.
    let bytes = unsafe { std::slice::from_raw_parts(out, len) }.to_vec();
    // SAFETY: as above.
    unsafe { rt_bytes_free(out) };
    Ok(bytes)
}

/// As [`make_module`], for a module with one submodule, `child_name`, whose methods are
/// `child_source`: the module's own methods may call them as `self.<child_name>.f(...)`.
pub fn make_module_with_child(
    source: &str,
    child_name: &str,
    child_source: &str,
) -> Result<Vec<u8>> {
    let source = c_string(source, "the module source")?;
    let child_name = c_string(child_name, "the submodule name")?;
    let child_source = c_string(child_source, "the submodule source")?;
    let mut out = ptr::null_mut();
    let mut len = 0usize;
    // SAFETY: every pointer borrows data that outlives the call; `out` receives a malloc'd
    // buffer of `len` bytes.
    check(unsafe {
        rt_make_module_with_child(
            source.as_ptr(),
            child_name.as_ptr(),
            child_source.as_ptr(),
            &mut out,
            &mut len,
        )
    })?;
    // SAFETY: the shim returned `len` bytes at `out`, freed once after the copy.
    let bytes = unsafe { std::slice::from_raw_parts(out, len) }.to_vec();
    // SAFETY: as above.
    unsafe { rt_bytes_free(out) };
    Ok(bytes)
}
