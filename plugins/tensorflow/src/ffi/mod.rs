//! TensorFlow's C API, opened at run time in a link namespace of its own (see
//! [`namespace`]), and safe wrappers around its objects. This module is the only place of
//! the crate with `unsafe` code.
//!
//! No headers ship in the wheel's C API: the signatures and values below are those of
//! `tensorflow/c/c_api.h`, `tf_tensor.h`, `tf_status.h`, `tf_datatype.h` and `tf_tstring.h`,
//! which have been stable since TensorFlow 2.4 (TF_STRING elements are `TF_TString`s).
//! In the `tensorflow-cpu` 2.21 wheel the C API is split over two libraries:
//! `libtensorflow_framework.so.2` (tensors, statuses) and `libtensorflow_cc.so.2` (graphs,
//! sessions, strings; it depends on the first). Symbols are looked up through the second's
//! handle, which searches its dependencies too.

mod graph;
mod namespace;
mod tensor;
mod threads;

use std::ffi::{c_char, c_int, c_void, CStr};
use std::path::{Path, PathBuf};

pub use graph::{Graph, Session};
use namespace::Handle;
pub use namespace::{memory, set_memory_limit, thread_stacks, NamespaceMemory};
pub use tensor::Tensor;
use threads::Pool;
pub use threads::{call_thread_ids, on_pool_thread};

/// `TF_Code`.
pub type Code = c_int;
pub const CODE_OK: Code = 0;
pub const CODE_CANCELLED: Code = 1;
pub const CODE_DEADLINE_EXCEEDED: Code = 4;

/// `TF_DataType` values the backend maps to RedisAI's dtypes.
pub const TF_FLOAT: c_int = 1;
pub const TF_DOUBLE: c_int = 2;
pub const TF_INT32: c_int = 3;
pub const TF_UINT8: c_int = 4;
pub const TF_INT16: c_int = 5;
pub const TF_INT8: c_int = 6;
pub const TF_STRING: c_int = 7;
pub const TF_INT64: c_int = 9;
pub const TF_BOOL: c_int = 10;
pub const TF_UINT16: c_int = 17;

/// Opaque TensorFlow objects (`TF_Graph *`, `TF_Session *`, ...).
type Object = *mut c_void;

/// `TF_Buffer`: borrowed bytes handed to TensorFlow (it never frees them: no deallocator).
#[repr(C)]
struct Buffer {
    data: *const c_void,
    length: usize,
    data_deallocator: Option<unsafe extern "C" fn(*mut c_void, usize)>,
}

impl Buffer {
    fn borrowed(bytes: &[u8]) -> Buffer {
        Buffer {
            data: bytes.as_ptr().cast(),
            length: bytes.len(),
            data_deallocator: None,
        }
    }
}

/// `TF_Output`: an operation's output, by index.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Output {
    oper: Object,
    index: c_int,
}

// SAFETY: an operation pointer is an address inside its graph, which the model keeps alive
// (it holds the graph in an Arc) and never changes after import; TensorFlow reads it from
// any thread.
unsafe impl Send for Output {}
// SAFETY: as above.
unsafe impl Sync for Output {}

/// `TF_TString` (tf_tstring.h): 24 bytes on 64-bit targets, handled only through
/// TensorFlow's `TF_String*` functions.
#[repr(C, align(8))]
struct TString([u8; 24]);

/// Declares the function table: field name, exported symbol, signature.
macro_rules! api {
    ($($field:ident = $symbol:literal: fn($($arg:ty),*) $(-> $ret:ty)?;)*) => {
        /// The TensorFlow functions this backend calls, resolved once from the library.
        struct Api {
            $($field: unsafe extern "C" fn($($arg),*) $(-> $ret)?,)*
        }

        impl Api {
            fn resolve(handle: Handle) -> std::result::Result<Api, String> {
                $(
                    // SAFETY: the type is the function's signature in TensorFlow's C headers
                    // (see the module docs); the library is never closed.
                    let $field = unsafe {
                        std::mem::transmute::<*mut c_void, unsafe extern "C" fn($($arg),*) $(-> $ret)?>(
                            namespace::symbol(handle, $symbol)?,
                        )
                    };
                )*
                Ok(Api { $($field,)* })
            }
        }
    };
}

api! {
    version = c"TF_Version": fn() -> *const c_char;
    new_status = c"TF_NewStatus": fn() -> Object;
    delete_status = c"TF_DeleteStatus": fn(Object);
    get_code = c"TF_GetCode": fn(Object) -> Code;
    message = c"TF_Message": fn(Object) -> *const c_char;
    new_graph = c"TF_NewGraph": fn() -> Object;
    delete_graph = c"TF_DeleteGraph": fn(Object);
    new_import_options = c"TF_NewImportGraphDefOptions": fn() -> Object;
    delete_import_options = c"TF_DeleteImportGraphDefOptions": fn(Object);
    import_graph_def = c"TF_GraphImportGraphDef": fn(Object, *const Buffer, Object, Object);
    operation_by_name = c"TF_GraphOperationByName": fn(Object, *const c_char) -> Object;
    operation_num_outputs = c"TF_OperationNumOutputs": fn(Object) -> c_int;
    operation_output_type = c"TF_OperationOutputType": fn(Output) -> c_int;
    operation_op_type = c"TF_OperationOpType": fn(Object) -> *const c_char;
    graph_tensor_num_dims = c"TF_GraphGetTensorNumDims": fn(Object, Output, Object) -> c_int;
    graph_tensor_shape = c"TF_GraphGetTensorShape": fn(Object, Output, *mut i64, c_int, Object);
    new_session_options = c"TF_NewSessionOptions": fn() -> Object;
    delete_session_options = c"TF_DeleteSessionOptions": fn(Object);
    set_config = c"TF_SetConfig": fn(Object, *const c_void, usize, Object);
    new_session = c"TF_NewSession": fn(Object, Object, Object) -> Object;
    close_session = c"TF_CloseSession": fn(Object, Object);
    delete_session = c"TF_DeleteSession": fn(Object, Object);
    session_run = c"TF_SessionRun": fn(
        Object, *const Buffer,
        *const Output, *const Object, c_int,
        *const Output, *mut Object, c_int,
        *const Object, c_int,
        *mut Buffer, Object
    );
    allocate_tensor = c"TF_AllocateTensor": fn(c_int, *const i64, c_int, usize) -> Object;
    delete_tensor = c"TF_DeleteTensor": fn(Object);
    tensor_type = c"TF_TensorType": fn(Object) -> c_int;
    num_dims = c"TF_NumDims": fn(Object) -> c_int;
    dim = c"TF_Dim": fn(Object, c_int) -> i64;
    tensor_byte_size = c"TF_TensorByteSize": fn(Object) -> usize;
    tensor_data = c"TF_TensorData": fn(Object) -> *mut c_void;
    string_init = c"TF_StringInit": fn(*mut TString);
    string_copy = c"TF_StringCopy": fn(*mut TString, *const c_char, usize);
    string_data = c"TF_StringGetDataPointer": fn(*const TString) -> *const c_char;
    string_size = c"TF_StringGetSize": fn(*const TString) -> usize;
    string_dealloc = c"TF_StringDealloc": fn(*mut TString);
}

/// TensorFlow's name of a status code.
pub fn code_name(code: Code) -> &'static str {
    match code {
        0 => "OK",
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        6 => "ALREADY_EXISTS",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        11 => "OUT_OF_RANGE",
        12 => "UNIMPLEMENTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        15 => "DATA_LOSS",
        16 => "UNAUTHENTICATED",
        _ => "UNKNOWN_CODE",
    }
}

/// A failed TensorFlow call: its status code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: Code,
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, code_name(self.code))
    }
}

impl Failure {
    fn new(message: impl Into<String>) -> Failure {
        Failure {
            code: 2,
            message: message.into(),
        }
    }
}

/// The opened libraries, for the rest of the process (they are never closed), and the
/// threads they are called on.
pub struct Runtime {
    api: Api,
    version: String,
    library: PathBuf,
    pool: &'static Pool,
}

/// Debug builds check that TensorFlow is called on its own threads only.
fn check_thread() {
    debug_assert!(
        on_pool_thread(),
        "TensorFlow called outside its threads (use Runtime::call)"
    );
}

impl Runtime {
    /// Opens `framework` then `cc` (which depends on it) in TensorFlow's namespace, with
    /// `environment` set there first, and resolves the C API. The libraries' initialisers
    /// run on one of TensorFlow's threads.
    pub fn open(
        framework: &Path,
        cc: &Path,
        environment: &[(&CStr, &CStr)],
    ) -> Result<Runtime, String> {
        let namespace = namespace::namespace(environment)?;
        let pool = Pool::get(namespace);
        let (api, version) = pool.call(|| -> Result<(Api, String), String> {
            let handle = namespace::open(&namespace, &[framework, cc])?;
            let api = Api::resolve(handle).map_err(|missing| {
                format!(
                    "{} is not a TensorFlow 2 C API library: a function is missing: {missing}",
                    cc.display()
                )
            })?;
            // SAFETY: TF_Version returns a static NUL-terminated string.
            let version = unsafe { CStr::from_ptr((api.version)()) }
                .to_string_lossy()
                .into_owned();
            Ok((api, version))
        })??;
        Ok(Runtime {
            api,
            version,
            library: cc.to_path_buf(),
            pool,
        })
    }

    /// Runs `call` on one of TensorFlow's threads (every use of the objects below must be
    /// made there) and returns its result.
    pub fn call<'a, R: Send + 'a>(
        &self,
        call: impl FnOnce() -> R + Send + 'a,
    ) -> Result<R, String> {
        self.pool.call(call)
    }

    /// Runs `job` on one of TensorFlow's threads, without waiting for it.
    pub fn spawn(&self, job: impl FnOnce() + Send + 'static) -> Result<(), String> {
        self.pool.spawn(job)
    }

    /// TensorFlow's version, as `TF_Version` reports it.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The path `libtensorflow_cc.so.2` was opened from.
    pub fn library(&self) -> &Path {
        &self.library
    }

    /// Calls `body` with a fresh `TF_Status *` and turns a non-OK status into a Failure.
    fn with_status<R>(&self, body: impl FnOnce(Object) -> R) -> Result<R, Failure> {
        check_thread();
        // SAFETY: TF_NewStatus has no preconditions.
        let status = unsafe { (self.api.new_status)() };
        if status.is_null() {
            return Err(Failure::new("TF_NewStatus failed"));
        }
        let value = body(status);
        // SAFETY: `status` is live until deleted below.
        let code = unsafe { (self.api.get_code)(status) };
        let result = if code == CODE_OK {
            Ok(value)
        } else {
            // SAFETY: TF_Message returns a NUL-terminated string owned by the status,
            // copied before the status is deleted.
            let message = unsafe { CStr::from_ptr((self.api.message)(status)) }
                .to_string_lossy()
                .into_owned();
            Err(Failure { code, message })
        };
        // SAFETY: created above, deleted once.
        unsafe { (self.api.delete_status)(status) };
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_match_the_c_headers() {
        assert_eq!(std::mem::size_of::<Output>(), 16);
        assert_eq!(std::mem::size_of::<Buffer>(), 24);
        assert_eq!(std::mem::size_of::<TString>(), 24);
    }

    #[test]
    fn code_names() {
        assert_eq!(code_name(CODE_DEADLINE_EXCEEDED), "DEADLINE_EXCEEDED");
        assert_eq!(code_name(CODE_CANCELLED), "CANCELLED");
        let failure = Failure {
            code: 3,
            message: "bad".into(),
        };
        assert_eq!(failure.to_string(), "bad (INVALID_ARGUMENT)");
    }
}
