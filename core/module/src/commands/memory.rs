//! Holding what a command allocates outside the keyspace to `maxmemory`.
//!
//! Redis refuses a write command (flag `deny-oom`) once used memory is past
//! `maxmemory`, but it never refuses a read-only one, and it cannot know what a command
//! is about to allocate. A DAG, read-only ones included, builds its local tensors first:
//! it is refused with Redis's own OOM error when they would take used memory past
//! `maxmemory`. A run's outputs are known only once the plugin computes them: each run is
//! given the room left under `maxmemory` when it is dispatched ([`output_budget`]), and
//! the engine refuses, before allocating them, the outputs that would not fit. Outputs
//! that did fit are allocated through Redis's allocator, so they are in used memory, and
//! when that is past `maxmemory` once the run is done (concurrent runs each had the whole
//! room) none of them is written (they are freed when the reply is sent).

use std::ffi::{c_int, c_void};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use redis_module::{raw, Context, RedisError};
use redisai_engine::backend::output_budget::OUTPUTS_PAST_MAXMEMORY;
use redisai_engine::backend::OutputBudget;

/// Redis's reply to a command refused for memory (`shared.oomerr`); the engine refuses
/// outputs past their budget with the same text.
pub const OOM_ERROR: &str = OUTPUTS_PAST_MAXMEMORY;

/// Refuses with [`OOM_ERROR`] when `bytes` more would take the memory Redis counts
/// against `maxmemory` past it. No `maxmemory`, nothing refused.
pub fn ensure_room_for(ctx: &Context, bytes: u64) -> Result<(), RedisError> {
    match room_left(ctx) {
        Some(room) if bytes > room => Err(RedisError::Str(OOM_ERROR)),
        _ => Ok(()),
    }
}

/// What the outputs of a run dispatched now may take: the room left under `maxmemory`
/// (unlimited without one).
pub fn output_budget(ctx: &Context) -> OutputBudget {
    room_left(ctx).map_or_else(OutputBudget::unlimited, OutputBudget::bytes)
}

/// Bytes that may still be allocated before the memory Redis counts against
/// `maxmemory` passes it (0 when it is past already); `None` without `maxmemory`.
fn room_left(ctx: &Context) -> Option<u64> {
    // SAFETY: the API table is filled at load time and only read afterwards.
    let ratio = unsafe { raw::RedisModule_GetUsedMemoryRatio }?;
    // SAFETY: as above; called on the main thread, in a command.
    let ratio = f64::from(unsafe { ratio() });
    if ratio <= 0.0 {
        return None;
    }
    let limit = maxmemory(ctx)?;
    // The ratio is of the memory Redis counts for eviction (replication buffers and the
    // AOF buffer are not counted), so the same measure decides here.
    let used = ratio * limit as f64;
    // Saturating: a negative room is 0.
    Some((limit as f64 - used) as u64)
}

/// Refuses with [`OOM_ERROR`] when used memory (as counted against `maxmemory`) is past
/// `maxmemory` now: for a finished run whose outputs, already allocated, would be
/// written.
pub fn ensure_within_maxmemory() -> Result<(), RedisError> {
    // SAFETY: the API table is filled at load time and only read afterwards.
    let Some(ratio) = (unsafe { raw::RedisModule_GetUsedMemoryRatio }) else {
        return Ok(());
    };
    // SAFETY: as above; called on the main thread (a command or its reply callback).
    if unsafe { ratio() } > 1.0 {
        Err(RedisError::Str(OOM_ERROR))
    } else {
        Ok(())
    }
}

/// `maxmemory` as last read from the server (bytes), while [`MAXMEMORY_READ`] is set: an
/// INFO read costs tens of microseconds, and every run dispatched needs the value.
static MAXMEMORY: AtomicU64 = AtomicU64::new(0);
/// Set when [`MAXMEMORY`] holds the setting; cleared by every configuration change.
static MAXMEMORY_READ: AtomicBool = AtomicBool::new(false);
/// Whether configuration changes are reported to [`on_config_change`]; without that the
/// setting is read every time.
static WATCHING_CONFIG: AtomicBool = AtomicBool::new(false);

/// Subscribes to configuration changes, so that `maxmemory` can be kept between runs
/// (`CONFIG SET maxmemory` is one). A server that cannot report them still works, reading
/// the setting for every run.
pub fn watch_config_changes(ctx: &Context) {
    if crate::event_subscription::subscribe_to(ctx, raw::REDISMODULE_EVENT_CONFIG, on_config_change)
    {
        WATCHING_CONFIG.store(true, Ordering::Relaxed);
    } else {
        ctx.log_notice("configuration changes are not reported: maxmemory is read for every run");
    }
}

/// Runs on the main thread after `CONFIG SET` changed settings: `maxmemory` is read
/// again on next use.
unsafe extern "C" fn on_config_change(
    _ctx: *mut raw::RedisModuleCtx,
    _event: raw::RedisModuleEvent,
    _subevent: u64,
    _data: *mut c_void,
) {
    MAXMEMORY_READ.store(false, Ordering::Relaxed);
}

/// The `maxmemory` setting in bytes (None when unset or unreadable).
fn maxmemory(ctx: &Context) -> Option<u64> {
    if MAXMEMORY_READ.load(Ordering::Relaxed) {
        return Some(MAXMEMORY.load(Ordering::Relaxed)).filter(|&limit| limit > 0);
    }
    let limit = read_maxmemory(ctx);
    if let (Some(limit), true) = (limit, WATCHING_CONFIG.load(Ordering::Relaxed)) {
        MAXMEMORY.store(limit, Ordering::Relaxed);
        MAXMEMORY_READ.store(true, Ordering::Relaxed);
    }
    limit
}

/// `maxmemory` as INFO reports it now.
fn read_maxmemory(ctx: &Context) -> Option<u64> {
    // SAFETY: the API table is filled at load time and only read afterwards.
    let (get, field, free) = unsafe {
        (
            raw::RedisModule_GetServerInfo?,
            raw::RedisModule_ServerInfoGetFieldUnsigned?,
            raw::RedisModule_FreeServerInfo?,
        )
    };
    // SAFETY: `ctx` is the live command context; the data is freed below.
    let info = unsafe { get(ctx.ctx, c"memory".as_ptr()) };
    if info.is_null() {
        return None;
    }
    let mut failed: c_int = 0;
    // SAFETY: `info` is live; the field name is NUL-terminated.
    let limit = unsafe { field(info, c"maxmemory".as_ptr(), &mut failed) };
    // SAFETY: freed once.
    unsafe { free(ctx.ctx, info) };
    (failed == 0 && limit > 0).then_some(limit)
}
