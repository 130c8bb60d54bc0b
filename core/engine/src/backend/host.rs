//! The services table the engine hands to every plugin, the per-run context of script
//! runs, and the reply trees handed to plugins. The script-time services
//! (`redis_command`, `model_execute`) that touch Redis are the module's
//! (`core/module/src/commands/host_calls.rs`), installed through
//! [`super::host_services`].
//!
//! # How the script-time services are kept safe
//! - Each script run passes a [`RunContext`] as `RaiRunOptions.host_ctx`: the calling
//!   user, the selected database, the keys the caller declared in KEYS, the run's
//!   cancel flag and deadline. It belongs to the queued run and outlives `script_run`;
//!   a plugin may use it only during that call.
//! - The keyspace is touched only under Redis's global lock, taken from the worker
//!   with `RedisModule_ThreadSafeContextTryLock` in a loop that gives up when the run
//!   is cancelled (client gone, TIMEOUT, shutdown): a worker never waits on a main
//!   thread that waits for it.
//! - `redis_command` refuses blocking, transactional, pub/sub, database-switching and
//!   admin commands and the module's own blocking commands; every key the command
//!   names (as `RedisModule_GetCommandKeys` finds them) must be one of the run's KEYS
//!   (which Redis already checked against the caller's ACL key patterns and cluster
//!   slots); the command itself is checked against the caller's ACL with
//!   `RedisModule_ACLCheckCommandPermissions`. It runs with `RedisModule_Call` in
//!   script mode (`S`), respecting deny-oom (`M`), and replicates what it writes (`!`).
//! - `model_execute` needs the model key among KEYS too; it clones the model's `Arc`
//!   under the lock, releases the lock and runs the model on the calling thread.

use std::ffi::{c_char, CStr};

use redisai_plugin_api::abi::{
    RaiConfigKey, RaiHostApi, RaiLogLevel, RAI_PLUGIN_ABI_MAJOR, RAI_PLUGIN_ABI_MINOR,
};

pub use context::RunContext;

use super::host_services::{self, LogLevel};

pub static HOST_API: RaiHostApi = RaiHostApi {
    abi_major: RAI_PLUGIN_ABI_MAJOR,
    abi_minor: RAI_PLUGIN_ABI_MINOR,
    struct_size: std::mem::size_of::<RaiHostApi>(),
    log: Some(host_log),
    config_get: Some(host_config_get),
    redis_command: Some(super::host_services::redis_command),
    reply_free: Some(super::reply::reply_free),
    model_execute: Some(super::host_services::model_execute),
    host_tensor_release: Some(host_tensor_release),
    output_alloc: Some(super::lent::output_alloc),
};

unsafe extern "C" fn host_log(level: u32, message: *const c_char) {
    let _ = std::panic::catch_unwind(|| {
        if message.is_null() {
            return;
        }
        // SAFETY: the plugin passes a NUL-terminated string valid for the call.
        let text = unsafe { CStr::from_ptr(message) }.to_string_lossy();
        let level = match level {
            l if l == RaiLogLevel::Warning as u32 => LogLevel::Warning,
            l if l == RaiLogLevel::Notice as u32 => LogLevel::Notice,
            _ => LogLevel::Debug,
        };
        host_services::log(level, &format!("backend: {text}"));
    });
}

unsafe extern "C" fn host_config_get(key: u32) -> i64 {
    std::panic::catch_unwind(|| {
        let config = crate::settings::read();
        let value = match key {
            k if k == RaiConfigKey::IntraOpParallelism as u32 => config.intra_op_parallelism,
            k if k == RaiConfigKey::InterOpParallelism as u32 => config.inter_op_parallelism,
            k if k == RaiConfigKey::ModelExecutionTimeoutMs as u32 => {
                config.model_execution_timeout_ms
            }
            k if k == RaiConfigKey::BackendMemoryLimitMb as u32 => config.backend_memory_limit_mb,
            _ => 0,
        };
        i64::try_from(value).unwrap_or(i64::MAX)
    })
    .unwrap_or(0)
}

mod context {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;
    use std::time::Instant;

    use crate::backend::OutputBudget;

    /// What a script run may touch; its address is the run's `host_ctx`.
    pub struct RunContext {
        /// The database the caller had selected.
        pub db: i32,
        /// The caller's ACL user name (None: no ACL check possible on this server).
        pub user: Option<Vec<u8>>,
        /// Keys the caller declared in KEYS.
        pub keys: Vec<Vec<u8>>,
        /// Set when the run's result is no longer wanted.
        pub cancel: Arc<AtomicU32>,
        /// When the run's TIMEOUT passes; models it runs get the time left.
        pub deadline: Option<Instant>,
        /// What the run's outputs may take, shared with the models it runs.
        pub output_budget: OutputBudget,
    }

    impl RunContext {
        pub fn declares(&self, key: &[u8]) -> bool {
            self.keys.iter().any(|k| k == key)
        }

        pub fn cancelled(&self) -> bool {
            self.cancel.load(Ordering::Relaxed) != 0
        }

        /// Milliseconds left before the deadline (0: none; at least 1 otherwise).
        pub fn time_left_ms(&self) -> u64 {
            self.deadline.map_or(0, |d| {
                d.saturating_duration_since(Instant::now())
                    .as_millis()
                    .max(1) as u64
            })
        }
    }
}

unsafe extern "C" fn host_tensor_release(owner: *mut std::ffi::c_void) {
    let _ = std::panic::catch_unwind(|| {
        if !owner.is_null() {
            // SAFETY: `model_execute` made each owner from a `Box<Tensor>`; the plugin
            // releases each exactly once.
            drop(unsafe { Box::from_raw(owner.cast::<crate::tensor::Tensor>()) });
        }
    });
}

/// Commands a script may not run through `redis.execute`.
const REFUSED: &[&str] = &[
    // Blocking.
    "blpop",
    "brpop",
    "brpoplpush",
    "blmove",
    "blmpop",
    "bzpopmin",
    "bzpopmax",
    "bzmpop",
    "xread",
    "xreadgroup",
    "wait",
    "waitaof",
    // Transactions and connection state.
    "multi",
    "exec",
    "discard",
    "watch",
    "unwatch",
    "select",
    "swapdb",
    "move",
    "auth",
    "hello",
    "reset",
    "client",
    "quit",
    // Pub/sub.
    "subscribe",
    "psubscribe",
    "ssubscribe",
    "unsubscribe",
    "punsubscribe",
    "sunsubscribe",
    "monitor",
    // Server administration.
    "shutdown",
    "debug",
    "config",
    "module",
    "acl",
    "save",
    "bgsave",
    "bgrewriteaof",
    "flushall",
    "flushdb",
    "replicaof",
    "slaveof",
    "failover",
    "sync",
    "psync",
    "migrate",
    "restore",
    "keys",
    "scan",
    "randomkey",
    "eval",
    "evalsha",
    "eval_ro",
    "evalsha_ro",
    "fcall",
    "fcall_ro",
    "function",
    "script",
    "cluster",
    "readonly",
    "readwrite",
    "asking",
    "pfdebug",
    "pfselftest",
    // Reach keys that are not arguments (SORT ... BY/GET patterns).
    "sort",
    "sort_ro",
    // This module's commands that load backends, models or scripts (a backend must
    // not be re-entered from inside one of its own runs), block or run work.
    "ai.modelstore",
    "ai.modelset",
    "ai.scriptstore",
    "ai.scriptset",
    "ai.modelexecute",
    "ai.modelrun",
    "ai.scriptexecute",
    "ai.scriptrun",
    "ai.dagexecute",
    "ai.dagexecute_ro",
    "ai.dagrun",
    "ai.dagrun_ro",
    "ai.config",
];

/// Why a script may not run `command`, if it may not.
///
/// ```text
/// refusal(b"BLPOP") -> Some("ERR command 'blpop' is not allowed from a script")
/// ```
pub fn refusal(command: &[u8]) -> Option<String> {
    let lower = command.to_ascii_lowercase();
    let name = String::from_utf8_lossy(&lower);
    REFUSED
        .contains(&name.as_ref())
        .then(|| format!("ERR command '{name}' is not allowed from a script"))
}

#[cfg(test)]
mod tests {
    use redisai_plugin_api::abi::{RaiReply, RaiReplyKind};

    use super::*;
    use crate::backend::host_services::NOT_AVAILABLE;

    #[test]
    fn blocking_admin_and_module_commands_are_refused() {
        for command in [
            &b"BLPOP"[..],
            b"multi",
            b"Select",
            b"FLUSHALL",
            b"AI.SCRIPTEXECUTE",
            b"ai.scriptstore",
            b"sort",
        ] {
            assert!(
                refusal(command).is_some(),
                "{}",
                String::from_utf8_lossy(command)
            );
        }
        for command in [&b"GET"[..], b"incr", b"LRANGE", b"AI.TENSORSET", b"HSET"] {
            assert!(
                refusal(command).is_none(),
                "{}",
                String::from_utf8_lossy(command)
            );
        }
        assert_eq!(
            refusal(b"BLPOP").as_deref(),
            Some("ERR command 'blpop' is not allowed from a script")
        );
    }

    /// Reads and frees an error reply made by the host.
    fn error_text(reply: *mut RaiReply) -> String {
        assert!(!reply.is_null());
        // SAFETY: `reply` is a live root from `make_reply`, freed once below.
        unsafe {
            assert_eq!((*reply).kind, RaiReplyKind::Error);
            let text = CStr::from_ptr((*reply).str).to_string_lossy().into_owned();
            (HOST_API.reply_free.expect("reply_free"))(reply);
            text
        }
    }

    // Unit tests never install services (only the module does), so these see the
    // behaviour without a server.
    #[test]
    fn script_services_answer_not_available_without_a_server() {
        let command = HOST_API.redis_command.expect("redis_command entry");
        let execute = HOST_API.model_execute.expect("model_execute entry");
        let name = c"GET";
        let len = 3usize;
        // SAFETY: one valid argument; the reply is freed by `error_text`.
        let reply = unsafe { command(std::ptr::null_mut(), &name.as_ptr(), &len, 1) };
        assert_eq!(error_text(reply), NOT_AVAILABLE);
        // SAFETY: no inputs or outputs; the key is a valid C string.
        let reply = unsafe {
            execute(
                std::ptr::null_mut(),
                c"m".as_ptr(),
                std::ptr::null(),
                0,
                std::ptr::null_mut(),
                0,
            )
        };
        assert_eq!(error_text(reply), NOT_AVAILABLE);
    }
}
