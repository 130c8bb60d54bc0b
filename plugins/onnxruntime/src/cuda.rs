//! ONNX Runtime's CUDA execution provider, for models stored on `GPU:n`.
//!
//! Used by the GPU variant (`redisai_onnxruntime_gpu`, built with the `cuda` feature);
//! compiled in every build so that its checks are tested on machines without a GPU.
//!
//! # Finding the CUDA libraries
//! The backend folder holds, beside `libonnxruntime.so.1.31.1`, ONNX Runtime's
//! `libonnxruntime_providers_cuda.so` and `libonnxruntime_providers_shared.so` (ONNX Runtime
//! opens them from its own folder) and the CUDA libraries they need, from NVIDIA's PyPI
//! wheels ([`CUDA_LIBS`]). The provider library has no rpath, so before the first GPU
//! model the plugin opens those libraries by absolute path, in dependency order, with
//! `RTLD_GLOBAL`: the dynamic loader then satisfies the provider's `NEEDED` entries (and
//! ONNX Runtime's own `dlopen` of cuDNN and cuFFT) with the copies already loaded, found by
//! their SONAME, and the folder stays relocatable. Only the NVIDIA driver
//! (`libcuda.so.1`) comes from the system.
//!
//! # Without a GPU
//! Before any of that, the driver is asked how many devices there are (`cuInit`,
//! `cuDeviceGetCount`, through `redisai_plugin_api::cuda_driver`), so that a machine without the driver, without a device, or with
//! fewer devices than the model asks for gets an error that says so, instead of ONNX
//! Runtime's failure to load its provider. Nothing here aborts: every failure is an error
//! of the model load, and the server keeps running.
//!
//! # Data movement
//! Inputs are given to ONNX Runtime as CPU tensors and outputs are asked for in CPU
//! memory (no I/O binding): ONNX Runtime copies inputs to the device and outputs back
//! itself, as it does for every session whose inputs live elsewhere than its provider.

use std::ffi::{c_char, CString};
use std::path::Path;
use std::ptr;
use std::sync::{Mutex, PoisonError};

use redisai_plugin_api::cuda_driver;
/// The NVIDIA driver's device count and library, shared with the other GPU variants.
pub use redisai_plugin_api::cuda_driver::{driver_device_count, DRIVER_LIB};
use redisai_plugin_api::sdk::{Error, Result};

/// The CUDA libraries shipped beside the runtime, in the order they are opened (each
/// after the ones it needs). `required` ones must be there; the others are loaded when
/// present (ONNX Runtime runs without cuDNN or cuFFT but then refuses the operators
/// that need them).
pub const CUDA_LIBS: &[CudaLib] = &[
    CudaLib::required("libcudart.so.13"),
    CudaLib::required("libcublasLt.so.13"),
    CudaLib::required("libcublas.so.13"),
    CudaLib::required("libcurand.so.10"),
    CudaLib::optional("libcufft.so.12"),
    CudaLib::optional("libnvrtc-builtins.so.13.0"),
    CudaLib::optional("libnvrtc.so.13"),
    CudaLib::optional("libcudnn_graph.so.9"),
    CudaLib::optional("libcudnn_engines_precompiled.so.9"),
    CudaLib::optional("libcudnn_engines_runtime_compiled.so.9"),
    CudaLib::optional("libcudnn_heuristic.so.9"),
    CudaLib::optional("libcudnn_ops.so.9"),
    CudaLib::optional("libcudnn_cnn.so.9"),
    CudaLib::optional("libcudnn_adv.so.9"),
    CudaLib::optional("libcudnn.so.9"),
];

/// ONNX Runtime's provider libraries, which must sit beside the runtime library.
pub const PROVIDER_LIBS: &[&str] = &[
    "libonnxruntime_providers_shared.so",
    "libonnxruntime_providers_cuda.so",
];

#[derive(Debug, Clone, Copy)]
pub struct CudaLib {
    pub name: &'static str,
    pub required: bool,
}

impl CudaLib {
    const fn required(name: &'static str) -> CudaLib {
        CudaLib {
            name,
            required: true,
        }
    }

    const fn optional(name: &'static str) -> CudaLib {
        CudaLib {
            name,
            required: false,
        }
    }
}

/// Devices the driver reported, once the libraries are loaded. A failure is not
/// remembered: a later model load tries again.
static READY: Mutex<Option<u32>> = Mutex::new(None);

/// Makes sure `GPU:device_id` can be used: the driver is there, sees that device, and
/// the CUDA libraries in `dir` are loaded. Returns the number of devices.
pub fn prepare(dir: &Path, device_id: u32) -> Result<u32> {
    let mut ready = READY.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(count) = *ready {
        check_device(device_id, count)?;
        return Ok(count);
    }
    let count = driver_device_count()?;
    check_device(device_id, count)?;
    check_folder(dir)?;
    for lib in CUDA_LIBS {
        let path = dir.join(lib.name);
        if path.is_file() {
            cuda_driver::open_global(&path, "the CUDA library")?;
        }
    }
    *ready = Some(count);
    Ok(count)
}

/// The device exists among the `count` the driver sees.
pub fn check_device(device_id: u32, count: u32) -> Result<()> {
    cuda_driver::check_device(device_id, count, "the NVIDIA driver")
}

/// The libraries the GPU variant needs are in `dir`; the error names those missing.
pub fn check_folder(dir: &Path) -> Result<()> {
    let missing: Vec<&str> = PROVIDER_LIBS
        .iter()
        .copied()
        .chain(CUDA_LIBS.iter().filter(|l| l.required).map(|l| l.name))
        .filter(|name| !dir.join(name).is_file())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::new(format!(
        "the GPU build of the ONNX backend is incomplete: {} missing from {} (scripts/build-gpu lays them out)",
        missing.join(", "),
        dir.display()
    )))
}

/// Options of the CUDA execution provider for a session on `GPU:device_id`, as the
/// key/value pairs of `UpdateCUDAProviderOptions`.
pub fn provider_options(
    device_id: u32,
    memory_limit_bytes: Option<u64>,
) -> Vec<(CString, CString)> {
    let mut options = vec![(c"device_id".to_owned(), number(u64::from(device_id)))];
    if let Some(limit) = memory_limit_bytes {
        // BACKEND_MEMORY_LIMIT bounds the GPU arena as well as the CPU one.
        options.push((c"gpu_mem_limit".to_owned(), number(limit)));
    }
    options
}

fn number(value: u64) -> CString {
    // A decimal number has no NUL byte.
    CString::new(value.to_string()).unwrap_or_default()
}

/// Checks a raw ONNX Runtime status.
fn check(status: ort::sys::OrtStatusPtr, what: &str) -> Result<()> {
    // SAFETY: `status` was just returned by an ONNX Runtime API call; this takes
    // ownership of it (it is released when the ort error is dropped).
    unsafe { ort::Error::result_from_status(status) }
        .map_err(|err| Error::new(format!("{what}: {err}")))
}

/// Appends the CUDA execution provider for `GPU:device_id` to a session's options.
/// ONNX Runtime loads its provider library here, so this is where a broken CUDA
/// install shows.
pub fn append_provider(
    builder: &mut ort::session::builder::SessionBuilder,
    device_id: u32,
    memory_limit_bytes: Option<u64>,
) -> Result<()> {
    use ort::AsPointer;
    let api = ort::api();
    let mut options: *mut ort::sys::OrtCUDAProviderOptionsV2 = ptr::null_mut();
    // SAFETY: `options` is a valid out-pointer.
    let status = unsafe { (api.CreateCUDAProviderOptions)(&mut options) };
    check(status, "could not create the CUDA provider options")?;
    let pairs = provider_options(device_id, memory_limit_bytes);
    let keys: Vec<*const c_char> = pairs.iter().map(|(k, _)| k.as_ptr()).collect();
    let values: Vec<*const c_char> = pairs.iter().map(|(_, v)| v.as_ptr()).collect();
    // SAFETY: `options` was created above; `keys` and `values` hold `pairs.len()`
    // NUL-terminated strings that outlive the call (ONNX Runtime copies them).
    let status = unsafe {
        (api.UpdateCUDAProviderOptions)(options, keys.as_ptr(), values.as_ptr(), pairs.len())
    };
    let result = check(
        status,
        "ONNX Runtime could not load or configure its CUDA execution provider",
    )
    .and_then(|()| {
        // SAFETY: the builder's session options and `options` are live for the call;
        // ONNX Runtime copies the options.
        let status = unsafe {
            (api.SessionOptionsAppendExecutionProvider_CUDA_V2)(builder.ptr_mut(), options)
        };
        check(
            status,
            "ONNX Runtime could not enable its CUDA execution provider",
        )
    });
    // SAFETY: created above, released once, not used afterwards.
    unsafe { (api.ReleaseCUDAProviderOptions)(options) };
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_name_the_device() {
        let options = provider_options(3, None);
        assert_eq!(options, vec![(c"device_id".to_owned(), c"3".to_owned())]);
        let limited = provider_options(0, Some(2_000_000));
        assert_eq!(
            limited[1],
            (c"gpu_mem_limit".to_owned(), c"2000000".to_owned())
        );
    }

    #[test]
    fn a_missing_device_is_named() {
        assert!(check_device(0, 1).is_ok());
        let err = check_device(2, 2).expect_err("GPU:2 of 2");
        assert!(
            err.message().contains("GPU:2 does not exist")
                && err.message().contains("GPU:0 to GPU:1"),
            "{}",
            err.message()
        );
    }

    #[test]
    fn an_incomplete_folder_names_what_is_missing() {
        let dir = std::env::temp_dir().join(format!("redisai-cuda-folder-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("libcudart.so.13"), b"").expect("file");
        let err = check_folder(&dir).expect_err("incomplete");
        assert!(
            err.message().contains("libonnxruntime_providers_cuda.so")
                && err.message().contains("libcublas.so.13")
                && !err.message().contains("libcudart.so.13")
                && !err.message().contains("libcudnn"),
            "{}",
            err.message()
        );
        for name in PROVIDER_LIBS
            .iter()
            .copied()
            .chain(CUDA_LIBS.iter().map(|l| l.name))
        {
            std::fs::write(dir.join(name), b"").expect("file");
        }
        assert!(check_folder(&dir).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_driver_reports_devices_or_why_not() {
        match driver_device_count() {
            Ok(count) => assert!(count > 0),
            Err(err) => assert!(
                err.message().contains("NVIDIA driver") || err.message().contains("GPU"),
                "{}",
                err.message()
            ),
        }
    }
}
