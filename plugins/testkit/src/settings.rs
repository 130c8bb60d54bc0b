//! Settings the tests can change while a backend uses them.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use redisai_plugin_api::sdk::ConfigKey;

/// Settings the tests can change while a backend uses them; all 0 (the runtime's
/// defaults, no limits) unless set.
#[derive(Clone, Default)]
pub struct Settings {
    pub intra: Arc<AtomicI64>,
    pub inter: Arc<AtomicI64>,
    pub timeout_ms: Arc<AtomicI64>,
    pub memory_mb: Arc<AtomicI64>,
}

impl Settings {
    /// The value of `key` now.
    pub fn get(&self, key: ConfigKey) -> i64 {
        let cell = match key {
            ConfigKey::IntraOpParallelism => &self.intra,
            ConfigKey::InterOpParallelism => &self.inter,
            ConfigKey::ModelExecutionTimeoutMs => &self.timeout_ms,
            ConfigKey::BackendMemoryLimitMb => &self.memory_mb,
        };
        cell.load(Ordering::SeqCst)
    }

    /// Sets one of the cells.
    pub fn set(cell: &AtomicI64, value: i64) {
        cell.store(value, Ordering::SeqCst);
    }
}
