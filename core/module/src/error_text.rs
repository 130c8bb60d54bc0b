//! The one place where a failed run or store becomes the error text a client reads,
//! and the one place that adds `ERR `.
//!
//! Pure (no Redis): besides the module, `tests/error_text.rs` compiles this file to run
//! its unit tests, since a test binary of the module itself cannot run.

use redisai_engine::backend::output_budget::is_past_maxmemory;
use redisai_engine::backend::ErrorCode;
use redisai_engine::exec::{Failure, Origin};

/// The error text a client reads for a failed run or store; `ERR ` is added here and
/// nowhere else.
///
/// The message reaches the client as the backend (or engine) wrote it, whatever its
/// code: RedisAI's texts do not depend on the kind of failure, and a run stopped by the
/// request's own TIMEOUT never gets here (the engine makes it a `TIMEDOUT` reply). What
/// the origin decides is whether an error code the message already starts with is kept,
/// as RedisAI did:
/// - model runs, DAG ops and script stores keep only `ERR`;
/// - script runs (which pass on `redis.execute`'s NOPERM, WRONGTYPE, ...) and model
///   stores keep any upper-case code word.
pub fn failure_text(failure: &Failure) -> String {
    // Outputs refused for `maxmemory` answer Redis's own OOM error, code and all.
    if is_past_maxmemory(&failure.error) {
        return failure.error.message.clone();
    }
    let message = match failure.error.code {
        ErrorCode::Failed
        | ErrorCode::InvalidInput
        | ErrorCode::TimedOut
        | ErrorCode::Cancelled
        | ErrorCode::OutOfMemory => failure.error.message.as_str(),
    };
    let has_code = match failure.origin {
        Origin::ModelRun | Origin::Dag | Origin::ScriptStore => message.starts_with("ERR "),
        Origin::ScriptRun | Origin::ModelStore => starts_with_code_word(message),
    };
    if has_code {
        message.to_owned()
    } else {
        format!("ERR {message}")
    }
}

/// Whether `message` starts with a Redis error code: an upper-case word of two letters or
/// more, followed by more text.
fn starts_with_code_word(message: &str) -> bool {
    let code = message.split(' ').next().unwrap_or_default();
    code.len() >= 2 && code.bytes().all(|b| b.is_ascii_uppercase()) && message.len() > code.len()
}

#[cfg(test)]
mod tests {
    use redisai_engine::backend::BackendError;

    use super::*;

    fn text(origin: Origin, code: ErrorCode, message: &str) -> String {
        failure_text(&Failure::new(
            origin,
            BackendError {
                code,
                message: message.to_owned(),
            },
        ))
    }

    #[test]
    fn err_is_added_once() {
        for origin in [
            Origin::ModelRun,
            Origin::ScriptRun,
            Origin::Dag,
            Origin::ModelStore,
            Origin::ScriptStore,
        ] {
            assert_eq!(text(origin, ErrorCode::Failed, "bad"), "ERR bad");
            assert_eq!(text(origin, ErrorCode::Failed, "ERR bad"), "ERR bad");
        }
    }

    #[test]
    fn every_code_keeps_the_message() {
        for code in [
            ErrorCode::Failed,
            ErrorCode::InvalidInput,
            ErrorCode::TimedOut,
            ErrorCode::Cancelled,
            ErrorCode::OutOfMemory,
        ] {
            assert_eq!(
                text(
                    Origin::ModelRun,
                    code,
                    "model execution timed out after 300 ms"
                ),
                "ERR model execution timed out after 300 ms"
            );
        }
    }

    #[test]
    fn script_runs_and_model_stores_keep_a_redis_error_code() {
        assert_eq!(
            text(Origin::ScriptRun, ErrorCode::Failed, "NOPERM no"),
            "NOPERM no"
        );
        assert_eq!(
            text(Origin::ModelStore, ErrorCode::Failed, "WRONGTYPE x"),
            "WRONGTYPE x"
        );
        // A bare upper-case word is a message, not a code.
        assert_eq!(text(Origin::ScriptRun, ErrorCode::Failed, "OOM"), "ERR OOM");
        // Model runs, DAG ops and script stores keep only ERR.
        assert_eq!(
            text(
                Origin::ModelRun,
                ErrorCode::OutOfMemory,
                "OOM when allocating"
            ),
            "ERR OOM when allocating"
        );
        assert_eq!(
            text(Origin::ScriptStore, ErrorCode::Failed, "NOPERM x"),
            "ERR NOPERM x"
        );
    }

    #[test]
    fn outputs_past_maxmemory_answer_redis_own_oom_error_from_every_run() {
        let oom = redisai_engine::backend::output_budget::past_maxmemory();
        for origin in [Origin::ModelRun, Origin::Dag, Origin::ScriptRun] {
            assert_eq!(
                failure_text(&Failure::new(origin, oom.clone())),
                "OOM command not allowed when used memory > 'maxmemory'."
            );
        }
    }
}
