//! Finding and opening TensorFlow's libraries, once per process.
//!
//! [`library_path`]: the environment variable [`RUNTIME_LIB_ENV`] when set and not empty
//! (the path of `libtensorflow_cc.so.2`), otherwise [`RUNTIME_LIB_NAME`] in the folder of
//! the shared object this code was loaded from (found with `dladdr`), so a backend folder
//! can be copied anywhere as a unit. [`FRAMEWORK_LIB_NAME`] is opened from the same folder
//! first (`libtensorflow_cc.so.2` depends on it by that name).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

use redisai_plugin_api::sdk::{Error, Result};

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

static RUNTIME: OnceLock<Runtime> = OnceLock::new();
static INIT: Mutex<()> = Mutex::new(());

/// TensorFlow's logging from INFO and WARNING down is dropped (errors still reach stderr,
/// that is the Redis log). Set in TensorFlow's own environment; a value the server was
/// started with wins.
const ENVIRONMENT: &[(&std::ffi::CStr, &std::ffi::CStr)] = &[(c"TF_CPP_MIN_LOG_LEVEL", c"2")];

/// The process's runtime, opening the libraries on first use. A failure is not cached: a
/// later call tries again (for example once the libraries have been put in place).
pub fn runtime() -> Result<&'static Runtime> {
    runtime_with_memory_limit(0)
}

/// As [`runtime`]; when this call opens the libraries and `limit_bytes` (BACKEND_MEMORY_LIMIT)
/// is not 0, TensorFlow is started with `TF_ENABLE_ONEDNN_OPTS=0` (unless the server's
/// environment says otherwise), which also gives it its plain CPU allocator: each tensor is
/// allocated and freed on its own, through the memory shim, which bounds them all
/// (`ffi::set_memory_limit`), and a refused allocation fails the run at once ("OOM when
/// allocating tensor"). With oneDNN on, tensors of 256 KiB and more come from its BFC
/// arena ("mklcpu"), which keeps what it grew (up to the limit) and, refused memory,
/// waits 10 s for other runs to free some before it fails: past MODEL_EXECUTION_TIMEOUT
/// the run then ends as a timeout. Without a limit at that time oneDNN stays on, and a
/// limit set later still binds (through the shim) with those two drawbacks.
pub fn runtime_with_memory_limit(limit_bytes: u64) -> Result<&'static Runtime> {
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime);
    }
    let _init = INIT.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime);
    }
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
    let mut environment = ENVIRONMENT.to_vec();
    if limit_bytes > 0 {
        environment.push((c"TF_ENABLE_ONEDNN_OPTS", c"0"));
    }
    let runtime = Runtime::open(&framework, &cc, &environment).map_err(Error::new)?;
    if !runtime.version().starts_with("2.") {
        return Err(Error::new(format!(
            "{} is TensorFlow {}, the backend needs TensorFlow 2 (it is tested with {TENSORFLOW_VERSION})",
            cc.display(),
            runtime.version()
        )));
    }
    Ok(RUNTIME.get_or_init(|| runtime))
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
    if let Some(path) = std::env::var_os(RUNTIME_LIB_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let own = ffi::own_object_path().ok_or_else(|| {
        Error::new(format!(
            "cannot tell where the TensorFlow backend plugin was loaded from; set {RUNTIME_LIB_ENV} to the path of {RUNTIME_LIB_NAME}"
        ))
    })?;
    let own = if own.is_absolute() {
        own
    } else {
        std::fs::canonicalize(&own).map_err(|err| {
            Error::new(format!(
                "cannot resolve the plugin's path {}: {err}; set {RUNTIME_LIB_ENV}",
                own.display()
            ))
        })?
    };
    let dir = own.parent().unwrap_or(Path::new("/"));
    Ok(dir.join(RUNTIME_LIB_NAME))
}
