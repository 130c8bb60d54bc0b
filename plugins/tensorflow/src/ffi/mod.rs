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

mod namespace;
mod threads;

use std::ffi::{c_char, c_int, c_void, CStr};
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::Arc;

use namespace::Handle;
pub use namespace::{memory, set_memory_limit, thread_stacks, NamespaceMemory};
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

/// An imported graph. Operations found in it stay valid as long as it lives.
pub struct Graph {
    runtime: &'static Runtime,
    raw: Object,
}

// SAFETY: a TF_Graph guards its state with its own mutex; after the import this crate only
// looks operations up and creates sessions on it, which TensorFlow allows from any thread.
unsafe impl Send for Graph {}
// SAFETY: as above.
unsafe impl Sync for Graph {}

impl Graph {
    /// Imports a serialized GraphDef.
    pub fn import(runtime: &'static Runtime, graph_def: &[u8]) -> Result<Graph, Failure> {
        let api = &runtime.api;
        // SAFETY: no preconditions.
        let raw = unsafe { (api.new_graph)() };
        if raw.is_null() {
            return Err(Failure::new("TF_NewGraph failed"));
        }
        let graph = Graph { runtime, raw };
        // SAFETY: no preconditions.
        let options = unsafe { (api.new_import_options)() };
        let buffer = Buffer::borrowed(graph_def);
        let result = runtime.with_status(|status| {
            // SAFETY: live graph, options and status; the buffer borrows `graph_def`, which
            // TensorFlow only reads during the call.
            unsafe { (api.import_graph_def)(graph.raw, &buffer, options, status) }
        });
        // SAFETY: created above, deleted once.
        unsafe { (api.delete_import_options)(options) };
        result.map(|()| graph)
    }

    /// Output `index` of the operation `name`: Err(None) when there is no such operation,
    /// Err(Some(count)) when it has only `count` outputs.
    pub fn output(&self, name: &CStr, index: usize) -> Result<Output, Option<usize>> {
        // SAFETY: live graph and a NUL-terminated name.
        let oper = unsafe { (self.runtime.api.operation_by_name)(self.raw, name.as_ptr()) };
        if oper.is_null() {
            return Err(None);
        }
        // SAFETY: an operation of this live graph.
        let count = unsafe { (self.runtime.api.operation_num_outputs)(oper) };
        let count = usize::try_from(count).unwrap_or(0);
        if index >= count {
            return Err(Some(count));
        }
        Ok(Output {
            oper,
            index: index as c_int,
        })
    }

    /// The `TF_DataType` of an output of this graph.
    pub fn output_type(&self, output: Output) -> c_int {
        // SAFETY: `output` was found in this live graph.
        unsafe { (self.runtime.api.operation_output_type)(output) }
    }

    /// The shape the graph gives an output of this graph (a Placeholder's `shape`
    /// attribute, or what TensorFlow's shape inference found at import): None when its
    /// rank is unknown; -1 for a dimension of unknown size.
    pub fn output_shape(&self, output: Output) -> Option<Vec<i64>> {
        let api = &self.runtime.api;
        let rank = self
            .runtime
            .with_status(|status| {
                // SAFETY: `output` was found in this live graph; live status.
                unsafe { (api.graph_tensor_num_dims)(self.raw, output, status) }
            })
            .ok()?;
        let rank = usize::try_from(rank).ok()?;
        let mut dims = vec![-1i64; rank];
        self.runtime
            .with_status(|status| {
                // SAFETY: as above; `dims` holds `rank` values, the count passed.
                unsafe {
                    (api.graph_tensor_shape)(
                        self.raw,
                        output,
                        dims.as_mut_ptr(),
                        rank as c_int,
                        status,
                    )
                }
            })
            .ok()?;
        Some(dims)
    }

    /// The op type (e.g. "Placeholder") of the operation of an output of this graph.
    pub fn op_type(&self, output: Output) -> String {
        // SAFETY: `output` was found in this live graph; the string is owned by the graph
        // and copied at once.
        let text = unsafe { (self.runtime.api.operation_op_type)(output.oper) };
        if text.is_null() {
            return String::new();
        }
        // SAFETY: as above.
        unsafe { CStr::from_ptr(text) }
            .to_string_lossy()
            .into_owned()
    }
}

impl Drop for Graph {
    fn drop(&mut self) {
        // SAFETY: created by TF_NewGraph, deleted once; TensorFlow defers the deletion
        // while sessions of the graph live (they do not: each holds the graph in an Arc).
        unsafe { (self.runtime.api.delete_graph)(self.raw) };
    }
}

/// A session on a graph. Runs may overlap, and [`Session::close`] may be called from
/// another thread during a run (it cancels the run).
pub struct Session {
    raw: Object,
    graph: Arc<Graph>,
}

// SAFETY: TF_SessionRun and TF_CloseSession may be called on one session from several
// threads at once (TensorFlow's DirectSession locks what it shares).
unsafe impl Send for Session {}
// SAFETY: as above.
unsafe impl Sync for Session {}

impl Session {
    /// A session on `graph` with `config`, a serialized `tensorflow.ConfigProto`.
    pub fn new(graph: &Arc<Graph>, config: &[u8]) -> Result<Session, Failure> {
        let runtime = graph.runtime;
        let api = &runtime.api;
        // SAFETY: no preconditions.
        let options = unsafe { (api.new_session_options)() };
        let result = runtime
            .with_status(|status| {
                // SAFETY: live options and status; TensorFlow copies the bytes.
                unsafe { (api.set_config)(options, config.as_ptr().cast(), config.len(), status) }
            })
            .and_then(|()| {
                runtime.with_status(|status| {
                    // SAFETY: live graph, options and status.
                    unsafe { (api.new_session)(graph.raw, options, status) }
                })
            });
        // SAFETY: created above, deleted once (the session keeps what it needs).
        unsafe { (api.delete_session_options)(options) };
        let raw = result?;
        if raw.is_null() {
            return Err(Failure::new("TF_NewSession returned no session"));
        }
        Ok(Session {
            raw,
            graph: Arc::clone(graph),
        })
    }

    /// Runs the graph: feeds `inputs`, fetches `outputs`. `run_options` is a serialized
    /// `tensorflow.RunOptions` (empty for none).
    pub fn run(
        &self,
        run_options: &[u8],
        inputs: &[(Output, &Tensor)],
        outputs: &[Output],
    ) -> Result<Vec<Tensor>, Failure> {
        let runtime = self.graph.runtime;
        let feeds: Vec<Output> = inputs.iter().map(|(output, _)| *output).collect();
        let values: Vec<Object> = inputs.iter().map(|(_, tensor)| tensor.raw).collect();
        let mut fetched: Vec<Object> = vec![ptr::null_mut(); outputs.len()];
        let options = Buffer::borrowed(run_options);
        let options_ptr = if run_options.is_empty() {
            ptr::null()
        } else {
            &options as *const Buffer
        };
        let n_inputs =
            c_int::try_from(inputs.len()).map_err(|_| Failure::new("too many inputs"))?;
        let n_outputs =
            c_int::try_from(outputs.len()).map_err(|_| Failure::new("too many outputs"))?;
        let result = runtime.with_status(|status| {
            // SAFETY: a live session; `feeds`/`values` hold `n_inputs` entries (the tensors
            // live for the call: the caller borrows them), `outputs`/`fetched` hold
            // `n_outputs`; no targets, no metadata; TensorFlow reads the options during
            // the call only. Fed tensors stay owned by the caller.
            unsafe {
                (runtime.api.session_run)(
                    self.raw,
                    options_ptr,
                    feeds.as_ptr(),
                    values.as_ptr(),
                    n_inputs,
                    outputs.as_ptr(),
                    fetched.as_mut_ptr(),
                    n_outputs,
                    ptr::null(),
                    0,
                    ptr::null_mut(),
                    status,
                )
            }
        });
        // Whatever happened, take ownership of what was fetched so it is freed.
        let tensors: Vec<Option<Tensor>> = fetched
            .into_iter()
            .map(|raw| {
                (!raw.is_null()).then_some(Tensor {
                    runtime,
                    raw,
                    owns_strings: false,
                })
            })
            .collect();
        result?;
        tensors
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| Failure::new("TF_SessionRun returned no tensor for an output"))
    }

    /// Closes the session: a run in progress is cancelled (it fails with CANCELLED) and
    /// later runs fail. Callable from any thread.
    pub fn close(&self) {
        let runtime = self.graph.runtime;
        // Closing twice is harmless; a failure leaves nothing to do.
        let _ = runtime.with_status(|status| {
            // SAFETY: a live session (the caller holds it) and status.
            unsafe { (runtime.api.close_session)(self.raw, status) }
        });
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.close();
        let runtime = self.graph.runtime;
        let _ = runtime.with_status(|status| {
            // SAFETY: created by TF_NewSession, deleted once, with no run in progress (a
            // run borrows the session).
            unsafe { (runtime.api.delete_session)(self.raw, status) }
        });
    }
}

/// A tensor allocated by TensorFlow.
pub struct Tensor {
    runtime: &'static Runtime,
    raw: Object,
    /// A STRING tensor whose elements this crate initialised: they are deallocated before
    /// the tensor is deleted (TensorFlow does not do it for memory from TF_AllocateTensor).
    owns_strings: bool,
}

// SAFETY: a TF_Tensor is a plain buffer with a reference count that TensorFlow updates
// atomically; this crate never shares one between threads while writing it.
unsafe impl Send for Tensor {}

impl Tensor {
    fn allocate(
        runtime: &'static Runtime,
        dtype: c_int,
        dims: &[i64],
        len: usize,
        owns_strings: bool,
    ) -> Result<Tensor, Failure> {
        check_thread();
        let ndims = c_int::try_from(dims.len()).map_err(|_| Failure::new("too many dimensions"))?;
        // SAFETY: `dims` holds `ndims` values, read during the call.
        let raw = unsafe { (runtime.api.allocate_tensor)(dtype, dims.as_ptr(), ndims, len) };
        if raw.is_null() {
            return Err(Failure::new(format!(
                "TF_AllocateTensor could not allocate {len} bytes"
            )));
        }
        Ok(Tensor {
            runtime,
            raw,
            owns_strings,
        })
    }

    /// A tensor of a fixed-size type holding a copy of `data` (little-endian elements,
    /// `data.len()` = element count * element size, checked by the caller).
    pub fn from_bytes(
        runtime: &'static Runtime,
        dtype: c_int,
        dims: &[i64],
        data: &[u8],
    ) -> Result<Tensor, Failure> {
        let tensor = Tensor::allocate(runtime, dtype, dims, data.len(), false)?;
        if !data.is_empty() {
            // SAFETY: TensorFlow allocated `data.len()` bytes for the tensor, which nothing
            // else references yet.
            unsafe {
                let dest = (runtime.api.tensor_data)(tensor.raw).cast::<u8>();
                if dest.is_null() {
                    return Err(Failure::new("TF_TensorData returned null"));
                }
                ptr::copy_nonoverlapping(data.as_ptr(), dest, data.len());
            }
        }
        Ok(tensor)
    }

    /// A STRING tensor with copies of `elements` (as many as `dims` asks for, checked by
    /// the caller).
    pub fn from_strings(
        runtime: &'static Runtime,
        dims: &[i64],
        elements: &[&[u8]],
    ) -> Result<Tensor, Failure> {
        let len = elements
            .len()
            .checked_mul(std::mem::size_of::<TString>())
            .ok_or_else(|| Failure::new("too many strings"))?;
        let mut tensor = Tensor::allocate(runtime, TF_STRING, dims, len, false)?;
        if elements.is_empty() {
            return Ok(tensor);
        }
        // SAFETY: TensorFlow allocated room for `elements.len()` TF_TStrings, suitably
        // aligned (its CPU allocator aligns to 64 bytes); all are initialised before any is
        // used, and deallocated in Drop (owns_strings is set once all are initialised).
        unsafe {
            let base = (runtime.api.tensor_data)(tensor.raw).cast::<TString>();
            if base.is_null() {
                return Err(Failure::new("TF_TensorData returned null"));
            }
            for i in 0..elements.len() {
                (runtime.api.string_init)(base.add(i));
            }
            tensor.owns_strings = true;
            for (i, element) in elements.iter().enumerate() {
                (runtime.api.string_copy)(base.add(i), element.as_ptr().cast(), element.len());
            }
        }
        Ok(tensor)
    }

    /// The `TF_DataType`.
    pub fn dtype(&self) -> c_int {
        // SAFETY: a live tensor.
        unsafe { (self.runtime.api.tensor_type)(self.raw) }
    }

    pub fn dims(&self) -> Vec<i64> {
        // SAFETY: a live tensor.
        let n = unsafe { (self.runtime.api.num_dims)(self.raw) };
        (0..n.max(0))
            // SAFETY: `i` is below the tensor's rank.
            .map(|i| unsafe { (self.runtime.api.dim)(self.raw, i) })
            .collect()
    }

    /// The raw bytes of a tensor of a fixed-size type.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: a live tensor; TensorFlow reports its buffer's size; the buffer lives as
        // long as the tensor, which the returned slice borrows.
        unsafe {
            let len = (self.runtime.api.tensor_byte_size)(self.raw);
            let data = (self.runtime.api.tensor_data)(self.raw);
            if len == 0 || data.is_null() {
                return &[];
            }
            std::slice::from_raw_parts(data.cast::<u8>(), len)
        }
    }

    /// The elements of a STRING tensor (`count` of them, checked against the buffer).
    pub fn strings(&self, count: usize) -> Result<Vec<Vec<u8>>, Failure> {
        if self.dtype() != TF_STRING {
            return Err(Failure::new("not a STRING tensor"));
        }
        // SAFETY: a live tensor.
        let len = unsafe { (self.runtime.api.tensor_byte_size)(self.raw) };
        if count.checked_mul(std::mem::size_of::<TString>()) != Some(len) {
            return Err(Failure::new(format!(
                "a STRING tensor of {count} elements has {len} bytes"
            )));
        }
        if count == 0 {
            return Ok(Vec::new());
        }
        // SAFETY: the buffer holds `count` initialised TF_TStrings (checked above), alive
        // while the tensor is; each element's bytes are copied out.
        unsafe {
            let base = (self.runtime.api.tensor_data)(self.raw).cast::<TString>();
            if base.is_null() {
                return Err(Failure::new("TF_TensorData returned null"));
            }
            Ok((0..count)
                .map(|i| {
                    let element = base.add(i);
                    let data = (self.runtime.api.string_data)(element);
                    let size = (self.runtime.api.string_size)(element);
                    if size == 0 || data.is_null() {
                        Vec::new()
                    } else {
                        std::slice::from_raw_parts(data.cast::<u8>(), size).to_vec()
                    }
                })
                .collect())
        }
    }
}

impl Drop for Tensor {
    fn drop(&mut self) {
        let api = &self.runtime.api;
        // SAFETY: a live tensor, deleted once. Strings this crate initialised are
        // deallocated first; nothing else references them: the session run that read them
        // has returned and the fetched tensors that could share the buffer are dropped
        // first (the backend drops outputs before inputs).
        unsafe {
            if self.owns_strings {
                let len = (api.tensor_byte_size)(self.raw);
                let base = (api.tensor_data)(self.raw).cast::<TString>();
                if !base.is_null() {
                    for i in 0..len / std::mem::size_of::<TString>() {
                        (api.string_dealloc)(base.add(i));
                    }
                }
            }
            (api.delete_tensor)(self.raw);
        }
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
