//! What the engine needs from the server it runs in, supplied once by whoever embeds it
//! (the Redis module, at load, before any backend loads) instead of the engine calling
//! up into the module:
//!
//! - `redis_command` and `model_execute`: the script-time services behind
//!   `RaiHostApi.redis_command` / `RaiHostApi.model_execute` (they touch the keyspace);
//! - `log`: where the engine's and the plugins' log lines go.
//!
//! [`HOST_API`](super::host::HOST_API) is a static table handed to every plugin, so its
//! two script-time entries are forwarders that look up the installed services on each
//! call. Until [`install`] runs (unit tests, benches, any embedding without Redis):
//! `redis_command` and `model_execute` answer the error reply [`NOT_AVAILABLE`] (and
//! `model_execute` fills no outputs), and log lines go to stderr.

use std::ffi::{c_char, c_void};
use std::sync::OnceLock;

use redisai_plugin_api::abi::{RaiReply, RaiTensorOut, RaiTensorView};

use super::reply::{make_reply, ReplyValue};

/// The signature of `RaiHostApi.redis_command` (see the ABI for its contract).
pub type RedisCommandFn = unsafe extern "C" fn(
    host_ctx: *mut c_void,
    argv: *const *const c_char,
    argv_len: *const usize,
    argc: usize,
) -> *mut RaiReply;

/// The signature of `RaiHostApi.model_execute` (see the ABI for its contract).
pub type ModelExecuteFn = unsafe extern "C" fn(
    host_ctx: *mut c_void,
    key: *const c_char,
    inputs: *const RaiTensorView,
    n_inputs: usize,
    outputs: *mut RaiTensorOut,
    n_outputs: usize,
) -> *mut RaiReply;

/// How loud a log line is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Notice,
    Warning,
}

/// The services the embedding server supplies. Replies from `redis_command` and
/// `model_execute` must be made with [`make_reply`], since plugins free them with the
/// engine's `reply_free`.
#[derive(Clone, Copy)]
pub struct HostServices {
    pub redis_command: RedisCommandFn,
    pub model_execute: ModelExecuteFn,
    pub log: fn(LogLevel, &str),
}

/// The error reply of a script-time service when no server installed one.
pub const NOT_AVAILABLE: &str = "ERR this host service is not available outside Redis";

static SERVICES: OnceLock<HostServices> = OnceLock::new();

/// Installs the server's services; only the first call counts (the module loads once
/// per process). Returns false when services were already installed.
pub fn install(services: HostServices) -> bool {
    SERVICES.set(services).is_ok()
}

fn installed() -> Option<&'static HostServices> {
    SERVICES.get()
}

/// Writes a log line through the installed sink, or to stderr before one is installed.
pub fn log(level: LogLevel, text: &str) {
    match installed() {
        Some(services) => (services.log)(level, text),
        None => eprintln!("redisai {level:?}: {text}"),
    }
}

fn not_available() -> *mut RaiReply {
    make_reply(ReplyValue::Error(NOT_AVAILABLE.as_bytes().to_vec()))
}

/// `RaiHostApi.redis_command`: forwards to the installed service.
pub(super) unsafe extern "C" fn redis_command(
    host_ctx: *mut c_void,
    argv: *const *const c_char,
    argv_len: *const usize,
    argc: usize,
) -> *mut RaiReply {
    match installed() {
        // SAFETY: the plugin's arguments are passed on unchanged, under the same
        // contract.
        Some(services) => unsafe { (services.redis_command)(host_ctx, argv, argv_len, argc) },
        None => std::panic::catch_unwind(not_available).unwrap_or(std::ptr::null_mut()),
    }
}

/// `RaiHostApi.model_execute`: forwards to the installed service.
pub(super) unsafe extern "C" fn model_execute(
    host_ctx: *mut c_void,
    key: *const c_char,
    inputs: *const RaiTensorView,
    n_inputs: usize,
    outputs: *mut RaiTensorOut,
    n_outputs: usize,
) -> *mut RaiReply {
    match installed() {
        // SAFETY: the plugin's arguments are passed on unchanged, under the same
        // contract.
        Some(services) => unsafe {
            (services.model_execute)(host_ctx, key, inputs, n_inputs, outputs, n_outputs)
        },
        None => std::panic::catch_unwind(not_available).unwrap_or(std::ptr::null_mut()),
    }
}
