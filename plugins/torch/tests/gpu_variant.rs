//! The devices of the build under test: the CPU build (default features) refuses GPUs;
//! the GPU variant (`--features cuda`) declares them and, where libtorch's CUDA backend
//! or a GPU is missing (as here: the test binary's folder has no torch/lib/libtorch_cuda.so,
//! and CI has no GPU), refuses a model or script on a GPU with an error that names the
//! device and the reason, and keeps serving the CPU. Needs no GPU and no CUDA wheel.

mod common;

use common::{api, free_model, free_script, load_on, load_script_on, model_bytes, run, Tensor};
use redisai_plugin_api::abi::{RaiDevice, RaiDeviceKind};

const GPU0: RaiDevice = RaiDevice {
    kind: RaiDeviceKind::Gpu,
    id: 0,
};

const SCRIPT: &str = "def twice(tensors: List[Tensor], keys: List[str], args: List[str]):\n    return tensors[0] * 2\n";

#[test]
fn the_device_mask_matches_the_build() {
    let mask = api().device_mask;
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
        Ok(model) => {
            // Only on a machine with a GPU and libtorch's CUDA backend beside the test.
            assert!(gpu_build(), "the CPU build loaded a GPU model or script");
            free_model(model);
        }
        Err(text) => check_refusal(&text),
    }
    match load_script_on(GPU0, SCRIPT, &["twice"]) {
        Ok(script) => {
            assert!(gpu_build(), "the CPU build loaded a GPU model or script");
            free_script(script);
        }
        Err(text) => check_refusal(&text),
    }
    // The CPU still works after a refusal.
    let model = load_on(&model_bytes("add.pt"), common::CPU).expect("CPU model");
    let a = Tensor::f32(&[2], &[1.0, 2.0]);
    let b = Tensor::f32(&[2], &[10.0, 20.0]);
    let outputs = run(model, &[a, b], 1).expect("run on the CPU");
    assert_eq!(outputs[0].to_f32(), vec![11.0, 22.0]);
    free_model(model);
}
