//! Asking the NVIDIA driver about GPUs, for plugins with a GPU variant (feature
//! `cuda-driver`; Rust only, nothing of it is in the C header).
//!
//! Framework-agnostic: the driver (`libcuda.so.1`, from the system) is opened with
//! `dlopen` and asked how many devices it sees (`cuInit`, `cuDeviceGetCount`), so that a
//! machine without the driver, without a device, or with fewer devices than a model asks
//! for gets an error that says so. [`open_global`] opens a framework's own CUDA libraries
//! for the process's life. Nothing here aborts: every failure is an [`Error`].

use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr;

use crate::sdk::{Error, Result};

/// The NVIDIA driver's library, from the system (never shipped in a backend folder).
pub const DRIVER_LIB: &str = "libcuda.so.1";

/// The last `dlerror` text, or a stand-in.
pub fn dl_error() -> String {
    // SAFETY: dlerror returns NULL or a NUL-terminated string owned by libc, valid until
    // the next dl* call on this thread; it is copied at once.
    let text = unsafe { libc::dlerror() };
    if text.is_null() {
        return "unknown dynamic loader error".to_owned();
    }
    // SAFETY: not NULL, so a NUL-terminated string (see above).
    unsafe { CStr::from_ptr(text) }
        .to_string_lossy()
        .into_owned()
}

/// Opens the library at `path` with `RTLD_NOW | RTLD_GLOBAL` for the rest of the
/// process's life (the handle is never closed), so that libraries opened later find its
/// symbols and SONAME. `what` names it in the error: "could not load {what} {path}: ...".
pub fn open_global(path: &Path, what: &str) -> Result<()> {
    let name = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::new(format!("{} has a NUL byte", path.display())))?;
    // SAFETY: `name` is a NUL-terminated path that outlives the call. Loading runs the
    // library's initialisers: the caller opens a framework's CUDA libraries (NVIDIA's, or
    // the framework's CUDA backend, which registers itself), which is the point.
    let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
    if handle.is_null() {
        return Err(Error::new(format!(
            "could not load {what} {}: {}",
            path.display(),
            dl_error()
        )));
    }
    Ok(())
}

/// The device exists among the `count` that `seen_by` ("the NVIDIA driver",
/// "libtorch", ...) sees.
pub fn check_device(device_id: u32, count: u32, seen_by: &str) -> Result<()> {
    if device_id >= count {
        return Err(Error::new(format!(
            "device GPU:{device_id} does not exist: {seen_by} sees {count} GPU{} (GPU:0 to GPU:{})",
            if count == 1 { "" } else { "s" },
            count.saturating_sub(1)
        )));
    }
    Ok(())
}

type CuInit = unsafe extern "C" fn(flags: c_uint) -> c_int;
type CuDeviceGetCount = unsafe extern "C" fn(count: *mut c_int) -> c_int;
type CuGetErrorString = unsafe extern "C" fn(error: c_int, text: *mut *const c_char) -> c_int;

/// Looks up `symbol` in the driver library's `handle`.
fn driver_symbol(handle: *mut c_void, symbol: &CStr) -> Result<*mut c_void> {
    // SAFETY: `handle` is a live handle from dlopen and `symbol` a NUL-terminated name.
    let address = unsafe { libc::dlsym(handle, symbol.as_ptr()) };
    if address.is_null() {
        return Err(Error::new(format!(
            "the NVIDIA driver library {DRIVER_LIB} has no {}: {}",
            symbol.to_string_lossy(),
            dl_error()
        )));
    }
    Ok(address)
}

/// How many CUDA devices the driver sees; an error saying why when there is no driver
/// or no device.
pub fn driver_device_count() -> Result<u32> {
    let name = CString::new(DRIVER_LIB).map_err(|_| Error::new("bad driver library name"))?;
    // SAFETY: `name` is NUL-terminated and outlives the call; libcuda.so.1 is the
    // system's NVIDIA driver library, loaded for the process's life.
    let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
    if handle.is_null() {
        return Err(Error::new(format!(
            "no usable NVIDIA driver on this machine: {DRIVER_LIB} could not be loaded ({}); GPU models need an NVIDIA GPU with its driver (CUDA 13, driver 580 or newer)",
            dl_error()
        )));
    }
    // SAFETY: the symbols are the driver API's cuInit and cuDeviceGetCount, whose C
    // signatures are the types they are cast to.
    let (init, count_fn) = unsafe {
        (
            std::mem::transmute::<*mut c_void, CuInit>(driver_symbol(handle, c"cuInit")?),
            std::mem::transmute::<*mut c_void, CuDeviceGetCount>(driver_symbol(
                handle,
                c"cuDeviceGetCount",
            )?),
        )
    };
    // SAFETY: cuInit takes flags (must be 0) and may be called more than once.
    let status = unsafe { init(0) };
    if status != 0 {
        return Err(Error::new(format!(
            "the NVIDIA driver found no usable GPU: cuInit failed with CUDA error {status} ({})",
            driver_error_text(handle, status)
        )));
    }
    let mut count: c_int = 0;
    // SAFETY: `count` is a valid out-pointer for the call.
    let status = unsafe { count_fn(&mut count) };
    if status != 0 {
        return Err(Error::new(format!(
            "could not count the GPUs: cuDeviceGetCount failed with CUDA error {status} ({})",
            driver_error_text(handle, status)
        )));
    }
    match u32::try_from(count) {
        Ok(0) | Err(_) => Err(Error::new("the NVIDIA driver sees no GPU on this machine")),
        Ok(count) => Ok(count),
    }
}

/// The driver's text for a CUresult, when it has one.
fn driver_error_text(handle: *mut c_void, code: c_int) -> String {
    let Ok(address) = driver_symbol(handle, c"cuGetErrorString") else {
        return "no description".to_owned();
    };
    // SAFETY: cuGetErrorString's C signature is CuGetErrorString.
    let describe = unsafe { std::mem::transmute::<*mut c_void, CuGetErrorString>(address) };
    let mut text: *const c_char = ptr::null();
    // SAFETY: `text` is a valid out-pointer; on success it points at a static string.
    let status = unsafe { describe(code, &mut text) };
    if status != 0 || text.is_null() {
        return "no description".to_owned();
    }
    // SAFETY: a NUL-terminated static string of the driver (see above).
    unsafe { CStr::from_ptr(text) }
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_device_is_named_with_who_sees_the_gpus() {
        assert!(check_device(0, 1, "the NVIDIA driver").is_ok());
        let err = check_device(1, 1, "the NVIDIA driver").expect_err("GPU:1 of 1");
        assert_eq!(
            err.message(),
            "device GPU:1 does not exist: the NVIDIA driver sees 1 GPU (GPU:0 to GPU:0)"
        );
        let err = check_device(2, 2, "libtorch").expect_err("GPU:2 of 2");
        assert_eq!(
            err.message(),
            "device GPU:2 does not exist: libtorch sees 2 GPUs (GPU:0 to GPU:1)"
        );
    }

    #[test]
    fn a_library_that_cannot_load_is_named() {
        let path = Path::new("/nonexistent/libnothing.so");
        let err = open_global(path, "the CUDA library").expect_err("no such file");
        assert!(
            err.message()
                .starts_with("could not load the CUDA library /nonexistent/libnothing.so: "),
            "{}",
            err.message()
        );
    }

    #[test]
    fn the_driver_reports_devices_or_why_not() {
        match driver_device_count() {
            Ok(count) => assert!(count > 0),
            Err(err) => assert!(err.message().contains("NVIDIA driver"), "{}", err.message()),
        }
    }
}
