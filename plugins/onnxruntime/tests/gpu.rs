//! Models asked for on a GPU, in process. With the CPU runtime (the one the tests use)
//! no GPU model can load: on a machine without the NVIDIA driver the driver check says
//! so; on one with a GPU, the folder check says the CUDA provider is missing. Either
//! way the error names the device and the model is never placed on the CPU instead.
//! Real GPU runs are in tests/tests/gpu.rs (scripts/test-gpu).

mod common;

use common::{backend, model_bytes};
use redisai_onnxruntime::cuda;

#[test]
fn a_gpu_model_without_a_usable_gpu_is_a_clear_error() {
    let backend = backend();
    let blob = model_bytes("add.onnx");
    for device in [0, 3] {
        let err = match backend.load_on(&blob, Some(device)) {
            Ok(_) => panic!("GPU:{device} cannot load with the CPU runtime"),
            Err(err) => err.to_string(),
        };
        eprintln!("GPU:{device}: {err}");
        assert!(
            err.starts_with(&format!("cannot run the model on GPU:{device}: ")),
            "{err}"
        );
        let driver = cuda::driver_device_count();
        let why = match &driver {
            Err(_) => "NVIDIA driver",
            Ok(count) if device >= *count => "does not exist",
            Ok(_) => "libonnxruntime_providers_cuda.so",
        };
        assert!(err.contains(why), "{why}: {err}");
    }
    // The backend is unharmed: CPU models still load.
    assert!(backend.load(&blob).is_ok());
}
