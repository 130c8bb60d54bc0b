//! A stand-in NVIDIA driver for the GPU variants' tests: a tiny `libcuda.so.1`, built with
//! the system's C compiler, whose `cuInit` fails with CUDA_ERROR_NO_DEVICE (100) unless an
//! environment variable the test names holds a value it names: then it succeeds and
//! reports one device. The dynamic loader reads LD_LIBRARY_PATH once, at start, so a test
//! runs each case in a child process with the stand-in's folder first on that path.

use std::path::PathBuf;
use std::process::Command;

/// The driver's source; `MODE_VAR` and `ONE_DEVICE` are replaced.
const SOURCE: &str = r#"
#include <stdlib.h>
#include <string.h>
int cuInit(unsigned flags) {
    const char *mode = getenv("MODE_VAR");
    return (flags == 0 && mode && strcmp(mode, "ONE_DEVICE") == 0) ? 0 : 100;
}
int cuDeviceGetCount(int *count) { *count = 1; return 0; }
int cuGetErrorString(int error, const char **text) {
    *text = error == 100 ? "no CUDA-capable device is detected" : "unknown error";
    return 0;
}
"#;

/// Builds the stand-in (one device when `$mode_var` is `one_device`, none otherwise) in
/// a fresh folder under the temporary directory, named by `tag` and this process; the
/// folder (holding `libcuda.so.1`).
pub fn build(tag: &str, mode_var: &str, one_device: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("redisai-{tag}-fake-cuda-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let source = SOURCE
        .replace("MODE_VAR", mode_var)
        .replace("ONE_DEVICE", one_device);
    std::fs::write(dir.join("fake_cuda.c"), source).expect("source");
    let built = Command::new("cc")
        .args([
            "-shared",
            "-fPIC",
            "-Wl,-soname,libcuda.so.1",
            "-o",
            "libcuda.so.1",
            "fake_cuda.c",
        ])
        .current_dir(&dir)
        .output()
        .expect("cc");
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    dir
}
