//! Finding and opening the LiteRT library, once per process.
//!
//! [`library_path`]: the environment variable [`RUNTIME_LIB_ENV`] when set and not empty,
//! otherwise [`RUNTIME_LIB_NAME`] in the folder of the shared object this code was loaded
//! from (found with `dladdr`), so a backend folder can be copied anywhere as a unit.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

use redisai_plugin_api::sdk::{Error, Result};

use crate::ffi::{self, Runtime};

/// Environment variable that overrides where the runtime library is loaded from.
pub const RUNTIME_LIB_ENV: &str = "REDISAI_LITERT_LIB";
/// File name of the runtime library, looked up beside the plugin.
pub const RUNTIME_LIB_NAME: &str = "libLiteRt.so";
/// The LiteRT release the backend is built against (and `scripts/fetch-litert` fetches).
pub const LITERT_VERSION: &str = "2.3.0";

static RUNTIME: OnceLock<Runtime> = OnceLock::new();
static INIT: Mutex<()> = Mutex::new(());

/// The process's runtime, opening the library on first use. A failure is not cached: a
/// later call tries again (for example once the library has been put in place).
pub fn runtime() -> Result<&'static Runtime> {
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime);
    }
    let _init = INIT.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime);
    }
    let library = library_path()?;
    if !library.is_file() {
        return Err(Error::new(format!(
            "the LiteRT library {} does not exist (it belongs beside the plugin; scripts/fetch-litert downloads it; {RUNTIME_LIB_ENV} overrides the path)",
            library.display()
        )));
    }
    let runtime = Runtime::open(&library)?;
    Ok(RUNTIME.get_or_init(|| runtime))
}

/// Where the runtime library is looked for (see the module docs).
pub fn library_path() -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(RUNTIME_LIB_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let own = ffi::own_object_path().ok_or_else(|| {
        Error::new(format!(
            "cannot tell where the TFLite backend plugin was loaded from; set {RUNTIME_LIB_ENV} to the path of {RUNTIME_LIB_NAME}"
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
