//! Finding and opening the LiteRT library, once per process.
//!
//! [`library_path`]: the environment variable [`RUNTIME_LIB_ENV`] when set and not empty,
//! otherwise [`RUNTIME_LIB_NAME`] in the folder of the shared object this code was loaded
//! from (found with `dladdr`), so a backend folder can be copied anywhere as a unit.

use std::path::PathBuf;

use redisai_plugin_api::sdk::{Error, Result, RetryOnce, RuntimeLibrary};

use crate::ffi::Runtime;

/// Environment variable that overrides where the runtime library is loaded from.
pub const RUNTIME_LIB_ENV: &str = "REDISAI_LITERT_LIB";
/// File name of the runtime library, looked up beside the plugin.
pub const RUNTIME_LIB_NAME: &str = "libLiteRt.so";
/// The LiteRT release the backend is built against (and `scripts/fetch-litert` fetches).
pub const LITERT_VERSION: &str = "2.3.0";

static RUNTIME: RetryOnce<Runtime> = RetryOnce::new();

/// The process's runtime, opening the library on first use. A failure is not cached: a
/// later call tries again (for example once the library has been put in place).
pub fn runtime() -> Result<&'static Runtime> {
    RUNTIME.get_or_try_init(open)
}

/// Opens the runtime (see [`runtime`]).
fn open() -> Result<Runtime> {
    let library = library_path()?;
    if !library.is_file() {
        return Err(Error::new(format!(
            "the LiteRT library {} does not exist (it belongs beside the plugin; scripts/fetch-litert downloads it; {RUNTIME_LIB_ENV} overrides the path)",
            library.display()
        )));
    }
    Runtime::open(&library)
}

/// Where the runtime library is looked for (see the module docs).
pub fn library_path() -> Result<PathBuf> {
    RuntimeLibrary {
        backend: "TFLite",
        env_var: RUNTIME_LIB_ENV,
        file_name: RUNTIME_LIB_NAME,
    }
    .path()
}
