//! The host's settings as backends use them: thread counts, the timeout of a run and
//! the memory limit, read through [`Config`].

use super::{ConfigKey, Host};

/// Where a backend reads its settings from: the host's `config_get` in a plugin, a
/// closure in tests. Values are read when used, so they may change between calls.
pub trait Config: Send + Sync + 'static {
    /// The raw value of `key` (0 when unset).
    fn get(&self, key: ConfigKey) -> i64;

    /// INTRA_OP_PARALLELISM, or `None` to let the runtime choose.
    fn intra_op_threads(&self) -> Option<u32> {
        thread_count(self.get(ConfigKey::IntraOpParallelism))
    }

    /// INTER_OP_PARALLELISM, or `None` to let the runtime choose.
    fn inter_op_threads(&self) -> Option<u32> {
        thread_count(self.get(ConfigKey::InterOpParallelism))
    }

    /// How long a run given `run_ms` (0: no limit of its own) may take, with
    /// MODEL_EXECUTION_TIMEOUT: see [`effective_timeout`].
    fn run_timeout_ms(&self, run_ms: u64) -> Option<u64> {
        effective_timeout(self.get(ConfigKey::ModelExecutionTimeoutMs), run_ms)
    }

    /// BACKEND_MEMORY_LIMIT in MB (10^6 bytes, as in RedisAI); 0 for none.
    fn memory_limit_mb(&self) -> u64 {
        u64::try_from(self.get(ConfigKey::BackendMemoryLimitMb)).unwrap_or(0)
    }

    /// BACKEND_MEMORY_LIMIT in bytes, or `None` for no limit.
    fn memory_limit_bytes(&self) -> Option<u64> {
        limit_bytes(self.memory_limit_mb())
    }
}

impl<F> Config for F
where
    F: Fn(ConfigKey) -> i64 + Send + Sync + 'static,
{
    fn get(&self, key: ConfigKey) -> i64 {
        self(key)
    }
}

impl Config for Host {
    fn get(&self, key: ConfigKey) -> i64 {
        self.config(key)
    }
}

/// A BACKEND_MEMORY_LIMIT of `mb` MB in bytes, or `None` for 0 (no limit).
pub fn limit_bytes(mb: u64) -> Option<u64> {
    (mb > 0).then(|| mb.saturating_mul(1_000_000))
}

/// A thread count setting: `None` for 0, a negative value or one past `u32`, which
/// leave the choice to the runtime.
pub fn thread_count(value: i64) -> Option<u32> {
    u32::try_from(value).ok().filter(|&n| n > 0)
}

/// The limit of a run: the smaller of MODEL_EXECUTION_TIMEOUT (`config_ms`, 0 or
/// negative for none) and the run's own (`run_ms`, 0 for none), or `None` when neither
/// is set.
pub fn effective_timeout(config_ms: i64, run_ms: u64) -> Option<u64> {
    let config_ms = u64::try_from(config_ms).unwrap_or(0);
    match (config_ms, run_ms) {
        (0, 0) => None,
        (0, ms) | (ms, 0) => Some(ms),
        (a, b) => Some(a.min(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_smaller_non_zero_timeout_wins() {
        assert_eq!(effective_timeout(0, 0), None);
        assert_eq!(effective_timeout(-5, 0), None);
        assert_eq!(effective_timeout(100, 0), Some(100));
        assert_eq!(effective_timeout(0, 70), Some(70));
        assert_eq!(effective_timeout(100, 70), Some(70));
        assert_eq!(effective_timeout(50, 70), Some(50));
    }

    #[test]
    fn thread_counts() {
        assert_eq!(thread_count(0), None);
        assert_eq!(thread_count(-1), None);
        assert_eq!(thread_count(4), Some(4));
        assert_eq!(thread_count(i64::MAX), None);
    }

    #[test]
    fn a_closure_is_a_config() {
        let config = |key| match key {
            ConfigKey::IntraOpParallelism => 3,
            ConfigKey::InterOpParallelism => -2,
            ConfigKey::ModelExecutionTimeoutMs => 500,
            ConfigKey::BackendMemoryLimitMb => 7,
        };
        assert_eq!(config.intra_op_threads(), Some(3));
        assert_eq!(config.inter_op_threads(), None);
        assert_eq!(config.run_timeout_ms(200), Some(200));
        assert_eq!(config.run_timeout_ms(0), Some(500));
        assert_eq!(config.memory_limit_mb(), 7);
        assert_eq!(config.memory_limit_bytes(), Some(7_000_000));
        let unlimited = |_| 0;
        assert_eq!(unlimited.memory_limit_bytes(), None);
        assert_eq!(unlimited.run_timeout_ms(0), None);
    }
}
