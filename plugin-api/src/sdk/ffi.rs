//! The `extern "C"` side of the SDK: the functions of a plugin's table, each catching
//! panics, and the conversions between ABI structs and the SDK's types.

use std::ffi::{c_char, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::*;
use crate::abi::{
    RaiDevice, RaiError, RaiHostApi, RaiMemoryStats, RaiModel, RaiModelOptions, RaiRunOptions,
    RaiScript, RaiScriptCall, RaiTensorOut, RaiTensorView, RAI_SCRIPT_CALL_LISTS,
    RAI_SCRIPT_CALL_POSITIONAL,
};

/// The error object behind `RaiError *`.
struct ErrorBox {
    code: ErrorCode,
    message: CString,
}

fn error_ptr(err: Error) -> *mut RaiError {
    let code = err.code();
    let message = CString::new(err.into_message().replace('\0', " ")).unwrap_or_default();
    Box::into_raw(Box::new(ErrorBox { code, message })).cast()
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

/// Runs `body`, turning an error or a panic into a `RaiError *`.
fn guard(what: &str, body: impl FnOnce() -> Result<()>) -> *mut RaiError {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => std::ptr::null_mut(),
        Ok(Err(err)) => error_ptr(err),
        Err(payload) => error_ptr(Error::new(format!(
            "panic in backend plugin during {what}: {}",
            panic_text(payload.as_ref())
        ))),
    }
}

/// Runs `body` for a function that cannot report errors; a panic is logged.
fn guard_quiet<R>(what: &str, fallback: R, body: impl FnOnce() -> R) -> R {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|payload| {
        if let Some(host) = host() {
            host.log(
                LogLevel::Warning,
                &format!(
                    "panic in backend plugin during {what}: {}",
                    panic_text(payload.as_ref())
                ),
            );
        }
        fallback
    })
}

fn instance<P: Instance>() -> Result<&'static P> {
    P::cell()
        .get()
        .ok_or_else(|| Error::new("the plugin was used before init"))
}

/// A loaded model with its input and output names kept as C strings.
struct ModelBox<M> {
    model: M,
    inputs: Vec<CString>,
    outputs: Vec<CString>,
}

fn c_strings(names: Vec<String>) -> Vec<CString> {
    names
        .into_iter()
        .map(|name| CString::new(name.replace('\0', " ")).unwrap_or_default())
        .collect()
}

/// Reads `count` C strings from `ptrs`.
///
/// # Safety
/// `ptrs` must point to `count` valid NUL-terminated strings, or be null with count 0.
unsafe fn read_strings(ptrs: *const *const c_char, count: usize) -> Result<Vec<String>> {
    if count == 0 || ptrs.is_null() {
        return Ok(Vec::new());
    }
    // SAFETY: guaranteed by the caller.
    let ptrs = unsafe { std::slice::from_raw_parts(ptrs, count) };
    ptrs.iter()
        .map(|&ptr| {
            if ptr.is_null() {
                return Err(Error::new("null string"));
            }
            // SAFETY: guaranteed by the caller.
            Ok(unsafe { CStr::from_ptr(ptr) }
                .to_string_lossy()
                .into_owned())
        })
        .collect()
}

/// Borrows a host tensor view as a [`TensorRef`].
///
/// # Safety
/// The view's pointers must be valid for the lengths it states.
pub(super) unsafe fn tensor_ref<'a>(view: &RaiTensorView) -> Result<TensorRef<'a>> {
    if !view.strides.is_null() {
        // The host only sends contiguous tensors; a strided one is refused, not misread.
        // SAFETY: guaranteed by the caller.
        let strides = unsafe { std::slice::from_raw_parts(view.strides, view.ndim) };
        // SAFETY: guaranteed by the caller.
        let shape = unsafe { std::slice::from_raw_parts(view.shape, view.ndim) };
        let mut expected = 1i64;
        for (&stride, &dim) in strides.iter().zip(shape).rev() {
            if dim > 1 && stride != expected {
                return Err(Error::new("non-contiguous input tensors are not supported"));
            }
            expected = expected.saturating_mul(dim);
        }
    }
    let shape = if view.ndim == 0 {
        &[][..]
    } else {
        // SAFETY: guaranteed by the caller.
        unsafe { std::slice::from_raw_parts(view.shape, view.ndim) }
    };
    let data = if view.byte_len == 0 {
        &[][..]
    } else {
        // SAFETY: guaranteed by the caller.
        unsafe { std::slice::from_raw_parts(view.data.cast::<u8>(), view.byte_len) }
    };
    Ok(TensorRef {
        dtype: view.dtype,
        device: view.device.into(),
        shape,
        data,
    })
}

fn out_of(tensor: OwnedTensor) -> RaiTensorOut {
    let tensor = Box::new(tensor);
    let view = RaiTensorView {
        dtype: tensor.dtype,
        device: RaiDevice {
            kind: DeviceKind::Cpu,
            id: 0,
        },
        ndim: tensor.shape.len(),
        shape: tensor.shape.as_ptr(),
        strides: std::ptr::null(),
        data: tensor.data.as_ptr().cast(),
        byte_len: tensor.data.len(),
    };
    RaiTensorOut {
        view,
        owner: Box::into_raw(tensor).cast(),
    }
}

pub(super) unsafe extern "C" fn ffi_init<P: Instance>(host: *const RaiHostApi) -> *mut RaiError {
    guard("init", || {
        // SAFETY: the host passes a table that lives for the rest of the process.
        let api = unsafe { host.as_ref() }.ok_or_else(|| Error::new("null host table"))?;
        let host = Host { api };
        let _ = HOST.set(host);
        if P::cell().get().is_some() {
            return Ok(());
        }
        let plugin = P::init(host)?;
        let _ = P::cell().set(plugin);
        Ok(())
    })
}

pub(super) unsafe extern "C" fn ffi_error_message(error: *const RaiError) -> *const c_char {
    // SAFETY: errors handed to the host are `ErrorBox`es until `error_free`.
    match unsafe { error.cast::<ErrorBox>().as_ref() } {
        Some(error) => error.message.as_ptr(),
        None => c"".as_ptr(),
    }
}

pub(super) unsafe extern "C" fn ffi_error_code(error: *const RaiError) -> u32 {
    // SAFETY: errors handed to the host are `ErrorBox`es until `error_free`.
    match unsafe { error.cast::<ErrorBox>().as_ref() } {
        Some(error) => error.code as u32,
        None => ErrorCode::Failed as u32,
    }
}

pub(super) unsafe extern "C" fn ffi_error_free(error: *mut RaiError) {
    if !error.is_null() {
        // SAFETY: created by `error_ptr` and freed once by the host.
        drop(unsafe { Box::from_raw(error.cast::<ErrorBox>()) });
    }
}

pub(super) unsafe extern "C" fn ffi_model_load<P: Instance>(
    options: *const RaiModelOptions,
    blob: *const u8,
    blob_len: usize,
    out: *mut *mut RaiModel,
) -> *mut RaiError {
    guard("model load", || {
        let plugin = instance::<P>()?;
        // SAFETY: the host passes valid options for the duration of the call.
        let options = unsafe { options.as_ref() }.ok_or_else(|| Error::new("null options"))?;
        let options = ModelOptions {
            device: options.device.into(),
            batch_size: options.batch_size,
            // SAFETY: the host passes arrays of the stated lengths.
            input_names: unsafe { read_strings(options.input_names, options.n_input_names)? },
            // SAFETY: as above.
            output_names: unsafe { read_strings(options.output_names, options.n_output_names)? },
        };
        let blob = if blob_len == 0 {
            &[][..]
        } else {
            // SAFETY: the host passes a blob of `blob_len` bytes.
            unsafe { std::slice::from_raw_parts(blob, blob_len) }
        };
        let model = plugin.load_model(&options, blob)?;
        let boxed = ModelBox {
            inputs: c_strings(plugin.input_names(&model)),
            outputs: c_strings(plugin.output_names(&model)),
            model,
        };
        if out.is_null() {
            return Err(Error::new("null output pointer"));
        }
        // SAFETY: `out` is a valid pointer provided by the host.
        unsafe { *out = Box::into_raw(Box::new(boxed)).cast() };
        Ok(())
    })
}

/// Borrows the model behind a `RaiModel *`.
///
/// # Safety
/// `model` must come from `ffi_model_load::<P>` and not be freed.
unsafe fn model_box<'a, P: Plugin>(model: *const RaiModel) -> Option<&'a ModelBox<P::Model>> {
    // SAFETY: guaranteed by the caller.
    unsafe { model.cast::<ModelBox<P::Model>>().as_ref() }
}

pub(super) unsafe extern "C" fn ffi_model_free<P: Instance>(model: *mut RaiModel) {
    guard_quiet("model free", (), || {
        if !model.is_null() {
            // SAFETY: created by `ffi_model_load::<P>` and freed once by the host.
            drop(unsafe { Box::from_raw(model.cast::<ModelBox<P::Model>>()) });
        }
    })
}

pub(super) unsafe extern "C" fn ffi_memory_stats<P: Instance>(stats: *mut RaiMemoryStats) {
    if stats.is_null() {
        return;
    }
    let unknown = crate::abi::RAI_MEMORY_UNKNOWN;
    let found = guard_quiet("memory stats", None, || {
        P::cell().get().and_then(|plugin| plugin.memory_stats())
    });
    let (held, peak, limit) = match found {
        Some(found) => (
            found.held_bytes,
            found.peak_bytes,
            found.limit_bytes.unwrap_or(unknown),
        ),
        None => (unknown, unknown, unknown),
    };
    // SAFETY: the host passes a writable struct whose `struct_size` says how much of it
    // exists; only the fields that fit are written.
    unsafe {
        let size = (*stats).struct_size;
        let fits = |end: usize| size >= end;
        let base = std::mem::offset_of!(RaiMemoryStats, held_bytes);
        if fits(base + 8) {
            (*stats).held_bytes = held;
        }
        if fits(std::mem::offset_of!(RaiMemoryStats, peak_bytes) + 8) {
            (*stats).peak_bytes = peak;
        }
        if fits(std::mem::offset_of!(RaiMemoryStats, limit_bytes) + 8) {
            (*stats).limit_bytes = limit;
        }
    }
}

pub(super) unsafe extern "C" fn ffi_model_memory<P: Instance>(model: *const RaiModel) -> u64 {
    let unknown = crate::abi::RAI_MEMORY_UNKNOWN;
    guard_quiet("model memory", unknown, || {
        let Ok(plugin) = instance::<P>() else {
            return unknown;
        };
        // SAFETY: the host passes a live model of this plugin.
        match unsafe { model_box::<P>(model) } {
            Some(model) => plugin.model_memory(&model.model).unwrap_or(unknown),
            None => unknown,
        }
    })
}

pub(super) unsafe extern "C" fn ffi_input_count<P: Instance>(model: *const RaiModel) -> usize {
    // SAFETY: the host passes a live model of this plugin.
    unsafe { model_box::<P>(model) }.map_or(0, |m| m.inputs.len())
}

pub(super) unsafe extern "C" fn ffi_input_name<P: Instance>(
    model: *const RaiModel,
    index: usize,
) -> *const c_char {
    // SAFETY: the host passes a live model of this plugin.
    unsafe { model_box::<P>(model) }
        .and_then(|m| m.inputs.get(index))
        .map_or(std::ptr::null(), |name| name.as_ptr())
}

pub(super) unsafe extern "C" fn ffi_output_count<P: Instance>(model: *const RaiModel) -> usize {
    // SAFETY: the host passes a live model of this plugin.
    unsafe { model_box::<P>(model) }.map_or(0, |m| m.outputs.len())
}

pub(super) unsafe extern "C" fn ffi_output_name<P: Instance>(
    model: *const RaiModel,
    index: usize,
) -> *const c_char {
    // SAFETY: the host passes a live model of this plugin.
    unsafe { model_box::<P>(model) }
        .and_then(|m| m.outputs.get(index))
        .map_or(std::ptr::null(), |name| name.as_ptr())
}

pub(super) unsafe extern "C" fn ffi_model_run<P: Instance>(
    model: *mut RaiModel,
    options: *const RaiRunOptions,
    inputs: *const RaiTensorView,
    n_inputs: usize,
    outputs: *mut RaiTensorOut,
    n_outputs: usize,
) -> *mut RaiError {
    guard("model run", || {
        let plugin = instance::<P>()?;
        // SAFETY: the host passes a live model of this plugin.
        let model = unsafe { model_box::<P>(model) }.ok_or_else(|| Error::new("null model"))?;
        // SAFETY: the host passes valid options for the duration of the call.
        let options = unsafe { run_options(options) };
        // SAFETY: the host passes `n_inputs` valid views.
        let inputs = unsafe { tensor_refs(inputs, n_inputs)? };
        let produced = plugin.run(&model.model, &options, &inputs, n_outputs)?;
        if produced.len() != n_outputs {
            return Err(Error::new(format!(
                "the backend produced {} outputs, {n_outputs} were expected",
                produced.len()
            )));
        }
        // SAFETY: the host passes room for `n_outputs` outputs.
        unsafe { write_outputs(produced, outputs) }
    })
}

/// Reads the host's run options.
///
/// # Safety
/// `options` must be null or valid for the call.
unsafe fn run_options(options: *const RaiRunOptions) -> RunOptions {
    let host_has_ctx = host().is_some_and(|h| h.api.abi_minor >= 1);
    // SAFETY: guaranteed by the caller.
    unsafe { options.as_ref() }
        .map(|o| RunOptions {
            timeout_ms: o.timeout_ms,
            cancel: (!o.cancel.is_null()).then_some(CancelFlag(o.cancel.cast())),
            host_ctx: (host_has_ctx && !o.host_ctx.is_null()).then_some(HostContext(o.host_ctx)),
        })
        .unwrap_or(RunOptions {
            timeout_ms: 0,
            cancel: None,
            host_ctx: None,
        })
}

/// The call's convention: the fields exist from minor 2 on; older hosts only call
/// functions the `AI.SCRIPTEXECUTE` way.
fn script_convention(call: &RaiScriptCall) -> Result<ScriptConvention> {
    let host_has_convention = host().is_some_and(|h| h.api.abi_minor >= 2);
    if !host_has_convention {
        return Ok(ScriptConvention::Lists);
    }
    match call.convention {
        RAI_SCRIPT_CALL_LISTS => Ok(ScriptConvention::Lists),
        RAI_SCRIPT_CALL_POSITIONAL => {
            let variadic = match usize::try_from(call.variadic) {
                Ok(index) if index <= call.n_inputs => Some(index),
                Ok(index) => {
                    return Err(Error::new(format!(
                        "the variadic inputs start at {index}, past the {} inputs",
                        call.n_inputs
                    )))
                }
                Err(_) => None,
            };
            Ok(ScriptConvention::Positional { variadic })
        }
        other => Err(Error::new(format!(
            "unknown script call convention {other}"
        ))),
    }
}

/// Borrows `count` host tensor views.
///
/// # Safety
/// `views` must point to `count` views whose pointers are valid for the call.
unsafe fn tensor_refs<'a>(views: *const RaiTensorView, count: usize) -> Result<Vec<TensorRef<'a>>> {
    if count == 0 {
        return Ok(Vec::new());
    }
    if views.is_null() {
        return Err(Error::new("null tensor array"));
    }
    // SAFETY: guaranteed by the caller.
    let views = unsafe { std::slice::from_raw_parts(views, count) };
    views
        .iter()
        // SAFETY: guaranteed by the caller.
        .map(|view| unsafe { tensor_ref(view) })
        .collect()
}

/// A borrowed view of a plugin-side tensor, for handing to the host.
pub(super) fn view_of(tensor: &TensorRef<'_>) -> RaiTensorView {
    RaiTensorView {
        dtype: tensor.dtype,
        device: RaiDevice {
            kind: tensor.device.kind,
            id: tensor.device.id,
        },
        ndim: tensor.shape.len(),
        shape: tensor.shape.as_ptr(),
        strides: std::ptr::null(),
        data: tensor.data.as_ptr().cast(),
        byte_len: tensor.data.len(),
    }
}

/// Writes `produced` into the host's output array.
///
/// # Safety
/// `outputs` must have room for `produced.len()` outputs.
unsafe fn write_outputs(produced: Vec<OwnedTensor>, outputs: *mut RaiTensorOut) -> Result<()> {
    if !produced.is_empty() && outputs.is_null() {
        return Err(Error::new("null outputs array"));
    }
    for (index, tensor) in produced.into_iter().enumerate() {
        // SAFETY: guaranteed by the caller.
        unsafe { outputs.add(index).write(out_of(tensor)) };
    }
    Ok(())
}

pub(super) unsafe extern "C" fn ffi_script_load<P: Instance>(
    device: RaiDevice,
    source: *const c_char,
    entry_points: *const *const c_char,
    n_entry_points: usize,
    out: *mut *mut RaiScript,
) -> *mut RaiError {
    guard("script load", || {
        let plugin = instance::<P>()?;
        if source.is_null() || out.is_null() {
            return Err(Error::new("null script source or output pointer"));
        }
        // SAFETY: the host passes a NUL-terminated source for the call.
        let source = unsafe { CStr::from_ptr(source) }
            .to_str()
            .map_err(|_| Error::new("script source is not valid UTF-8"))?;
        // SAFETY: the host passes `n_entry_points` strings.
        let entry_points = unsafe { read_strings(entry_points, n_entry_points)? };
        let script = plugin.load_script(device.into(), source, &entry_points)?;
        // SAFETY: `out` is a valid pointer provided by the host.
        unsafe { *out = Box::into_raw(Box::new(script)).cast() };
        Ok(())
    })
}

pub(super) unsafe extern "C" fn ffi_script_free<P: Instance>(script: *mut RaiScript) {
    guard_quiet("script free", (), || {
        if !script.is_null() {
            // SAFETY: created by `ffi_script_load::<P>` and freed once by the host.
            drop(unsafe { Box::from_raw(script.cast::<P::Script>()) });
        }
    })
}

pub(super) unsafe extern "C" fn ffi_script_run<P: Instance>(
    script: *mut RaiScript,
    options: *const RaiRunOptions,
    call: *const RaiScriptCall,
    outputs: *mut RaiTensorOut,
    max_outputs: usize,
    n_outputs: *mut usize,
) -> *mut RaiError {
    guard("script run", || {
        let plugin = instance::<P>()?;
        // SAFETY: the host passes a live script of this plugin.
        let script = unsafe { script.cast::<P::Script>().as_ref() }
            .ok_or_else(|| Error::new("null script"))?;
        // SAFETY: the host passes valid options for the duration of the call.
        let options = unsafe { run_options(options) };
        // SAFETY: the host passes a valid call for the duration of the call.
        let call = unsafe { call.as_ref() }.ok_or_else(|| Error::new("null script call"))?;
        if call.function.is_null() || n_outputs.is_null() {
            return Err(Error::new("null function name or output count"));
        }
        let call = ScriptCall {
            // SAFETY: the host passes a NUL-terminated function name.
            function: unsafe { CStr::from_ptr(call.function) }
                .to_string_lossy()
                .into_owned(),
            // SAFETY: the host passes `n_inputs` valid views.
            inputs: unsafe { tensor_refs(call.inputs, call.n_inputs)? },
            // SAFETY: the host passes arrays of the stated lengths.
            keys: unsafe { read_strings(call.keys, call.n_keys)? },
            // SAFETY: as above.
            args: unsafe { read_strings(call.args, call.n_args)? },
            convention: script_convention(call)?,
        };
        let produced = plugin.run_script(script, &options, &call, max_outputs)?;
        if produced.len() > max_outputs {
            return Err(Error::new(format!(
                "the script produced {} outputs, at most {max_outputs} were expected",
                produced.len()
            )));
        }
        let count = produced.len();
        // SAFETY: the host passes room for `max_outputs` outputs.
        unsafe { write_outputs(produced, outputs)? };
        // SAFETY: checked non-null above; valid for the call.
        unsafe { *n_outputs = count };
        Ok(())
    })
}

pub(super) unsafe extern "C" fn ffi_tensor_release(owner: *mut c_void) {
    guard_quiet("tensor release", (), || {
        if !owner.is_null() {
            // SAFETY: created by `out_of` and released once by the host.
            drop(unsafe { Box::from_raw(owner.cast::<OwnedTensor>()) });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        assert_eq!(device_mask(&[DeviceKind::Cpu, DeviceKind::Gpu]), 0b11);
        assert_eq!(dtype_mask(&[DType::Float, DType::String]), 1 | (1 << 9));
    }

    #[test]
    fn string_outputs() {
        let tensor = OwnedTensor::from_strings(vec![2], &["ab", ""]);
        assert_eq!(tensor.data, b"ab\0\0");
        assert!(!tensor.data.is_lent(), "no host: the plugin's own bytes");
    }

    #[test]
    fn errors_cross_as_boxes() {
        let err = guard("test", || Err(Error::invalid_input("bad blob")));
        // SAFETY: `err` is a live error from `guard`.
        let message = unsafe { CStr::from_ptr(ffi_error_message(err)) };
        assert_eq!(message.to_str(), Ok("bad blob"));
        // SAFETY: as above.
        assert_eq!(
            unsafe { ffi_error_code(err) },
            ErrorCode::InvalidInput as u32
        );
        // SAFETY: freed once.
        unsafe { ffi_error_free(err) };
        let panicked = guard("test", || panic!("boom"));
        // SAFETY: as above.
        let message = unsafe { CStr::from_ptr(ffi_error_message(panicked)) };
        assert!(message.to_string_lossy().contains("boom"));
        // SAFETY: as above.
        assert_eq!(
            unsafe { ffi_error_code(panicked) },
            ErrorCode::Failed as u32
        );
        // SAFETY: freed once.
        unsafe { ffi_error_free(panicked) };
    }
}
