//! Run statistics of a model or script, as AI.INFO reports them.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

/// How many recent run times the percentiles are computed over.
const RECENT_RUNS: usize = 1024;

#[derive(Debug, Default)]
pub struct RunStats {
    inner: Mutex<Counters>,
}

#[derive(Debug, Default, Clone)]
struct Counters {
    calls: u64,
    errors: u64,
    samples: u64,
    duration_us: u64,
    recent_us: VecDeque<u64>,
}

/// A copy of the statistics at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatsSnapshot {
    pub calls: u64,
    pub errors: u64,
    /// Rows processed (the batch dimension of the inputs), summed over runs.
    pub samples: u64,
    /// Total run time in microseconds.
    pub duration_us: u64,
    pub p50_us: u64,
    pub p99_us: u64,
}

impl RunStats {
    /// Records one run: its duration, the rows it processed, and whether it failed.
    pub fn record(&self, duration: Duration, samples: u64, failed: bool) {
        let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
        let mut counters = self.lock();
        counters.calls += 1;
        if failed {
            counters.errors += 1;
            return;
        }
        counters.samples = counters.samples.saturating_add(samples);
        counters.duration_us = counters.duration_us.saturating_add(micros);
        if counters.recent_us.len() == RECENT_RUNS {
            counters.recent_us.pop_front();
        }
        counters.recent_us.push_back(micros);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let counters = self.lock().clone();
        let mut recent: Vec<u64> = counters.recent_us.into_iter().collect();
        recent.sort_unstable();
        StatsSnapshot {
            calls: counters.calls,
            errors: counters.errors,
            samples: counters.samples,
            duration_us: counters.duration_us,
            p50_us: percentile(&recent, 50),
            p99_us: percentile(&recent, 99),
        }
    }

    pub fn reset(&self) {
        *self.lock() = Counters::default();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counters> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Nearest-rank percentile of sorted values (0 when empty).
fn percentile(sorted: &[u64], percent: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (percent * sorted.len()).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_percentiles() {
        let stats = RunStats::default();
        for micros in 1..=100 {
            stats.record(Duration::from_micros(micros), 2, false);
        }
        stats.record(Duration::from_micros(5), 1, true);
        let snapshot = stats.snapshot();
        assert_eq!(snapshot.calls, 101);
        assert_eq!(snapshot.errors, 1);
        assert_eq!(snapshot.samples, 200);
        assert_eq!(snapshot.duration_us, 5050);
        assert_eq!(snapshot.p50_us, 50);
        assert_eq!(snapshot.p99_us, 99);
        stats.reset();
        assert_eq!(stats.snapshot(), StatsSnapshot::default());
    }

    #[test]
    fn percentile_edges() {
        assert_eq!(percentile(&[], 50), 0);
        assert_eq!(percentile(&[7], 99), 7);
        assert_eq!(percentile(&[1, 2], 50), 1);
    }
}
