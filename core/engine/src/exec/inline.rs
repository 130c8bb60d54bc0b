//! Running tiny models on Redis's main thread.
//!
//! Handing a run to a worker and the result back costs more than the run itself for a
//! small model: blocking the client, waking a worker, waking the event loop, the reply
//! callback (about 20 µs in all, against 3 µs for a small MLP). A model whose recent
//! runs were all fast runs where its client's command is, on the main thread, as long as
//! it keeps being fast. The main thread then spends at most about the limit on one run
//! (INLINE_EXECUTION_LIMIT_US) before a slow run sends the model back to the workers.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use crate::device::DeviceKind;
use crate::model::parse::Batching;

/// Runs in a row within the limit, on any thread, before a model may run inline: the
/// first runs of a session are slow (allocation, kernel selection), and the runs that
/// set a model's size limit must be representative.
pub const WARM_RUNS: u32 = 8;

/// What a model's recent runs say about running it inline. Updated by every run of the
/// model; races between concurrent runs only blur which run counted last.
#[derive(Debug, Default)]
pub struct InlineGate {
    /// Runs in a row that took at most the limit.
    fast_streak: AtomicU32,
    /// The largest input (bytes, all inputs together) among those runs: a bigger input
    /// may take longer, so it goes to a worker.
    max_fast_input_bytes: AtomicU64,
}

impl InlineGate {
    /// Records a finished run of `input_bytes` that took `elapsed`. A run over
    /// `limit_us` (or any run while the limit is 0, i.e. inline runs are off) starts the
    /// streak again.
    pub fn record(&self, elapsed: Duration, input_bytes: u64, limit_us: u64) {
        let fast = limit_us > 0 && elapsed <= Duration::from_micros(limit_us);
        if fast {
            let _ = self
                .fast_streak
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    Some(n.saturating_add(1))
                });
            self.max_fast_input_bytes
                .fetch_max(input_bytes, Ordering::Relaxed);
        } else {
            self.close();
        }
    }

    /// Sends the model back to the workers until it has been fast again for
    /// [`WARM_RUNS`] runs.
    pub fn close(&self) {
        self.fast_streak.store(0, Ordering::Relaxed);
        self.max_fast_input_bytes.store(0, Ordering::Relaxed);
    }

    /// Whether a run with inputs of `input_bytes` may run inline.
    pub fn admits(&self, input_bytes: u64) -> bool {
        self.fast_streak.load(Ordering::Relaxed) >= WARM_RUNS
            && input_bytes <= self.max_fast_input_bytes.load(Ordering::Relaxed)
    }
}

/// Whether a run of a model with this placement may run on the main thread at all:
/// inline runs are on, the model is on a CPU (a GPU run waits for the device) and it
/// does not batch (batches form in the queue).
pub fn placement_allows(limit_us: u64, device: DeviceKind, batching: &Batching) -> bool {
    limit_us > 0 && device == DeviceKind::Cpu && batching.size == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: u64 = 50;

    fn warmed(bytes: u64) -> InlineGate {
        let gate = InlineGate::default();
        for _ in 0..WARM_RUNS {
            gate.record(Duration::from_micros(10), bytes, LIMIT);
        }
        gate
    }

    #[test]
    fn admits_after_enough_fast_runs_only() {
        let gate = InlineGate::default();
        for _ in 1..WARM_RUNS {
            gate.record(Duration::from_micros(10), 64, LIMIT);
            assert!(!gate.admits(64));
        }
        gate.record(Duration::from_micros(LIMIT), 64, LIMIT);
        assert!(gate.admits(64));
    }

    #[test]
    fn a_slow_run_sends_the_model_back_to_the_workers() {
        let gate = warmed(64);
        gate.record(Duration::from_micros(LIMIT + 1), 64, LIMIT);
        assert!(!gate.admits(64));
        for _ in 0..WARM_RUNS {
            gate.record(Duration::from_micros(5), 64, LIMIT);
        }
        assert!(gate.admits(64));
    }

    #[test]
    fn inputs_bigger_than_the_fast_runs_go_to_the_workers() {
        let gate = warmed(64);
        assert!(gate.admits(16));
        assert!(!gate.admits(65));
        gate.record(Duration::from_micros(10), 4096, LIMIT);
        assert!(gate.admits(4096));
    }

    #[test]
    fn a_limit_of_zero_turns_inline_runs_off() {
        let gate = warmed(64);
        gate.record(Duration::from_micros(1), 64, 0);
        assert!(!gate.admits(64));
    }

    #[test]
    fn placement() {
        let plain = Batching::default();
        let batched = Batching {
            size: 8,
            ..Batching::default()
        };
        assert!(placement_allows(LIMIT, DeviceKind::Cpu, &plain));
        assert!(!placement_allows(0, DeviceKind::Cpu, &plain));
        assert!(!placement_allows(LIMIT, DeviceKind::Gpu, &plain));
        assert!(!placement_allows(LIMIT, DeviceKind::Cpu, &batched));
    }
}
