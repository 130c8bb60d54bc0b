//! Safe wrappers over the C++ shim (`shim/shim.h`): the crate's only FFI with libtorch.
//! Every shim function catches every C++ exception and returns its message, which these
//! wrappers turn into an [`Error`].

mod module;

use std::ffi::{c_char, CStr, CString};
use std::ptr;

use redisai_plugin_api::sdk::{DType, Error, OutputBuffer, OwnedTensor, Result, TensorRef};

use crate::policy::{self, What};

pub use module::{make_module, make_module_with_child, Module, Script};

/// `rt_view` of shim.h: a borrowed row-major CPU tensor.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct RtView {
    pub dtype: u32,
    pub ndim: usize,
    pub shape: *const i64,
    pub data: *const u8,
    pub nbytes: usize,
}

#[repr(C)]
struct RtModule {
    _private: [u8; 0],
}

#[repr(C)]
struct RtScript {
    _private: [u8; 0],
}

#[repr(C)]
struct RtOutputs {
    _private: [u8; 0],
}

/// `rt_sink` of shim.h: where a host callback writes its result.
#[repr(C)]
pub(crate) struct RtSink {
    _private: [u8; 0],
}

/// `rt_callbacks` of shim.h.
#[repr(C)]
pub(crate) struct RtCallbacks {
    pub redis_execute: unsafe extern "C" fn(
        argv: *const *const u8,
        lens: *const usize,
        argc: usize,
        sink: *mut RtSink,
    ),
    pub model_execute: unsafe extern "C" fn(
        key: *const c_char,
        inputs: *const RtView,
        n_inputs: usize,
        n_outputs: usize,
        sink: *mut RtSink,
    ),
}

extern "C" {
    fn rt_error_free(error: *mut c_char);
    fn rt_torch_version() -> *const c_char;
    fn rt_set_threads(intra_op: i64, inter_op: i64) -> *mut c_char;
    fn rt_get_threads(intra_op: *mut i64, inter_op: *mut i64);
    fn rt_cuda_device_count() -> i64;
    fn rt_cuda_backend_registered() -> i32;
    fn rt_module_load(
        blob: *const u8,
        len: usize,
        device: i32,
        out: *mut *mut RtModule,
    ) -> *mut c_char;
    fn rt_module_free(module: *mut RtModule);
    fn rt_module_input_count(module: *const RtModule) -> usize;
    fn rt_module_input_name(module: *const RtModule, index: usize) -> *const c_char;
    fn rt_module_output_count(module: *const RtModule) -> usize;
    fn rt_module_forward(
        module: *mut RtModule,
        inputs: *const RtView,
        n_inputs: usize,
        out: *mut *mut RtOutputs,
    ) -> *mut c_char;
    fn rt_outputs_count(outputs: *const RtOutputs) -> usize;
    fn rt_outputs_get(outputs: *const RtOutputs, index: usize) -> RtView;
    fn rt_outputs_free(outputs: *mut RtOutputs);
    fn rt_script_load(
        source: *const c_char,
        entry_points: *const *const c_char,
        n_entry_points: usize,
        device: i32,
        out: *mut *mut RtScript,
    ) -> *mut c_char;
    fn rt_script_free(script: *mut RtScript);
    #[allow(clippy::too_many_arguments)]
    fn rt_script_run(
        script: *mut RtScript,
        function: *const c_char,
        inputs: *const RtView,
        n_inputs: usize,
        keys: *const *const c_char,
        n_keys: usize,
        args: *const *const c_char,
        n_args: usize,
        out: *mut *mut RtOutputs,
    ) -> *mut c_char;
    fn rt_script_run_positional(
        script: *mut RtScript,
        function: *const c_char,
        inputs: *const RtView,
        n_inputs: usize,
        variadic: i64,
        out: *mut *mut RtOutputs,
    ) -> *mut c_char;
    fn rt_register_ops(callbacks: *const RtCallbacks) -> *mut c_char;
    fn rt_deregister_ops();
    pub(crate) fn rt_sink_reply(sink: *mut RtSink, encoded: *const u8, len: usize);
    pub(crate) fn rt_sink_tensor(sink: *mut RtSink, tensor: *const RtView);
    pub(crate) fn rt_sink_error(sink: *mut RtSink, message: *const c_char, len: usize);
    fn rt_make_module(
        source: *const c_char,
        param_names: *const *const c_char,
        params: *const RtView,
        n_params: usize,
        out: *mut *mut u8,
        out_len: *mut usize,
    ) -> *mut c_char;
    fn rt_make_module_with_child(
        source: *const c_char,
        child_name: *const c_char,
        child_source: *const c_char,
        out: *mut *mut u8,
        out_len: *mut usize,
    ) -> *mut c_char;
    fn rt_bytes_free(bytes: *mut u8);
    fn rt_memory_install() -> *mut c_char;
    fn rt_memory_set_limit(limit_bytes: u64);
    fn rt_memory_stats(held: *mut u64, peak: *mut u64, limit: *mut u64);
    fn rt_memory_refusals() -> u64;
    fn rt_module_memory(module: *const RtModule) -> u64;
    fn rt_module_operations(
        module: *const RtModule,
        out: *mut *mut c_char,
        out_len: *mut usize,
    ) -> *mut c_char;
    fn rt_script_operations(
        script: *const RtScript,
        out: *mut *mut c_char,
        out_len: *mut usize,
    ) -> *mut c_char;
    fn rt_operator_names(out: *mut *mut c_char, out_len: *mut usize) -> *mut c_char;
    fn rt_stub_operators(names: *const *const c_char, n_names: usize) -> *mut c_char;
    fn rt_custom_class_names(out: *mut *mut c_char, out_len: *mut usize) -> *mut c_char;
    fn rt_stub_custom_classes(names: *const *const c_char, n_names: usize) -> *mut c_char;
    fn rt_take_forbidden() -> *mut c_char;
}

/// Turns a shim error string into an [`Error`] (and frees it).
fn check(error: *mut c_char) -> Result<()> {
    if error.is_null() {
        return Ok(());
    }
    // SAFETY: a non-null error is a NUL-terminated string from the shim, freed once here.
    let message = unsafe { CStr::from_ptr(error) }
        .to_string_lossy()
        .into_owned();
    // SAFETY: as above.
    unsafe { rt_error_free(error) };
    Err(Error::new(message))
}

/// Reads a list the shim wrote (one item a line, `len` bytes at `text`) and frees it.
///
/// # Safety
/// `text` must be a buffer of the shim's (released with `rt_error_free`) of `len` bytes.
unsafe fn take_lines(text: *mut c_char, len: usize) -> Vec<String> {
    if text.is_null() {
        return Vec::new();
    }
    // SAFETY: guaranteed by the caller.
    let bytes = unsafe { std::slice::from_raw_parts(text.cast::<u8>(), len) };
    let lines = String::from_utf8_lossy(bytes)
        .lines()
        .filter(|line| !line.is_empty())
        .map(str::to_owned)
        .collect();
    // SAFETY: freed once, after the copy.
    unsafe { rt_error_free(text) };
    lines
}

/// Calls a shim function that writes a list into its out-pointers.
fn lines_of(call: impl FnOnce(*mut *mut c_char, *mut usize) -> *mut c_char) -> Result<Vec<String>> {
    let mut out = ptr::null_mut();
    let mut len = 0usize;
    check(call(&mut out, &mut len))?;
    // SAFETY: on success the shim wrote a buffer of `len` bytes at `out`.
    Ok(unsafe { take_lines(out, len) })
}

/// The names of libtorch's registered operators (`aten::from_file`, ...), each once.
pub fn operator_names() -> Result<Vec<String>> {
    // SAFETY: two valid out-pointers; the shim catches every exception.
    lines_of(|out, len| unsafe { rt_operator_names(out, len) })
}

/// Replaces every overload of the named operators with a stub that only throws (see
/// [`policy::install`]).
pub(crate) fn stub_operators(names: &[String]) -> Result<()> {
    let names = c_strings(names, "an operator name")?;
    let ptrs: Vec<*const c_char> = names.iter().map(|name| name.as_ptr()).collect();
    // SAFETY: the strings live for the call; the shim copies them.
    check(unsafe { rt_stub_operators(ptrs.as_ptr(), ptrs.len()) })
}

/// The custom classes libtorch registered (`__torch__.torch.classes.ns.Name`), each once.
pub fn custom_class_names() -> Result<Vec<String>> {
    // SAFETY: two valid out-pointers; the shim catches every exception.
    lines_of(|out, len| unsafe { rt_custom_class_names(out, len) })
}

/// Replaces every method of the named custom classes with a stub that only throws (see
/// [`policy::install`]).
pub(crate) fn stub_custom_classes(names: &[String]) -> Result<()> {
    let names = c_strings(names, "a class name")?;
    let ptrs: Vec<*const c_char> = names.iter().map(|name| name.as_ptr()).collect();
    // SAFETY: the strings live for the call; the shim copies them.
    check(unsafe { rt_stub_custom_classes(ptrs.as_ptr(), ptrs.len()) })
}

/// The stubbed operator or custom class a call on this thread last ran into (and
/// forgets it).
pub(crate) fn take_forbidden() -> Option<String> {
    // SAFETY: no arguments; the shim catches every exception.
    let name = unsafe { rt_take_forbidden() };
    if name.is_null() {
        return None;
    }
    // SAFETY: a NUL-terminated string from the shim, freed once here.
    let text = unsafe { CStr::from_ptr(name) }
        .to_string_lossy()
        .into_owned();
    // SAFETY: as above.
    unsafe { rt_error_free(name) };
    Some(text)
}

fn c_string(text: &str, what: &str) -> Result<CString> {
    CString::new(text).map_err(|_| Error::new(format!("{what} contains a NUL byte")))
}

/// Puts the counting, limit-enforcing CPU allocator in front of libtorch's (once,
/// before any model or script loads; see shim/memory.cpp).
pub fn install_memory_limit() -> Result<()> {
    // SAFETY: no arguments; the shim catches every exception.
    check(unsafe { rt_memory_install() })
}

/// Sets BACKEND_MEMORY_LIMIT in bytes (0: none); checked at each CPU allocation.
pub fn set_memory_limit(limit_bytes: u64) {
    // SAFETY: a plain integer stored atomically.
    unsafe { rt_memory_set_limit(limit_bytes) }
}

/// Bytes of CPU tensor storage libtorch holds now, the peak and the limit (bytes, 0:
/// none).
pub fn memory_stats() -> (u64, u64, u64) {
    let (mut held, mut peak, mut limit) = (0, 0, 0);
    // SAFETY: three valid out-pointers; atomic loads only.
    unsafe { rt_memory_stats(&mut held, &mut peak, &mut limit) };
    (held, peak, limit)
}

/// Allocations BACKEND_MEMORY_LIMIT refused so far.
pub fn memory_refusals() -> u64 {
    // SAFETY: no arguments; an atomic load only.
    unsafe { rt_memory_refusals() }
}

/// Runs `body` (a load or run); its error is [`Error::out_of_memory`] when
/// BACKEND_MEMORY_LIMIT refused an allocation meanwhile (the text stays the limiter's).
pub fn limit_aware<T>(body: impl FnOnce() -> Result<T>) -> Result<T> {
    let refused_before = memory_refusals();
    body().map_err(|err| {
        if memory_refusals() > refused_before {
            Error::out_of_memory(err.into_message())
        } else {
            err
        }
    })
}

/// libtorch's version, e.g. "2.13.0".
pub fn torch_version() -> String {
    // SAFETY: returns a static NUL-terminated string.
    unsafe { CStr::from_ptr(rt_torch_version()) }
        .to_string_lossy()
        .into_owned()
}

/// Where a model or script runs: the CPU, or CUDA device `n` (`torch::Device(kCUDA, n)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TorchDevice {
    Cpu,
    Cuda(u32),
}

impl TorchDevice {
    /// The shim's device code (`RT_DEVICE_CPU` is -1).
    fn code(self) -> Result<i32> {
        match self {
            TorchDevice::Cpu => Ok(-1),
            TorchDevice::Cuda(index) => i32::try_from(index)
                .ok()
                .filter(|&code| code <= 127)
                .ok_or_else(|| {
                    Error::new(format!("GPU:{index} is not a device libtorch can name"))
                }),
        }
    }
}

/// How many CUDA devices libtorch sees: 0 until its CUDA backend (`libtorch_cuda.so`)
/// is loaded, and 0 without a driver or a device.
pub fn cuda_device_count() -> u32 {
    // SAFETY: no arguments; the shim catches every exception.
    let count = unsafe { rt_cuda_device_count() };
    u32::try_from(count).unwrap_or(0)
}

/// Whether libtorch's CUDA hooks are libtorch_cuda's (loaded in time) rather than
/// libtorch_cpu's stubs.
pub fn cuda_backend_registered() -> bool {
    // SAFETY: no arguments; the shim catches every exception.
    unsafe { rt_cuda_backend_registered() == 1 }
}

/// Sets libtorch's intra-op and inter-op thread counts (0 keeps the default).
pub fn set_threads(intra_op: i64, inter_op: i64) -> Result<()> {
    // SAFETY: plain integers; the shim catches every exception.
    check(unsafe { rt_set_threads(intra_op, inter_op) })
}

/// libtorch's intra-op and inter-op thread counts now.
pub fn threads() -> (i64, i64) {
    let (mut intra, mut inter) = (0i64, 0i64);
    // SAFETY: two valid out-pointers; the shim catches every exception.
    unsafe { rt_get_threads(&mut intra, &mut inter) };
    (intra, inter)
}

pub(crate) fn view_of(tensor: &TensorRef<'_>) -> RtView {
    RtView {
        dtype: tensor.dtype as u32,
        ndim: tensor.shape.len(),
        shape: tensor.shape.as_ptr(),
        data: tensor.data.as_ptr(),
        nbytes: tensor.data.len(),
    }
}

/// Reads a shim view as a borrowed tensor.
///
/// # Safety
/// The view's pointers must be valid for its stated lengths while `'a` lasts.
pub(crate) unsafe fn tensor_of<'a>(view: &RtView) -> Result<TensorRef<'a>> {
    let dtype = dtype_of(view.dtype)?;
    let shape = if view.ndim == 0 {
        &[][..]
    } else {
        // SAFETY: guaranteed by the caller.
        unsafe { std::slice::from_raw_parts(view.shape, view.ndim) }
    };
    let data = if view.nbytes == 0 {
        &[][..]
    } else {
        // SAFETY: guaranteed by the caller.
        unsafe { std::slice::from_raw_parts(view.data, view.nbytes) }
    };
    Ok(TensorRef {
        dtype,
        device: redisai_plugin_api::sdk::Device {
            kind: redisai_plugin_api::sdk::DeviceKind::Cpu,
            id: 0,
        },
        shape,
        data,
    })
}

fn dtype_of(code: u32) -> Result<DType> {
    Ok(match code {
        0 => DType::Float,
        1 => DType::Double,
        2 => DType::Int8,
        3 => DType::Int16,
        4 => DType::Int32,
        5 => DType::Int64,
        6 => DType::Uint8,
        7 => DType::Uint16,
        8 => DType::Bool,
        other => {
            return Err(Error::new(format!(
                "unexpected dtype code {other} from libtorch"
            )))
        }
    })
}

/// Tensors produced by a run, owned by the shim until dropped.
struct Outputs(*mut RtOutputs);

impl Outputs {
    /// Copies every output out.
    fn to_owned(&self) -> Result<Vec<OwnedTensor>> {
        // SAFETY: `self.0` is a live outputs object.
        let count = unsafe { rt_outputs_count(self.0) };
        (0..count)
            .map(|index| {
                // SAFETY: `index` is in range; the view lives as long as `self`.
                let view = unsafe { rt_outputs_get(self.0, index) };
                // SAFETY: the view's data stays valid while `self` lives.
                let tensor = unsafe { tensor_of(&view) }?;
                Ok(OwnedTensor {
                    dtype: tensor.dtype,
                    shape: tensor.shape.to_vec(),
                    data: OutputBuffer::try_copy_from(tensor.data)?,
                })
            })
            .collect()
    }
}

impl Drop for Outputs {
    fn drop(&mut self) {
        // SAFETY: freed once; the shim catches every exception.
        unsafe { rt_outputs_free(self.0) };
    }
}

fn c_strings(items: &[String], what: &str) -> Result<Vec<CString>> {
    items.iter().map(|item| c_string(item, what)).collect()
}

/// Registers the script extensions with libtorch (once; later calls replace callbacks).
pub(crate) fn register_ops(callbacks: &RtCallbacks) -> Result<()> {
    // SAFETY: the shim copies the table; the functions are 'static.
    check(unsafe { rt_register_ops(callbacks) })
}

/// Removes the script extensions from libtorch's registry.
pub fn deregister_ops() {
    // SAFETY: no arguments; the shim catches every exception.
    unsafe { rt_deregister_ops() }
}
