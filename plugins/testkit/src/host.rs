//! A host table for a plugin's `init`, the way the core passes one: its config values are
//! set by the test ([`set_config`]), what the plugin logs is kept ([`log`]), and output
//! memory is lent during runs the [`crate::table`] driver makes ([`LentCall`]).

use std::alloc::Layout;
use std::cell::RefCell;
use std::ffi::{c_char, c_void, CStr};
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

thread_local! {
    /// Output memory lent during the driver's call in progress on this thread: (address,
    /// layout) of each buffer; `None` outside calls (nothing is lent then).
    static LENT: RefCell<Option<Vec<(usize, Layout)>>> = const { RefCell::new(None) };
    /// Loans larger than this are refused, as the core refuses those past a run's
    /// output budget ([`refuse_loans_over`]).
    static LEND_LIMIT: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
}

/// From now on, on this thread, the host refuses to lend more than `bytes` at once (as
/// the core does past a run's budget under `maxmemory`); `usize::MAX` lends all again.
pub fn refuse_loans_over(bytes: usize) {
    LEND_LIMIT.with(|limit| limit.set(bytes));
}

/// One call of the table driver during which the host lends output memory, as the core
/// does (ABI minor 5): [`LentCall::was_lent`] tells whether an output's data is such
/// memory; all of it is freed when the value is dropped.
pub struct LentCall(());

impl LentCall {
    pub fn enter() -> LentCall {
        LENT.with(|lent| *lent.borrow_mut() = Some(Vec::new()));
        LentCall(())
    }

    /// Whether `data` is the start of memory lent during this call, at least `len` long.
    pub fn was_lent(&self, data: *const c_void, len: usize) -> bool {
        LENT.with(|lent| {
            lent.borrow()
                .iter()
                .flatten()
                .any(|(address, layout)| *address == data as usize && len <= layout.size())
        })
    }
}

impl Drop for LentCall {
    fn drop(&mut self) {
        for (address, layout) in LENT
            .with(|lent| lent.borrow_mut().take())
            .unwrap_or_default()
        {
            // SAFETY: allocated by `host_output_alloc` with this layout, freed once.
            unsafe { std::alloc::dealloc(address as *mut u8, layout) };
        }
    }
}

unsafe extern "C" fn host_output_alloc(byte_len: usize) -> *mut c_void {
    let Ok(layout) = Layout::from_size_align(byte_len, 64) else {
        return std::ptr::null_mut();
    };
    LENT.with(|lent| match lent.borrow_mut().as_mut() {
        Some(buffers) if byte_len > 0 && byte_len <= LEND_LIMIT.with(std::cell::Cell::get) => {
            // SAFETY: a non-zero size.
            let data = unsafe { std::alloc::alloc(layout) };
            if !data.is_null() {
                buffers.push((data as usize, layout));
            }
            data.cast()
        }
        _ => std::ptr::null_mut(),
    })
}

/// The host table: log and config callbacks and output memory, nothing else (no Redis
/// commands, no nested model runs).
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
    output_alloc: Some(host_output_alloc),
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
