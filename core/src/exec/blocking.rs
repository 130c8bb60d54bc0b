//! Blocking a client while its request runs on a worker, and replying on the main
//! thread when it is done. Every blocked client gets exactly one reply: the result,
//! `TIMEDOUT`, or an error.

use std::collections::HashMap;
use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use redis_module::{raw, Context, RedisError, RedisResult, RedisValue};

/// The main-thread half of a request: turns its outcome into a reply (and keyspace
/// writes).
pub trait Completion: Send {
    fn reply(self: Box<Self>, ctx: &Context) -> RedisResult;
}

/// A blocked client. Dropping it without [`BlockedClient::unblock`] still unblocks the
/// client, with an error.
pub struct BlockedClient {
    raw: *mut raw::RedisModuleBlockedClient,
    abandoned: Arc<AtomicU32>,
}

// SAFETY: Redis allows RM_UnblockClient from any thread; the handle is used once.
unsafe impl Send for BlockedClient {}

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

/// Blocks the calling client; `timeout_ms` makes Redis reply `TIMEDOUT` on its own
/// once it passes.
pub fn block(ctx: &Context, timeout_ms: Option<u64>) -> Result<BlockedClient, RedisError> {
    // SAFETY: the API table is filled at load time and only read afterwards.
    let (Some(block_client), set_disconnect) = (unsafe {
        (
            raw::RedisModule_BlockClient,
            raw::RedisModule_SetDisconnectCallback,
        )
    }) else {
        return Err(RedisError::Str("ERR this Redis cannot block clients"));
    };
    let timeout = timeout_ms.map_or(0, |ms| i64::try_from(ms).unwrap_or(i64::MAX));
    // SAFETY: `ctx` is the live command context; the callbacks are plain functions.
    let handle = unsafe {
        block_client(
            ctx.ctx,
            Some(reply_callback),
            Some(timeout_callback),
            Some(free_private),
            timeout,
        )
    };
    if handle.is_null() {
        return Err(RedisError::Str("ERR could not block the client"));
    }
    if let Some(set_disconnect) = set_disconnect {
        // SAFETY: `handle` is the blocked client just created.
        unsafe { set_disconnect(handle, Some(disconnected)) };
    }
    let abandoned = Arc::new(AtomicU32::new(0));
    abandoned_map()
        .get_or_insert_with(HashMap::new)
        .insert(handle as usize, Arc::clone(&abandoned));
    Ok(BlockedClient {
        raw: handle,
        abandoned,
    })
}

impl BlockedClient {
    /// Set when the client timed out or disconnected: its work may be skipped.
    pub fn abandoned(&self) -> Arc<AtomicU32> {
        Arc::clone(&self.abandoned)
    }

    /// Hands the completion to the main thread, which replies with it.
    pub fn unblock(mut self, completion: Box<dyn Completion>) {
        self.release(Some(completion));
    }

    fn release(&mut self, completion: Option<Box<dyn Completion>>) {
        let handle = std::mem::replace(&mut self.raw, std::ptr::null_mut());
        if handle.is_null() {
            return;
        }
        if let Some(map) = abandoned_map().as_mut() {
            map.remove(&(handle as usize));
        }
        let private = Box::into_raw(Box::new(Private { completion })).cast::<c_void>();
        // SAFETY: the API table is filled at load time and only read afterwards.
        if let Some(unblock) = unsafe { raw::RedisModule_UnblockClient } {
            // SAFETY: `handle` is unblocked exactly once; Redis hands `private` back to
            // `reply_callback` and then to `free_private`.
            unsafe { unblock(handle, private) };
        }
    }
}

impl Drop for BlockedClient {
    fn drop(&mut self) {
        self.release(None);
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
            crate::commands::panic_message(payload.as_ref())
        )))
    });
    context.reply(result);
    raw::Status::Ok as c_int
}

unsafe extern "C" fn timeout_callback(
    ctx: *mut raw::RedisModuleCtx,
    _argv: *mut *mut raw::RedisModuleString,
    _argc: c_int,
) -> c_int {
    let _ = std::panic::catch_unwind(|| {
        // SAFETY: the API table is filled at load time; `ctx` is the timeout context.
        let handle = unsafe { raw::RedisModule_GetBlockedClientHandle.map(|get| get(ctx)) };
        if let Some(handle) = handle {
            mark_abandoned(handle);
        }
    });
    Context::new(ctx).reply(Ok(RedisValue::SimpleStringStatic("TIMEDOUT")));
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
