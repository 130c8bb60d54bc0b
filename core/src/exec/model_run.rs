//! One model execution as a queued job.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::Job;
use crate::model::Model;
use crate::tensor::Tensor;

/// How a run ended.
pub enum RunOutcome {
    Done(Vec<Tensor>),
    Failed(String),
    /// The deadline passed before the run started.
    TimedOut,
    /// The client went away before the run started.
    Abandoned,
}

pub struct ModelRun {
    pub model: Arc<Model>,
    pub inputs: Vec<Arc<Tensor>>,
    pub n_outputs: usize,
    pub deadline: Option<Instant>,
    /// Set (non-zero) when the client timed out or went away; the backend sees it too.
    pub abandoned: Arc<AtomicU32>,
    /// Receives the outcome (on the worker thread); it hands it to the main thread.
    pub finish: Box<dyn FnOnce(RunOutcome) + Send>,
}

impl ModelRun {
    fn execute(&self) -> RunOutcome {
        if self.abandoned.load(Ordering::Relaxed) != 0 {
            return RunOutcome::Abandoned;
        }
        let timeout_ms = match self.deadline {
            Some(deadline) => {
                let now = Instant::now();
                if now >= deadline {
                    return RunOutcome::TimedOut;
                }
                // Round up so a run with 0.4 ms left still gets a limit, not "none".
                (deadline - now).as_millis().max(1) as u64
            }
            None => 0,
        };
        let runtime = match self.model.runtime() {
            Ok(runtime) => runtime,
            Err(reason) => return RunOutcome::Failed(reason),
        };
        let inputs: Vec<&Tensor> = self.inputs.iter().map(Arc::as_ref).collect();
        let started = Instant::now();
        let result = runtime.run(&inputs, self.n_outputs, timeout_ms, &self.abandoned);
        let samples = batch_rows(&inputs);
        self.model
            .stats
            .record(started.elapsed(), samples, result.is_err());
        match result {
            Ok(outputs) => RunOutcome::Done(outputs),
            Err(reason) => RunOutcome::Failed(error_reply(&reason)),
        }
    }
}

impl Job for ModelRun {
    fn run(self: Box<Self>) {
        let outcome =
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.execute())) {
                Ok(outcome) => outcome,
                Err(_) => RunOutcome::Failed("ERR internal error while running the model".into()),
            };
        (self.finish)(outcome);
    }

    fn cancel(self: Box<Self>, reason: &str) {
        (self.finish)(RunOutcome::Failed(reason.to_owned()));
    }
}

/// The batch size of a run: the first dimension of its first input.
fn batch_rows(inputs: &[&Tensor]) -> u64 {
    inputs
        .first()
        .and_then(|t| t.shape().first())
        .map_or(1, |&rows| rows.max(0) as u64)
}

/// Backend messages become error replies; keep an error code if they carry one.
fn error_reply(reason: &str) -> String {
    if reason.starts_with("ERR ") {
        reason.to_owned()
    } else {
        format!("ERR {reason}")
    }
}
