//! LiteRT's C API, opened at run time with libloading, and safe wrappers around its
//! handles. This module is the only place of the crate with `unsafe` code.
//!
//! No headers ship with the runtime: the signatures, enum values and struct layouts
//! below follow LiteRT's public C headers (`litert/c/*.h` of google-ai-edge/LiteRT) as of
//! the 2.3 release, the one `scripts/fetch-litert` pins. Details of 2.3 that differ from
//! older headers, checked against the library itself:
//! - `LiteRtCreateModelFromBuffer(environment, address, size, out)` takes the environment.
//! - `LiteRtCreateOpaqueOptions(identifier, payload, destructor, out)` has no version
//!   argument, and LiteRT reads the CPU options (identifier `xnnpack`) and the runtime
//!   options (identifier `runtime_options_string`) as NUL-terminated TOML text
//!   (`num_threads = 4`, `error_reporter_mode = 2`).
//! - `LiteRtLayout` is `{ unsigned rank : 7; bool has_strides : 1; int32_t
//!   dimensions[8]; uint32_t strides[8]; }` (68 bytes; `LiteRtRankedTensorType` is 72).
//! - Environment options 24 (accelerators to register) and 25 (minimum log severity).
//!
//! Every call into LiteRT goes through [`guarded`], a C++ frame (src/guard.cc) that
//! catches the C++ exceptions LiteRT's C functions let escape on some damaged models: one
//! that reached Rust would abort the process.

mod compiled;
mod model;

use std::ffi::{c_char, c_int, c_void, CStr};
use std::path::{Path, PathBuf};
use std::ptr;

use redisai_plugin_api::sdk::{Error, Result};

pub use compiled::{CompiledModel, TensorBuffer};
pub use model::{Model, TensorInfo};

/// `LiteRtStatus`.
pub type Status = c_int;
pub const STATUS_OK: Status = 0;
/// kLiteRtStatusErrorMemoryAllocationFailure.
const STATUS_MEMORY_ALLOCATION_FAILURE: Status = 2;
/// `kLiteRtStatusCancelled`: the cancellation function asked the run to stop.
pub const STATUS_CANCELLED: Status = 100;
/// Not a LiteRT status: the call threw a C++ exception.
pub const STATUS_EXCEPTION: Status = -1;

/// `LITERT_TENSOR_MAX_RANK`.
pub const MAX_RANK: usize = 8;

/// `kLiteRtHwAcceleratorCpu`.
const HW_ACCELERATOR_CPU: c_int = 1;

/// Any LiteRT handle (`LiteRtModel`, `LiteRtCompiledModel`, ...): an opaque pointer.
type Handle = *mut c_void;

/// `LiteRtLayout`: the shape of a ranked tensor.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    /// Bits 0-6: the rank; bit 7: whether `strides` is used.
    bits: u32,
    dimensions: [i32; MAX_RANK],
    strides: [u32; MAX_RANK],
}

impl Layout {
    /// A layout without strides; None when `dims` has more than [`MAX_RANK`] entries.
    pub fn new(dims: &[i32]) -> Option<Layout> {
        if dims.len() > MAX_RANK {
            return None;
        }
        let mut layout = Layout {
            bits: dims.len() as u32,
            ..Layout::default()
        };
        layout.dimensions[..dims.len()].copy_from_slice(dims);
        Some(layout)
    }

    /// The dimensions; negative ones are dynamic.
    pub fn dims(&self) -> &[i32] {
        let rank = (self.bits & 0x7f) as usize;
        &self.dimensions[..rank.min(MAX_RANK)]
    }
}

/// `LiteRtRankedTensorType`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RankedTensorType {
    /// A `LiteRtElementType` (TfLiteType values).
    pub element_type: c_int,
    pub layout: Layout,
}

/// `LiteRtAny` holding an integer (`kLiteRtAnyTypeInt`); the value is a union of 8 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct AnyInt {
    any_type: c_int,
    int_value: i64,
}

/// `LiteRtEnvOption`: a tag and its value.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct EnvOption {
    tag: c_int,
    value: AnyInt,
}

// The sizes LiteRT's headers assert on 64-bit targets.
const _: () = assert!(std::mem::size_of::<Layout>() == 68);
const _: () = assert!(std::mem::size_of::<RankedTensorType>() == 72);
const _: () = assert!(std::mem::size_of::<EnvOption>() == 24);

const ANY_TYPE_INT: c_int = 2;
/// `kLiteRtEnvOptionTagAutoRegisterAccelerators`: which accelerators the environment
/// registers (a `LiteRtHwAccelerators` mask); without it LiteRT also looks for GPU and
/// NPU accelerator libraries.
const ENV_AUTO_REGISTER_ACCELERATORS: c_int = 24;
/// `kLiteRtEnvOptionTagMinLoggerSeverity`: LiteRT's logger prints from this severity on
/// (0 verbose, 1 info, 2 warning, 3 error).
const ENV_MIN_LOGGER_SEVERITY: c_int = 25;
const LOG_SEVERITY_ERROR: i64 = 3;

type Destructor = unsafe extern "C" fn(*mut c_void);
type CheckCancelled = unsafe extern "C" fn(*mut c_void) -> bool;

/// Declares the function table: field name, exported symbol, signature. The functions
/// are "C-unwind": a C++ exception may come out of them, to be stopped by the guard.
macro_rules! api {
    ($($field:ident = $symbol:literal: fn($($arg:ty),*) $(-> $ret:ty)?;)*) => {
        /// The LiteRT functions this backend calls, resolved once from the library.
        struct Api {
            $($field: unsafe extern "C-unwind" fn($($arg),*) $(-> $ret)?,)*
            /// Kept open for as long as the function pointers above are used.
            _library: libloading::Library,
        }

        impl Api {
            fn resolve(library: libloading::Library) -> std::result::Result<Api, String> {
                $(
                    // SAFETY: the type is the function's signature in LiteRT's C headers
                    // (see the module docs); the pointer is copied out and used only while
                    // `library`, stored alongside it, stays open.
                    let $field = *unsafe {
                        library.get::<unsafe extern "C-unwind" fn($($arg),*) $(-> $ret)?>($symbol)
                    }
                    .map_err(|err| format!("{}: {err}", $symbol.to_string_lossy()))?;
                )*
                Ok(Api { $($field,)* _library: library })
            }
        }
    };
}

api! {
    create_environment = c"LiteRtCreateEnvironment": fn(c_int, *const EnvOption, *mut Handle) -> Status;
    create_model_from_buffer = c"LiteRtCreateModelFromBuffer": fn(Handle, *const c_void, usize, *mut Handle) -> Status;
    destroy_model = c"LiteRtDestroyModel": fn(Handle);
    get_main_model_subgraph_index = c"LiteRtGetMainModelSubgraphIndex": fn(Handle, *mut usize) -> Status;
    get_model_subgraph = c"LiteRtGetModelSubgraph": fn(Handle, usize, *mut Handle) -> Status;
    get_num_model_signatures = c"LiteRtGetNumModelSignatures": fn(Handle, *mut usize) -> Status;
    get_model_signature = c"LiteRtGetModelSignature": fn(Handle, usize, *mut Handle) -> Status;
    get_signature_subgraph = c"LiteRtGetSignatureSubgraph": fn(Handle, *mut Handle) -> Status;
    get_num_signature_inputs = c"LiteRtGetNumSignatureInputs": fn(Handle, *mut usize) -> Status;
    get_num_signature_outputs = c"LiteRtGetNumSignatureOutputs": fn(Handle, *mut usize) -> Status;
    get_signature_input_tensor_by_index = c"LiteRtGetSignatureInputTensorByIndex": fn(Handle, usize, *mut Handle) -> Status;
    get_signature_output_tensor_by_index = c"LiteRtGetSignatureOutputTensorByIndex": fn(Handle, usize, *mut Handle) -> Status;
    get_num_subgraph_inputs = c"LiteRtGetNumSubgraphInputs": fn(Handle, *mut usize) -> Status;
    get_num_subgraph_outputs = c"LiteRtGetNumSubgraphOutputs": fn(Handle, *mut usize) -> Status;
    get_subgraph_input = c"LiteRtGetSubgraphInput": fn(Handle, usize, *mut Handle) -> Status;
    get_subgraph_output = c"LiteRtGetSubgraphOutput": fn(Handle, usize, *mut Handle) -> Status;
    get_tensor_name = c"LiteRtGetTensorName": fn(Handle, *mut *const c_char) -> Status;
    get_tensor_type_id = c"LiteRtGetTensorTypeId": fn(Handle, *mut c_int) -> Status;
    get_ranked_tensor_type = c"LiteRtGetRankedTensorType": fn(Handle, *mut RankedTensorType) -> Status;
    get_unranked_tensor_type = c"LiteRtGetUnrankedTensorType": fn(Handle, *mut c_int) -> Status;
    create_options = c"LiteRtCreateOptions": fn(*mut Handle) -> Status;
    destroy_options = c"LiteRtDestroyOptions": fn(Handle);
    set_options_hardware_accelerators = c"LiteRtSetOptionsHardwareAccelerators": fn(Handle, c_int) -> Status;
    add_opaque_options = c"LiteRtAddOpaqueOptions": fn(Handle, Handle) -> Status;
    create_opaque_options = c"LiteRtCreateOpaqueOptions": fn(*const c_char, *mut c_void, Option<Destructor>, *mut Handle) -> Status;
    destroy_opaque_options = c"LiteRtDestroyOpaqueOptions": fn(Handle);
    create_compiled_model = c"LiteRtCreateCompiledModel": fn(Handle, Handle, Handle, *mut Handle) -> Status;
    destroy_compiled_model = c"LiteRtDestroyCompiledModel": fn(Handle);
    get_input_buffer_requirements = c"LiteRtGetCompiledModelInputBufferRequirements": fn(Handle, usize, usize, *mut Handle) -> Status;
    get_output_buffer_requirements = c"LiteRtGetCompiledModelOutputBufferRequirements": fn(Handle, usize, usize, *mut Handle) -> Status;
    get_input_tensor_layout = c"LiteRtGetCompiledModelInputTensorLayout": fn(Handle, usize, usize, *mut Layout) -> Status;
    get_output_tensor_layouts = c"LiteRtGetCompiledModelOutputTensorLayouts": fn(Handle, usize, usize, *mut Layout, bool) -> Status;
    resize_input_tensor_non_strict = c"LiteRtCompiledModelResizeInputTensorNonStrict": fn(Handle, usize, usize, *const c_int, usize) -> Status;
    run_compiled_model = c"LiteRtRunCompiledModel": fn(Handle, usize, usize, *mut Handle, usize, *mut Handle) -> Status;
    set_cancellation_function = c"LiteRtSetCompiledModelCancellationFunction": fn(Handle, *mut c_void, Option<CheckCancelled>) -> Status;
    get_error_messages = c"LiteRtCompiledModelGetErrorMessages": fn(Handle, *mut *mut c_char) -> Status;
    clear_errors = c"LiteRtCompiledModelClearErrors": fn(Handle) -> Status;
    create_managed_tensor_buffer_from_requirements = c"LiteRtCreateManagedTensorBufferFromRequirements": fn(Handle, *const RankedTensorType, Handle, *mut Handle) -> Status;
    get_tensor_buffer_packed_size = c"LiteRtGetTensorBufferPackedSize": fn(Handle, *mut usize) -> Status;
    lock_tensor_buffer = c"LiteRtLockTensorBuffer": fn(Handle, *mut *mut c_void, c_int) -> Status;
    unlock_tensor_buffer = c"LiteRtUnlockTensorBuffer": fn(Handle) -> Status;
    destroy_tensor_buffer = c"LiteRtDestroyTensorBuffer": fn(Handle);
}

/// LiteRT's name of a status code.
pub fn status_name(status: Status) -> &'static str {
    match status {
        STATUS_EXCEPTION => "C++ exception",
        0 => "Ok",
        1 => "ErrorInvalidArgument",
        STATUS_MEMORY_ALLOCATION_FAILURE => "ErrorMemoryAllocationFailure",
        3 => "ErrorRuntimeFailure",
        4 => "ErrorMissingInputTensor",
        5 => "ErrorUnsupported",
        6 => "ErrorNotFound",
        7 => "ErrorTimeoutExpired",
        8 => "ErrorWrongVersion",
        9 => "ErrorUnknown",
        10 => "ErrorAlreadyExists",
        STATUS_CANCELLED => "Cancelled",
        500 => "ErrorFileIO",
        501 => "ErrorInvalidFlatbuffer",
        502 => "ErrorDynamicLoading",
        503 => "ErrorSerialization",
        504 => "ErrorCompilation",
        1000 => "ErrorIndexOOB",
        1001 => "ErrorInvalidIrType",
        1002 => "ErrorInvalidGraphInvariant",
        1003 => "ErrorGraphModification",
        _ => "unknown status",
    }
}

/// A failed LiteRT call: the function, its status and what LiteRT reported with it.
#[derive(Debug, Clone)]
pub struct Failure {
    pub function: &'static str,
    pub status: Status,
    /// The exception's text, or the compiled model's error reporter's messages.
    pub details: Option<String>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.status == STATUS_EXCEPTION {
            write!(f, "{} threw a C++ exception", self.function)?;
        } else {
            write!(
                f,
                "{} failed with status {} ({})",
                self.function,
                self.status,
                status_name(self.status)
            )?;
        }
        if let Some(details) = &self.details {
            write!(f, ": {details}")?;
        }
        Ok(())
    }
}

impl From<Failure> for Error {
    fn from(failure: Failure) -> Self {
        let message = failure.to_string();
        if failure.status == STATUS_MEMORY_ALLOCATION_FAILURE {
            Error::out_of_memory(message)
        } else {
            Error::new(message)
        }
    }
}

fn check(status: Status, function: &'static str) -> std::result::Result<(), Failure> {
    if status == STATUS_OK {
        Ok(())
    } else {
        Err(Failure {
            function,
            status,
            details: None,
        })
    }
}

extern "C" {
    /// src/guard.cc: runs `body(context)` inside a C++ try block.
    fn redisai_tflite_guard(
        body: unsafe extern "C-unwind" fn(*mut c_void),
        context: *mut c_void,
        message: *mut c_char,
        capacity: usize,
    ) -> c_int;
}

/// What the guard's body works on: the call to make and where its result goes.
struct GuardContext<F, R> {
    call: Option<F>,
    result: Option<R>,
}

/// The guard's body: makes the call. It must not panic (a Rust panic must not reach the
/// C++ frame), and it does not: `take` and the assignment cannot panic, and the calls
/// given to [`guarded`] only call a LiteRT function.
unsafe extern "C-unwind" fn guard_body<F: FnOnce() -> R, R>(context: *mut c_void) {
    // SAFETY: `context` is the `GuardContext<F, R>` that `guarded` passes, alive and not
    // otherwise borrowed during the call.
    let context = unsafe { &mut *context.cast::<GuardContext<F, R>>() };
    if let Some(call) = context.call.take() {
        context.result = Some(call());
    }
}

/// Makes one call into LiteRT (`call` must do nothing else) so that a C++ exception
/// thrown by it becomes a [`Failure`] instead of aborting the process.
fn guarded<R>(function: &'static str, call: impl FnOnce() -> R) -> std::result::Result<R, Failure> {
    fn run<F: FnOnce() -> R, R>(
        function: &'static str,
        call: F,
    ) -> std::result::Result<R, Failure> {
        let mut context = GuardContext {
            call: Some(call),
            result: None,
        };
        let mut message = [0 as c_char; 512];
        // SAFETY: the body and the context agree on the type; the context and the message
        // buffer (whose capacity is passed) outlive the call. The exception, if any, is
        // caught in the C++ frame after unwinding the "C-unwind" frames of the body.
        let thrown = unsafe {
            redisai_tflite_guard(
                guard_body::<F, R>,
                (&mut context as *mut GuardContext<F, R>).cast(),
                message.as_mut_ptr(),
                message.len(),
            )
        };
        if thrown != 0 {
            // SAFETY: the guard wrote a NUL-terminated string into `message`.
            let text = unsafe { CStr::from_ptr(message.as_ptr()) }
                .to_string_lossy()
                .into_owned();
            return Err(Failure {
                function,
                status: STATUS_EXCEPTION,
                details: Some(text),
            });
        }
        context.result.ok_or(Failure {
            function,
            status: STATUS_EXCEPTION,
            details: Some("the call did not complete".to_owned()),
        })
    }
    run(function, call)
}

/// [`guarded`] for a function that returns a status, which is checked.
fn call(function: &'static str, body: impl FnOnce() -> Status) -> std::result::Result<(), Failure> {
    let status = guarded(function, body)?;
    check(status, function)
}

/// [`call`] for a getter that writes one value through its last argument.
fn get<T: Copy>(
    function: &'static str,
    init: T,
    body: impl FnOnce(*mut T) -> Status,
) -> std::result::Result<T, Failure> {
    let mut value = init;
    let out: *mut T = &mut value;
    call(function, || body(out))?;
    Ok(value)
}

/// The opened library and the process's one LiteRT environment. It lives for the rest
/// of the process: the library is never closed, the environment never destroyed.
pub struct Runtime {
    api: Api,
    environment: Handle,
    library: PathBuf,
}

// SAFETY: the environment handle is only passed to LiteRT functions, which may be called
// from any thread; the backend serialises the ones that change the environment (model
// compilation). The function pointers are plain code addresses.
unsafe impl Send for Runtime {}
// SAFETY: as above.
unsafe impl Sync for Runtime {}

impl Runtime {
    /// Opens the library at `path` and creates an environment that registers the CPU
    /// accelerator only and logs errors only.
    pub fn open(path: &Path) -> Result<Runtime> {
        let flags = libc::RTLD_NOW | libc::RTLD_LOCAL;
        // SAFETY: opening the library runs its initialisers, which only set up LiteRT's
        // own state. RTLD_LOCAL keeps its symbols out of the global namespace.
        let library =
            unsafe { libloading::os::unix::Library::open(Some(path), flags) }.map_err(|err| {
                Error::new(format!(
                    "could not load the LiteRT library {}: {err}",
                    path.display()
                ))
            })?;
        let api = Api::resolve(library.into()).map_err(|missing| {
            Error::new(format!(
                "{} is not a LiteRT 2.x runtime: a function is missing: {missing}",
                path.display()
            ))
        })?;
        let int = |tag, value| EnvOption {
            tag,
            value: AnyInt {
                any_type: ANY_TYPE_INT,
                int_value: value,
            },
        };
        let options = [
            int(
                ENV_AUTO_REGISTER_ACCELERATORS,
                i64::from(HW_ACCELERATOR_CPU),
            ),
            int(ENV_MIN_LOGGER_SEVERITY, LOG_SEVERITY_ERROR),
        ];
        let environment = get("LiteRtCreateEnvironment", ptr::null_mut(), |out| {
            // SAFETY: `options` is an array of the stated length, read during the call;
            // `out` is a valid out-pointer.
            unsafe { (api.create_environment)(options.len() as c_int, options.as_ptr(), out) }
        })
        .map_err(|f| Error::new(format!("could not create a LiteRT environment: {f}")))?;
        Ok(Runtime {
            api,
            environment,
            library: path.to_path_buf(),
        })
    }

    /// The library this runtime was opened from.
    pub fn library(&self) -> &Path {
        &self.library
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_hold_rank_and_dims() {
        let layout = Layout::new(&[2, -1, 3]).expect("rank 3");
        assert_eq!(layout.dims(), [2, -1, 3]);
        assert_eq!(Layout::new(&[]).expect("scalar").dims(), [] as [i32; 0]);
        assert!(Layout::new(&[1; 9]).is_none());
    }

    #[test]
    fn status_names() {
        assert_eq!(status_name(STATUS_CANCELLED), "Cancelled");
        assert_eq!(status_name(501), "ErrorInvalidFlatbuffer");
        assert_eq!(status_name(12345), "unknown status");
    }

    #[test]
    fn the_guard_passes_results_through() {
        assert_eq!(guarded("f", || 7).map_err(|f| f.to_string()), Ok(7));
        let failure = call("LiteRtX", || 3).expect_err("status 3");
        assert_eq!(
            failure.to_string(),
            "LiteRtX failed with status 3 (ErrorRuntimeFailure)"
        );
        assert_eq!(
            get("f", 0u32, |out| {
                // SAFETY: `out` points to the getter's value.
                unsafe { *out = 5 };
                0
            })
            .map_err(|f| f.to_string()),
            Ok(5)
        );
    }
}
