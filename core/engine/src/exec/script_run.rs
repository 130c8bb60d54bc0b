//! One script function call as queued work.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
            Err(reason) => return RunOutcome::Failed(reason),
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
        let result = runtime.run(&call, timeout_ms, &self.context.cancel, host_ctx);
        self.script
            .stats
            .record(started.elapsed(), 0, result.is_err());
        match result {
            Ok(outputs) => RunOutcome::Done(outputs),
            Err(_)
                if self
                    .deadline
                    .is_some_and(|d| Instant::now() + Duration::from_millis(1) >= d) =>
            {
                RunOutcome::TimedOut
            }
            Err(reason) => RunOutcome::Failed(error_reply(reason)),
        }
    }
}

impl Job for ScriptRun {
    fn run(self: Box<Self>) {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.execute()))
            .unwrap_or_else(|_| {
                RunOutcome::Failed("ERR internal error while running the script".into())
            });
        (self.finish)(outcome);
    }

    fn cancel(self: Box<Self>, reason: &str) {
        (self.finish)(RunOutcome::Failed(reason.to_owned()));
    }
}

/// A backend message as an error reply: kept when it starts with an error code
/// (`ERR`, `WRONGTYPE`, `NOPERM` ... as a script's Redis call may return), else
/// prefixed with `ERR`.
pub fn error_reply(reason: String) -> String {
    let code = reason.split(' ').next().unwrap_or_default();
    if code.len() >= 2 && code.bytes().all(|b| b.is_ascii_uppercase()) && reason.len() > code.len()
    {
        reason
    } else {
        format!("ERR {reason}")
    }
}

#[cfg(test)]
mod tests {
    use super::error_reply;

    #[test]
    fn error_codes_are_kept() {
        assert_eq!(error_reply("NOPERM no".into()), "NOPERM no");
        assert_eq!(error_reply("ERR x".into()), "ERR x");
        assert_eq!(
            error_reply("Function f does not exist".into()),
            "ERR Function f does not exist"
        );
        assert_eq!(error_reply("OOM".into()), "ERR OOM");
    }
}
