//! Where a backend's runtime library is: a path from the environment, or the file
//! beside the plugin, so that a backend folder can be copied anywhere as a unit.

use std::ffi::{c_void, CStr, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::{Error, Result};

/// How a backend finds its runtime library.
#[derive(Debug, Clone, Copy)]
pub struct RuntimeLibrary {
    /// The backend's name in messages, e.g. "ONNX".
    pub backend: &'static str,
    /// The environment variable that overrides the path when set and not empty.
    pub env_var: &'static str,
    /// The library's file name, looked up in the plugin's folder.
    pub file_name: &'static str,
}

impl RuntimeLibrary {
    /// The path to open: [`RuntimeLibrary::env_var`] when set and not empty, otherwise
    /// [`RuntimeLibrary::file_name`] in the folder of the plugin's shared object.
    pub fn path(&self) -> Result<PathBuf> {
        let RuntimeLibrary {
            backend,
            env_var,
            file_name,
        } = *self;
        if let Some(path) = std::env::var_os(env_var).filter(|p| !p.is_empty()) {
            return Ok(PathBuf::from(path));
        }
        let own = own_object_path().ok_or_else(|| {
            Error::new(format!(
                "cannot tell where the {backend} backend plugin was loaded from; set {env_var} to the path of {file_name}"
            ))
        })?;
        let own = if own.is_absolute() {
            own
        } else {
            std::fs::canonicalize(&own).map_err(|err| {
                Error::new(format!(
                    "cannot resolve the plugin's path {}: {err}; set {env_var}",
                    own.display()
                ))
            })?
        };
        let dir = own.parent().unwrap_or(Path::new("/"));
        Ok(dir.join(file_name))
    }
}

/// Path of the shared object (or executable) this code is part of: the plugin's `.so`
/// (the SDK is linked into each plugin), found with `dladdr`.
pub fn own_object_path() -> Option<PathBuf> {
    let mut info = libc::Dl_info {
        dli_fname: std::ptr::null(),
        dli_fbase: std::ptr::null_mut(),
        dli_sname: std::ptr::null(),
        dli_saddr: std::ptr::null_mut(),
    };
    let address = own_object_path as fn() -> Option<PathBuf> as *const c_void;
    // SAFETY: dladdr only inspects the address (a function of this object) and writes
    // into `info`, which outlives the call.
    let found = unsafe { libc::dladdr(address, &mut info) };
    if found == 0 || info.dli_fname.is_null() {
        return None;
    }
    // SAFETY: on success `dli_fname` is a NUL-terminated path owned by the dynamic loader,
    // valid while the object is loaded; ours is, since its code is running. It is copied
    // before returning.
    let name = unsafe { CStr::from_ptr(info.dli_fname) };
    if name.to_bytes().is_empty() {
        return None;
    }
    Some(PathBuf::from(OsStr::from_bytes(name.to_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_its_own_object() {
        let own = own_object_path().expect("dladdr finds this test binary");
        let exe = std::env::current_exe().expect("current_exe");
        let canonical = |p: &Path| std::fs::canonicalize(p).expect("canonicalize");
        assert_eq!(canonical(&own), canonical(&exe));
    }

    #[test]
    fn the_environment_wins_and_the_plugin_folder_is_the_default() {
        // A variable no other test sets.
        const ENV: &str = "REDISAI_SDK_LIBRARY_TEST_LIB";
        let library = RuntimeLibrary {
            backend: "TEST",
            env_var: ENV,
            file_name: "libtest.so",
        };
        let beside = library.path().expect("a path beside the test binary");
        let exe_dir = std::env::current_exe().expect("current_exe");
        let exe_dir = std::fs::canonicalize(exe_dir).expect("canonicalize");
        assert_eq!(beside, exe_dir.with_file_name("libtest.so"));
        // Only this test reads the variable.
        std::env::set_var(ENV, "/opt/lib/libtest.so");
        assert_eq!(library.path(), Ok(PathBuf::from("/opt/lib/libtest.so")));
        std::env::set_var(ENV, "");
        assert_eq!(library.path(), Ok(beside));
        std::env::remove_var(ENV);
    }
}
