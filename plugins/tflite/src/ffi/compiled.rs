//! A compiled model (`LiteRtCompiledModel`): resizing, buffers, runs, cancellation.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use redisai_plugin_api::sdk::{Error, OutputBuffer, Result};

use super::{
    call, get, guarded, Api, Failure, Handle, Layout, Model, RankedTensorType, Status,
    HW_ACCELERATOR_CPU,
};

/// `LiteRtTensorBufferLockMode`.
const LOCK_READ: c_int = 0;
const LOCK_WRITE: c_int = 1;
/// Identifiers of the opaque options LiteRT 2.3 reads (see the module docs).
const CPU_OPTIONS_ID: &CStr = c"xnnpack";
const RUNTIME_OPTIONS_ID: &CStr = c"runtime_options_string";
/// `kLiteRtErrorReporterModeBuffer`: errors are kept for `GetErrorMessages` instead of
/// being printed.
const ERROR_REPORTER_BUFFER: c_int = 2;

/// `CString::into_raw` payloads of opaque options are freed through this.
unsafe extern "C" fn free_c_string(payload: *mut c_void) {
    if !payload.is_null() {
        // SAFETY: LiteRT calls the destructor once with the payload given to
        // LiteRtCreateOpaqueOptions, which came from `CString::into_raw`.
        drop(unsafe { CString::from_raw(payload.cast()) });
    }
}

/// What a cancellation check calls: true stops the run.
type CancelCheck = Box<dyn Fn() -> bool + Send + Sync>;

/// LiteRT's cancellation callback: runs the check the compiled model was given.
unsafe extern "C" fn check_cancelled(data: *mut c_void) -> bool {
    // SAFETY: `data` is the `CancelCheck` box registered with the compiled model; the box
    // lives until after the compiled model is destroyed (see CompiledModel's Drop).
    let check = unsafe { &*data.cast::<CancelCheck>() };
    // A panic must not unwind into LiteRT: it stops the run instead.
    catch_unwind(AssertUnwindSafe(check)).unwrap_or(true)
}

/// Creates opaque options whose payload is `text` (TOML) and adds them to `options`.
fn add_text_options(
    api: &Api,
    options: Handle,
    identifier: &'static CStr,
    text: &str,
) -> std::result::Result<(), Failure> {
    let payload = CString::new(text)
        .map_err(|_| Failure {
            function: "LiteRtCreateOpaqueOptions",
            status: 1,
            details: Some("option text with a NUL byte".to_owned()),
        })?
        .into_raw();
    let created = get("LiteRtCreateOpaqueOptions", ptr::null_mut(), |out| {
        // SAFETY: the identifier is a static C string; the payload is a C string that the
        // destructor frees; `out` is a valid out-pointer.
        unsafe {
            (api.create_opaque_options)(
                identifier.as_ptr(),
                payload.cast(),
                Some(free_c_string),
                out,
            )
        }
    });
    let opaque = match created {
        Ok(opaque) => opaque,
        Err(failure) => {
            // SAFETY: LiteRT did not take the payload: it is freed here, once.
            unsafe { free_c_string(payload.cast()) };
            return Err(failure);
        }
    };
    // SAFETY: both handles are live; on success `options` owns `opaque`.
    let added = call("LiteRtAddOpaqueOptions", || unsafe {
        (api.add_opaque_options)(options, opaque)
    });
    if added.is_err() {
        // SAFETY: not taken by `options`: destroyed here, once (which frees the payload).
        let _ = guarded("LiteRtDestroyOpaqueOptions", || unsafe {
            (api.destroy_opaque_options)(opaque)
        });
    }
    added
}

/// A compiled model, with the options and model it was made from.
pub struct CompiledModel {
    raw: Handle,
    options: Handle,
    model: Model,
    /// The registered cancellation check, if any (its address is LiteRT's callback data).
    cancel: Option<Box<CancelCheck>>,
}

// SAFETY: a compiled model is not tied to a thread; the backend runs it from one thread at
// a time (behind a mutex). The cancellation check is Send + Sync.
unsafe impl Send for CompiledModel {}

impl CompiledModel {
    /// Compiles `model` for the CPU. `threads`: the CPU accelerator's thread count
    /// (None leaves LiteRT's default). Errors the runtime reports are kept by the
    /// compiled model and returned with failed calls (not printed).
    pub fn new(model: Model, threads: Option<u32>) -> Result<CompiledModel> {
        let runtime = model.runtime;
        let api = &runtime.api;
        // SAFETY: `out` is a valid out-pointer.
        let options = get("LiteRtCreateOptions", ptr::null_mut(), |out| unsafe {
            (api.create_options)(out)
        })?;
        let destroy_options = || {
            // SAFETY: created above, destroyed once, on the error paths only.
            let _ = guarded("LiteRtDestroyOptions", || unsafe {
                (api.destroy_options)(options)
            });
        };
        let configured = (|| -> std::result::Result<(), Failure> {
            // SAFETY: `options` is live.
            call("LiteRtSetOptionsHardwareAccelerators", || unsafe {
                (api.set_options_hardware_accelerators)(options, HW_ACCELERATOR_CPU)
            })?;
            add_text_options(
                api,
                options,
                RUNTIME_OPTIONS_ID,
                &format!("error_reporter_mode = {ERROR_REPORTER_BUFFER}\n"),
            )?;
            if let Some(threads) = threads {
                add_text_options(
                    api,
                    options,
                    CPU_OPTIONS_ID,
                    &format!("num_threads = {threads}\n"),
                )?;
            }
            Ok(())
        })();
        if let Err(failure) = configured {
            destroy_options();
            return Err(Error::new(failure.to_string()));
        }
        let created = get("LiteRtCreateCompiledModel", ptr::null_mut(), |out| {
            // SAFETY: environment, model and options are live; `out` is a valid
            // out-pointer. The model and the options are kept alive by the compiled model.
            unsafe { (api.create_compiled_model)(runtime.environment, model.raw, options, out) }
        });
        match created {
            Ok(raw) if !raw.is_null() => Ok(CompiledModel {
                raw,
                options,
                model,
                cancel: None,
            }),
            Ok(_) => {
                destroy_options();
                Err(Error::new("LiteRtCreateCompiledModel returned no model"))
            }
            Err(failure) => {
                destroy_options();
                Err(Error::new(failure.to_string()))
            }
        }
    }

    fn api(&self) -> &Api {
        &self.model.runtime.api
    }

    /// Checks the status of a call on this compiled model; a failure carries what the
    /// runtime's error reporter collected.
    fn call(
        &self,
        function: &'static str,
        body: impl FnOnce() -> Status,
    ) -> std::result::Result<(), Failure> {
        call(function, body).map_err(|mut failure| {
            if failure.details.is_none() {
                failure.details = self.take_errors();
            }
            failure
        })
    }

    /// [`CompiledModel::call`] for a getter that writes one value through its last
    /// argument.
    fn get<T: Copy>(
        &self,
        function: &'static str,
        init: T,
        body: impl FnOnce(*mut T) -> Status,
    ) -> std::result::Result<T, Failure> {
        let mut value = init;
        let out: *mut T = &mut value;
        self.call(function, || body(out))?;
        Ok(value)
    }

    /// The messages LiteRT reported since the last call, as one line.
    pub fn take_errors(&self) -> Option<String> {
        let (api, raw) = (self.api(), self.raw);
        // SAFETY: `raw` is live; `out` is a valid out-pointer.
        let text: *mut c_char = get(
            "LiteRtCompiledModelGetErrorMessages",
            ptr::null_mut(),
            |out| unsafe { (api.get_error_messages)(raw, out) },
        )
        .ok()?;
        if text.is_null() {
            return None;
        }
        // SAFETY: on success LiteRT returns a NUL-terminated string that the caller frees
        // with free(); it is copied first and freed once.
        let message = unsafe { CStr::from_ptr(text) }
            .to_string_lossy()
            .into_owned();
        // SAFETY: as above.
        unsafe { libc::free(text.cast()) };
        // SAFETY: `raw` is live.
        let _ = call("LiteRtCompiledModelClearErrors", || unsafe {
            (api.clear_errors)(raw)
        });
        let message = message
            .split(['\r', '\n'])
            .map(|line| line.trim().trim_end_matches('.'))
            .filter(|line| !line.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        (!message.is_empty()).then_some(message)
    }

    /// Registers `check`, which LiteRT calls between operations of a run; a run whose
    /// check returns true stops with status Cancelled.
    pub fn set_cancel_check(&mut self, check: Box<dyn Fn() -> bool + Send + Sync>) -> Result<()> {
        let boxed = Box::new(check);
        let data = (&*boxed as *const CancelCheck).cast_mut().cast::<c_void>();
        let (api, raw) = (self.api(), self.raw);
        // SAFETY: `raw` is live; `data` points to the boxed check, which is stored in
        // `self.cancel` below and outlives the compiled model (see Drop).
        call("LiteRtSetCompiledModelCancellationFunction", || unsafe {
            (api.set_cancellation_function)(raw, data, Some(check_cancelled))
        })?;
        // Replacing an earlier check is safe: LiteRT now points at the new one.
        self.cancel = Some(boxed);
        Ok(())
    }

    /// The current shape of input `index` (signature order) of `signature`.
    pub fn input_layout(
        &self,
        signature: usize,
        index: usize,
    ) -> std::result::Result<Layout, Failure> {
        let (api, raw) = (self.api(), self.raw);
        let mut layout = Layout::default();
        let out: *mut Layout = &mut layout;
        // SAFETY: `raw` is live; `out` is a valid out-pointer.
        self.call("LiteRtGetCompiledModelInputTensorLayout", || unsafe {
            (api.get_input_tensor_layout)(raw, signature, index, out)
        })?;
        Ok(layout)
    }

    /// Resizes input `index` (signature order) to `dims`, without requiring the model to
    /// declare the changed dimensions dynamic (TFLite's non-strict resize). LiteRT 2.3
    /// takes only shapes of rank 1 or more with positive dimensions.
    pub fn resize_input(
        &self,
        signature: usize,
        index: usize,
        dims: &[i32],
    ) -> std::result::Result<(), Failure> {
        let (api, raw) = (self.api(), self.raw);
        // SAFETY: `raw` is live; `dims` is an array of `dims.len()` ints for the call.
        self.call("LiteRtCompiledModelResizeInputTensorNonStrict", || unsafe {
            (api.resize_input_tensor_non_strict)(raw, signature, index, dims.as_ptr(), dims.len())
        })
    }

    /// The shapes of the `count` outputs (signature order). `update_allocation`: after
    /// resizing inputs, have LiteRT propagate the shapes and reallocate first.
    pub fn output_layouts(
        &self,
        signature: usize,
        count: usize,
        update_allocation: bool,
    ) -> std::result::Result<Vec<Layout>, Failure> {
        let (api, raw) = (self.api(), self.raw);
        let mut layouts = vec![Layout::default(); count];
        let out = layouts.as_mut_ptr();
        // SAFETY: `raw` is live; `out` has room for `count` layouts.
        self.call("LiteRtGetCompiledModelOutputTensorLayouts", || unsafe {
            (api.get_output_tensor_layouts)(raw, signature, count, out, update_allocation)
        })?;
        Ok(layouts)
    }

    /// A host-memory buffer for input (`input` true) or output `index` (signature order)
    /// holding a tensor of type `tensor_type`.
    pub fn buffer(
        &self,
        signature: usize,
        input: bool,
        index: usize,
        tensor_type: &RankedTensorType,
    ) -> std::result::Result<TensorBuffer<'_>, Failure> {
        let (api, raw) = (self.api(), self.raw);
        let function = if input {
            "LiteRtGetCompiledModelInputBufferRequirements"
        } else {
            "LiteRtGetCompiledModelOutputBufferRequirements"
        };
        let requirements = self.get(function, ptr::null_mut(), |out| {
            // SAFETY: `raw` is live; `out` is a valid out-pointer. The requirements stay
            // owned by the compiled model and are used only for the creation below.
            unsafe {
                if input {
                    (api.get_input_buffer_requirements)(raw, signature, index, out)
                } else {
                    (api.get_output_buffer_requirements)(raw, signature, index, out)
                }
            }
        })?;
        let environment = self.model.runtime.environment;
        let buffer = self.get(
            "LiteRtCreateManagedTensorBufferFromRequirements",
            ptr::null_mut(),
            |out| {
                // SAFETY: environment and requirements are live, `tensor_type` is valid for
                // the call, `out` is a valid out-pointer.
                unsafe {
                    (api.create_managed_tensor_buffer_from_requirements)(
                        environment,
                        tensor_type,
                        requirements,
                        out,
                    )
                }
            },
        )?;
        Ok(TensorBuffer { api, raw: buffer })
    }

    /// Runs `signature` with its inputs and outputs (signature order).
    pub fn run(
        &self,
        signature: usize,
        inputs: &[TensorBuffer<'_>],
        outputs: &[TensorBuffer<'_>],
    ) -> std::result::Result<(), Failure> {
        let (api, raw) = (self.api(), self.raw);
        let mut inputs: Vec<Handle> = inputs.iter().map(|b| b.raw).collect();
        let mut outputs: Vec<Handle> = outputs.iter().map(|b| b.raw).collect();
        let (n_in, p_in) = (inputs.len(), inputs.as_mut_ptr());
        let (n_out, p_out) = (outputs.len(), outputs.as_mut_ptr());
        // SAFETY: `raw` and every buffer are live for the call; the arrays hold the stated
        // number of handles. LiteRT does not keep the arrays.
        self.call("LiteRtRunCompiledModel", || unsafe {
            (api.run_compiled_model)(raw, signature, n_in, p_in, n_out, p_out)
        })
    }
}

impl Drop for CompiledModel {
    fn drop(&mut self) {
        let (api, raw, options) = (self.api(), self.raw, self.options);
        // SAFETY: destroyed once, before the options, the model and the cancellation check
        // it uses (the fields are dropped after this).
        let _ = guarded("LiteRtDestroyCompiledModel", || unsafe {
            (api.destroy_compiled_model)(raw)
        });
        // SAFETY: created in `new`, destroyed once; nothing uses it any more.
        let _ = guarded("LiteRtDestroyOptions", || unsafe {
            (api.destroy_options)(options)
        });
    }
}

/// A tensor buffer in host memory (`LiteRtTensorBuffer`), managed by LiteRT. It may not
/// outlive the compiled model it was made for.
pub struct TensorBuffer<'a> {
    api: &'a Api,
    raw: Handle,
}

impl TensorBuffer<'_> {
    /// The size of the tensor's data in bytes.
    pub fn packed_size(&self) -> std::result::Result<usize, Failure> {
        let (api, raw) = (self.api, self.raw);
        // SAFETY: `raw` is live; `out` is a valid out-pointer.
        get("LiteRtGetTensorBufferPackedSize", 0usize, |out| unsafe {
            (api.get_tensor_buffer_packed_size)(raw, out)
        })
    }

    /// Locks the buffer, lets `body` use its first `len` bytes, unlocks it.
    fn with_locked<R>(
        &self,
        mode: c_int,
        len: usize,
        body: impl FnOnce(*mut u8) -> R,
    ) -> std::result::Result<R, Failure> {
        let size = self.packed_size()?;
        if len > size {
            return Err(Failure {
                function: "LiteRtLockTensorBuffer",
                status: 1,
                details: Some(format!("the buffer holds {size} bytes, {len} are needed")),
            });
        }
        let (api, raw) = (self.api, self.raw);
        // SAFETY: `raw` is live; `out` is a valid out-pointer.
        let address: *mut c_void = get("LiteRtLockTensorBuffer", ptr::null_mut(), |out| unsafe {
            (api.lock_tensor_buffer)(raw, out, mode)
        })?;
        let unlock = || {
            // SAFETY: locked above, unlocked once.
            call("LiteRtUnlockTensorBuffer", || unsafe {
                (api.unlock_tensor_buffer)(raw)
            })
        };
        if address.is_null() && len > 0 {
            let _ = unlock();
            return Err(Failure {
                function: "LiteRtLockTensorBuffer",
                status: 3,
                details: Some("no host address".to_owned()),
            });
        }
        let result = body(address.cast());
        unlock()?;
        Ok(result)
    }

    /// Copies `data` to the start of the buffer.
    pub fn write(&self, data: &[u8]) -> std::result::Result<(), Failure> {
        self.with_locked(LOCK_WRITE, data.len(), |address| {
            if !data.is_empty() {
                // SAFETY: while locked, `address` points to at least `packed_size` >=
                // `data.len()` writable bytes, which do not overlap `data`.
                unsafe { ptr::copy_nonoverlapping(data.as_ptr(), address, data.len()) };
            }
        })
    }

    /// Copies the first `len` bytes of the buffer out (into memory the host lends, when
    /// it does); the inner error is the host refusing those bytes (see
    /// `OutputBuffer::try_copy_from`).
    pub fn read(&self, len: usize) -> std::result::Result<Result<OutputBuffer>, Failure> {
        self.with_locked(LOCK_READ, len, |address| {
            if len == 0 {
                return Ok(OutputBuffer::from(Vec::new()));
            }
            // SAFETY: while locked, `address` points to at least `packed_size` >= `len`
            // readable bytes.
            OutputBuffer::try_copy_from(unsafe { std::slice::from_raw_parts(address, len) })
        })
    }
}

impl Drop for TensorBuffer<'_> {
    fn drop(&mut self) {
        let (api, raw) = (self.api, self.raw);
        // SAFETY: `raw` is live and destroyed once.
        let _ = guarded("LiteRtDestroyTensorBuffer", || unsafe {
            (api.destroy_tensor_buffer)(raw)
        });
    }
}
