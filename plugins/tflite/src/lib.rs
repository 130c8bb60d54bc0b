//! The TFLite backend of redisai-rs: runs TensorFlow Lite models with LiteRT 2.3.
//!
//! Built as `libredisai_tflite.so` and laid out as
//! `backends/redisai_tflite/redisai_tflite.so`, beside `libLiteRt.so` (from the
//! `ai-edge-litert` wheel). Nothing of LiteRT is linked in: at `init` the plugin opens the
//! runtime library by an absolute path, the file [`RUNTIME_LIB_NAME`] in the folder the
//! plugin itself was loaded from, or the path in the environment variable
//! [`RUNTIME_LIB_ENV`] when it is set. It calls LiteRT's C API ("CompiledModel") through
//! the thin `ffi` module, the crate's only `unsafe` code.
//!
//! The work is done by [`TfliteBackend`], which does not need the host: it reads settings
//! through a [`Config`] (a closure `Fn(ConfigKey) -> i64` will do), so it can be tested in
//! process. [`TflitePlugin`] is the thin [`Plugin`] wrapper that `export_plugin!` exports.
//!
//! # Models
//! `.tflite` flatbuffers (LiteRT verifies their structure; a C++ exception that LiteRT
//! throws on a damaged model is caught and returned as an error). Inputs and outputs are
//! those of the model's main subgraph, by position, named after their tensors (as
//! RedisAI's TFLite backend did), whatever order a SignatureDef lists them in. Inputs
//! whose shape differs from the model's current one are resized (TFLite's non-strict
//! resize, so the rank may change too) and the tensors reallocated before the run;
//! outputs come back with the dtypes and shapes they have after it. LiteRT 2.3 resizes
//! only to shapes of rank 1 or more without zero dimensions: a scalar or empty input
//! whose shape differs from the model's is refused with an error. Float and quantized
//! models (int8/uint8 tensors with scale and zero point) run the same way: quantized
//! tensors cross as their integer values.
//!
//! Dtypes: FLOAT, DOUBLE, INT8, INT16, INT32, INT64, UINT8, UINT16 and BOOL. Not
//! STRING (TFLite's string tensors have their own packed layout, which LiteRT's tensor
//! buffers do not take), nor the TFLite types RedisAI has no dtype for (FLOAT16,
//! BFLOAT16, UINT32, UINT64, INT4, COMPLEX64, ...): a model with such an input or output
//! is refused at load with an error that names it.
//!
//! # Settings
//! - `INTRA_OP_PARALLELISM`: the CPU accelerator's (XNNPACK's) thread count, at model
//!   load (0 leaves LiteRT's default, one thread).
//! - `MODEL_EXECUTION_TIMEOUT` (ms) and the run's own timeout: the smaller non-zero one
//!   bounds each run; LiteRT checks between operations and a run past it fails with an
//!   error that says it timed out. The host's cancel flag stops a run the same way.
//! - `INTER_OP_PARALLELISM` and `BACKEND_MEMORY_LIMIT` have no TFLite counterpart and are
//!   ignored.
//!
//! # Logging
//! LiteRT's own logger prints errors only, to stderr (the Redis log); what a failed call
//! reports is also in the error returned. TFLite prints one line to stderr when it
//! applies XNNPACK to a model ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU"):
//! LiteRT 2.3 exports no way to silence it.

// `unsafe` is allowed in the ffi module only (and for the exported entry point).
#![deny(unsafe_code)]
#![warn(clippy::undocumented_unsafe_blocks)]

#[cfg(not(target_endian = "little"))]
compile_error!("tensor data crosses the plugin ABI as little-endian bytes: big-endian targets are not supported");

mod backend;
mod convert;
#[allow(unsafe_code)]
mod ffi;
mod flatbuffer;
pub mod runtime;

use std::ffi::CStr;

use redisai_plugin_api::sdk::{
    DType, DeviceKind, Error, Host, ModelOptions, OwnedTensor, Plugin, Result, RunOptions,
    TensorRef,
};

pub use backend::{Config, TfliteBackend, TfliteModel};
pub use runtime::{LITERT_VERSION, RUNTIME_LIB_ENV, RUNTIME_LIB_NAME};

/// The TFLite backend as a plugin.
pub struct TflitePlugin {
    backend: TfliteBackend,
}

impl Plugin for TflitePlugin {
    type Model = TfliteModel;
    type Script = ();

    const NAME: &'static CStr = c"TFLITE";
    const RUNTIME_VERSION: &'static CStr = c"2.3.0";
    const DEVICES: &'static [DeviceKind] = &[DeviceKind::Cpu];
    const DTYPES: &'static [DType] = DType::NUMERIC;
    /// A LiteRT compiled model runs one call at a time: each model's sits behind a mutex
    /// and the host is told to serialise runs of one model. Runs of different models
    /// overlap.
    const CONCURRENT_RUN: bool = false;
    const INTERRUPTIBLE_RUN: bool = true;

    fn init(host: Host) -> Result<Self> {
        let backend = TfliteBackend::new(move |key| host.config(key))?;
        Ok(TflitePlugin { backend })
    }

    fn load_model(&self, options: &ModelOptions, blob: &[u8]) -> Result<TfliteModel> {
        if options.device.kind != DeviceKind::Cpu {
            return Err(Error::new(
                "this build of the TFLite backend runs models on the CPU only",
            ));
        }
        self.backend.load(blob)
    }

    fn input_names(&self, model: &TfliteModel) -> Vec<String> {
        model.input_names()
    }

    fn output_names(&self, model: &TfliteModel) -> Vec<String> {
        model.output_names()
    }

    fn run(
        &self,
        model: &TfliteModel,
        options: &RunOptions,
        inputs: &[TensorRef<'_>],
        n_outputs: usize,
    ) -> Result<Vec<OwnedTensor>> {
        self.backend
            .run_cancellable(model, options.timeout_ms, options.cancel, inputs, n_outputs)
    }
}

/// The plugin's C entry point (`#[no_mangle]` counts as unsafe code).
#[allow(unsafe_code)]
mod entry {
    redisai_plugin_api::export_plugin!(super::TflitePlugin);
}

pub use entry::redisai_plugin_entry;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtime_version_is_the_one_fetched() {
        assert_eq!(
            <TflitePlugin as Plugin>::RUNTIME_VERSION.to_str(),
            Ok(LITERT_VERSION)
        );
    }
}
