//! The GPU checks against a stand-in NVIDIA driver: a tiny `libcuda.so.1` built here
//! whose `cuInit` fails with CUDA_ERROR_NO_DEVICE (100) or succeeds with one device.
//! The dynamic loader reads LD_LIBRARY_PATH once, at start, so each case runs this test
//! binary again, in a child process, with the stand-in first on the path.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{backend, model_bytes};
use redisai_onnxruntime::cuda;
use redisai_plugin_testkit::fake_cuda;

fn build_fake_driver() -> PathBuf {
    fake_cuda::build("onnx", "FAKE_CUDA_MODE", "one-device")
}

fn run_child(driver_dir: &Path, mode: &str) {
    let exe = std::env::current_exe().expect("this test binary");
    let output = Command::new(exe)
        .args([
            "--ignored",
            "--exact",
            "with_the_fake_driver",
            "--nocapture",
        ])
        .env("LD_LIBRARY_PATH", driver_dir)
        .env("FAKE_CUDA_MODE", mode)
        .output()
        .expect("child");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!("{mode}: {text}");
    assert!(output.status.success(), "{mode}: {text}");
    assert!(
        text.contains("1 passed"),
        "{mode}: the child ran the case: {text}"
    );
}

#[test]
fn driver_failures_are_clear_errors() {
    let dir = build_fake_driver();
    run_child(&dir, "no-device");
    run_child(&dir, "one-device");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[ignore = "run by driver_failures_are_clear_errors in a child process with a stand-in libcuda.so.1"]
fn with_the_fake_driver() {
    let mode = std::env::var("FAKE_CUDA_MODE").expect("run by driver_failures_are_clear_errors");
    let backend = backend();
    let blob = model_bytes("add.onnx");
    let error = |device: u32| match backend.load_on(&blob, Some(device)) {
        Ok(_) => panic!("GPU:{device} cannot load with the CPU runtime"),
        Err(err) => {
            eprintln!("GPU:{device} ({mode}): {}", err);
            err.to_string()
        }
    };
    match mode.as_str() {
        "no-device" => {
            let err = error(0);
            assert!(
                err.contains("cannot run the model on GPU:0: the NVIDIA driver found no usable GPU: cuInit failed with CUDA error 100 (no CUDA-capable device is detected)"),
                "{err}"
            );
        }
        "one-device" => {
            assert_eq!(
                cuda::driver_device_count().map_err(|e| e.to_string()),
                Ok(1)
            );
            let err = error(1);
            assert!(
                err.contains(
                    "device GPU:1 does not exist: the NVIDIA driver sees 1 GPU (GPU:0 to GPU:0)"
                ),
                "{err}"
            );
            // GPU:0 exists; the CPU runtime's folder has no CUDA provider.
            let err = error(0);
            assert!(
                err.contains("the GPU build of the ONNX backend is incomplete: libonnxruntime_providers_shared.so, libonnxruntime_providers_cuda.so"),
                "{err}"
            );
        }
        other => panic!("unknown mode {other}"),
    }
    assert!(backend.load(&blob).is_ok(), "CPU models still load");
}
