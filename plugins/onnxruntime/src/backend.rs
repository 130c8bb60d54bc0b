//! Loading and running ONNX models, independent of the plugin ABI's host.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ort::session::{
    HasSelectedOutputs, RunOptions as OrtRunOptions, Session, SessionInputValue, SessionOutputs,
};
pub use redisai_plugin_api::sdk::Config;
use redisai_plugin_api::sdk::{self, CancelFlag, Error, OwnedTensor, Result, TensorRef};

use crate::convert::{self, Port};
use crate::cuda;
use crate::policy;
use crate::preallocate::{Lent, OutputPlan};
use crate::runtime::{self, Runtime};
use crate::watchdog::WATCHDOG;
use redisai_plugin_api::sdk::cancel::{self, CancelWatch};

/// The ONNX backend: loads sessions and runs them.
pub struct OnnxBackend {
    config: Box<dyn Config>,
    runtime: &'static Runtime,
}

/// A loaded model: its session and the names and dtypes of its inputs and outputs.
pub struct OnnxModel {
    /// ort's `run` takes `&mut Session`: one run at a time per model.
    session: Mutex<Session>,
    inputs: Vec<Port>,
    outputs: Vec<Port>,
    /// BACKEND_MEMORY_LIMIT (MB) when the session was created; 0 for none.
    memory_limit_mb: u64,
    /// Counts the model's weights in [`WEIGHTS_HELD`] while it lives.
    weights: WeightsHeld,
    /// For a model with inputs of any rank: the sessions for the ranks runs gave.
    any_rank: Option<AnyRank>,
    /// The outputs ONNX Runtime writes straight into lent memory (CPU models whose
    /// output shapes are known before a run; see [`crate::preallocate`]).
    output_plan: Option<OutputPlan>,
}

/// How many sessions (one per combination of ranks of its any-rank inputs) a model keeps.
pub const ANY_RANK_SESSIONS: usize = 8;

/// A model with inputs that declare no shape ([`policy::any_rank_inputs`]) runs with a
/// session loaded from a copy of it that declares the ranks the run's inputs have
/// ([`policy::declare_ranks`]): ONNX Runtime's shape inference then checks every operator
/// against those ranks when that session is loaded, and a rank an operator cannot take
/// fails the run with ONNX Runtime's load error instead of reaching a kernel (some call
/// `std::terminate` on a rank they do not take). The last [`ANY_RANK_SESSIONS`]
/// combinations keep their sessions, each counted as a copy of the model's weights.
struct AnyRank {
    blob: Vec<u8>,
    settings: SessionSettings,
    /// (ranks of the any-rank inputs in input order, session, its weights), most recent last.
    sessions: Mutex<Vec<(Vec<usize>, Session, WeightsHeld)>>,
}

/// What a session is built with, as read at the model's load.
#[derive(Clone, Copy)]
struct SessionSettings {
    gpu: Option<u32>,
    intra: Option<u32>,
    inter: Option<u32>,
    limit_bytes: Option<u64>,
}

/// Bytes of the weights of the loaded models: the size of their serialised forms, which
/// bound the initializers ONNX Runtime keeps (it allocates them outside the arena).
static WEIGHTS_HELD: AtomicU64 = AtomicU64::new(0);
/// Highest [`OnnxBackend::memory_stats`] held count seen (sampled after each load and
/// whenever the stats are read; the arena only grows, so what it reserved during a run
/// is still there after it).
static PEAK_HELD: AtomicU64 = AtomicU64::new(0);

/// One model's share of [`WEIGHTS_HELD`], given back when the model is dropped.
struct WeightsHeld(u64);

impl WeightsHeld {
    fn take(bytes: u64) -> WeightsHeld {
        WEIGHTS_HELD.fetch_add(bytes, Ordering::SeqCst);
        WeightsHeld(bytes)
    }
}

impl Drop for WeightsHeld {
    fn drop(&mut self) {
        WEIGHTS_HELD.fetch_sub(self.0, Ordering::SeqCst);
    }
}

/// The memory the ONNX backend holds (bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnnxMemory {
    /// Weights of the loaded models plus what the BACKEND_MEMORY_LIMIT arena reserved.
    pub held: u64,
    pub peak: u64,
    /// The weights alone.
    pub weights: u64,
    /// The shared arena's reservation, when ONNX Runtime reports it (0 otherwise: 1.32
    /// does not for an arena registered on the environment, and without a limit each
    /// session has its own arena, which it does not report either). At most `limit`.
    pub arena: u64,
    /// BACKEND_MEMORY_LIMIT in bytes, 0 for none.
    pub limit: u64,
}

impl OnnxModel {
    pub fn input_names(&self) -> Vec<String> {
        self.inputs.iter().map(|p| p.name.clone()).collect()
    }

    pub fn output_names(&self) -> Vec<String> {
        self.outputs.iter().map(|p| p.name.clone()).collect()
    }

    /// Bytes of the model's weights (the size of its serialised form, which bounds
    /// them; ONNX Runtime does not report a session's own memory).
    pub fn memory_bytes(&self) -> u64 {
        self.weights.0
    }
}

/// Runs `body`, turning a panic inside ort into an error. Error texts become one line:
/// they end up in Redis error replies.
fn no_panic<T>(what: &str, body: impl FnOnce() -> Result<T>) -> Result<T> {
    let result = catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|payload| {
        let text = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        Err(Error::new(format!(
            "ONNX backend failed during {what}: {text}"
        )))
    });
    result.map_err(Error::one_line)
}

/// The error of a failed run, saying so when the memory limit was the cause (with
/// RedisAI's text for it, which clients may match).
fn run_error(model: &OnnxModel, err: ort::Error) -> Error {
    let message = err.to_string();
    // Only the text tells that the limit's BFC arena refused an allocation. An allocator
    // of the plugin's own that counts its refusals cannot replace the arena: a C allocator
    // refuses by returning null, and ONNX Runtime 1.32's kernels (Expand, for one) write
    // through it (its own allocators throw instead, which C code cannot).
    if model.memory_limit_mb > 0 && message.contains("BFCArena") {
        return Error::out_of_memory(format!(
            "Onnxruntime memory limit exceeded, memory allocation failed (BACKEND_MEMORY_LIMIT is {} MB): {message}",
            model.memory_limit_mb
        ));
    }
    Error::new(message)
}

impl OnnxBackend {
    /// Loads the runtime library (once per process) and makes a backend.
    pub fn new(config: impl Config) -> Result<OnnxBackend> {
        let runtime = runtime::runtime()?;
        Ok(OnnxBackend {
            config: Box::new(config),
            runtime,
        })
    }

    /// What the backend holds now: the loaded models' weights and the shared
    /// BACKEND_MEMORY_LIMIT arena's reservation; and the highest value seen.
    pub fn memory_stats(&self) -> OnnxMemory {
        let weights = WEIGHTS_HELD.load(Ordering::SeqCst);
        let limit = self.runtime.arena_limit().unwrap_or(0);
        let arena = self.runtime.arena_held().map_or(0, |(arena, _)| arena);
        let held = weights.saturating_add(arena);
        let peak = PEAK_HELD.fetch_max(held, Ordering::SeqCst).max(held);
        OnnxMemory {
            held,
            peak,
            weights,
            arena,
            limit,
        }
    }

    /// The runtime library in use.
    pub fn library(&self) -> &std::path::Path {
        self.runtime.library()
    }

    /// Builds a session from a serialised ONNX model, to run on the CPU.
    pub fn load(&self, blob: &[u8]) -> Result<OnnxModel> {
        self.load_on(blob, None)
    }

    /// Builds a session from a serialised ONNX model, to run on the CPU (`gpu` None) or
    /// with ONNX Runtime's CUDA execution provider on `GPU:n` (`gpu` Some(n); see
    /// [`crate::cuda`]). Operators the CUDA provider lacks fall back to the CPU, as ONNX
    /// Runtime places them.
    /// The weights count against BACKEND_MEMORY_LIMIT too: the arena bounds what runs
    /// allocate, this bounds what the loaded models (and their extra sessions) keep.
    fn ensure_weights_fit(&self, bytes: u64) -> Result<()> {
        let limit_mb = self.config.memory_limit_mb();
        if limit_mb == 0 {
            return Ok(());
        }
        let held = WEIGHTS_HELD.load(Ordering::SeqCst);
        if held.saturating_add(bytes) > limit_mb.saturating_mul(1_000_000) {
            return Err(Error::out_of_memory(format!(
                "Onnxruntime memory limit exceeded: a model of {bytes} bytes with {held} bytes of weights already loaded would pass BACKEND_MEMORY_LIMIT ({limit_mb} MB)"
            )));
        }
        Ok(())
    }

    pub fn load_on(&self, blob: &[u8], gpu: Option<u32>) -> Result<OnnxModel> {
        if blob.is_empty() {
            return Err(Error::new("the ONNX model blob is empty"));
        }
        // Before ONNX Runtime sees a byte of it (see crate::policy).
        no_panic("model check", || policy::check(blob).map_err(Error::new))?;
        let intra = self.config.intra_op_threads();
        let inter = self.config.inter_op_threads();
        let limit_mb = self.config.memory_limit_mb();
        let limit_bytes = sdk::limit_bytes(limit_mb);
        let blob_bytes = blob.len() as u64;
        self.ensure_weights_fit(blob_bytes)?;
        let weights = WeightsHeld::take(blob_bytes);
        let settings = SessionSettings {
            gpu,
            intra,
            inter,
            limit_bytes,
        };
        let loaded = no_panic("model load", || {
            let blob = &policy::drop_trailing_empty_inputs(blob).map_err(Error::new)?;
            let session = self.session(blob, settings)?;
            let any_rank_names = policy::any_rank_inputs(blob).map_err(Error::new)?;
            let mut inputs = session
                .inputs()
                .iter()
                .enumerate()
                .map(|(i, outlet)| convert::port_of("input", i, outlet.name(), outlet.dtype()))
                .collect::<Result<Vec<_>>>()?;
            for port in &mut inputs {
                port.any_rank = any_rank_names.contains(&port.name);
            }
            let any_rank = inputs.iter().any(|p| p.any_rank).then(|| AnyRank {
                blob: blob.to_vec(),
                settings,
                sessions: Mutex::new(Vec::new()),
            });
            let outputs = session
                .outputs()
                .iter()
                .enumerate()
                .map(|(i, outlet)| convert::output_port(i, outlet.name(), outlet.dtype()))
                .collect::<Result<Vec<_>>>()?;
            let output_plan = (any_rank.is_none() && gpu.is_none())
                .then(|| OutputPlan::of(session.inputs(), session.outputs(), &outputs))
                .flatten();
            Ok(OnnxModel {
                session: Mutex::new(session),
                inputs,
                outputs,
                memory_limit_mb: limit_mb,
                weights,
                any_rank,
                output_plan,
            })
        });
        self.memory_stats();
        loaded
    }

    /// Builds a session from checked model bytes.
    fn session(&self, blob: &[u8], settings: SessionSettings) -> Result<Session> {
        let SessionSettings {
            gpu,
            intra,
            inter,
            limit_bytes,
        } = settings;
        let arena = self.runtime.arena_for(limit_bytes)?;
        let mut builder = Session::builder(self.runtime.env()).map_err(Error::failed)?;
        if let Some(device_id) = gpu {
            let dir = self
                .runtime
                .library()
                .parent()
                .unwrap_or(std::path::Path::new("/"));
            cuda::prepare(dir, device_id)
                .and_then(|_| cuda::append_provider(&mut builder, device_id, limit_bytes))
                .map_err(|err| {
                    err.context(format_args!("cannot run the model on GPU:{device_id}"))
                })?;
        }
        if let Some(intra) = intra {
            builder = builder
                .with_intra_threads(intra as usize)
                .map_err(Error::failed)?;
        }
        if let Some(inter) = inter {
            builder = builder
                .with_inter_threads(inter as usize)
                .map_err(Error::failed)?;
            if inter > 1 {
                builder = builder
                    .with_parallel_execution(true)
                    .map_err(Error::failed)?;
            }
        }
        if arena.use_env_allocators() {
            builder = builder.with_env_allocators().map_err(Error::failed)?;
        }
        let session = builder.commit_from_memory(blob).map_err(Error::failed)?;
        drop(arena);
        Ok(session)
    }

    /// Runs a model; returns its outputs in the model's order. `timeout_ms` is the run's
    /// own limit (0: none); MODEL_EXECUTION_TIMEOUT applies too, the smaller one wins.
    pub fn run(
        &self,
        model: &OnnxModel,
        timeout_ms: u64,
        inputs: &[TensorRef<'_>],
        n_outputs: usize,
    ) -> Result<Vec<OwnedTensor>> {
        self.run_cancellable(model, timeout_ms, None, inputs, n_outputs)
    }

    /// Like [`OnnxBackend::run`], and the run is terminated once `cancel` is set.
    pub fn run_cancellable(
        &self,
        model: &OnnxModel,
        timeout_ms: u64,
        cancel: Option<CancelFlag>,
        inputs: &[TensorRef<'_>],
        n_outputs: usize,
    ) -> Result<Vec<OwnedTensor>> {
        self.run_inner(model, timeout_ms, cancel, inputs, n_outputs)
    }

    fn run_inner(
        &self,
        model: &OnnxModel,
        timeout_ms: u64,
        cancel: Option<CancelFlag>,
        inputs: &[TensorRef<'_>],
        n_outputs: usize,
    ) -> Result<Vec<OwnedTensor>> {
        if inputs.len() != model.inputs.len() {
            return Err(Error::invalid_input(
                "Number of keys given as INPUTS here does not match model definition",
            ));
        }
        if n_outputs != model.outputs.len() {
            return Err(Error::invalid_input(
                "Number of keys given as OUTPUTS here does not match model definition",
            ));
        }
        let timeout = self.config.run_timeout_ms(timeout_ms);
        no_panic("model run", || {
            let values = inputs
                .iter()
                .zip(&model.inputs)
                .enumerate()
                .map(|(i, (tensor, port))| convert::input_value(i, port, tensor))
                .collect::<Result<Vec<SessionInputValue<'_>>>>()?;
            let mut main_session;
            let mut any_rank_sessions;
            let session: &mut Session = match &model.any_rank {
                None => {
                    main_session = model.session.lock().unwrap_or_else(PoisonError::into_inner);
                    &mut main_session
                }
                Some(any_rank) => {
                    any_rank_sessions = any_rank
                        .sessions
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner);
                    let at =
                        self.any_rank_session(model, any_rank, &mut any_rank_sessions, inputs)?;
                    &mut any_rank_sessions[at].1
                }
            };
            let plan = model.output_plan.as_ref();
            let lent = plan.map(|plan| plan.lend(inputs)).transpose()?.flatten();
            match self.run_session(model, session, &values, lent, timeout, cancel)? {
                Attempt::Ran(outputs) => Ok(outputs),
                // Given up for this model (see crate::preallocate): run as ONNX Runtime
                // allocates.
                Attempt::ShapeMismatch => {
                    match self.run_session(model, session, &values, None, timeout, cancel)? {
                        Attempt::Ran(outputs) => Ok(outputs),
                        Attempt::ShapeMismatch => Err(Error::new(
                            "ONNX Runtime refused an output buffer it was not given",
                        )),
                    }
                }
            }
        })
    }

    /// One run of `session`, its outputs written into `lent` where it has a buffer.
    fn run_session(
        &self,
        model: &OnnxModel,
        session: &mut Session,
        values: &[SessionInputValue<'_>],
        mut lent: Option<Lent>,
        timeout: Option<u64>,
        cancel: Option<CancelFlag>,
    ) -> Result<Attempt> {
        if timeout.is_none() && cancel.is_none() && lent.is_none() {
            let outputs = session.run(values).map_err(|err| run_error(model, err))?;
            return collect_outputs(model, &outputs, None).map(Attempt::Ran);
        }
        let options = Arc::new(Options::new(lent.as_mut())?);
        let deadline = match timeout {
            Some(ms) => {
                let to_stop = Arc::clone(&options);
                let watch = WATCHDOG
                    .watch(Duration::from_millis(ms), move || {
                        let _ = to_stop.terminate();
                    })
                    .map_err(|err| {
                        Error::new(format!("could not start the ONNX run watchdog: {err}"))
                    })?;
                Some((ms, watch))
            }
            None => None,
        };
        let cancel_watch = match cancel {
            Some(flag) => {
                let to_stop = Arc::clone(&options);
                let terminate = Box::new(move || {
                    let _ = to_stop.terminate();
                });
                Some(cancel::watch(flag, terminate).map_err(|err| {
                    Error::new(format!("could not start the ONNX cancel watcher: {err}"))
                })?)
            }
            None => None,
        };
        let result = options.run(session, values);
        let timed_out = deadline.map(|(ms, watch)| (ms, watch.finish()));
        let cancelled = cancel_watch.is_some_and(CancelWatch::finish);
        let outputs = match result {
            Ok(outputs) => outputs,
            Err(err) if cancelled => {
                return Err(Error::cancelled(format!(
                "model run cancelled (the client went away or the server is shutting down): {err}"
            )))
            }
            Err(err) => match timed_out {
                Some((ms, true)) => {
                    return Err(Error::timed_out(format!(
                        "model execution timed out after {ms} ms: {err}"
                    )))
                }
                _ if lent.is_some()
                    && model
                        .output_plan
                        .as_ref()
                        .is_some_and(|p| p.mismatched(&err)) =>
                {
                    return Ok(Attempt::ShapeMismatch)
                }
                _ => return Err(run_error(model, err)),
            },
        };
        collect_outputs(model, &outputs, lent.as_mut()).map(Attempt::Ran)
    }
}

/// How one run of a session went.
enum Attempt {
    Ran(Vec<OwnedTensor>),
    /// ONNX Runtime refused a pre-allocated output's shape (the model's declared shapes
    /// do not hold); the plan is given up.
    ShapeMismatch,
}

/// A run's ONNX Runtime options, with the lent outputs selected or without (ort types the
/// two apart).
enum Options {
    Plain(OrtRunOptions),
    Lent(OrtRunOptions<HasSelectedOutputs>),
}

// SAFETY: the watchdog and the cancel watcher, on other threads, only call `terminate`
// (ONNX Runtime's RunOptionsSetTerminate, made to be called while a run is in progress);
// the selected outputs are read by the run alone, on the thread that made the options.
unsafe impl Send for Options {}
// SAFETY: as above.
unsafe impl Sync for Options {}

impl Options {
    fn new(lent: Option<&mut Lent>) -> Result<Options> {
        let options = OrtRunOptions::new().map_err(Error::failed)?;
        Ok(match lent {
            Some(lent) => Options::Lent(options.with_outputs(std::mem::take(&mut lent.selector))),
            None => Options::Plain(options),
        })
    }

    fn terminate(&self) -> ort::Result<()> {
        match self {
            Options::Plain(options) => options.terminate(),
            Options::Lent(options) => options.terminate(),
        }
    }

    fn run<'r>(
        &'r self,
        session: &'r mut Session,
        values: &[SessionInputValue<'_>],
    ) -> ort::Result<SessionOutputs<'r>> {
        match self {
            Options::Plain(options) => session.run_with_options(values, options),
            Options::Lent(options) => session.run_with_options(values, options),
        }
    }
}

impl OnnxBackend {
    /// The index in `sessions` of the session for the ranks `inputs` give the model's
    /// any-rank inputs, loaded now if it is not there (see [`AnyRank`]).
    fn any_rank_session(
        &self,
        model: &OnnxModel,
        any_rank: &AnyRank,
        sessions: &mut Vec<(Vec<usize>, Session, WeightsHeld)>,
        inputs: &[TensorRef<'_>],
    ) -> Result<usize> {
        let ranked: Vec<(&str, usize)> = model
            .inputs
            .iter()
            .zip(inputs)
            .filter(|(port, _)| port.any_rank)
            .map(|(port, tensor)| (port.name.as_str(), tensor.shape.len()))
            .collect();
        let ranks: Vec<usize> = ranked.iter().map(|(_, rank)| *rank).collect();
        if let Some(at) = sessions.iter().position(|(r, _, _)| *r == ranks) {
            let entry = sessions.remove(at);
            sessions.push(entry);
            return Ok(sessions.len() - 1);
        }
        let described = ranked
            .iter()
            .map(|(name, rank)| format!("'{name}' of rank {rank}"))
            .collect::<Vec<_>>()
            .join(", ");
        // Each kept session is one more copy of the weights: a client feeding new ranks
        // may not grow the backend past its limit.
        self.ensure_weights_fit(any_rank.blob.len() as u64)?;
        let blob = policy::declare_ranks(&any_rank.blob, &ranked).map_err(Error::new)?;
        let session = self.session(&blob, any_rank.settings).map_err(|err| {
            err.context(format_args!(
                "the model cannot run on these inputs ({described}; it declares no shape for them)"
            ))
        })?;
        if sessions.len() >= ANY_RANK_SESSIONS {
            sessions.remove(0);
        }
        let weights = WeightsHeld::take(any_rank.blob.len() as u64);
        sessions.push((ranks, session, weights));
        self.memory_stats();
        Ok(sessions.len() - 1)
    }
}

/// The run's outputs as tensors: those written into `lent` as they are, the others copied.
fn collect_outputs(
    model: &OnnxModel,
    outputs: &SessionOutputs<'_>,
    mut lent: Option<&mut Lent>,
) -> Result<Vec<OwnedTensor>> {
    if outputs.len() != model.outputs.len() {
        return Err(Error::new(format!(
            "the model produced {} outputs, it declares {}",
            outputs.len(),
            model.outputs.len()
        )));
    }
    model
        .outputs
        .iter()
        .enumerate()
        .map(
            |(i, port)| match lent.as_mut().and_then(|lent| lent.take(i)) {
                Some((shape, data)) => Ok(OwnedTensor {
                    dtype: port.dtype,
                    shape,
                    data,
                }),
                None => convert::output_tensor(i, port, &outputs[i]),
            },
        )
        .collect()
}
