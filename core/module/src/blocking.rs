//! Blocking a client while its request runs on a worker, and replying on the main
//! thread when it is done. Every blocked client gets exactly one reply: the result,
//! `TIMEDOUT`, or an error.

use std::collections::HashMap;
use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use redis_module::{raw, Context, RedisError, RedisResult, RedisValue};

/// The main-thread half of a request: turns its outcome into a reply (and keyspace
/// writes).
pub trait Completion: Send {
    fn reply(self: Box<Self>, ctx: &Context) -> RedisResult;
}

/// A blocked client. Dropping it without [`BlockedClient::unblock`] still unblocks the
/// client, with an error.
pub struct BlockedClient {
    handle: Arc<Handle>,
    abandoned: Arc<AtomicU32>,
}

/// The Redis handle, taken by whoever unblocks the client first: the request's own
/// completion or its TIMEOUT timer. Redis must see exactly one RM_UnblockClient.
struct Handle {
    raw: Mutex<Option<usize>>,
}

/// Flags of clients that timed out or disconnected, by blocked-client handle.
static ABANDONED: Mutex<Option<HashMap<usize, Arc<AtomicU32>>>> = Mutex::new(None);

fn abandoned_map() -> MutexGuard<'static, Option<HashMap<usize, Arc<AtomicU32>>>> {
    ABANDONED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct Private {
    completion: Option<Box<dyn Completion>>,
}

/// The reply of a request whose TIMEOUT passed first.
struct TimedOut;

impl Completion for TimedOut {
    fn reply(self: Box<Self>, _ctx: &Context) -> RedisResult {
        Ok(RedisValue::SimpleStringStatic("TIMEDOUT"))
    }
}

/// Blocks the calling client. With `timeout_ms`, a main-thread timer replies
/// `TIMEDOUT` once it passes (and marks the request abandoned, so its work stops),
/// unless the request finished first. Redis's own blocking timeout is not used: when
/// it fires just after the module unblocked the client, Redis sends no reply at all.
pub fn block(ctx: &Context, timeout_ms: Option<u64>) -> Result<BlockedClient, RedisError> {
    block_with_flag(ctx, timeout_ms, Arc::new(AtomicU32::new(0)))
}

/// Like [`block`], with the request's abandoned flag made beforehand (for work that
/// started before it knew it would block).
pub fn block_with_flag(
    ctx: &Context,
    timeout_ms: Option<u64>,
    abandoned: Arc<AtomicU32>,
) -> Result<BlockedClient, RedisError> {
    // SAFETY: the API table is filled at load time and only read afterwards.
    let (Some(block_client), set_disconnect) = (unsafe {
        (
            raw::RedisModule_BlockClient,
            raw::RedisModule_SetDisconnectCallback,
        )
    }) else {
        return Err(RedisError::Str("ERR this Redis cannot block clients"));
    };
    // SAFETY: `ctx` is the live command context; the callbacks are plain functions.
    let handle =
        unsafe { block_client(ctx.ctx, Some(reply_callback), None, Some(free_private), 0) };
    if handle.is_null() {
        return Err(RedisError::Str("ERR could not block the client"));
    }
    if let Some(set_disconnect) = set_disconnect {
        // SAFETY: `handle` is the blocked client just created.
        unsafe { set_disconnect(handle, Some(disconnected)) };
    }
    abandoned_map()
        .get_or_insert_with(HashMap::new)
        .insert(handle as usize, Arc::clone(&abandoned));
    let client = BlockedClient {
        handle: Arc::new(Handle {
            raw: Mutex::new(Some(handle as usize)),
        }),
        abandoned,
    };
    if let Some(ms) = timeout_ms {
        let timer_data = (Arc::clone(&client.handle), Arc::clone(&client.abandoned));
        ctx.create_timer(
            Duration::from_millis(ms),
            |_ctx, (handle, abandoned): (Arc<Handle>, Arc<AtomicU32>)| {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    abandoned.store(1, Ordering::Relaxed);
                    handle.release(Some(Box::new(TimedOut)));
                }));
            },
            timer_data,
        );
    }
    Ok(client)
}

impl BlockedClient {
    /// Set when the client timed out or went away: its work may be skipped.
    pub fn abandoned(&self) -> Arc<AtomicU32> {
        Arc::clone(&self.abandoned)
    }

    /// Hands the completion to the main thread, which replies with it (unless the
    /// request already timed out).
    pub fn unblock(self, completion: Box<dyn Completion>) {
        self.handle.release(Some(completion));
    }
}

impl Drop for BlockedClient {
    fn drop(&mut self) {
        self.handle.release(None);
    }
}

impl Handle {
    /// Unblocks the client with `completion` if nobody has yet.
    fn release(&self, completion: Option<Box<dyn Completion>>) {
        let taken = self
            .raw
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        let Some(handle) = taken else {
            return;
        };
        if let Some(map) = abandoned_map().as_mut() {
            map.remove(&handle);
        }
        let private = Box::into_raw(Box::new(Private { completion })).cast::<c_void>();
        // SAFETY: the API table is filled at load time and only read afterwards.
        if let Some(unblock) = unsafe { raw::RedisModule_UnblockClient } {
            // SAFETY: `handle` is unblocked exactly once (it was taken above); Redis hands
            // `private` back to `reply_callback` and then to `free_private`.
            unsafe { unblock(handle as *mut raw::RedisModuleBlockedClient, private) };
        }
    }
}

/// Checks that the caller may be blocked: not inside MULTI, Lua or another context
/// that cannot wait.
pub fn ensure_can_block(ctx: &Context) -> Result<(), RedisError> {
    let flags = ctx.get_flags();
    if flags.intersects(
        redis_module::ContextFlags::MULTI
            | redis_module::ContextFlags::LUA
            | redis_module::ContextFlags::DENY_BLOCKING,
    ) {
        return Err(RedisError::Str(
            "ERR Cannot run RedisAI command within a transaction or a LUA script",
        ));
    }
    Ok(())
}

unsafe extern "C" fn reply_callback(
    ctx: *mut raw::RedisModuleCtx,
    _argv: *mut *mut raw::RedisModuleString,
    _argc: c_int,
) -> c_int {
    let context = Context::new(ctx);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: the API table is filled at load time; the private data is the
        // `Private` passed to RM_UnblockClient, alive until `free_private`.
        let private = unsafe {
            raw::RedisModule_GetBlockedClientPrivateData
                .map(|get| get(ctx).cast::<Private>())
                .and_then(|p| p.as_mut())
        };
        match private.and_then(|p| p.completion.take()) {
            Some(completion) => completion.reply(&context),
            None => Err(RedisError::Str(
                "ERR the request was dropped before it completed",
            )),
        }
    }));
    let result = result.unwrap_or_else(|payload| {
        Err(RedisError::String(format!(
            "ERR internal error while replying: {}",
            crate::reply::panic_message(payload.as_ref())
        )))
    });
    context.reply(crate::reply::resp_safe_result(result));
    raw::Status::Ok as c_int
}

unsafe extern "C" fn disconnected(
    _ctx: *mut raw::RedisModuleCtx,
    handle: *mut raw::RedisModuleBlockedClient,
) {
    let _ = std::panic::catch_unwind(|| mark_abandoned(handle));
}

/// Marks every blocked client's work as unwanted (at shutdown), so runs inside a
/// backend are interrupted where the backend can.
pub fn abandon_all() {
    if let Some(map) = abandoned_map().as_ref() {
        for flag in map.values() {
            flag.store(1, Ordering::Relaxed);
        }
    }
}

fn mark_abandoned(handle: *mut raw::RedisModuleBlockedClient) {
    if let Some(flag) = abandoned_map()
        .as_ref()
        .and_then(|map| map.get(&(handle as usize)))
    {
        flag.store(1, Ordering::Relaxed);
    }
}

unsafe extern "C" fn free_private(_ctx: *mut raw::RedisModuleCtx, private: *mut c_void) {
    let _ = std::panic::catch_unwind(|| {
        if !private.is_null() {
            // SAFETY: created by `BlockedClient::release` and freed once, here.
            drop(unsafe { Box::from_raw(private.cast::<Private>()) });
        }
    });
}
