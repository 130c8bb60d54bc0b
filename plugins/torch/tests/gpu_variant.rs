//! The devices of the build under test: the CPU build (default features) refuses GPUs;
//! the GPU variant (`--features cuda`) declares them and, where libtorch's CUDA backend
//! or a GPU is missing (as here: the test binary's folder has no torch/lib/libtorch_cuda.so,
//! and CI has no GPU), refuses a model or script on a GPU with an error that names the
//! device and the reason, and keeps serving the CPU. Needs no GPU and no CUDA wheel.

mod common;

use common::{load_on, load_script_on, model_bytes, plugin, run, Tensor, CPU, GPU0};
use redisai_plugin_api::abi::RaiDeviceKind;

const SCRIPT: &str = "def twice(tensors: List[Tensor], keys: List[str], args: List[str]):\n    return tensors[0] * 2\n";

#[test]
fn the_device_mask_matches_the_build() {
    let mask = plugin().api().device_mask;
    assert_ne!(mask & (1 << RaiDeviceKind::Cpu as u32), 0, "CPU");
    assert_eq!(
        mask & (1 << RaiDeviceKind::Gpu as u32) != 0,
        gpu_build(),
        "GPU declared only by the GPU variant (mask {mask:#b})"
    );
}

fn gpu_build() -> bool {
    cfg!(feature = "cuda")
}

fn check_refusal(text: &str) {
    eprintln!("refusal: {text}");
    if gpu_build() {
        // Here the folder lacks libtorch_cuda.so; with it but without a driver the
        // reason is the driver's (tests/tests/torch_gpu.rs checks that with the bundle).
        assert!(
            text.contains("GPU:0") || text.contains("libtorch_cuda.so"),
            "names the device or what is missing: {text}"
        );
        assert!(
            text.contains("libtorch_cuda.so") || text.contains("NVIDIA"),
            "says why: {text}"
        );
    } else {
        assert!(text.contains("CPU only"), "{text}");
    }
}

#[test]
fn a_gpu_model_or_script_is_refused_with_the_reason_where_there_is_no_gpu() {
    match load_on(&model_bytes("add.pt"), GPU0) {
        Ok(_model) => {
            // Only on a machine with a GPU and libtorch's CUDA backend beside the test.
            assert!(gpu_build(), "the CPU build loaded a GPU model or script");
        }
        Err(text) => check_refusal(&text),
    }
    match load_script_on(GPU0, SCRIPT, &["twice"]) {
        Ok(_script) => {
            assert!(gpu_build(), "the CPU build loaded a GPU model or script");
        }
        Err(text) => check_refusal(&text),
    }
    // The CPU still works after a refusal.
    let model = load_on(&model_bytes("add.pt"), CPU).expect("CPU model");
    let a = Tensor::f32(&[2], &[1.0, 2.0]);
    let b = Tensor::f32(&[2], &[10.0, 20.0]);
    let outputs = run(&model, &[a, b], 1).expect("run on the CPU");
    assert_eq!(outputs[0].to_f32(), vec![11.0, 22.0]);
}

#[test]
fn a_missing_device_is_named() {
    assert!(redisai_torch::cuda::check_device(0, 1).is_ok());
    let err = redisai_torch::cuda::check_device(2, 2).expect_err("GPU:2 of 2");
    assert!(
        err.to_string().contains("GPU:2 does not exist")
            && err.to_string().contains("GPU:0 to GPU:1"),
        "{}",
        err
    );
}

#[test]
fn a_folder_without_libtorch_cuda_is_named() {
    let dir = std::env::temp_dir().join(format!("redisai-torch-cuda-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let err = redisai_torch::cuda::prepare(&dir, 0).expect_err("no libtorch_cuda.so");
    assert!(
        err.to_string()
            .contains("the GPU build of the TORCH backend is incomplete")
            && err
                .to_string()
                .contains("torch/lib/libtorch_cuda.so is missing"),
        "{}",
        err
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_driver_reports_devices_or_why_not() {
    match redisai_torch::cuda::driver_device_count() {
        Ok(count) => assert!(count > 0),
        Err(err) => assert!(err.to_string().contains("NVIDIA driver"), "{}", err),
    }
}

#[test]
fn libtorch_sees_no_cuda_device_without_its_cuda_backend() {
    // The test binary loads libtorch_cpu only: its CUDA hooks are the stubs.
    assert_eq!(redisai_torch::ffi::cuda_device_count(), 0);
    assert!(!redisai_torch::ffi::cuda_backend_registered());
}
