//! Subscribing to Redis's server events (a leaf: the modules that react to events use it).

use std::ffi::c_void;

use redis_module::{raw, Context};

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
