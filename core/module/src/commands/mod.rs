//! Command handlers: parse arguments, call the plain modules, build replies.

pub mod caller;
pub mod config;
pub mod dag;
pub mod host_calls;
pub mod key_specs;
pub mod keyspace;
pub mod memory;
pub mod model;
pub mod run_info;
pub mod script;
mod store;
pub mod subcommands;
pub mod tensor;

use std::panic::{catch_unwind, AssertUnwindSafe};

use redis_module::{Context, RedisError, RedisResult, RedisString};

pub type Handler = fn(&Context, Vec<RedisString>) -> RedisResult;

/// Runs a command handler so that a panic becomes an error reply instead of
/// unwinding into Redis.
pub fn guarded(ctx: &Context, args: Vec<RedisString>, handler: Handler) -> RedisResult {
    let command = args
        .first()
        .map(|name| String::from_utf8_lossy(name.as_slice()).into_owned())
        .unwrap_or_default();
    match catch_unwind(AssertUnwindSafe(|| handler(ctx, args))) {
        Ok(result) => resp_safe_result(result),
        Err(payload) => {
            let reason = panic_message(payload.as_ref());
            ctx.log_warning(&format!("internal error in {command}: {reason}"));
            resp_safe_result(Err(RedisError::String(format!(
                "ERR internal error in {command}: {reason}"
            ))))
        }
    }
}

/// The bytes of an error reply, as RedisAI gave them: line breaks (and NUL, which ends a
/// C string) become spaces, as RedisAI's one-line error did; every other byte, tabs and
/// UTF-8 included, stays as the backend or client wrote it.
pub fn reply_bytes(text: &str) -> Vec<u8> {
    text.bytes()
        .map(|byte| match byte {
            b'\r' | b'\n' | 0 => b' ',
            other => other,
        })
        .collect()
}

/// [`reply_bytes`] in the form the `redis-module` crate's error replies need: it sends
/// each `char` as its low byte (`c as u8`) and panics (an abort, outside any catch) on a
/// resulting NUL, so a non-ASCII character such as U+0600 would be cut to a NUL, and
/// U+010D to a bare `\r`. Each reply byte is therefore carried as the `char` of the
/// same number (U+0000..U+00FF), which the crate turns back into exactly that byte.
pub fn resp_safe(text: &str) -> String {
    reply_bytes(text).into_iter().map(char::from).collect()
}

/// [`resp_safe`] applied to an error result.
pub fn resp_safe_result(result: RedisResult) -> RedisResult {
    match result {
        Err(RedisError::String(text)) => Err(RedisError::String(resp_safe(&text))),
        other => other,
    }
}

pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "unknown panic".to_owned()
    }
}

/// The arguments as byte slices, borrowed from the Redis strings.
pub fn arg_slices(args: &[RedisString]) -> Vec<&[u8]> {
    args.iter().map(RedisString::as_slice).collect()
}

/// An error reply from any displayable error (its text is the reply).
pub fn reply_error(err: impl std::fmt::Display) -> RedisError {
    RedisError::String(err.to_string())
}
