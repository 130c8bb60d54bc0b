//! The one place where a data type's value crosses between `Box<T>` and the raw
//! pointer Redis stores, and where every type callback is kept from unwinding.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Hands ownership of `value` to Redis.
pub fn into_raw<T>(value: T) -> *mut c_void {
    Box::into_raw(Box::new(value)).cast()
}

/// Borrows a value that Redis stores for a type created with `T`.
///
/// # Safety
/// `value` must come from [`into_raw::<T>`] (or `RedisKeyWritable::set_value::<T>`)
/// and not have been freed.
pub unsafe fn borrow<'a, T>(value: *const c_void) -> Option<&'a T> {
    // SAFETY: guaranteed by the caller.
    unsafe { value.cast::<T>().as_ref() }
}

/// Takes ownership back from Redis and drops the value.
///
/// # Safety
/// As for [`borrow`]; Redis must not use the pointer afterwards.
pub unsafe fn drop_raw<T>(value: *mut c_void) {
    if !value.is_null() {
        // SAFETY: guaranteed by the caller.
        drop(unsafe { Box::from_raw(value.cast::<T>()) });
    }
}

/// Runs a type callback, turning a panic into `fallback` plus a log line.
pub fn callback<R>(what: &str, fallback: R, body: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(result) => result,
        Err(payload) => {
            let reason = crate::reply::panic_message(payload.as_ref());
            redis_module::logging::log_warning(format!("internal error in {what}: {reason}"));
            fallback
        }
    }
}
