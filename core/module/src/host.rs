//! The services the engine needs from Redis (see `redisai_engine::backend::host_services`),
//! installed once at load, before any backend loads.

use redisai_engine::backend::host_services::{self, HostServices, LogLevel};

use crate::commands::host_calls;

/// Hands the engine the script-time services and the Redis log.
pub fn install_services() {
    let first = host_services::install(HostServices {
        redis_command: host_calls::redis_command,
        model_execute: host_calls::model_execute,
        log: log_to_redis,
    });
    if !first {
        redis_module::logging::log_warning("redisai-rs: host services were already installed");
    }
}

fn log_to_redis(level: LogLevel, text: &str) {
    match level {
        LogLevel::Warning => redis_module::logging::log_warning(text),
        LogLevel::Notice => redis_module::logging::log_notice(text),
        LogLevel::Debug => redis_module::logging::log_debug(text),
    }
}
