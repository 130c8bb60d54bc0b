//! One script function call as queued work.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::failure::{stopped_at_request_deadline, Failure, Origin};
use super::{Job, RunOutcome};
use crate::backend::{RunContext, ScriptCallArgs};
use crate::script::{Calling, Script};
use crate::tensor::Tensor;

pub struct ScriptRun {
    pub script: Arc<Script>,
    pub function: String,
    pub inputs: Vec<Arc<Tensor>>,
    pub args: Vec<Vec<u8>>,
    /// SCRIPTEXECUTE's three lists, or SCRIPTRUN's positional inputs.
    pub calling: Calling,
    pub n_outputs: usize,
    pub deadline: Option<Instant>,
    /// What the script may touch through the host services (user, db, KEYS).
    pub context: RunContext,
    /// Receives the outcome (on the worker thread); it hands it to the main thread.
    pub finish: Box<dyn FnOnce(RunOutcome) + Send>,
}

impl ScriptRun {
    pub fn abandoned(&self) -> &AtomicU32 {
        &self.context.cancel
    }

    /// Runs the call now, on the calling thread (a worker, or a DAG's thread).
    pub fn execute(&self) -> RunOutcome {
        let now = Instant::now();
        if self.abandoned().load(Ordering::Relaxed) != 0 {
            return RunOutcome::Abandoned;
        }
        if self.deadline.is_some_and(|d| now >= d) {
            return RunOutcome::TimedOut;
        }
        let timeout_ms = self.deadline.map_or(0, |d| {
            d.saturating_duration_since(now).as_millis().max(1) as u64
        });
        let runtime = match self.script.runtime() {
            Ok(runtime) => runtime,
            Err(reason) => return failed(&reason),
        };
        let inputs: Vec<&Tensor> = self.inputs.iter().map(Arc::as_ref).collect();
        let call = ScriptCallArgs {
            function: &self.function,
            inputs: &inputs,
            keys: &self.context.keys,
            args: &self.args,
            calling: self.calling,
            n_outputs: self.n_outputs,
        };
        let host_ctx = std::ptr::addr_of!(self.context).cast_mut().cast();
        let started = Instant::now();
        let result = runtime.run(
            &call,
            timeout_ms,
            &self.context.cancel,
            host_ctx,
            &self.context.output_budget,
        );
        self.script
            .stats
            .record(started.elapsed(), 0, result.is_err());
        match result {
            Ok(outputs) => RunOutcome::Done(outputs),
            Err(error)
                if stopped_at_request_deadline(
                    runtime.backend().reports_error_codes(),
                    &error,
                    timeout_ms,
                    || {
                        self.deadline
                            .is_some_and(|d| Instant::now() + Duration::from_millis(1) >= d)
                    },
                ) =>
            {
                RunOutcome::TimedOut
            }
            Err(error) => RunOutcome::Failed(Failure::new(Origin::ScriptRun, error)),
        }
    }
}

impl Job for ScriptRun {
    fn run(self: Box<Self>) {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.execute()))
            .unwrap_or_else(|_| failed("internal error while running the script"));
        (self.finish)(outcome);
    }

    fn cancel(self: Box<Self>, reason: &str) {
        (self.finish)(failed(reason));
    }
}

/// A script call's failure with the engine's own message.
fn failed(message: &str) -> RunOutcome {
    RunOutcome::Failed(Failure::new(Origin::ScriptRun, message))
}
