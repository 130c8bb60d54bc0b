//! Helpers shared by the integration tests: the runtime library, the test models and
//! tensors (most from redisai-plugin-testkit).
#![allow(dead_code)]

use std::path::PathBuf;

use redisai_plugin_api::sdk::OwnedTensor;
use redisai_plugin_testkit::{err, ok, runtime::RuntimeLib};
// Re-exported for the tests; each test binary uses some.
#[allow(unused_imports)]
pub use redisai_plugin_testkit::{f32s, le_bytes, values, views, Input, Settings};
use redisai_tflite::{
    TfliteBackend, TfliteModel, LITERT_VERSION, RUNTIME_LIB_ENV, RUNTIME_LIB_NAME,
};

/// Makes sure the runtime library can be found: `REDISAI_LITERT_LIB`, or else where
/// `scripts/fetch-litert` puts it by default. Fails (never skips) when neither exists.
pub fn ensure_runtime_lib() -> PathBuf {
    RuntimeLib {
        env: RUNTIME_LIB_ENV,
        cache_subdir: &format!("litert-{LITERT_VERSION}"),
        lib_name: RUNTIME_LIB_NAME,
        companions: &[],
        needs: "The TFLite backend tests need the LiteRT library",
        build_script: "scripts/build-backend-tflite",
        fetch_script: "scripts/fetch-litert",
    }
    .ensure()
}

/// A backend with default settings.
pub fn backend() -> TfliteBackend {
    backend_with(Settings::default())
}

pub fn backend_with(settings: Settings) -> TfliteBackend {
    ensure_runtime_lib();
    ok(
        TfliteBackend::new(move |key| settings.get(key)),
        "could not start the TFLite backend",
    )
}

pub fn model_bytes(name: &str) -> Vec<u8> {
    redisai_plugin_testkit::runtime::model_bytes("tflite", name)
}

pub fn load(backend: &TfliteBackend, name: &str) -> TfliteModel {
    ok(backend.load(&model_bytes(name)), &format!("loading {name}"))
}

pub fn run(
    backend: &TfliteBackend,
    model: &TfliteModel,
    inputs: &[Input],
    n: usize,
) -> Vec<OwnedTensor> {
    ok(backend.run(model, 0, &views(inputs), n), "run failed")
}

pub fn run_err(backend: &TfliteBackend, model: &TfliteModel, inputs: &[Input], n: usize) -> String {
    err(
        backend.run(model, 0, &views(inputs), n),
        "the run should have failed",
    )
}
