//! The services table the core hands to every plugin, and the script-time services
//! (`redis_command`, `model_execute`) behind it.
//!
//! # How the script-time services are kept safe
//! - Each script run passes a [`RunContext`] as `RaiRunOptions.host_ctx`: the calling
//!   user, the selected database and the keys the caller declared in KEYS. It lives on
//!   the worker's stack frame for exactly the duration of `script_run`.
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
    redis_command: Some(services::redis_command),
    #[cfg(test)]
    redis_command: None,
    reply_free: Some(reply_free),
    #[cfg(not(test))]
    model_execute: Some(services::model_execute),
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

#[cfg(not(test))]
mod services {
    use std::ffi::{c_char, c_int, c_void, CStr};
    use std::sync::Arc;
    use std::time::Duration;

    use redis_module::raw;
    use redisai_plugin_api::abi::{RaiReply, RaiTensorOut, RaiTensorView};

    use super::{make_reply, refusal, ReplyValue, RunContext};
    use crate::model::SharedModel;
    use crate::tensor::{AlignedBuffer, DType, Tensor};

    fn error(text: impl Into<String>) -> *mut RaiReply {
        make_reply(ReplyValue::Error(text.into().into_bytes()))
    }

    /// Redis's global lock, held through a thread-safe context.
    struct Locked {
        ctx: *mut raw::RedisModuleCtx,
    }

    impl Locked {
        /// Takes the lock, giving up when the run is cancelled.
        fn acquire(run: &RunContext) -> Result<Locked, String> {
            // SAFETY: the API table is filled at load time and only read afterwards.
            let (Some(get), Some(try_lock), Some(free)) = (unsafe {
                (
                    raw::RedisModule_GetThreadSafeContext,
                    raw::RedisModule_ThreadSafeContextTryLock,
                    raw::RedisModule_FreeThreadSafeContext,
                )
            }) else {
                return Err("ERR this Redis offers no thread-safe contexts".into());
            };
            // SAFETY: a detached thread-safe context, freed in `drop` or below.
            let ctx = unsafe { get(std::ptr::null_mut()) };
            if ctx.is_null() {
                return Err("ERR cannot create a thread-safe context".into());
            }
            let mut pause = Duration::from_micros(20);
            loop {
                // SAFETY: `ctx` is live.
                if unsafe { try_lock(ctx) } == raw::REDISMODULE_OK as c_int {
                    break;
                }
                if run.cancelled() {
                    // SAFETY: `ctx` is live and not locked.
                    unsafe { free(ctx) };
                    return Err("ERR the script run was cancelled".into());
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(1));
            }
            let locked = Locked { ctx };
            // SAFETY: as above; `ctx` holds the lock.
            if let Some(select) = unsafe { raw::RedisModule_SelectDb } {
                // SAFETY: `ctx` is live and locked.
                unsafe { select(ctx, run.db) };
            }
            Ok(locked)
        }
    }

    impl Drop for Locked {
        fn drop(&mut self) {
            // SAFETY: the API table is filled at load time; `ctx` is live and locked.
            unsafe {
                if let Some(unlock) = raw::RedisModule_ThreadSafeContextUnlock {
                    unlock(self.ctx);
                }
                if let Some(free) = raw::RedisModule_FreeThreadSafeContext {
                    free(self.ctx);
                }
            }
        }
    }

    /// Redis strings made under the lock, freed with it.
    struct Strings {
        ctx: *mut raw::RedisModuleCtx,
        items: Vec<*mut raw::RedisModuleString>,
    }

    impl Strings {
        fn new(locked: &Locked, args: &[Vec<u8>]) -> Result<Strings, String> {
            // SAFETY: the API table is filled at load time and only read afterwards.
            let Some(create) = (unsafe { raw::RedisModule_CreateString }) else {
                return Err("ERR cannot create strings".into());
            };
            let items = args
                .iter()
                // SAFETY: the context is locked; the bytes outlive the call.
                .map(|a| unsafe { create(locked.ctx, a.as_ptr().cast::<c_char>(), a.len()) })
                .collect();
            Ok(Strings {
                ctx: locked.ctx,
                items,
            })
        }
    }

    impl Drop for Strings {
        fn drop(&mut self) {
            // SAFETY: the API table is filled at load time; each string is freed once,
            // while the lock (declared before these strings) is still held.
            if let Some(free) = unsafe { raw::RedisModule_FreeString } {
                for &item in &self.items {
                    // SAFETY: as above.
                    unsafe { free(self.ctx, item) };
                }
            }
        }
    }

    /// Positions of the keys `argv` names, as Redis finds them; None when the command
    /// names no keys or Redis does not know it (RedisModule_Call then replies with the
    /// error). A Redis without RedisModule_GetCommandKeys (before 7.0) cannot tell, so
    /// scripts may not call commands there.
    fn key_positions(locked: &Locked, strings: &Strings) -> Result<Option<Vec<usize>>, String> {
        // SAFETY: the API table is filled at load time and only read afterwards.
        let (Some(get_keys), Some(free)) =
            (unsafe { (raw::RedisModule_GetCommandKeys, raw::RedisModule_Free) })
        else {
            return Err(
                "ERR this Redis cannot tell which keys a command touches (Redis 7 is needed \
                 for redis.execute)"
                    .into(),
            );
        };
        let mut count: c_int = 0;
        // SAFETY: the context is locked; `argv` holds `items.len()` live strings.
        let positions = unsafe {
            get_keys(
                locked.ctx,
                strings.items.as_ptr().cast_mut(),
                strings.items.len() as c_int,
                &mut count,
            )
        };
        if positions.is_null() {
            return Ok(None);
        }
        // SAFETY: Redis returned `count` integers at `positions`, freed below.
        let found = unsafe { std::slice::from_raw_parts(positions, count.max(0) as usize) }
            .iter()
            .filter_map(|&p| usize::try_from(p).ok())
            .collect();
        // SAFETY: allocated by Redis for the caller to free.
        unsafe { free(positions.cast::<c_void>()) };
        Ok(Some(found))
    }

    /// Checks the command against the caller's ACL user.
    fn acl_check(run: &RunContext, locked: &Locked, strings: &Strings) -> Result<(), String> {
        let Some(name) = &run.user else {
            return Ok(());
        };
        // SAFETY: the API table is filled at load time and only read afterwards.
        let (Some(get_user), Some(check), Some(free_user)) = (unsafe {
            (
                raw::RedisModule_GetModuleUserFromUserName,
                raw::RedisModule_ACLCheckCommandPermissions,
                raw::RedisModule_FreeModuleUser,
            )
        }) else {
            return Ok(());
        };
        let name_string = Strings::new(locked, std::slice::from_ref(name))?;
        // SAFETY: the context is locked; the name is a live string.
        let user = unsafe { get_user(name_string.items[0]) };
        if user.is_null() {
            return Err(format!(
                "NOPERM user '{}' no longer exists",
                String::from_utf8_lossy(name)
            ));
        }
        // SAFETY: `user` is live until freed below; `argv` holds live strings.
        let allowed = unsafe {
            check(
                user,
                strings.items.as_ptr().cast_mut(),
                strings.items.len() as c_int,
            )
        } == raw::REDISMODULE_OK as c_int;
        // SAFETY: `user` came from RedisModule_GetModuleUserFromUserName.
        unsafe { free_user(user) };
        if allowed {
            Ok(())
        } else {
            Err(
                "NOPERM this user has no permissions to run this command or its subcommand \
                 (called from a script)"
                    .into(),
            )
        }
    }

    /// Converts a call reply (recursively) while the lock is held.
    fn convert(reply: *mut raw::RedisModuleCallReply, depth: usize) -> ReplyValue {
        if reply.is_null() || depth > 64 {
            return ReplyValue::Nil;
        }
        // SAFETY: the API table is filled at load time; `reply` is a live call reply.
        unsafe {
            let kind = raw::RedisModule_CallReplyType.map_or(-1, |f| f(reply));
            let text = || {
                let mut len = 0usize;
                let ptr = raw::RedisModule_CallReplyStringPtr
                    .map_or(std::ptr::null(), |f| f(reply, &mut len));
                if ptr.is_null() {
                    Vec::new()
                } else {
                    std::slice::from_raw_parts(ptr.cast::<u8>(), len).to_vec()
                }
            };
            match kind as isize {
                raw::REDISMODULE_REPLY_STRING => ReplyValue::String(text()),
                raw::REDISMODULE_REPLY_ERROR => ReplyValue::Error(text()),
                raw::REDISMODULE_REPLY_INTEGER => {
                    ReplyValue::Integer(raw::RedisModule_CallReplyInteger.map_or(0, |f| f(reply)))
                }
                raw::REDISMODULE_REPLY_ARRAY | raw::REDISMODULE_REPLY_SET => {
                    let n = raw::RedisModule_CallReplyLength.map_or(0, |f| f(reply));
                    let element = raw::RedisModule_CallReplyArrayElement;
                    ReplyValue::Array(
                        (0..n)
                            .map(|i| {
                                element.map_or(ReplyValue::Nil, |f| convert(f(reply, i), depth + 1))
                            })
                            .collect(),
                    )
                }
                raw::REDISMODULE_REPLY_DOUBLE => {
                    ReplyValue::Double(raw::RedisModule_CallReplyDouble.map_or(0.0, |f| f(reply)))
                }
                raw::REDISMODULE_REPLY_BOOL => ReplyValue::Integer(i64::from(
                    raw::RedisModule_CallReplyBool.map_or(0, |f| f(reply)) != 0,
                )),
                _ => ReplyValue::Nil,
            }
        }
    }

    fn errno_text(command: &str) -> String {
        match std::io::Error::last_os_error().raw_os_error() {
            // ENOENT
            Some(2) => {
                format!("ERR unknown command '{command}' (called from a script)")
            }
            // EINVAL
            Some(22) => {
                format!(
                    "ERR wrong number of arguments for '{command}' command (called from a script)"
                )
            }
            // EPERM, ENOSPC, EACCES, EROFS
            Some(1) => format!("NOPERM '{command}' is not permitted (called from a script)"),
            Some(28) => "OOM command not allowed when used memory > 'maxmemory'".into(),
            Some(13) => format!("ERR '{command}' cannot be called from a script"),
            Some(30) => "ERR write commands are not allowed on this server now".into(),
            other => format!("ERR '{command}' failed (errno {other:?}) when called from a script"),
        }
    }

    fn run_command(run: &RunContext, args: Vec<Vec<u8>>) -> ReplyValue {
        let Some(name) = args.first() else {
            return ReplyValue::Error(b"ERR redis.execute needs a command".to_vec());
        };
        if let Some(reason) = refusal(name) {
            return ReplyValue::Error(reason.into_bytes());
        }
        let command = String::from_utf8_lossy(name).into_owned();
        let locked = match Locked::acquire(run) {
            Ok(locked) => locked,
            Err(reason) => return ReplyValue::Error(reason.into_bytes()),
        };
        let strings = match Strings::new(&locked, &args) {
            Ok(strings) => strings,
            Err(reason) => return ReplyValue::Error(reason.into_bytes()),
        };
        let positions = match key_positions(&locked, &strings) {
            Ok(positions) => positions,
            Err(reason) => return ReplyValue::Error(reason.into_bytes()),
        };
        if let Some(positions) = positions {
            for position in positions {
                let Some(key) = args.get(position) else {
                    continue;
                };
                if !run.declares(key) {
                    return ReplyValue::Error(
                        format!(
                            "ERR key '{}' is not declared in the KEYS of AI.SCRIPTEXECUTE",
                            String::from_utf8_lossy(key)
                        )
                        .into_bytes(),
                    );
                }
            }
        }
        if let Err(reason) = acl_check(run, &locked, &strings) {
            return ReplyValue::Error(reason.into_bytes());
        }
        // SAFETY: the API table is filled at load time and only read afterwards.
        let (Some(call), Some(free_reply)) =
            (unsafe { (raw::RedisModule_Call, raw::RedisModule_FreeCallReply) })
        else {
            return ReplyValue::Error(b"ERR this Redis cannot call commands".to_vec());
        };
        let Ok(c_name) = std::ffi::CString::new(name.as_slice()) else {
            return ReplyValue::Error(b"ERR command name contains NUL".to_vec());
        };
        // SAFETY: the context is locked; "v!SM" takes an array of live strings and
        // its length; the name is NUL-terminated.
        let reply = unsafe {
            call(
                locked.ctx,
                c_name.as_ptr(),
                c"v!SM".as_ptr(),
                strings.items.as_ptr().add(1),
                strings.items.len() - 1,
            )
        };
        if reply.is_null() {
            return ReplyValue::Error(errno_text(&command).into_bytes());
        }
        let value = convert(reply, 0);
        // SAFETY: `reply` is freed once, under the lock.
        unsafe { free_reply(reply) };
        drop(strings);
        drop(locked);
        value
    }

    pub unsafe extern "C" fn redis_command(
        host_ctx: *mut c_void,
        argv: *const *const c_char,
        argv_len: *const usize,
        argc: usize,
    ) -> *mut RaiReply {
        std::panic::catch_unwind(|| {
            // SAFETY: the plugin passes the host_ctx of the run in progress, a
            // `RunContext` alive for the whole run.
            let Some(run) = (unsafe { host_ctx.cast::<RunContext>().as_ref() }) else {
                return error("ERR redis_command needs the host_ctx of a script run");
            };
            if argc == 0 || argv.is_null() || argv_len.is_null() {
                return error("ERR redis.execute needs a command");
            }
            // SAFETY: the plugin passes `argc` pointers and lengths, valid for the call.
            let (ptrs, lens) = unsafe {
                (
                    std::slice::from_raw_parts(argv, argc),
                    std::slice::from_raw_parts(argv_len, argc),
                )
            };
            let mut args = Vec::with_capacity(argc);
            for (&ptr, &len) in ptrs.iter().zip(lens) {
                if ptr.is_null() && len > 0 {
                    return error("ERR redis.execute got a null argument");
                }
                args.push(if len == 0 {
                    Vec::new()
                } else {
                    // SAFETY: `len` bytes at `ptr`, valid for the call.
                    unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) }.to_vec()
                });
            }
            make_reply(run_command(run, args))
        })
        .unwrap_or_else(|_| error("ERR internal error in redis_command"))
    }

    /// Copies a plugin's input view into a tensor.
    fn view_to_tensor(view: &RaiTensorView) -> Result<Tensor, String> {
        // SAFETY: reading the enum fields as integers: any value the plugin wrote is a
        // valid u32.
        let (dtype_code, device_kind) = unsafe {
            (
                *(std::ptr::addr_of!(view.dtype).cast::<u32>()),
                *(std::ptr::addr_of!(view.device.kind).cast::<u32>()),
            )
        };
        let dtype = DType::from_code(u64::from(dtype_code))
            .ok_or_else(|| format!("ERR unknown input dtype {dtype_code}"))?;
        if device_kind != 0 {
            return Err("ERR model_execute inputs must be on the CPU".into());
        }
        if view.ndim > 0 && view.shape.is_null() || view.byte_len > 0 && view.data.is_null() {
            return Err("ERR model_execute input without data".into());
        }
        if !view.strides.is_null() {
            return Err("ERR model_execute inputs must be contiguous (strides null)".into());
        }
        let shape = if view.ndim == 0 {
            Vec::new()
        } else {
            // SAFETY: the plugin passes `ndim` dimensions, valid for the call.
            unsafe { std::slice::from_raw_parts(view.shape, view.ndim) }.to_vec()
        };
        let bytes = if view.byte_len == 0 {
            &[][..]
        } else {
            // SAFETY: the plugin passes `byte_len` bytes, valid for the call.
            unsafe { std::slice::from_raw_parts(view.data.cast::<u8>(), view.byte_len) }
        };
        let buffer = AlignedBuffer::copy_from(bytes)
            .map_err(|e| format!("ERR cannot allocate {} bytes", e.bytes))?;
        Tensor::from_buffer(dtype, shape, buffer).map_err(|e| format!("ERR bad input: {e}"))
    }

    fn find_model(run: &RunContext, key: &[u8]) -> Result<SharedModel, String> {
        if !run.declares(key) {
            return Err(format!(
                "ERR model key '{}' is not declared in the KEYS of AI.SCRIPTEXECUTE",
                String::from_utf8_lossy(key)
            ));
        }
        let locked = Locked::acquire(run)?;
        let context = redis_module::Context::new(locked.ctx);
        let name = redis_module::RedisString::create_from_slice(locked.ctx, key);
        let opened = context.open_key(&name);
        let model = match opened.get_value::<SharedModel>(&crate::persist::model_type::MODEL_TYPE) {
            Ok(Some(model)) => Ok(Arc::clone(model)),
            Ok(None) => Err(crate::commands::keyspace::EMPTY_MODEL_KEY.to_owned()),
            Err(_) => {
                Err("WRONGTYPE Operation against a key holding the wrong kind of value".into())
            }
        };
        drop(opened);
        drop(name);
        drop(locked);
        model
    }

    pub unsafe extern "C" fn model_execute(
        host_ctx: *mut c_void,
        key: *const c_char,
        inputs: *const RaiTensorView,
        n_inputs: usize,
        outputs: *mut RaiTensorOut,
        n_outputs: usize,
    ) -> *mut RaiReply {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // SAFETY: as in `redis_command`.
            let Some(run) = (unsafe { host_ctx.cast::<RunContext>().as_ref() }) else {
                return error("ERR model_execute needs the host_ctx of a script run");
            };
            if key.is_null()
                || (n_inputs > 0 && inputs.is_null())
                || (n_outputs > 0 && outputs.is_null())
            {
                return error("ERR model_execute got a null argument");
            }
            // SAFETY: a NUL-terminated key, valid for the call.
            let key = unsafe { CStr::from_ptr(key) }.to_bytes().to_vec();
            let model = match find_model(run, &key) {
                Ok(model) => model,
                Err(reason) => return error(reason),
            };
            let views = if n_inputs == 0 {
                &[][..]
            } else {
                // SAFETY: `n_inputs` views, valid for the call.
                unsafe { std::slice::from_raw_parts(inputs, n_inputs) }
            };
            let tensors = match views
                .iter()
                .map(view_to_tensor)
                .collect::<Result<Vec<_>, _>>()
            {
                Ok(tensors) => tensors,
                Err(reason) => return error(reason),
            };
            let runtime = match model.runtime() {
                Ok(runtime) => runtime,
                Err(reason) => return error(reason),
            };
            let expected = model.output_names().len();
            if expected != 0 && expected != n_outputs {
                return error(format!(
                    "ERR model has {expected} outputs, model_execute asked for {n_outputs}"
                ));
            }
            let refs: Vec<&Tensor> = tensors.iter().collect();
            let started = std::time::Instant::now();
            let result = runtime.run(&refs, n_outputs, run.time_left_ms(), &run.cancel);
            let rows = refs.first().map_or(1, |t| t.rows()) as u64;
            model.stats.record(started.elapsed(), rows, result.is_err());
            let produced = match result {
                Ok(produced) => produced,
                Err(reason) => {
                    return error(if reason.starts_with("ERR ") {
                        reason
                    } else {
                        format!("ERR {reason}")
                    })
                }
            };
            for (index, tensor) in produced.into_iter().enumerate().take(n_outputs) {
                let boxed = Box::new(tensor);
                let view = super::super::plugin_model::tensor_view(&boxed);
                let owner = Box::into_raw(boxed).cast::<c_void>();
                // SAFETY: `outputs` has room for `n_outputs` entries; the view points
                // into the boxed tensor, alive until `host_tensor_release(owner)`.
                unsafe { outputs.add(index).write(RaiTensorOut { view, owner }) };
            }
            std::ptr::null_mut()
        }))
        .unwrap_or_else(|_| error("ERR internal error in model_execute"))
    }
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
