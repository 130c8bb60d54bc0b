//! Helpers shared by the integration tests: the TensorFlow libraries, the test models and
//! tensors (most from redisai-plugin-testkit).
#![allow(dead_code)]

use std::path::PathBuf;

use redisai_plugin_api::sdk::OwnedTensor;
use redisai_plugin_testkit::{err, ok, runtime::RuntimeLib};
// Re-exported for the tests; each test binary uses some.
#[allow(unused_imports)]
pub use redisai_plugin_testkit::{f32s, le_bytes, values, views, Input, Settings};
use redisai_tensorflow::{
    TfBackend, TfModel, FRAMEWORK_LIB_NAME, RUNTIME_LIB_ENV, RUNTIME_LIB_NAME, TENSORFLOW_VERSION,
};

/// Makes sure the TensorFlow libraries can be found: `REDISAI_TENSORFLOW_LIB`, or else where
/// `scripts/fetch-tensorflow` puts them by default. Fails (never skips) when they are missing.
pub fn ensure_runtime_lib() -> PathBuf {
    RuntimeLib {
        env: RUNTIME_LIB_ENV,
        cache_subdir: &format!("tensorflow-{TENSORFLOW_VERSION}"),
        lib_name: RUNTIME_LIB_NAME,
        companions: &[FRAMEWORK_LIB_NAME],
        needs: "The TensorFlow backend tests need TensorFlow's libraries",
        build_script: "scripts/build-backend-tensorflow",
        fetch_script: "scripts/fetch-tensorflow",
    }
    .ensure()
}

/// A backend with default settings.
pub fn backend() -> TfBackend {
    backend_with(Settings::default())
}

pub fn backend_with(settings: Settings) -> TfBackend {
    ensure_runtime_lib();
    ok(
        TfBackend::new(move |key| settings.get(key)),
        "could not start the TF backend",
    )
}

pub fn model_bytes(name: &str) -> Vec<u8> {
    redisai_plugin_testkit::runtime::model_bytes("tf", name)
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

pub fn load(backend: &TfBackend, name: &str, inputs: &[&str], outputs: &[&str]) -> TfModel {
    ok(
        backend.load(&model_bytes(name), &strings(inputs), &strings(outputs)),
        &format!("loading {name}"),
    )
}

pub fn load_err(backend: &TfBackend, blob: &[u8], inputs: &[&str], outputs: &[&str]) -> String {
    err(
        backend.load(blob, &strings(inputs), &strings(outputs)),
        "the load should have failed",
    )
}

pub fn run(backend: &TfBackend, model: &TfModel, inputs: &[Input], n: usize) -> Vec<OwnedTensor> {
    ok(backend.run(model, 0, &views(inputs), n), "run failed")
}

pub fn run_err(backend: &TfBackend, model: &TfModel, inputs: &[Input], n: usize) -> String {
    err(
        backend.run(model, 0, &views(inputs), n),
        "the run should have failed",
    )
}

/// A deterministic RGBA image of `width` x `height`: smooth gradients plus a little
/// pseudo-random noise, so zlib has real work to do.
pub fn test_image(width: usize, height: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_u32;
    let mut out = Vec::with_capacity(width * height * 4);
    for y in 0..height {
        for x in 0..width {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let noise = (state & 7) as u8;
            out.push((x % 256) as u8 ^ noise);
            out.push((y % 256) as u8);
            out.push(((x + y) % 256) as u8);
            out.push(255);
        }
    }
    out
}

/// The input of zlib.pb: tests/models/tf/zlib_1mib.b64, 1 MiB of text (32-byte
/// [`ZLIB_TEXT_UNIT`] repeated) zlib-compressed and base64-encoded (web-safe alphabet).
pub fn zlib_input() -> Input {
    let text = model_bytes("zlib_1mib.b64");
    let text = text.trim_ascii_end();
    Input::strings(&[], &[text])
}

pub const ZLIB_TEXT_UNIT: &[u8] = b"RedisAI runs TensorFlow graphs. ";
