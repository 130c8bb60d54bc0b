//! Loading and running TFLite models, independent of the plugin ABI's host.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

pub use redisai_plugin_api::sdk::Config;
use redisai_plugin_api::sdk::{CancelFlag, Error, OwnedTensor, Result, TensorRef};

use crate::convert::{self, Port};
use crate::ffi::{self, CompiledModel, Failure, Layout, RankedTensorType, Runtime};
use crate::flatbuffer;
use crate::runtime;

/// The TFLite backend: compiles models with LiteRT and runs them.
pub struct TfliteBackend {
    config: Box<dyn Config>,
    runtime: &'static Runtime,
}

/// Model compilation changes the process's one LiteRT environment (accelerators are
/// registered on it): one at a time.
static COMPILE: Mutex<()> = Mutex::new(());

/// A loaded model: the compiled model and the names and dtypes of its inputs and outputs,
/// in the order of the model's main subgraph (the order RedisAI uses).
pub struct TfliteModel {
    /// LiteRT's compiled model runs one call at a time.
    compiled: Mutex<CompiledModel>,
    /// The signature that runs the main subgraph.
    signature: usize,
    inputs: Vec<Port>,
    outputs: Vec<Port>,
    /// What the cancellation check of the compiled model looks at.
    watch: Arc<RunWatch>,
}

impl TfliteModel {
    pub fn input_names(&self) -> Vec<String> {
        self.inputs.iter().map(|p| p.name.clone()).collect()
    }

    pub fn output_names(&self) -> Vec<String> {
        self.outputs.iter().map(|p| p.name.clone()).collect()
    }
}

/// Why a run was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    TimedOut,
    Cancelled,
}

/// The limits of the run in progress, read by LiteRT's cancellation callback between
/// operations.
#[derive(Default)]
struct RunWatch {
    state: Mutex<WatchState>,
}

#[derive(Default)]
struct WatchState {
    deadline: Option<Instant>,
    cancel: Option<CancelFlag>,
    stopped: Option<Stop>,
}

impl RunWatch {
    fn arm(&self, deadline: Option<Instant>, cancel: Option<CancelFlag>) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        *state = WatchState {
            deadline,
            cancel,
            stopped: None,
        };
    }

    /// Clears the limits; returns why the run was stopped, if it was.
    fn disarm(&self) -> Option<Stop> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::take(&mut *state).stopped
    }

    /// The cancellation check: true once the run is to stop.
    fn should_stop(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.stopped.is_some() {
            return true;
        }
        if state.cancel.is_some_and(|flag| flag.is_set()) {
            state.stopped = Some(Stop::Cancelled);
        } else if state.deadline.is_some_and(|at| Instant::now() >= at) {
            state.stopped = Some(Stop::TimedOut);
        }
        state.stopped.is_some()
    }
}

fn port_of(direction: &str, index: usize, info: &ffi::TensorInfo) -> Result<Port> {
    let dtype = convert::dtype_of(info.element_type).ok_or_else(|| {
        Error::new(format!(
            "model {direction} {index} ('{}') has element type {}, which the TFLITE backend does not support",
            info.name,
            convert::element_name(info.element_type)
        ))
    })?;
    Ok(Port {
        name: info.name.clone(),
        dtype,
        element_type: info.element_type,
        signature_index: info.signature_index,
    })
}

impl TfliteBackend {
    /// Opens the runtime library (once per process) and makes a backend.
    pub fn new(config: impl Config) -> Result<TfliteBackend> {
        let runtime = runtime::runtime()?;
        Ok(TfliteBackend {
            config: Box::new(config),
            runtime,
        })
    }

    /// The runtime library in use.
    pub fn library(&self) -> &std::path::Path {
        self.runtime.library()
    }

    /// Compiles a .tflite model for the CPU.
    pub fn load(&self, blob: &[u8]) -> Result<TfliteModel> {
        self.load_inner(blob).map_err(Error::one_line)
    }

    fn load_inner(&self, blob: &[u8]) -> Result<TfliteModel> {
        flatbuffer::check_model(blob)?;
        let model = ffi::Model::from_bytes(self.runtime, blob)
            .map_err(|err| redisai_text(err, flatbuffer::NOT_A_MODEL))?;
        let io = model.io()?;
        let inputs = io
            .inputs
            .iter()
            .enumerate()
            .map(|(i, info)| port_of("input", i, info))
            .collect::<Result<Vec<_>>>()?;
        let outputs = io
            .outputs
            .iter()
            .enumerate()
            .map(|(i, info)| port_of("output", i, info))
            .collect::<Result<Vec<_>>>()?;
        let threads = self.config.intra_op_threads();
        let mut compiled = {
            let _one_at_a_time = COMPILE.lock().unwrap_or_else(PoisonError::into_inner);
            // RedisAI's text when TFLite could not build an interpreter for the model.
            CompiledModel::new(model, threads)
                .map_err(|err| redisai_text(err, "Failed to construct interpreter"))?
        };
        let watch = Arc::new(RunWatch::default());
        let check = Arc::clone(&watch);
        compiled.set_cancel_check(Box::new(move || check.should_stop()))?;
        Ok(TfliteModel {
            compiled: Mutex::new(compiled),
            signature: io.signature,
            inputs,
            outputs,
            watch,
        })
    }

    /// Runs a model; returns its outputs in the model's order. `timeout_ms` is the run's
    /// own limit (0: none); MODEL_EXECUTION_TIMEOUT applies too, the smaller one wins.
    pub fn run(
        &self,
        model: &TfliteModel,
        timeout_ms: u64,
        inputs: &[TensorRef<'_>],
        n_outputs: usize,
    ) -> Result<Vec<OwnedTensor>> {
        self.run_cancellable(model, timeout_ms, None, inputs, n_outputs)
    }

    /// Like [`TfliteBackend::run`], and the run stops once `cancel` is set.
    pub fn run_cancellable(
        &self,
        model: &TfliteModel,
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
        let dims = inputs
            .iter()
            .zip(&model.inputs)
            .enumerate()
            .map(|(i, (tensor, port))| convert::input_dims(i, port, tensor))
            .collect::<Result<Vec<_>>>()?;
        let timeout = self.config.run_timeout_ms(timeout_ms);
        let compiled = model
            .compiled
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        run_locked(model, &compiled, timeout, cancel, inputs, &dims).map_err(Error::one_line)
    }
}

/// The run itself, holding the model's lock.
fn run_locked(
    model: &TfliteModel,
    compiled: &CompiledModel,
    timeout: Option<u64>,
    cancel: Option<CancelFlag>,
    inputs: &[TensorRef<'_>],
    dims: &[Vec<i32>],
) -> Result<Vec<OwnedTensor>> {
    let signature = model.signature;
    // Inputs whose shape differs from the model's current one are resized (TFLite's
    // non-strict resize), then LiteRT propagates the shapes and reallocates.
    let mut resized = false;
    for ((port, dims), i) in model.inputs.iter().zip(dims).zip(0..) {
        let current = compiled.input_layout(signature, port.signature_index)?;
        if current.dims() != dims.as_slice() {
            if dims.is_empty() || dims.contains(&0) {
                return Err(Error::invalid_input(format!(
                    "input {i} ('{}') has shape {dims:?}, the model's is {:?}: LiteRT resizes inputs only to shapes of rank 1 or more without zero dimensions",
                    port.name,
                    current.dims()
                )));
            }
            compiled
                .resize_input(signature, port.signature_index, dims)
                .map_err(|f| input_error(i, port, dims, f))?;
            resized = true;
        }
    }
    let layouts = compiled
        .output_layouts(signature, model.outputs.len(), resized)
        .map_err(|f| {
            Error::invalid_input(format!("the model cannot run with these input shapes: {f}"))
        })?;

    // Buffers in the signature's order, which is the order LiteRT's run takes them in.
    let mut input_buffers: Vec<Option<ffi::TensorBuffer<'_>>> =
        (0..inputs.len()).map(|_| None).collect();
    for ((port, tensor), (dims, i)) in model.inputs.iter().zip(inputs).zip(dims.iter().zip(0..)) {
        let layout = Layout::new(dims).ok_or_else(|| Error::new("too many dimensions"))?;
        let tensor_type = RankedTensorType {
            element_type: port.element_type,
            layout,
        };
        let buffer = compiled
            .buffer(signature, true, port.signature_index, &tensor_type)
            .map_err(|f| input_error(i, port, dims, f))?;
        buffer
            .write(tensor.data)
            .map_err(|f| input_error(i, port, dims, f))?;
        if let Some(slot) = input_buffers.get_mut(port.signature_index) {
            *slot = Some(buffer);
        }
    }
    let mut output_buffers: Vec<Option<ffi::TensorBuffer<'_>>> =
        (0..model.outputs.len()).map(|_| None).collect();
    for (port, j) in model.outputs.iter().zip(0..) {
        let layout = *layouts
            .get(port.signature_index)
            .ok_or_else(|| Error::new("LiteRT returned too few output shapes"))?;
        let tensor_type = RankedTensorType {
            element_type: port.element_type,
            layout,
        };
        let buffer = compiled
            .buffer(signature, false, port.signature_index, &tensor_type)
            .map_err(|f| Error::new(format!("output {j} ('{}'): {f}", port.name)))?;
        if let Some(slot) = output_buffers.get_mut(port.signature_index) {
            *slot = Some(buffer);
        }
    }
    let input_buffers = input_buffers
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| Error::new("two inputs share a signature position"))?;
    let output_buffers = output_buffers
        .into_iter()
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| Error::new("two outputs share a signature position"))?;

    let deadline = timeout.map(|ms| Instant::now() + Duration::from_millis(ms));
    model.watch.arm(deadline, cancel);
    let result = compiled.run(signature, &input_buffers, &output_buffers);
    let stopped = model.watch.disarm();
    if let Err(failure) = result {
        return Err(match (stopped, timeout) {
            (Some(Stop::Cancelled), _) => Error::cancelled(format!(
                "model run cancelled (the client went away or the server is shutting down): {failure}"
            )),
            (Some(Stop::TimedOut), Some(ms)) => Error::timed_out(format!(
                "model execution timed out after {ms} ms: {failure}"
            )),
            _ => Error::new(format!("the TFLite model failed to run: {failure}")),
        });
    }

    // The outputs' shapes after the run (data-dependent shapes are known only now).
    let layouts = compiled.output_layouts(signature, model.outputs.len(), false)?;
    model
        .outputs
        .iter()
        .zip(0..)
        .map(|(port, j)| {
            let dims = layouts
                .get(port.signature_index)
                .map(|layout| layout.dims().to_vec())
                .ok_or_else(|| Error::new("LiteRT returned too few output shapes"))?;
            let count = convert::element_count(&dims).ok_or_else(|| {
                Error::new(format!(
                    "output {j} ('{}') has a dynamic shape {dims:?} after the run",
                    port.name
                ))
            })?;
            let len = count
                .checked_mul(convert::element_size(port.dtype))
                .ok_or_else(|| Error::new(format!("output {j} ('{}') is too large", port.name)))?;
            let buffer = output_buffers
                .get(port.signature_index)
                .ok_or_else(|| Error::new("missing output buffer"))?;
            let data = buffer
                .read(len)
                .map_err(|f| Error::new(format!("output {j} ('{}'): {f}", port.name)))?
                .map_err(|err| err.context(format_args!("output {j} ('{}')", port.name)))?;
            Ok(OwnedTensor {
                dtype: port.dtype,
                shape: dims.iter().map(|&d| i64::from(d)).collect(),
                data,
            })
        })
        .collect()
}

/// RedisAI's fixed `text` for an ordinary LiteRT failure. A C++ exception the guard
/// caught (where RedisAI's process would have aborted) keeps its own text.
fn redisai_text(err: Error, text: &str) -> Error {
    if err.message().contains("threw a C++ exception") {
        err.one_line()
    } else {
        Error::with_code(err.code(), text)
    }
}

fn input_error(index: usize, port: &Port, dims: &[i32], failure: Failure) -> Error {
    Error::invalid_input(format!(
        "input {index} ('{}') with shape {dims:?}: {failure}",
        port.name
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watch_stops_on_deadline_and_stays_stopped() {
        let watch = RunWatch::default();
        assert!(!watch.should_stop());
        watch.arm(Some(Instant::now() + Duration::from_secs(60)), None);
        assert!(!watch.should_stop());
        assert_eq!(watch.disarm(), None);
        watch.arm(Some(Instant::now()), None);
        assert!(watch.should_stop());
        assert!(watch.should_stop());
        assert_eq!(watch.disarm(), Some(Stop::TimedOut));
        assert!(!watch.should_stop());
    }
}
