//! Finding and opening TensorFlow's libraries, once per process.
//!
//! [`library_path`]: the environment variable [`RUNTIME_LIB_ENV`] when set and not empty
//! (the path of `libtensorflow_cc.so.2`), otherwise [`RUNTIME_LIB_NAME`] in the folder of
//! the shared object this code was loaded from (found with `dladdr`), so a backend folder
//! can be copied anywhere as a unit. [`FRAMEWORK_LIB_NAME`] is opened from the same folder
//! first (`libtensorflow_cc.so.2` depends on it by that name).

use std::path::PathBuf;

use redisai_plugin_api::sdk::{Error, Result, RetryOnce, RuntimeLibrary};

use crate::ffi::{self, Runtime};

/// Environment variable that overrides where `libtensorflow_cc.so.2` is loaded from
/// (`libtensorflow_framework.so.2` must be beside it).
pub const RUNTIME_LIB_ENV: &str = "REDISAI_TENSORFLOW_LIB";
/// The library with TensorFlow's graph and session C API, looked up beside the plugin.
pub const RUNTIME_LIB_NAME: &str = "libtensorflow_cc.so.2";
/// The library it depends on (tensors, statuses, kernels' framework).
pub const FRAMEWORK_LIB_NAME: &str = "libtensorflow_framework.so.2";
/// The TensorFlow release the backend is built and tested against (and
/// `scripts/fetch-tensorflow` fetches).
pub const TENSORFLOW_VERSION: &str = "2.21.0";

static RUNTIME: RetryOnce<Runtime> = RetryOnce::new();

/// TensorFlow's logging from INFO and WARNING down is dropped (errors still reach stderr,
/// that is the Redis log). Set in TensorFlow's own environment; a value the server was
/// started with wins.
///
/// oneDNN is always off (`TF_ENABLE_ONEDNN_OPTS=0`): its kernels (`_MklConv2D` & co., which
/// TensorFlow swaps in for Conv2D, MatMul, pooling, batch norm, ... when it is on) trust
/// the ranks of their inputs and abort the process on a wrong one (a Conv2D fed a rank-2
/// tensor), where TensorFlow's own (Eigen) kernels fail the run with an error. A stored
/// model and its inputs are hostile input. It also gives TensorFlow its plain CPU allocator,
/// which BACKEND_MEMORY_LIMIT bounds tensor by tensor (each tensor is allocated and freed on its own, through the memory shim, and a
/// refused allocation fails the run at once, "OOM when allocating tensor"; oneDNN's BFC
/// arena, "mklcpu", would keep what it grew and, refused memory, wait 10 s for other runs
/// to free some).
/// A server started with `TF_ENABLE_ONEDNN_OPTS=1` gets oneDNN back, and those aborts.
const ENVIRONMENT: &[(&std::ffi::CStr, &std::ffi::CStr)] = &[
    (c"TF_CPP_MIN_LOG_LEVEL", c"2"),
    (c"TF_ENABLE_ONEDNN_OPTS", c"0"),
];

/// The process's runtime, opening the libraries on first use. A failure is not cached: a
/// later call tries again (for example once the libraries have been put in place).
pub fn runtime() -> Result<&'static Runtime> {
    RUNTIME.get_or_try_init(open)
}

/// Opens the runtime (see [`runtime`]).
fn open() -> Result<Runtime> {
    let cc = library_path()?;
    let framework = cc.with_file_name(FRAMEWORK_LIB_NAME);
    for library in [&cc, &framework] {
        if !library.is_file() {
            return Err(Error::new(format!(
                "the TensorFlow library {} does not exist ({RUNTIME_LIB_NAME} and {FRAMEWORK_LIB_NAME} belong beside the plugin; scripts/fetch-tensorflow downloads them; {RUNTIME_LIB_ENV} overrides the path of {RUNTIME_LIB_NAME})",
                library.display()
            )));
        }
    }
    let runtime = Runtime::open(&framework, &cc, ENVIRONMENT).map_err(Error::new)?;
    if !runtime.version().starts_with("2.") {
        return Err(Error::new(format!(
            "{} is TensorFlow {}, the backend needs TensorFlow 2 (it is tested with {TENSORFLOW_VERSION})",
            cc.display(),
            runtime.version()
        )));
    }
    Ok(runtime)
}

/// The kernel thread ids of the threads the backend calls TensorFlow on (named `tf-call`;
/// threads TensorFlow makes from them inherit the name). They never end.
pub fn call_thread_ids() -> Vec<libc::pid_t> {
    ffi::call_thread_ids()
}

/// TensorFlow's threads made on stacks of the plugin's own (the namespace's threads shim,
/// see `ffi::namespace`), and those stacks unmapped after their thread ended: None when the
/// shim could not be opened (or TensorFlow is not loaded yet).
pub fn thread_stacks() -> Option<(u64, u64)> {
    ffi::thread_stacks()
}

/// Where `libtensorflow_cc.so.2` is looked for (see the module docs).
pub fn library_path() -> Result<PathBuf> {
    RuntimeLibrary {
        backend: "TensorFlow",
        env_var: RUNTIME_LIB_ENV,
        file_name: RUNTIME_LIB_NAME,
    }
    .path()
}
