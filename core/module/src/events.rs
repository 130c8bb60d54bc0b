//! Server events the module reacts to.

use std::ffi::c_void;

use redis_module::{raw, Context, Status};

/// Subscribes to Redis's shutdown event (and to configuration changes, see
/// `commands::memory`).
pub fn subscribe(ctx: &Context) -> Status {
    if crate::event_subscription::subscribe_to(ctx, raw::REDISMODULE_EVENT_SHUTDOWN, on_shutdown) {
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
