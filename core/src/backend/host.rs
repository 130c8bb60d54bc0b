//! The services table the core hands to every plugin.

use std::ffi::{c_char, CStr};

use redisai_plugin_api::abi::{
    RaiConfigKey, RaiHostApi, RaiLogLevel, RAI_PLUGIN_ABI_MAJOR, RAI_PLUGIN_ABI_MINOR,
};

pub static HOST_API: RaiHostApi = RaiHostApi {
    abi_major: RAI_PLUGIN_ABI_MAJOR,
    abi_minor: RAI_PLUGIN_ABI_MINOR,
    struct_size: std::mem::size_of::<RaiHostApi>(),
    log: Some(host_log),
    config_get: Some(host_config_get),
    redis_command: None,
    reply_free: None,
    model_execute: None,
    host_tensor_release: None,
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
