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
//! the driver is then asked why (`cuInit`, `cuDeviceGetCount`, through
//! `redisai_plugin_api::cuda_driver`), so that the error of the
//! model load names the device and the reason. Nothing here aborts and the server keeps
//! running.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use redisai_plugin_api::cuda_driver;
/// The NVIDIA driver's device count and library, shared with the other GPU variants.
pub use redisai_plugin_api::cuda_driver::{driver_device_count, DRIVER_LIB};
use redisai_plugin_api::sdk::{self, Error, Result};

use crate::ffi;

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
            Err(err) => format!("libtorch sees no CUDA device: {err}"),
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
    cuda_driver::check_device(device_id, count, "libtorch")
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
    cuda_driver::open_global(&path, "libtorch's CUDA backend")
}

/// The folder of the object this code is in (the plugin's `.so`), found with `dladdr`.
pub fn own_dir() -> Result<PathBuf> {
    let path = sdk::own_object_path()
        .ok_or_else(|| Error::new("could not find the TORCH plugin's own folder (dladdr)"))?;
    let path = std::fs::canonicalize(&path).unwrap_or(path);
    Ok(path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".")))
}
