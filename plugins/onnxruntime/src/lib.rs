//! The ONNX backend of redisai-rs: runs ONNX models with ONNX Runtime 1.32.
//!
//! Built as `libredisai_onnxruntime.so` and laid out as
//! `backends/redisai_onnxruntime/redisai_onnxruntime.so`, beside `libonnxruntime.so.1.32.0`.
//! With the `cuda` feature it is the GPU variant, laid out as
//! `backends/redisai_onnxruntime_gpu/redisai_onnxruntime_gpu.so` beside the
//! `onnxruntime-gpu` 1.31.1 runtime and its CUDA libraries (see [`cuda`]); it runs
//! models stored on `GPU:n` with the CUDA execution provider (`device_id` n) and models
//! stored on the CPU as the CPU build does.
//! Nothing of ONNX Runtime is linked in: at `init` the plugin opens the runtime library by
//! an absolute path, the file [`RUNTIME_LIB_NAME`] in the folder the plugin itself was
//! loaded from, or the path in the environment variable [`RUNTIME_LIB_ENV`] when it is set.
//!
//! The work is done by [`OnnxBackend`], which does not need the host: it reads settings
//! through a [`Config`] (a closure `Fn(ConfigKey) -> i64` will do), so it can be tested in
//! process. [`OnnxPlugin`] is the thin [`Plugin`] wrapper that `export_plugin!` exports.
//!
//! # Settings
//! Read when they are used, so changes at run time apply to the next model load or run:
//! - `INTRA_OP_PARALLELISM`, `INTER_OP_PARALLELISM`: the session's thread pools, at model
//!   load (0 leaves ONNX Runtime's default). An inter-op value above 1 also turns on
//!   ONNX Runtime's parallel execution mode, without which it has no effect.
//! - `MODEL_EXECUTION_TIMEOUT` (ms) and the run's own timeout: the smaller non-zero one
//!   bounds each run; a run that exceeds it is terminated and fails with an error that
//!   says it timed out.
//! - `BACKEND_MEMORY_LIMIT` (MB, 10^6 bytes as in RedisAI): see [`runtime`]: one CPU memory
//!   arena with that `max_mem`, shared by all the sessions loaded while the limit is set,
//!   and a load refused when the loaded models' weights would pass it. The plugin reports
//!   what it holds (ABI 1.3 `memory_stats`: the weights, plus the arena's reservation when
//!   ONNX Runtime reports it) and each model's weights (`model_memory`).
//!
//! # Outputs that are not tensors
//! ONNX-ML classifiers (scikit-learn models converted with skl2onnx) end in a ZipMap, a
//! sequence of maps from class label to probability: such an output is returned as a
//! FLOAT (or DOUBLE) tensor `[N, classes]`, the columns in ascending label order (INT64
//! labels numerically, STRING labels bytewise), which is the classifier's `classes_`. A
//! sequence of numeric tensors of one shape is returned stacked (`[N, shape...]`). Other
//! output types are refused when the model is stored, with the output's name and type.
//!
//! # Policy
//! Every model load (AI.MODELSTORE/MODELSET, RDB and AOF loads, replicas) first passes the
//! model's bytes through [`policy::check`]: no external data, no operator domain that ONNX
//! Runtime does not provide, no contrib operator that reaches outside the model, no empty
//! input name in a variadic operator's inputs (`Mean(x, "")` crashes ONNX Runtime's
//! kernel: `model uses a forbidden operation: Mean (an empty input name in a variadic
//! position: ...)`), and no model input without a type or element type (`model input 'x'
//! has no declared type: ...`). ONNX Runtime then loads a copy whose nodes leave out
//! trailing omitted optional inputs (`LayerNormalization(x, scale, "")` becomes
//! `LayerNormalization(x, scale)`, the same in ONNX; ONNX Runtime 1.32's optimizer
//! crashes on the first form): [`policy::drop_trailing_empty_inputs`].
//!
//! # Input ranks
//! Some ONNX Runtime kernels given an input of a rank they do not take call
//! `std::terminate` (GSL contract checks, on the calling thread: no exception to catch),
//! which would abort the server. ONNX Runtime's shape inference refuses such a rank at
//! load when the model declares it, and each run's inputs are checked against the declared
//! rank and fixed dimensions before a kernel runs (the backend checks them first, in ONNX
//! Runtime's words: `Invalid rank for input: x Got: 1 Expected: 2 ...`, `Got invalid
//! dimensions for input: x for the following indices index: 1 Got: 5 Expected: 4 ...`).
//! A model whose inputs declare no shape (any rank) runs with a session per combination
//! of the ranks runs give those inputs, loaded from a copy of the model that declares them
//! (`policy::declare_ranks`; the last 8 kept); a rank an operator cannot take fails the
//! run: `the model cannot run on these inputs ('x' of rank 1; it declares no shape for
//! them): <ONNX Runtime's load error>`.

#[cfg(not(target_endian = "little"))]
compile_error!("tensor data crosses the plugin ABI as little-endian bytes: big-endian targets are not supported");

mod backend;
mod convert;
pub mod cuda;
pub mod policy;
mod preallocate;
pub mod runtime;
mod watchdog;

/// The plugin's own buffers (copies of inputs the host's memory does not align, owned
/// outputs) come from glibc even inside a redis-server whose `malloc` is jemalloc: see
/// [`SystemAllocator`](redisai_plugin_api::sdk::SystemAllocator).
#[global_allocator]
static ALLOCATOR: redisai_plugin_api::sdk::SystemAllocator =
    redisai_plugin_api::sdk::SystemAllocator;

use std::ffi::CStr;

use redisai_plugin_api::export_plugin;
use redisai_plugin_api::sdk::{
    DType, DeviceKind, Error, Host, MemoryStats, ModelOptions, OwnedTensor, Plugin, Result,
    RunOptions, TensorRef,
};

pub use backend::{Config, OnnxBackend, OnnxMemory, OnnxModel};
pub use runtime::{RUNTIME_LIB_ENV, RUNTIME_LIB_NAME};

/// The ONNX backend as a plugin.
pub struct OnnxPlugin {
    backend: OnnxBackend,
}

impl Plugin for OnnxPlugin {
    type Model = OnnxModel;
    type Script = ();

    const NAME: &'static CStr = c"ONNX";
    const RUNTIME_VERSION: &'static CStr = runtime::RUNTIME_VERSION;
    /// The GPU variant (`cuda` feature) declares GPUs too; it runs CPU models as well,
    /// so a GPU-only bundle needs no other ONNX plugin.
    #[cfg(feature = "cuda")]
    const DEVICES: &'static [DeviceKind] = &[DeviceKind::Cpu, DeviceKind::Gpu];
    #[cfg(not(feature = "cuda"))]
    const DEVICES: &'static [DeviceKind] = &[DeviceKind::Cpu];
    const DTYPES: &'static [DType] = DType::ALL;
    /// ort's `Session::run` takes `&mut self` (its authors consider ONNX Runtime's `Run`
    /// not reliably thread-safe), so each model's session sits behind a mutex and the
    /// host is told to serialise runs of one model. Runs of different models overlap.
    const CONCURRENT_RUN: bool = false;
    const INTERRUPTIBLE_RUN: bool = true;

    fn init(host: Host) -> Result<Self> {
        let backend = OnnxBackend::new(move |key| host.config(key))?;
        Ok(OnnxPlugin { backend })
    }

    fn load_model(&self, options: &ModelOptions, blob: &[u8]) -> Result<OnnxModel> {
        match options.device.kind {
            DeviceKind::Cpu => self.backend.load(blob),
            DeviceKind::Gpu if cfg!(feature = "cuda") => {
                let id = u32::try_from(options.device.id).map_err(|_| {
                    Error::new(format!("invalid GPU index {}", options.device.id))
                })?;
                self.backend.load_on(blob, Some(id))
            }
            _ => Err(Error::new(
                "this build of the ONNX backend runs models on the CPU only (the GPU variant is redisai_onnxruntime_gpu, built by scripts/build-gpu)",
            )),
        }
    }

    fn memory_stats(&self) -> Option<MemoryStats> {
        let memory = self.backend.memory_stats();
        Some(MemoryStats {
            held_bytes: memory.held,
            peak_bytes: memory.peak,
            limit_bytes: Some(memory.limit),
        })
    }

    fn model_memory(&self, model: &OnnxModel) -> Option<u64> {
        Some(model.memory_bytes())
    }

    fn input_names(&self, model: &OnnxModel) -> Vec<String> {
        model.input_names()
    }

    fn output_names(&self, model: &OnnxModel) -> Vec<String> {
        model.output_names()
    }

    fn run(
        &self,
        model: &OnnxModel,
        options: &RunOptions,
        inputs: &[TensorRef<'_>],
        n_outputs: usize,
    ) -> Result<Vec<OwnedTensor>> {
        self.backend
            .run_cancellable(model, options.timeout_ms, options.cancel, inputs, n_outputs)
    }
}

export_plugin!(OnnxPlugin);
