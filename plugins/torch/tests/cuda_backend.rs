//! libtorch's CUDA backend must be loaded before libtorch first asks for its CUDA hooks:
//! libtorch_cpu picks them once, and the stubs picked before libtorch_cuda.so is loaded
//! keep CUDA off for the process (why the GPU variant loads it at init). Needs the GPU
//! variant's runtime folder (scripts/fetch-libtorch-gpu, ~2.3 GB of wheels), named by
//! $REDISAI_TORCH_GPU_RUNTIME, so it is ignored by default; scripts/test-gpu runs it,
//! with or without a GPU (`--ignored --exact the_cuda_backend_registers_only_when_loaded_first`).
//! Each order runs in a child process (the choice is per process); so do two runs with a
//! stand-in NVIDIA driver (a tiny `libcuda.so.1` built here, first on LD_LIBRARY_PATH)
//! whose `cuInit` fails with CUDA_ERROR_NO_DEVICE, or succeeds with one device that
//! libtorch's CUDA runtime cannot use: both are clear errors, not aborts.

use std::path::PathBuf;
use std::process::Command;

use redisai_plugin_testkit::fake_cuda;
use redisai_torch::{cuda, ffi};

fn runtime_dir() -> PathBuf {
    let dir = std::env::var_os("REDISAI_TORCH_GPU_RUNTIME").map(PathBuf::from);
    match dir {
        Some(dir) if dir.join(cuda::TORCH_CUDA_LIB).is_file() => dir,
        other => panic!(
            "REDISAI_TORCH_GPU_RUNTIME ({other:?}) must name the folder scripts/fetch-libtorch-gpu prints"
        ),
    }
}

fn build_fake_driver() -> PathBuf {
    fake_cuda::build("torch", "CUDA_BACKEND_ORDER", "fake-one-device")
}

fn run_child(order: &str, driver: Option<&PathBuf>) -> String {
    let exe = std::env::current_exe().expect("this test binary");
    let mut command = Command::new(exe);
    command
        .args(["--ignored", "--exact", "one_order", "--nocapture"])
        .env("CUDA_BACKEND_ORDER", order);
    if let Some(dir) = driver {
        command.env("LD_LIBRARY_PATH", dir);
    }
    let output = command.output().expect("child");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{order}: {text}");
    assert!(text.contains("1 passed"), "{order}: the child ran: {text}");
    text
}

#[test]
#[ignore = "needs the GPU variant's runtime ($REDISAI_TORCH_GPU_RUNTIME); run by scripts/test-gpu"]
fn the_cuda_backend_registers_only_when_loaded_first() {
    let _ = runtime_dir();
    eprintln!("{}", run_child("first", None));
    eprintln!("{}", run_child("late", None));
    let driver = build_fake_driver();
    eprintln!("{}", run_child("fake-no-device", Some(&driver)));
    eprintln!("{}", run_child("fake-one-device", Some(&driver)));
    let _ = std::fs::remove_dir_all(&driver);
}

#[test]
#[ignore = "run by the_cuda_backend_registers_only_when_loaded_first in a child process"]
fn one_order() {
    let dir = runtime_dir();
    let order = std::env::var("CUDA_BACKEND_ORDER").expect("run by the parent test");
    if order == "late" {
        // libtorch is asked first: it picks the stubs.
        assert_eq!(ffi::cuda_device_count(), 0);
    }
    cuda::load_backend(&dir).expect("libtorch_cuda.so loads from the runtime folder");
    let result = cuda::prepare(&dir, 0).map_err(|err| err.to_string());
    eprintln!(
        "{order}: registered {}, prepare(GPU:0) {result:?}",
        ffi::cuda_backend_registered()
    );
    if order == "late" {
        assert!(!ffi::cuda_backend_registered());
        let err = result.expect_err("CUDA stays off");
        assert!(err.contains("did not register"), "{err}");
    } else if order == "fake-no-device" {
        assert!(ffi::cuda_backend_registered());
        let err = result.expect_err("no device");
        assert!(
            err.contains("libtorch sees no CUDA device: the NVIDIA driver found no usable GPU: cuInit failed with CUDA error 100 (no CUDA-capable device is detected)"),
            "{err}"
        );
    } else if order == "fake-one-device" {
        assert!(ffi::cuda_backend_registered());
        let err = result.expect_err("a driver libtorch cannot use");
        assert!(
            err.contains("libtorch sees no CUDA device although the NVIDIA driver sees 1"),
            "{err}"
        );
    } else {
        assert!(ffi::cuda_backend_registered());
        match result {
            Ok(count) => assert!(count > 0),
            Err(err) => assert!(err.contains("NVIDIA driver"), "{err}"),
        }
    }
}
