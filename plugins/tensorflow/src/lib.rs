//! The TF backend of redisai-rs: runs frozen TensorFlow graphs with TensorFlow 2.21's C API.
//!
//! Built as `libredisai_tensorflow.so` and laid out as
//! `backends/redisai_tensorflow/redisai_tensorflow.so`, beside `libtensorflow_cc.so.2` and
//! `libtensorflow_framework.so.2` (from the `tensorflow-cpu` wheel). Nothing of TensorFlow
//! is linked in: at `init` the plugin opens the libraries by absolute paths, from the folder
//! the plugin itself was loaded from (or `libtensorflow_cc.so.2` at the path in the
//! environment variable [`RUNTIME_LIB_ENV`], with the framework library beside it), so the
//! folder can be moved as a unit.
//!
//! # A link namespace of its own
//! The libraries are opened with `dlmopen(LM_ID_NEWLM)`, not `dlopen`: TensorFlow's
//! framework library exports the zlib, BoringSSL and zstd it bundles and calls them through
//! those names, so in the global namespace of redis-server (which exports its own
//! `zcalloc` and has OpenSSL 3 and libzstd loaded) TensorFlow's calls would bind to Redis's
//! functions (a PNG encode hangs). In a namespace of its own TensorFlow sees only its own
//! symbols and those of its own copies of libc and libstdc++. The C API is called through
//! a table of function pointers (the `ffi` module, the crate's only `unsafe` code).
//!
//! Two libcs in one process need care (`ffi::namespace` has the details): the namespace's
//! libc hands out its first 256 thread-specific data keys unused, so TensorFlow's keys
//! never share a slot with the host's (jemalloc's, in Redis), and their destructors run
//! the host's, so a TensorFlow thread that ends releases jemalloc's per-thread state (which
//! the dynamic loader gave it); every thread TensorFlow starts runs on a stack of the
//! plugin's own (a small C shim, embedded in the plugin, interposes `pthread_create` in the
//! namespace), which glibc never caches for reuse; and TensorFlow is called
//! only on threads made by its own libc (`tf-call` threads, which never end), never on a
//! host thread, whose exit would hand TensorFlow's per-thread blocks to the host's `free`.
//! A call costs two thread switches (tens of microseconds).
//!
//! The work is done by [`TfBackend`], which does not need the host: it reads settings
//! through a [`Config`] (a closure `Fn(ConfigKey) -> i64` will do), so it can be tested in
//! process. [`TfPlugin`] is the thin [`Plugin`] wrapper that `export_plugin!` exports.
//!
//! # Models
//! Frozen `GraphDef`s (a serialized protocol buffer; a blob that does not parse as one, or
//! names a missing node, is refused at load with TensorFlow's reason).
//!
//! A stored model is hostile input (any client allowed `AI.MODELSTORE`, and every RDB, AOF
//! and replication stream, can bring one), so before TensorFlow sees a graph the load
//! policy ([`policy`]) checks every operation of it, those of its function library and
//! those named in `func` attributes against an allow-list of pure computation (math, nn,
//! array, control flow, images, strings, parsing, random, in-memory tables). Anything else,
//! unknown ops included, is refused with `model uses a forbidden operation: <OpType>
//! (<rule>)`, the rule being `file access` (ReadFile, WriteFile, MatchingFiles, readers,
//! Save/Restore, ...), `datasets, queues and iterators`, `summaries`, `Python functions`,
//! `network`, `debugging output`, `process control` or `not on the allow-list`.
//! The inputs and outputs are the tensors named at `AI.MODELSTORE ... INPUTS ... OUTPUTS`,
//! as `op` (output 0) or `op:index`; a name that is not an operation of the graph is
//! refused at load (`Input node named "x" not found in TF graph`, as RedisAI said), and so
//! is an output index the operation does not have, or a tensor whose TensorFlow type has no
//! RedisAI dtype. At least one output is needed; zero inputs are allowed (a graph of
//! constants). Each run feeds the inputs in that order and fetches the outputs; an input
//! whose dtype differs from the graph's is refused before the run.
//!
//! An input whose rank differs from the one the graph gives the fed tensor (a
//! Placeholder's `shape` attribute) is refused before the run: `input 0 ('x') has shape
//! [2,2], the graph declares [?,?,?,1] (rank 4)`. Sizes are left to the kernels (a graph
//! exported with a fixed batch size takes others, as with RedisAI), and a placeholder of
//! unknown rank, or a scalar one (AI.TENSORSET makes no rank-0 tensors: clients feed a
//! scalar as `[1]`), takes any shape.
//!
//! Dtypes: FLOAT, DOUBLE, INT8, INT16, INT32, INT64, UINT8, UINT16, BOOL and STRING.
//! STRING elements cross as TensorFlow 2's `TF_TString`s (written and read with the C API's
//! `TF_String*` functions); an output element that contains a NUL byte (which RedisAI's
//! NUL-separated STRING tensors cannot hold; a PNG is such a one) fails the run with an
//! error that says so.
//!
//! # Stored graphs are run as they are
//! Allowed operations can still reach code in TensorFlow that trusts the graph and
//! aborts the process (a `CHECK`) or divides by zero where the kernels themselves would
//! fail the run with an error. The live fuzzer found three; the backend avoids the code
//! that had them, so such a graph either runs or its run fails with TensorFlow's error:
//! - Graph optimisation is off for every session (`src/proto.rs`): grappler (the "meta
//!   optimizer") and the classic optimizer's constant folding and CSE (`opt_level` L0).
//!   Grappler's constant folding aborted on a Transpose whose `perm` folds to a scalar
//!   (`perm must be rank 1, got shape []` now), and it divided by zero (SIGFPE) on a
//!   ReverseV2 of axes `[3,1]` of an input of unknown shape. The kernels run the graph as
//!   stored. Measured (`tests/hostile_runs.rs`, `run_times`, 2 shared cores, noisy): a
//!   session's first run is faster without it (graph.pb ~1 ms instead of 2.5-6.7 ms, a
//!   4-layer 3x3 convolution network 2.5 ms instead of ~11 ms); later runs of mlp.pb
//!   (~40-90 µs), graph.pb (~40-100 µs) and the convolution networks differ within the
//!   noise. Graphs that relied on grappler's fusions (Conv2D+BiasAdd+Relu, ...) run their
//!   ops one by one.
//! - oneDNN is off (`TF_ENABLE_ONEDNN_OPTS=0`, unless the server was started with a
//!   value): its kernels (`_MklConv2D`, MatMul, pooling, batch norm, ... which TensorFlow
//!   swaps in when it is on) check ranks with `CHECK`s: a Conv2D fed a rank-2 tensor
//!   aborted. TensorFlow's own (Eigen) kernels fail the run (`input must be 4-dimensional`).
//!   It costs convolution-heavy models: 3x3 convolutions of 64x64x32 ran in ~3.9-4.4 ms
//!   instead of ~2.9-3.2 ms, of 112x112x64 in ~26-42 ms instead of ~19-28 ms (about 1.3-1.4
//!   times slower); small dense models (mlp.pb, graph.pb) are unchanged. The guard is
//!   general: an intermediate tensor's rank is known to no check before the run, and
//!   every oneDNN kernel (convolutions, pooling, MatMul, batch norm, LRN, ...) is
//!   replaced by TensorFlow's own.
//! - Grappler's internal fusions (`_FusedConv2D`, `_FusedMatMul`, `_FusedBatchNormEx`)
//!   are not on the allow-list: frozen graphs do not hold them (grappler makes them at run
//!   time), and their kernels read a bias shorter than the output's channels past its end.
//!
//! # Settings
//! - `INTRA_OP_PARALLELISM`, `INTER_OP_PARALLELISM`: the session's `ConfigProto`
//!   (`intra_op_parallelism_threads`, `inter_op_parallelism_threads`), at model load (0
//!   leaves TensorFlow's default, one thread per core). TensorFlow's thread pools are
//!   process-wide: the first session made sizes them (RedisAI 1.2 behaved the same; the
//!   settings are module load arguments, so every session asks for the same sizes).
//! - `MODEL_EXECUTION_TIMEOUT` (ms) and the run's own timeout: the smaller non-zero one
//!   goes into the run's `RunOptions.timeout_in_ms`; TensorFlow cancels a run past it,
//!   and the run fails with an error that says it timed out.
//! - The host's cancel flag: a watcher thread closes the model's session when it is set,
//!   which cancels the run (it fails with an error that says so); the next run makes a new
//!   session on the same graph.
//! - `BACKEND_MEMORY_LIMIT` (MB, 10^6 bytes; read before each load and run): the memory
//!   shim in the namespace's first object (`src/ffi/memory_shim.c`) counts what
//!   TensorFlow's `malloc` & co. hold and refuses the `posix_memalign` TensorFlow makes
//!   its tensors with past the limit; TensorFlow fails the run with "OOM when allocating
//!   tensor ...", reported as `TF memory limit exceeded, memory allocation failed
//!   (BACKEND_MEMORY_LIMIT is N MB): ...`. Plain `malloc` (graphs, protobufs, Eigen's
//!   scratch) is counted but never refused: a failed `operator new` would abort. oneDNN is
//!   off (see below), so each tensor is allocated and freed on its own and a refusal fails
//!   the run at once. The plugin reports what it holds (ABI 1.3 `memory_stats`);
//!   TensorFlow cannot tell a model's own share.
//!
//! # Logging
//! `TF_CPP_MIN_LOG_LEVEL=2` is set in TensorFlow's own environment (unless the server was
//! started with a value), so only TensorFlow's errors reach stderr (the Redis log).
//! (TensorFlow 2.21 prints "oneDNN custom operations are on ..." when its libraries load
//! with oneDNN on: not with the backend's setting.)

// `unsafe` is allowed in the ffi module only (and for the exported entry point).
#![deny(unsafe_code)]
#![warn(clippy::undocumented_unsafe_blocks)]

#[cfg(not(target_endian = "little"))]
compile_error!("tensor data crosses the plugin ABI as little-endian bytes: big-endian targets are not supported");

mod backend;
mod convert;
#[allow(unsafe_code)]
mod ffi;
pub mod policy;
mod proto;
pub mod runtime;

use std::ffi::CStr;

use redisai_plugin_api::sdk::{
    DType, DeviceKind, Error, Host, MemoryStats, ModelOptions, OwnedTensor, Plugin, Result,
    RunOptions, TensorRef,
};

pub use backend::{Config, TfBackend, TfModel};
pub use runtime::{FRAMEWORK_LIB_NAME, RUNTIME_LIB_ENV, RUNTIME_LIB_NAME, TENSORFLOW_VERSION};

/// The TF backend as a plugin.
pub struct TfPlugin {
    backend: TfBackend,
}

impl Plugin for TfPlugin {
    type Model = TfModel;
    type Script = ();

    const NAME: &'static CStr = c"TF";
    const RUNTIME_VERSION: &'static CStr = c"2.21.0";
    const DEVICES: &'static [DeviceKind] = &[DeviceKind::Cpu];
    const DTYPES: &'static [DType] = DType::ALL;
    /// Runs of one model are serialised by the host: a cancelled run closes the model's
    /// session, which would cancel any other run on it. Runs of different models overlap
    /// (each on a `tf-call` thread of its own, in TensorFlow's shared thread pools).
    const CONCURRENT_RUN: bool = false;
    const INTERRUPTIBLE_RUN: bool = true;

    fn init(host: Host) -> Result<Self> {
        let backend = TfBackend::new(move |key| host.config(key))?;
        Ok(TfPlugin { backend })
    }

    fn memory_stats(&self) -> Option<MemoryStats> {
        let memory = self.backend.memory_stats()?;
        Some(MemoryStats {
            held_bytes: memory.held,
            peak_bytes: memory.peak,
            limit_bytes: Some(memory.limit),
        })
    }

    fn load_model(&self, options: &ModelOptions, blob: &[u8]) -> Result<TfModel> {
        if options.device.kind != DeviceKind::Cpu {
            return Err(Error::new(
                "this build of the TF backend runs models on the CPU only",
            ));
        }
        self.backend
            .load(blob, &options.input_names, &options.output_names)
    }

    fn input_names(&self, model: &TfModel) -> Vec<String> {
        model.input_names()
    }

    fn output_names(&self, model: &TfModel) -> Vec<String> {
        model.output_names()
    }

    fn run(
        &self,
        model: &TfModel,
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
    redisai_plugin_api::export_plugin!(super::TfPlugin);
}

pub use entry::redisai_plugin_entry;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtime_version_is_the_one_fetched() {
        assert_eq!(
            <TfPlugin as Plugin>::RUNTIME_VERSION.to_str(),
            Ok(TENSORFLOW_VERSION)
        );
    }
}
