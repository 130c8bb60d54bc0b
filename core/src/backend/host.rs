//! The services table the core hands to every plugin, the per-run context of script
//! runs, and the reply trees handed to plugins. The script-time services
//! (`redis_command`, `model_execute`) that touch Redis live in
//! `commands/host_calls.rs`.
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
    RaiConfigKey, RaiHostApi, RaiLogLevel, RaiReply, RaiReplyKind, RAI_PLUGIN_ABI_MAJOR,
    RAI_PLUGIN_ABI_MINOR,
};

pub use context::RunContext;

pub static HOST_API: RaiHostApi = RaiHostApi {
    abi_major: RAI_PLUGIN_ABI_MAJOR,
    abi_minor: RAI_PLUGIN_ABI_MINOR,
    struct_size: std::mem::size_of::<RaiHostApi>(),
    log: Some(host_log),
    config_get: Some(host_config_get),
    #[cfg(not(test))]
    redis_command: Some(crate::commands::host_calls::redis_command),
    #[cfg(test)]
    redis_command: None,
    reply_free: Some(reply_free),
    #[cfg(not(test))]
    model_execute: Some(crate::commands::host_calls::model_execute),
    #[cfg(test)]
    model_execute: None,
    host_tensor_release: Some(host_tensor_release),
};

unsafe extern "C" fn host_log(level: u32, message: *const c_char) {
    let _ = std::panic::catch_unwind(|| {
        if message.is_null() {
            return;
        }
        // SAFETY: the plugin passes a NUL-terminated string valid for the call.
        let text = unsafe { CStr::from_ptr(message) }.to_string_lossy();
        let text = format!("backend: {text}");
        match level {
            l if l == RaiLogLevel::Warning as u32 => redis_module::logging::log_warning(text),
            l if l == RaiLogLevel::Notice as u32 => redis_module::logging::log_notice(text),
            _ => redis_module::logging::log_debug(text),
        }
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

/// A reply tree the host owns: strings are boxed byte slices with a trailing NUL,
/// elements a boxed slice; [`reply_free`] takes the whole tree back.
pub fn make_reply(value: ReplyValue) -> *mut RaiReply {
    Box::into_raw(Box::new(build(value)))
}

/// A reply before it is laid out for the plugin.
pub enum ReplyValue {
    Nil,
    Integer(i64),
    Double(f64),
    String(Vec<u8>),
    Error(Vec<u8>),
    Array(Vec<ReplyValue>),
}

fn build(value: ReplyValue) -> RaiReply {
    let mut reply = RaiReply {
        kind: RaiReplyKind::Nil,
        integer: 0,
        double_value: 0.0,
        str: std::ptr::null(),
        len: 0,
        elements: std::ptr::null(),
        n_elements: 0,
    };
    let text = |reply: &mut RaiReply, mut bytes: Vec<u8>| {
        reply.len = bytes.len();
        bytes.push(0);
        reply.str = Box::into_raw(bytes.into_boxed_slice()).cast::<c_char>();
    };
    match value {
        ReplyValue::Nil => {}
        ReplyValue::Integer(n) => {
            reply.kind = RaiReplyKind::Integer;
            reply.integer = n;
        }
        ReplyValue::Double(d) => {
            reply.kind = RaiReplyKind::Double;
            reply.double_value = d;
        }
        ReplyValue::String(bytes) => {
            reply.kind = RaiReplyKind::String;
            text(&mut reply, bytes);
        }
        ReplyValue::Error(bytes) => {
            reply.kind = RaiReplyKind::Error;
            text(&mut reply, bytes);
        }
        ReplyValue::Array(items) => {
            reply.kind = RaiReplyKind::Array;
            let elements: Box<[RaiReply]> = items.into_iter().map(build).collect();
            reply.n_elements = elements.len();
            reply.elements = Box::into_raw(elements).cast::<RaiReply>();
        }
    }
    reply
}

/// Frees what `build` allocated inside `reply` (not `reply` itself).
///
/// # Safety
/// `reply` must have been laid out by `build` and not released before.
unsafe fn release_inside(reply: &mut RaiReply) {
    if !reply.str.is_null() {
        let slice =
            std::ptr::slice_from_raw_parts_mut(reply.str.cast_mut().cast::<u8>(), reply.len + 1);
        // SAFETY: allocated by `build` as a boxed slice of `len + 1` bytes.
        drop(unsafe { Box::from_raw(slice) });
        reply.str = std::ptr::null();
    }
    if !reply.elements.is_null() {
        let slice = std::ptr::slice_from_raw_parts_mut(reply.elements.cast_mut(), reply.n_elements);
        // SAFETY: allocated by `build` as a boxed slice of `n_elements` replies.
        let mut elements = unsafe { Box::from_raw(slice) };
        for element in elements.iter_mut() {
            // SAFETY: each element was laid out by `build`.
            unsafe { release_inside(element) };
        }
        reply.elements = std::ptr::null();
    }
}

unsafe extern "C" fn reply_free(reply: *mut RaiReply) {
    let _ = std::panic::catch_unwind(|| {
        if reply.is_null() {
            return;
        }
        // SAFETY: the plugin hands back a root from `make_reply`, exactly once.
        let mut root = unsafe { Box::from_raw(reply) };
        // SAFETY: as above.
        unsafe { release_inside(&mut root) };
    });
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
    use super::*;

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

    #[test]
    fn reply_trees_are_laid_out_and_released() {
        let root = make_reply(ReplyValue::Array(vec![
            ReplyValue::String(b"a\0b".to_vec()),
            ReplyValue::Integer(7),
            ReplyValue::Array(vec![ReplyValue::Nil, ReplyValue::Error(b"ERR x".to_vec())]),
            ReplyValue::Double(1.5),
        ]));
        // SAFETY: `root` was just made by `make_reply`; its elements are laid out by it.
        unsafe {
            let reply = &*root;
            assert_eq!(reply.kind, RaiReplyKind::Array);
            assert_eq!(reply.n_elements, 4);
            let items = std::slice::from_raw_parts(reply.elements, reply.n_elements);
            assert_eq!(items[0].kind, RaiReplyKind::String);
            assert_eq!(
                std::slice::from_raw_parts(items[0].str.cast::<u8>(), items[0].len + 1),
                b"a\0b\0"
            );
            assert_eq!(items[1].integer, 7);
            let nested = std::slice::from_raw_parts(items[2].elements, items[2].n_elements);
            assert_eq!(nested[0].kind, RaiReplyKind::Nil);
            assert_eq!(CStr::from_ptr(nested[1].str).to_bytes(), b"ERR x");
            assert_eq!(items[3].double_value, 1.5);
            reply_free(root);
            reply_free(std::ptr::null_mut());
        }
    }
}
