//! Loading and running frozen TensorFlow graphs, independent of the plugin ABI's host.

use std::sync::{Arc, Mutex, PoisonError};

pub use redisai_plugin_api::sdk::Config;
use redisai_plugin_api::sdk::{CancelFlag, DType, Error, OwnedTensor, Result, TensorRef};

use crate::convert::{self, TensorName};
use crate::ffi::{self, Graph, Output, Runtime, Session};
use crate::policy::{self, Refusal};
use crate::proto;
use crate::runtime;
use redisai_plugin_api::sdk::cancel;

/// The TensorFlow backend: imports graphs and runs them in sessions.
pub struct TfBackend {
    config: Box<dyn Config>,
    runtime: &'static Runtime,
}

/// A graph input or output: its name as given at MODELSTORE, where it is in the graph, its
/// dtype and the shape the graph gives it (None: unknown rank; -1: a dimension of unknown
/// size).
struct Port {
    name: String,
    output: Output,
    dtype: DType,
    shape: Option<Vec<i64>>,
}

/// A shape as `[2,?,3]` (-1: `?`).
fn shape_text(dims: &[i64]) -> String {
    let dims: Vec<String> = dims
        .iter()
        .map(|&d| if d < 0 { "?".to_owned() } else { d.to_string() })
        .collect();
    format!("[{}]", dims.join(","))
}

/// A loaded model: the graph, a session on it, and its inputs and outputs in the order
/// given at MODELSTORE. Its TensorFlow objects are deleted on TensorFlow's threads.
pub struct TfModel {
    loaded: Option<Loaded>,
    runtime: &'static Runtime,
    input_names: Vec<String>,
    output_names: Vec<String>,
}

/// The TensorFlow side of a model (used on TensorFlow's threads only).
struct Loaded {
    /// The session runs go to; None after a cancelled run closed it (the next run makes a
    /// new one). One run at a time (the plugin does not declare concurrent runs).
    session: Mutex<Option<Arc<Session>>>,
    graph: Arc<Graph>,
    /// The serialized ConfigProto the sessions are made with.
    config: Vec<u8>,
    inputs: Vec<Port>,
    outputs: Vec<Port>,
}

impl TfModel {
    pub fn input_names(&self) -> Vec<String> {
        self.input_names.clone()
    }

    pub fn output_names(&self) -> Vec<String> {
        self.output_names.clone()
    }

    fn loaded(&self) -> Result<&Loaded> {
        self.loaded
            .as_ref()
            .ok_or_else(|| Error::new("the model was freed"))
    }
}

impl Drop for TfModel {
    fn drop(&mut self) {
        if let Some(loaded) = self.loaded.take() {
            // Threads exist (the model was loaded on one), so the call is not refused.
            let _ = self.runtime.call(move || drop(loaded));
        }
    }
}

/// Tensor allocations BACKEND_MEMORY_LIMIT refused so far.
fn memory_refusals() -> u64 {
    ffi::memory().map_or(0, |m| m.refused)
}

/// The error of a failed load or run, saying so when the memory limit refused an
/// allocation during it (TensorFlow then says "OOM when allocating tensor ...").
fn memory_error(limit_mb: u64, refused_before: u64, err: Error) -> Error {
    let err = err.one_line();
    let refused = memory_refusals() > refused_before;
    if limit_mb > 0 && (refused || err.message().contains("OOM when allocating")) {
        return Error::out_of_memory(format!(
            "TF memory limit exceeded, memory allocation failed (BACKEND_MEMORY_LIMIT is {limit_mb} MB): {err}"
        ));
    }
    err
}

impl TfBackend {
    /// Opens the TensorFlow libraries (once per process) and makes a backend.
    pub fn new(config: impl Config) -> Result<TfBackend> {
        let runtime = runtime::runtime()?;
        Ok(TfBackend {
            config: Box::new(config),
            runtime,
        })
    }

    /// The `libtensorflow_cc.so.2` in use.
    pub fn library(&self) -> &std::path::Path {
        self.runtime.library()
    }

    /// TensorFlow's version, as the library reports it.
    pub fn version(&self) -> &str {
        self.runtime.version()
    }

    /// Imports a frozen GraphDef and makes a session on it. `inputs` and `outputs` are
    /// the tensors fed and fetched, as `op` or `op:index`.
    ///
    /// The graph must pass the load policy ([`crate::policy`]): an operation that is not
    /// pure computation (file access, datasets, Python, ...) is refused with
    /// `model uses a forbidden operation: <OpType> (<rule>)` before TensorFlow sees it.
    pub fn load(&self, blob: &[u8], inputs: &[String], outputs: &[String]) -> Result<TfModel> {
        self.load_checked(blob, inputs, outputs, true)
    }

    /// [`TfBackend::load`] without the load policy, for this crate's tests of what the
    /// policy guards against (a graph of an operation that ends threads). The plugin never
    /// calls it: every model the host loads goes through [`TfBackend::load`].
    #[doc(hidden)]
    pub fn load_without_policy_for_tests(
        &self,
        blob: &[u8],
        inputs: &[String],
        outputs: &[String],
    ) -> Result<TfModel> {
        self.load_checked(blob, inputs, outputs, false)
    }

    fn load_checked(
        &self,
        blob: &[u8],
        inputs: &[String],
        outputs: &[String],
        policy: bool,
    ) -> Result<TfModel> {
        let limit_mb = self.refresh_memory_limit();
        let refused = memory_refusals();
        let loaded = self
            .runtime
            .call(|| self.load_inner(blob, inputs, outputs, policy))
            .map_err(Error::new)?
            .map_err(|err| memory_error(limit_mb, refused, err))?;
        Ok(TfModel {
            loaded: Some(loaded),
            runtime: self.runtime,
            input_names: inputs.to_vec(),
            output_names: outputs.to_vec(),
        })
    }

    fn load_inner(
        &self,
        blob: &[u8],
        inputs: &[String],
        outputs: &[String],
        policy: bool,
    ) -> Result<Loaded> {
        if outputs.is_empty() {
            return Err(Error::new(
                "a TF model needs the names of the graph's outputs (OUTPUTS at AI.MODELSTORE)",
            ));
        }
        let import = || Graph::import(self.runtime, blob).map_err(|f| Error::new(f.message));
        if policy {
            match policy::check(blob) {
                Ok(()) => {}
                Err(refusal @ Refusal::Forbidden { .. }) => {
                    return Err(Error::new(refusal.to_string()))
                }
                Err(refusal @ Refusal::Malformed(_)) => {
                    // Not a GraphDef: TensorFlow's own reason, as before the policy. Its
                    // import runs nothing; whatever it says, the blob is refused.
                    return Err(match import() {
                        Err(err) => err,
                        Ok(_graph) => Error::new(refusal.to_string()),
                    });
                }
            }
        }
        let graph = import()?;
        let graph = Arc::new(graph);
        let inputs = inputs
            .iter()
            .map(|name| port(&graph, "Input", name))
            .collect::<Result<Vec<_>>>()?;
        let outputs = outputs
            .iter()
            .map(|name| port(&graph, "Output", name))
            .collect::<Result<Vec<_>>>()?;
        let config = proto::config_proto(
            self.config.intra_op_threads(),
            self.config.inter_op_threads(),
        );
        let session = Session::new(&graph, &config).map_err(|f| Error::new(f.message))?;
        Ok(Loaded {
            session: Mutex::new(Some(Arc::new(session))),
            graph,
            config,
            inputs,
            outputs,
        })
    }

    /// Runs a model; returns its outputs in the order of the model's output names.
    /// `timeout_ms` is the run's own limit (0: none); MODEL_EXECUTION_TIMEOUT applies too,
    /// the smaller one wins.
    pub fn run(
        &self,
        model: &TfModel,
        timeout_ms: u64,
        inputs: &[TensorRef<'_>],
        n_outputs: usize,
    ) -> Result<Vec<OwnedTensor>> {
        self.run_cancellable(model, timeout_ms, None, inputs, n_outputs)
    }

    /// Like [`TfBackend::run`], and the run stops once `cancel` is set.
    pub fn run_cancellable(
        &self,
        model: &TfModel,
        timeout_ms: u64,
        cancel: Option<CancelFlag>,
        inputs: &[TensorRef<'_>],
        n_outputs: usize,
    ) -> Result<Vec<OwnedTensor>> {
        let model = model.loaded()?;
        let limit_mb = self.refresh_memory_limit();
        let refused = memory_refusals();
        let fetched = self
            .runtime
            .call(|| self.run_inner(model, timeout_ms, cancel, inputs, n_outputs))
            .map_err(Error::new)?
            .map_err(|err| memory_error(limit_mb, refused, err))?;
        // Copied here, on the thread of the host's call, where the host lends memory
        // for outputs (TensorFlow's threads get none); the tensors are deleted on
        // TensorFlow's threads, outputs first (they may share buffers with inputs).
        let outputs = fetched
            .outputs
            .iter()
            .zip(&model.outputs)
            .enumerate()
            .map(|(j, (tensor, port))| {
                convert::from_tf(tensor, port.dtype)
                    .map_err(|err| err.context(format_args!("output {j} ('{}')", port.name)))
            })
            .collect::<Result<Vec<_>>>();
        self.runtime
            .call(move || drop(fetched))
            .map_err(Error::new)?;
        outputs
    }

    /// Applies BACKEND_MEMORY_LIMIT (MB, 10^6 bytes as in RedisAI; 0: none) as it is now
    /// to TensorFlow's namespace (see `src/ffi/memory_shim.c`); read before each load and
    /// run. Returns it.
    fn refresh_memory_limit(&self) -> u64 {
        let mb = self.config.memory_limit_mb();
        ffi::set_memory_limit(mb.saturating_mul(1_000_000));
        mb
    }

    /// What TensorFlow's namespace holds (bytes): now, the peak and the limit; None when
    /// the namespace was made without the memory shim (then nothing is bounded).
    pub fn memory_stats(&self) -> Option<ffi::NamespaceMemory> {
        ffi::memory()
    }

    fn run_inner(
        &self,
        model: &Loaded,
        timeout_ms: u64,
        cancel: Option<CancelFlag>,
        inputs: &[TensorRef<'_>],
        n_outputs: usize,
    ) -> Result<Fetched> {
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
        let mut fed = Vec::with_capacity(inputs.len());
        for (i, (tensor, port)) in inputs.iter().zip(&model.inputs).enumerate() {
            if tensor.dtype != port.dtype {
                return Err(Error::invalid_input(format!(
                    "input {i} ('{}') has dtype {}, the graph expects {}",
                    port.name,
                    tensor.dtype.name(),
                    port.dtype.name()
                )));
            }
            if let Some(declared) = &port.shape {
                // The rank only: a graph exported with a fixed batch size still takes
                // others, as RedisAI allowed (the kernels check sizes). A declared scalar
                // takes any shape: AI.TENSORSET makes no rank-0 tensors, so clients feed
                // one as [1] (a `keep_prob`), which broadcasts.
                if !declared.is_empty() && declared.len() != tensor.shape.len() {
                    return Err(Error::invalid_input(format!(
                        "input {i} ('{}') has shape {}, the graph declares {} (rank {})",
                        port.name,
                        shape_text(tensor.shape),
                        shape_text(declared),
                        declared.len()
                    )));
                }
            }
            let value = convert::to_tf(self.runtime, tensor).map_err(|err| {
                Error::invalid_input(format!("input {i} ('{}'): {err}", port.name))
            })?;
            fed.push(value);
        }
        let timeout = self.config.run_timeout_ms(timeout_ms);
        if cancel.is_some_and(|flag| flag.is_set()) {
            return Err(cancelled_error("before it started"));
        }

        let mut slot = model.session.lock().unwrap_or_else(PoisonError::into_inner);
        let session = match &*slot {
            Some(session) => Arc::clone(session),
            None => {
                let session =
                    Session::new(&model.graph, &model.config).map_err(|f| Error::new(f.message))?;
                let session = Arc::new(session);
                *slot = Some(Arc::clone(&session));
                session
            }
        };
        let watch = match cancel {
            Some(flag) => {
                let target = Arc::clone(&session);
                let runtime = self.runtime;
                // The watcher is a host thread: the close goes to TensorFlow's threads.
                let close = Box::new(move || {
                    let _ = runtime.spawn(move || target.close());
                });
                Some(cancel::watch(flag, close).map_err(|err| {
                    Error::new(format!("could not start the cancellation thread: {err}"))
                })?)
            }
            None => None,
        };
        let feeds: Vec<(Output, &ffi::Tensor)> = model
            .inputs
            .iter()
            .zip(&fed)
            .map(|(port, tensor)| (port.output, tensor))
            .collect();
        let fetches: Vec<Output> = model.outputs.iter().map(|p| p.output).collect();
        let result = session.run(&proto::run_options(timeout), &feeds, &fetches);
        let cancelled = watch.is_some_and(cancel::CancelWatch::finish);
        if cancelled {
            // The watcher closed the session: the next run makes a new one.
            *slot = None;
        }
        drop(slot);
        let fetched = result.map_err(|failure| match (cancelled, failure.code, timeout) {
            (true, ffi::CODE_CANCELLED, _) => cancelled_error(&failure.to_string()),
            (_, ffi::CODE_DEADLINE_EXCEEDED, Some(ms)) => Error::timed_out(format!(
                "model execution timed out after {ms} ms: {failure}"
            )),
            _ => Error::new(failure.message),
        })?;
        drop(feeds);
        Ok(Fetched {
            outputs: fetched,
            inputs: fed,
        })
    }
}

/// The tensors of a run: what it fetched and what it was fed. Dropped on TensorFlow's
/// threads; the outputs go first: they may share buffers with the inputs (an Identity
/// of an input).
struct Fetched {
    outputs: Vec<ffi::Tensor>,
    inputs: Vec<ffi::Tensor>,
}

impl Drop for Fetched {
    fn drop(&mut self) {
        self.outputs.clear();
        self.inputs.clear();
    }
}

fn cancelled_error(detail: &str) -> Error {
    Error::cancelled(format!(
        "model run cancelled (the client went away or the server is shutting down): {detail}"
    ))
}

/// Finds the tensor `name` (`op` or `op:index`) in the graph; `what` is "Input" or
/// "Output", for the error messages.
fn port(graph: &Graph, what: &str, name: &str) -> Result<Port> {
    let parsed: TensorName = convert::parse_name(name)?;
    let output = graph
        .output(&parsed.c_op()?, parsed.index)
        .map_err(|found| match found {
            // RedisAI's texts: the input's ends with a full stop, the output's does not.
            None => Error::new(format!(
                "ERR {what} node named \"{}\" not found in TF graph{}",
                parsed.op,
                if what == "Input" { "." } else { "" }
            )),
            Some(count) => Error::new(format!(
                "{what} \"{name}\": the operation \"{}\" has {count} output(s), there is no output {}",
                parsed.op, parsed.index
            )),
        })?;
    let tf_type = graph.output_type(output);
    let dtype = convert::dtype_of(tf_type).ok_or_else(|| {
        Error::new(format!(
            "{what} \"{name}\" ({} operation) has TensorFlow type {}, which the TF backend does not support",
            graph.op_type(output),
            convert::tf_type_name(tf_type)
        ))
    })?;
    Ok(Port {
        name: name.to_owned(),
        output,
        dtype,
        shape: graph.output_shape(output),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use redisai_plugin_api::sdk::ErrorCode;

    #[test]
    fn shape_texts() {
        assert_eq!(shape_text(&[-1, 2, 3]), "[?,2,3]");
        assert_eq!(shape_text(&[]), "[]");
    }

    #[test]
    fn an_oom_under_the_limit_is_out_of_memory_and_keeps_its_text() {
        let oom = memory_error(5, 0, Error::new("OOM when allocating tensor\n"));
        assert_eq!(
            oom,
            Error::out_of_memory(
                "TF memory limit exceeded, memory allocation failed (BACKEND_MEMORY_LIMIT is 5 MB): OOM when allocating tensor"
            )
        );
        let unlimited = memory_error(0, 0, Error::new("OOM when allocating tensor"));
        assert_eq!(unlimited.code(), ErrorCode::Failed);
        let other = memory_error(5, 0, Error::invalid_input("input 0 ('x'): bad"));
        assert_eq!(other, Error::invalid_input("input 0 ('x'): bad"));
    }
}
