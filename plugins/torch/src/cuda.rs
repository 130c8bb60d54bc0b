//! libtorch's CUDA backend, for models and scripts stored on `GPU:n`.
//!
//! Used by the GPU variant (`redisai_torch_gpu`, built with the `cuda` feature); compiled
//! in every build so that its checks are tested on machines without a GPU.
//!
//! # Loading libtorch's CUDA backend
//! The plugin links `libtorch_cpu.so` and `libc10.so` only. libtorch's CUDA backend lives
//! in `libtorch_cuda.so`, which registers itself with libtorch_cpu from its static
//! initialisers; nothing in the plugin names one of its symbols, so a link with the
//! default `--as-needed` would drop it. Instead, at init (before libtorch is asked
//! anything: libtorch_cpu picks its CUDA hooks once, on first use, and a stub picked
//! then would keep CUDA off for good), the GPU variant opens `torch/lib/libtorch_cuda.so`
//! from its own folder (found with `dladdr`) with `RTLD_GLOBAL`; if that fails it logs a
//! warning, serves the CPU, and a GPU model or script gets the reason. Its dependencies (libc10_cuda, cuDNN, cuBLAS, NCCL, ...)
//! are found through its own `$ORIGIN/../../nvidia/...` rpaths, the wheels' layout, which
//! the backend folder keeps: the folder is relocatable. Only the NVIDIA driver
//! (`libcuda.so.1`) comes from the system.
//!
//! # Without a GPU
//! libtorch's `torch::cuda::device_count()` is 0 without a driver (it does not abort);
//! the driver is then asked why (`cuInit`, `cuDeviceGetCount`), so that the error of the
//! model load names the device and the reason. Nothing here aborts and the server keeps
//! running.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::{Mutex, PoisonError};

use redisai_plugin_api::sdk::{Error, Result};

use crate::ffi;

/// The NVIDIA driver's library, from the system (never shipped in the backend folder).
pub const DRIVER_LIB: &str = "libcuda.so.1";

/// libtorch's CUDA backend, relative to the plugin's folder.
pub const TORCH_CUDA_LIB: &str = "torch/lib/libtorch_cuda.so";

/// Whether `libtorch_cuda.so` is loaded (it stays loaded for the process's life). A
/// failure is not remembered: a later load tries again.
static LOADED: Mutex<bool> = Mutex::new(false);

/// Makes sure `GPU:device_id` can be used: libtorch's CUDA backend is loaded from `dir`
/// (the plugin's folder) and libtorch sees that device. Returns libtorch's device count.
pub fn prepare(dir: &Path, device_id: u32) -> Result<u32> {
    load_backend(dir)?;
    if !ffi::cuda_backend_registered() {
        return Err(Error::new(
            "libtorch's CUDA backend did not register with libtorch (libtorch_cuda.so was loaded after libtorch picked its CUDA hooks)",
        ));
    }
    let count = ffi::cuda_device_count();
    if count == 0 {
        return Err(Error::new(match driver_device_count() {
            Err(err) => format!("libtorch sees no CUDA device: {}", err.0),
            Ok(seen) => format!(
                "libtorch sees no CUDA device although the NVIDIA driver sees {seen} (a driver older than CUDA 13 needs, 580 or newer, or a broken CUDA install?)"
            ),
        }));
    }
    check_device(device_id, count)?;
    Ok(count)
}

/// The device exists among the `count` libtorch sees.
pub fn check_device(device_id: u32, count: u32) -> Result<()> {
    if device_id >= count {
        return Err(Error::new(format!(
            "device GPU:{device_id} does not exist: libtorch sees {count} GPU{} (GPU:0 to GPU:{})",
            if count == 1 { "" } else { "s" },
            count.saturating_sub(1)
        )));
    }
    Ok(())
}

/// Loads libtorch's CUDA backend from `dir` (the plugin's folder) unless it is loaded.
/// The GPU variant calls this first thing at init: libtorch_cpu picks its CUDA hooks
/// once, the first time anything asks for them, so the backend must be registered
/// before any model, script or device query (else CUDA stays off for the process).
pub fn load_backend(dir: &Path) -> Result<()> {
    let mut loaded = LOADED.lock().unwrap_or_else(PoisonError::into_inner);
    if !*loaded {
        load_torch_cuda(dir)?;
        *loaded = true;
    }
    Ok(())
}

/// Opens `dir/torch/lib/libtorch_cuda.so` for the rest of the process's life.
pub fn load_torch_cuda(dir: &Path) -> Result<()> {
    let path = dir.join(TORCH_CUDA_LIB);
    if !path.is_file() {
        return Err(Error::new(format!(
            "the GPU build of the TORCH backend is incomplete: {} is missing (scripts/build-backend-torch-gpu lays it out)",
            path.display()
        )));
    }
    open_global(&path).map(|_| ())
}

/// The folder of the object this code is in (the plugin's `.so`), found with `dladdr`.
pub fn own_dir() -> Result<PathBuf> {
    let mut info = libc::Dl_info {
        dli_fname: ptr::null(),
        dli_fbase: ptr::null_mut(),
        dli_sname: ptr::null(),
        dli_saddr: ptr::null_mut(),
    };
    let address = own_dir as *const c_void;
    // SAFETY: dladdr only inspects the address (a function of this object) and writes
    // `info`, a valid out-pointer.
    let found = unsafe { libc::dladdr(address, &mut info) };
    if found == 0 || info.dli_fname.is_null() {
        return Err(Error::new(
            "could not find the TORCH plugin's own folder (dladdr)",
        ));
    }
    // SAFETY: dli_fname is a NUL-terminated path owned by the loader, copied at once.
    let file = unsafe { CStr::from_ptr(info.dli_fname) };
    let path = PathBuf::from(std::ffi::OsStr::from_bytes(file.to_bytes()));
    let path = std::fs::canonicalize(&path).unwrap_or(path);
    Ok(path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".")))
}

/// The last `dlerror` text, or a stand-in.
fn dl_error() -> String {
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

/// Opens a library for the rest of the process's life (the handle is never closed).
fn open_global(path: &Path) -> Result<*mut c_void> {
    let name = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::new(format!("{} has a NUL byte", path.display())))?;
    // SAFETY: `name` is a NUL-terminated path that outlives the call. Loading runs the
    // library's initialisers: libtorch_cuda's register its CUDA backend, which is the point.
    let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
    if handle.is_null() {
        return Err(Error::new(format!(
            "could not load libtorch's CUDA backend {}: {}",
            path.display(),
            dl_error()
        )));
    }
    Ok(handle)
}

type CuInit = unsafe extern "C" fn(flags: c_uint) -> c_int;
type CuDeviceGetCount = unsafe extern "C" fn(count: *mut c_int) -> c_int;
type CuGetErrorString = unsafe extern "C" fn(error: c_int, text: *mut *const c_char) -> c_int;

/// Looks up `symbol` in `handle`.
fn symbol(handle: *mut c_void, symbol: &CStr) -> Result<*mut c_void> {
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
            std::mem::transmute::<*mut c_void, CuInit>(symbol(handle, c"cuInit")?),
            std::mem::transmute::<*mut c_void, CuDeviceGetCount>(symbol(
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
    let Ok(address) = symbol(handle, c"cuGetErrorString") else {
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
