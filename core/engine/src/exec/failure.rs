//! How a run failed: what the module needs to reply (where it failed, the plugin's error
//! code and message), and when a plugin's error is the request's own timeout.

use crate::backend::{BackendError, ErrorCode};

/// Where a failure happened. RedisAI's replies differ by origin, so the module's reply
/// text (`core/module/src/error_text.rs`) depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A model run (AI.MODELEXECUTE, a DAG's model op, `redisAI.model_execute`).
    ModelRun,
    /// A script function call; its message may carry a Redis error code
    /// (`redis.execute`'s NOPERM, WRONGTYPE, ...).
    ScriptRun,
    /// A DAG op that is neither (AI.TENSORGET of a tensor the DAG never made).
    Dag,
    /// A backend creating a model (AI.MODELSTORE), possibly loading the backend first.
    ModelStore,
    /// A backend compiling a script (AI.SCRIPTSTORE).
    ScriptStore,
}

/// A failed run or store, before it becomes a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub origin: Origin,
    pub error: BackendError,
}

impl Failure {
    pub fn new(origin: Origin, error: impl Into<BackendError>) -> Failure {
        Failure {
            origin,
            error: error.into(),
        }
    }
}

/// Whether a failed run ended because the request's own TIMEOUT passed, which is a
/// `TIMEDOUT` reply rather than an error.
///
/// A plugin that reports error codes (ABI 1.4) says so with `TimedOut`. It stops at
/// the smaller of the request's time left (`timeout_ms`, 0: none) and
/// MODEL_EXECUTION_TIMEOUT; the latter is an error like any other (RedisAI's rule), so a
/// `TimedOut` counts as the request's only when `timeout_ms` was the binding limit. For
/// an older plugin any error counts once the deadline has passed (`deadline_passed`),
/// the only sign it gives.
pub fn stopped_at_request_deadline(
    reports_codes: bool,
    error: &BackendError,
    timeout_ms: u64,
    deadline_passed: impl FnOnce() -> bool,
) -> bool {
    if !reports_codes {
        return deadline_passed();
    }
    let execution_timeout_ms = crate::settings::read().model_execution_timeout_ms;
    error.code == ErrorCode::TimedOut
        && timeout_ms > 0
        && (execution_timeout_ms == 0 || timeout_ms <= execution_timeout_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timed_out() -> BackendError {
        BackendError {
            code: ErrorCode::TimedOut,
            message: "stopped".into(),
        }
    }

    #[test]
    fn a_coded_plugin_says_when_it_timed_out() {
        // Default settings: MODEL_EXECUTION_TIMEOUT is 5 s.
        assert!(stopped_at_request_deadline(true, &timed_out(), 50, || {
            false
        }));
        // The request had more time left than that: MODEL_EXECUTION_TIMEOUT stopped it.
        assert!(!stopped_at_request_deadline(
            true,
            &timed_out(),
            60_000,
            || true
        ));
        // Another kind of failure is an error even past the deadline.
        let failed = BackendError::failed("bad input");
        assert!(!stopped_at_request_deadline(true, &failed, 50, || true));
        // No request deadline: the plugin's timeout was MODEL_EXECUTION_TIMEOUT's.
        assert!(!stopped_at_request_deadline(true, &timed_out(), 0, || true));
    }

    #[test]
    fn an_older_plugin_is_judged_by_the_clock() {
        let failed = BackendError::failed("anything");
        assert!(stopped_at_request_deadline(false, &failed, 50, || true));
        assert!(!stopped_at_request_deadline(
            false,
            &timed_out(),
            50,
            || false
        ));
    }
}
