//! Server events the module reacts to.

use std::ffi::c_void;

use redis_module::{raw, Context, Status};

/// A server event's callback, as Redis calls it on the main thread.
pub type EventCallback =
    unsafe extern "C" fn(*mut raw::RedisModuleCtx, raw::RedisModuleEvent, u64, *mut c_void);

/// Subscribes `callback` to server event `id`; whether Redis accepted it.
pub fn subscribe_to(ctx: &Context, id: u64, callback: EventCallback) -> bool {
    let event = raw::RedisModuleEvent { id, dataver: 1 };
    // SAFETY: the API table is filled at load time; the callback is a plain function
    // that lives as long as the module.
    let status = unsafe {
        match raw::RedisModule_SubscribeToServerEvent {
            Some(subscribe) => subscribe(ctx.ctx, event, Some(callback)),
            None => raw::Status::Err as i32,
        }
    };
    status == raw::Status::Ok as i32
}

/// Subscribes to Redis's shutdown event (and to configuration changes, see
/// `commands::memory`).
pub fn subscribe(ctx: &Context) -> Status {
    if subscribe_to(ctx, raw::REDISMODULE_EVENT_SHUTDOWN, on_shutdown) {
        crate::commands::memory::watch_config_changes(ctx);
        Status::Ok
    } else {
        ctx.log_warning("cannot subscribe to the shutdown event");
        Status::Err
    }
}

/// Runs on the main thread while Redis shuts down: from here on, nothing may wait for
/// the main thread.
unsafe extern "C" fn on_shutdown(
    _ctx: *mut raw::RedisModuleCtx,
    _event: raw::RedisModuleEvent,
    _subevent: u64,
    _data: *mut c_void,
) {
    let _ = std::panic::catch_unwind(|| {
        crate::retained::set_shutting_down();
        // Workers inside a runtime when the process exits crash in the runtimes' static
        // destructors: stop and join them while Redis is still in one piece.
        crate::blocking::abandon_all();
        // Waiting stores are answered with an error; one being loaded finishes first.
        redisai_engine::exec::loader::stop();
        redisai_engine::exec::stop_all();
    });
}
