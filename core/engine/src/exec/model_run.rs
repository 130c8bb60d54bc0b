//! One model execution as queued work, alone or batched with compatible runs.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::failure::{stopped_at_request_deadline, Failure, Origin};
use crate::backend::output_budget::past_maxmemory;
use crate::backend::{BackendError, OutputBudget};
use crate::model::Model;
use crate::tensor::Tensor;

/// How a run ended.
pub enum RunOutcome {
    Done(Vec<Tensor>),
    Failed(Failure),
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
    /// What the outputs may take (the room under `maxmemory` when the command came).
    pub output_budget: OutputBudget,
    /// Receives the outcome (on the worker thread); it hands it to the main thread.
    pub finish: Box<dyn FnOnce(RunOutcome) + Send>,
}

pub const BATCH_SIZE_MISMATCH: &str = "Model did not generate the expected batch size";

impl ModelRun {
    /// Whether the run should be finished without running: its client left or its
    /// deadline passed.
    pub fn expired(&self, now: Instant) -> bool {
        self.abandoned.load(Ordering::Relaxed) != 0 || self.deadline.is_some_and(|d| now >= d)
    }

    /// The outcome for a run that must not start, if any.
    fn outcome_before_start(&self, now: Instant) -> Option<RunOutcome> {
        if self.abandoned.load(Ordering::Relaxed) != 0 {
            return Some(RunOutcome::Abandoned);
        }
        if self.deadline.is_some_and(|d| now >= d) {
            return Some(RunOutcome::TimedOut);
        }
        None
    }

    /// Whether the deadline has passed (within the millisecond the backend rounds to).
    fn deadline_passed(&self) -> bool {
        self.deadline
            .is_some_and(|d| Instant::now() + std::time::Duration::from_millis(1) >= d)
    }

    /// Milliseconds left before the deadline (0: no deadline).
    fn time_left_ms(&self, now: Instant) -> u64 {
        // Round up so a run with 0.4 ms left still gets a limit, not "none".
        self.deadline.map_or(0, |d| {
            d.saturating_duration_since(now).as_millis().max(1) as u64
        })
    }

    #[allow(clippy::boxed_local)] // queued runs are boxed; unboxing would copy them
    pub fn run(self: Box<Self>) {
        let outcome = guarded(|| self.execute());
        (self.finish)(outcome);
    }

    #[allow(clippy::boxed_local)] // as for `run`
    pub fn cancel(self: Box<Self>, reason: &str) {
        (self.finish)(failed(reason));
    }

    fn execute(&self) -> RunOutcome {
        let now = Instant::now();
        if let Some(outcome) = self.outcome_before_start(now) {
            return outcome;
        }
        let inputs: Vec<&Tensor> = self.inputs.iter().map(Arc::as_ref).collect();
        let timeout_ms = self.time_left_ms(now);
        match run_model(
            &self.model,
            &inputs,
            self.n_outputs,
            timeout_ms,
            &self.abandoned,
            &self.output_budget,
        ) {
            Ok(outputs) => RunOutcome::Done(outputs),
            // The backend was told to stop at the request's deadline: that is a timeout,
            // not a model error.
            Err(error)
                if stopped_at_request_deadline(
                    reports_error_codes(&self.model),
                    &error,
                    timeout_ms,
                    || self.deadline_passed(),
                ) =>
            {
                RunOutcome::TimedOut
            }
            Err(error) => RunOutcome::Failed(Failure::new(Origin::ModelRun, error)),
        }
    }

    /// Runs compatible runs of one model as a single batch: inputs are stacked on
    /// dimension 0, outputs split back in the same order.
    pub fn run_batch(runs: Vec<Box<ModelRun>>) {
        let now = Instant::now();
        let mut live = Vec::with_capacity(runs.len());
        for run in runs {
            match run.outcome_before_start(now) {
                Some(outcome) => (run.finish)(outcome),
                None => live.push(run),
            }
        }
        if live.len() <= 1 {
            if let Some(run) = live.pop() {
                run.run();
            }
            return;
        }
        let outcomes = guarded_batch(&live, now);
        for (run, outcome) in live.into_iter().zip(outcomes) {
            (run.finish)(outcome);
        }
    }
}

/// Runs the batch and returns one outcome per run.
fn guarded_batch(runs: &[Box<ModelRun>], now: Instant) -> Vec<RunOutcome> {
    let failed_all = |error: BackendError| {
        runs.iter()
            .map(|_| RunOutcome::Failed(Failure::new(Origin::ModelRun, error.clone())))
            .collect()
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let head = &runs[0];
        let rows: Vec<usize> = runs
            .iter()
            .map(|run| run.inputs.first().map_or(1, |t| t.rows()))
            .collect();
        let mut stacked = Vec::with_capacity(head.inputs.len());
        for index in 0..head.inputs.len() {
            let parts: Vec<&Tensor> = runs.iter().map(|run| run.inputs[index].as_ref()).collect();
            stacked.push(
                Tensor::concat_rows(&parts).map_err(|err| BackendError::failed(err.to_string()))?,
            );
        }
        let inputs: Vec<&Tensor> = stacked.iter().collect();
        let timeout = runs
            .iter()
            .map(|run| run.time_left_ms(now))
            .filter(|&ms| ms > 0)
            .min()
            .unwrap_or(0);
        let budget = OutputBudget::tightest(runs.iter().map(|run| &run.output_budget));
        let outputs = run_model(
            &head.model,
            &inputs,
            head.n_outputs,
            timeout,
            &head.abandoned,
            &budget,
        )?;
        // Splitting copies the outputs once more.
        let split_bytes = outputs.iter().map(|t| t.data().len()).sum();
        if !budget.charge(split_bytes) {
            return Err(past_maxmemory());
        }
        let total: usize = rows.iter().sum();
        let mut per_run: Vec<Vec<Tensor>> = runs.iter().map(|_| Vec::new()).collect();
        for output in outputs {
            if output.shape().is_empty() || output.rows() != total {
                return Err(BackendError::failed(BATCH_SIZE_MISMATCH));
            }
            let pieces = output
                .split_rows(&rows)
                .map_err(|_| BackendError::failed(BATCH_SIZE_MISMATCH))?;
            for (slot, piece) in per_run.iter_mut().zip(pieces) {
                slot.push(piece);
            }
        }
        Ok::<_, BackendError>(per_run)
    }));
    match result {
        Ok(Ok(per_run)) => per_run.into_iter().map(RunOutcome::Done).collect(),
        Ok(Err(error)) => failed_all(error),
        Err(_) => failed_all(BackendError::failed(INTERNAL_ERROR)),
    }
}

/// Runs the model once and records the run.
fn run_model(
    model: &Model,
    inputs: &[&Tensor],
    n_outputs: usize,
    timeout_ms: u64,
    cancel: &AtomicU32,
    budget: &OutputBudget,
) -> Result<Vec<Tensor>, BackendError> {
    let runtime = model.runtime()?;
    let started = Instant::now();
    let result = runtime.run(inputs, n_outputs, timeout_ms, cancel, budget);
    record_run(model, inputs, started.elapsed(), result.is_err());
    result
}

/// Whether the model's plugin reports error codes (a model without a runtime has no
/// plugin to ask: the rule for older plugins applies).
fn reports_error_codes(model: &Model) -> bool {
    model
        .runtime()
        .is_ok_and(|runtime| runtime.backend().reports_error_codes())
}

/// Records a run in the model's statistics and inline gate.
fn record_run(model: &Model, inputs: &[&Tensor], elapsed: Duration, failed: bool) {
    let rows = inputs.first().map_or(1, |t| t.rows()) as u64;
    model.stats.record(elapsed, rows, failed);
    let limit_us = crate::settings::read().inline_execution_limit_us;
    model
        .inline_gate
        .record(elapsed, input_bytes(inputs.iter().copied()), limit_us);
}

/// The size of a run's inputs, all together.
fn input_bytes<'a>(inputs: impl IntoIterator<Item = &'a Tensor>) -> u64 {
    inputs.into_iter().map(|t| t.data().len() as u64).sum()
}

/// Runs `model` here and now, on the calling (main) thread, if it may run inline (see
/// [`super::inline`]) and no other run of it holds it; `None` when it must be queued.
/// Its outputs may take `budget`.
pub fn run_inline(
    model: &Model,
    inputs: &[Arc<Tensor>],
    n_outputs: usize,
    timeout_ms: Option<u64>,
    budget: &OutputBudget,
) -> Option<RunOutcome> {
    let limit_us = crate::settings::read().inline_execution_limit_us;
    let inputs: Vec<&Tensor> = inputs.iter().map(Arc::as_ref).collect();
    if !super::inline::placement_allows(limit_us, model.device.kind, &model.batching)
        || !model
            .inline_gate
            .admits(input_bytes(inputs.iter().copied()))
    {
        return None;
    }
    let runtime = model.runtime().ok()?;
    // A run the plugin cannot stop at its deadline (libtorch's) could hold the main
    // thread for as long as the model likes: never inline.
    if !runtime.backend().interruptible_run() {
        return None;
    }
    // The plugin stops the run at the cap; the run then
    // goes to a worker with the request's own timeout, and the model stays there until
    // it is fast again. Nothing else can cancel it: its client cannot leave, nor Redis
    // stop, while the main thread is busy with it.
    let cap_ms = INLINE_RUN_CAP.as_millis() as u64;
    let plugin_timeout_ms = timeout_ms.map_or(cap_ms, |ms| ms.min(cap_ms));
    let started = Instant::now();
    let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.try_run(&inputs, n_outputs, plugin_timeout_ms, budget)
    }));
    let result = match attempt {
        Ok(None) => return None,
        Ok(Some(result)) => result,
        Err(_) => return Some(failed(INTERNAL_ERROR)),
    };
    let elapsed = started.elapsed();
    if let Err(error) = &result {
        let stopped_at_cap = stopped_at_request_deadline(
            runtime.backend().reports_error_codes(),
            error,
            plugin_timeout_ms,
            || elapsed >= Duration::from_millis(plugin_timeout_ms),
        );
        if stopped_at_cap {
            model.inline_gate.close();
            return None;
        }
    }
    record_run(model, &inputs, elapsed, result.is_err());
    Some(match result {
        Ok(outputs) => RunOutcome::Done(outputs),
        Err(error) => RunOutcome::Failed(Failure::new(Origin::ModelRun, error)),
    })
}

/// The longest an inline run may take before the plugin is told to stop it.
pub const INLINE_RUN_CAP: Duration = Duration::from_millis(2);

const INTERNAL_ERROR: &str = "internal error while running the model";

/// A model run's failure with the engine's own message.
fn failed(message: &str) -> RunOutcome {
    RunOutcome::Failed(Failure::new(Origin::ModelRun, message))
}

fn guarded(body: impl FnOnce() -> RunOutcome) -> RunOutcome {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(body))
        .unwrap_or_else(|_| failed(INTERNAL_ERROR))
}
