//! A closed-loop load: each client (one thread) sends a request, waits for the answer and
//! sends the next, for a fixed window.
//!
//! With `warm_up`, every client first makes one untimed call (the runtime's first run at
//! a shape is slow: memory plans, kernels picked); then all start together, so the queue
//! is full from the first instant. They stop sending at the end of the window, and the
//! calls in flight finish and count: throughput is the calls completed over the time from
//! the common start to the last answer. The server is busy during all of that time, so
//! the figure has no edge bias even when answers come in bursts (16 at a time with
//! BATCHSIZE 16, a second apart).

use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Result};

/// One client's way of making a request and checking its answer.
pub trait Client: Send {
    fn call(&mut self) -> Result<()>;
}

/// What one or more windows measured.
#[derive(Default, Clone)]
pub struct Sample {
    /// Inferences completed (calls times the inferences per call).
    pub inferences: u64,
    pub elapsed: Duration,
    /// Per call, in microseconds.
    pub latencies_us: Vec<u64>,
}

impl Sample {
    pub fn rate(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.inferences as f64 / seconds
        } else {
            0.0
        }
    }

    /// The `p`-th percentile of the call latencies, in milliseconds (nearest rank).
    pub fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let mut sorted = self.latencies_us.clone();
        sorted.sort_unstable();
        let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1] as f64 / 1000.0
    }

    pub fn add(&mut self, other: Sample) {
        self.inferences += other.inferences;
        self.elapsed += other.elapsed;
        self.latencies_us.extend(other.latencies_us);
    }
}

/// Runs every client for `window` (after its warm-up call, if `warm_up`); each call
/// counts as `inferences_per_call` inferences.
pub fn closed_loop<C: Client>(
    clients: &mut [C],
    window: Duration,
    inferences_per_call: u64,
    warm_up: bool,
) -> Result<Sample> {
    let start_line = Barrier::new(clients.len());
    let results: Vec<Result<(Instant, Instant, Vec<u64>)>> = thread::scope(|scope| {
        let handles: Vec<_> = clients
            .iter_mut()
            .map(|client| {
                let start_line = &start_line;
                scope.spawn(move || {
                    let warm_up = if warm_up { client.call() } else { Ok(()) };
                    // Every thread reaches the barrier, even after a failed warm-up.
                    start_line.wait();
                    warm_up?;
                    let start = Instant::now();
                    let deadline = start + window;
                    let mut latencies = Vec::new();
                    let mut end = start;
                    while end < deadline {
                        client.call()?;
                        let now = Instant::now();
                        latencies.push((now - end).as_micros() as u64);
                        end = now;
                    }
                    Ok((start, end, latencies))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("a client thread panicked")))
            })
            .collect()
    });
    let mut first_start: Option<Instant> = None;
    let mut last_end: Option<Instant> = None;
    let mut sample = Sample::default();
    let mut calls = 0u64;
    for result in results {
        let (start, end, latencies) = result?;
        first_start = Some(first_start.map_or(start, |s| s.min(start)));
        last_end = Some(last_end.map_or(end, |e| e.max(end)));
        calls += latencies.len() as u64;
        sample.latencies_us.extend(latencies);
    }
    sample.inferences = calls * inferences_per_call;
    if let (Some(start), Some(end)) = (first_start, last_end) {
        sample.elapsed = end - start;
    }
    Ok(sample)
}
