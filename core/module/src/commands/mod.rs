//! Command handlers: parse arguments, call the plain modules, build replies.

pub mod caller;
pub mod config;
pub mod dag;
pub mod host_calls;
pub mod key_specs;
pub mod keyspace;
pub mod memory;
pub mod model;
pub mod propagation;
pub mod run_info;
pub mod script;
mod store;
pub mod subcommands;
pub mod tensor;

use std::panic::{catch_unwind, AssertUnwindSafe};

use redis_module::{Context, RedisError, RedisResult, RedisString};

use crate::reply::{panic_message, resp_safe_result};

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

/// The arguments as byte slices, borrowed from the Redis strings.
pub fn arg_slices(args: &[RedisString]) -> Vec<&[u8]> {
    args.iter().map(RedisString::as_slice).collect()
}

/// An error reply from any displayable error (its text is the reply).
pub fn reply_error(err: impl std::fmt::Display) -> RedisError {
    RedisError::String(err.to_string())
}
