//! Helpers shared by the integration tests: the runtime library, the test models, tensors
//! (most from redisai-plugin-testkit) and a tiny ONNX writer for models the committed set
//! does not have.
#![allow(dead_code)]

pub mod hostile;
pub mod onnx;

use std::path::PathBuf;

use redisai_onnxruntime::{OnnxBackend, OnnxModel, RUNTIME_LIB_ENV, RUNTIME_LIB_NAME};
use redisai_plugin_api::sdk::OwnedTensor;
// Re-exported for the tests; each test binary uses some.
use redisai_plugin_testkit::{err, ok, runtime::RuntimeLib};
#[allow(unused_imports)]
pub use redisai_plugin_testkit::{f32s, i64s, le_bytes, views, Input, Settings};

/// Makes sure the runtime library can be found: `REDISAI_ONNXRUNTIME_LIB`, or else where
/// `scripts/fetch-onnxruntime` puts it by default. Fails (never skips) when neither exists.
pub fn ensure_runtime_lib() -> PathBuf {
    RuntimeLib {
        env: RUNTIME_LIB_ENV,
        cache_subdir: "onnxruntime-1.32.0",
        lib_name: RUNTIME_LIB_NAME,
        companions: &[],
        needs: "The ONNX backend tests need the ONNX Runtime library",
        build_script: "scripts/build-backend-onnx",
        fetch_script: "scripts/fetch-onnxruntime",
    }
    .ensure()
}

/// A backend with default settings.
pub fn backend() -> OnnxBackend {
    backend_with(Settings::default())
}

pub fn backend_with(settings: Settings) -> OnnxBackend {
    ensure_runtime_lib();
    ok(
        OnnxBackend::new(move |key| settings.get(key)),
        "could not start the ONNX backend",
    )
}

pub fn model_bytes(name: &str) -> Vec<u8> {
    redisai_plugin_testkit::runtime::model_bytes("onnx", name)
}

pub fn load(backend: &OnnxBackend, name: &str) -> OnnxModel {
    ok(backend.load(&model_bytes(name)), &format!("loading {name}"))
}

pub fn run(
    backend: &OnnxBackend,
    model: &OnnxModel,
    inputs: &[Input],
    n: usize,
) -> Vec<OwnedTensor> {
    ok(backend.run(model, 0, &views(inputs), n), "run failed")
}

pub fn run_err(backend: &OnnxBackend, model: &OnnxModel, inputs: &[Input], n: usize) -> String {
    err(
        backend.run(model, 0, &views(inputs), n),
        "the run should have failed",
    )
}
