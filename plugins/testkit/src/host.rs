//! A host table for a plugin's `init`, the way the core passes one: its config values are
//! set by the test ([`set_config`]) and what the plugin logs is kept ([`log`]).

use std::ffi::{c_char, CStr};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, MutexGuard};

use redisai_plugin_api::abi::{
    RaiConfigKey, RaiHostApi, RAI_PLUGIN_ABI_MAJOR, RAI_PLUGIN_ABI_MINOR,
};

/// The config values, by [`RaiConfigKey`]; all 0 unless set.
static CONFIG: [AtomicI64; 4] = [
    AtomicI64::new(0),
    AtomicI64::new(0),
    AtomicI64::new(0),
    AtomicI64::new(0),
];

/// What the plugin logged: level and text, in order.
static LOG: Mutex<Vec<(u32, String)>> = Mutex::new(Vec::new());

/// The host's `log`: keeps the line for [`log`].
///
/// # Safety
///
/// `message` is null or a NUL-terminated string valid for the call.
pub unsafe extern "C" fn host_log(level: u32, message: *const c_char) {
    if message.is_null() {
        return;
    }
    // SAFETY: the plugin passes a NUL-terminated string valid for the call.
    let text = unsafe { CStr::from_ptr(message) }
        .to_string_lossy()
        .into_owned();
    log().push((level, text));
}

/// The host's `config_get`: what [`set_config`] set for the key, else 0.
///
/// # Safety
///
/// None beyond the C ABI's: any key may be asked.
pub unsafe extern "C" fn host_config(key: u32) -> i64 {
    CONFIG
        .get(key as usize)
        .map_or(0, |cell| cell.load(Ordering::SeqCst))
}

/// The host table: log and config callbacks, nothing else (no Redis commands, no nested
/// model runs).
pub static HOST: RaiHostApi = RaiHostApi {
    abi_major: RAI_PLUGIN_ABI_MAJOR,
    abi_minor: RAI_PLUGIN_ABI_MINOR,
    struct_size: std::mem::size_of::<RaiHostApi>(),
    log: Some(host_log),
    config_get: Some(host_config),
    redis_command: None,
    reply_free: None,
    model_execute: None,
    host_tensor_release: None,
};

/// Sets what the host answers for `key` from now on.
pub fn set_config(key: RaiConfigKey, value: i64) {
    CONFIG[key as usize].store(value, Ordering::SeqCst);
}

/// Sets the host's MODEL_EXECUTION_TIMEOUT in milliseconds (0: none).
pub fn set_timeout_ms(ms: i64) {
    set_config(RaiConfigKey::ModelExecutionTimeoutMs, ms);
}

/// What the plugin logged so far (level, text), locked for reading.
pub fn log() -> MutexGuard<'static, Vec<(u32, String)>> {
    LOG.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_answers_what_was_set_and_keeps_the_log() {
        let config = HOST.config_get.expect("config_get");
        let log_fn = HOST.log.expect("log");
        set_timeout_ms(250);
        // SAFETY: the host's own callbacks, called as a plugin would: a key, and a
        // NUL-terminated message valid for the call.
        let (timeout, unknown) = unsafe {
            log_fn(2, c"hello".as_ptr());
            (
                config(RaiConfigKey::ModelExecutionTimeoutMs as u32),
                config(99),
            )
        };
        assert_eq!((timeout, unknown), (250, 0));
        set_timeout_ms(0);
        assert!(log().contains(&(2, "hello".to_owned())));
    }
}
