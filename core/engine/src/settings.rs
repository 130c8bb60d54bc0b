//! The process-wide configuration, set once at load and changed by AI.CONFIG.

use std::path::PathBuf;
use std::sync::{OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::config::{Config, ConfigError};

static SETTINGS: OnceLock<RwLock<Config>> = OnceLock::new();

/// Parses the module arguments and installs the configuration.
pub fn initialize(args: &[&[u8]]) -> Result<Config, ConfigError> {
    let config = Config::from_module_args(default_backends_path(), args)?;
    SETTINGS
        .set(RwLock::new(config.clone()))
        .map_err(|_| ConfigError("the module is already initialised".to_owned()))?;
    Ok(config)
}

pub fn read() -> RwLockReadGuard<'static, Config> {
    let lock =
        SETTINGS.get_or_init(|| RwLock::new(Config::with_backends_path(default_backends_path())));
    // A panic while holding the lock cannot leave the plain-data config half-written
    // in a way that matters more than refusing service, so recover from poisoning.
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub fn write() -> RwLockWriteGuard<'static, Config> {
    let lock =
        SETTINGS.get_or_init(|| RwLock::new(Config::with_backends_path(default_backends_path())));
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `backends/` beside the loaded `redisai.so`.
fn default_backends_path() -> PathBuf {
    module_file_path()
        .and_then(|path| path.parent().map(|dir| dir.join("backends")))
        .unwrap_or_else(|| PathBuf::from("backends"))
}

/// The path of the shared object this code was loaded from.
fn module_file_path() -> Option<PathBuf> {
    // SAFETY: Dl_info is plain old data for which all-zero bytes are a valid value.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    let anchor = default_backends_path as *const libc::c_void;
    // SAFETY: dladdr only reads the address and fills `info`; the returned file name
    // points into the loader's data, valid while the module stays loaded.
    let found = unsafe { libc::dladdr(anchor, &mut info) };
    if found == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: dli_fname is a NUL-terminated string owned by the dynamic loader.
    let name = unsafe { std::ffi::CStr::from_ptr(info.dli_fname) };
    let path = PathBuf::from(name.to_str().ok()?);
    std::fs::canonicalize(&path).ok().or(Some(path))
}
