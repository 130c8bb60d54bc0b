//! Run queues: one per device, each with its own worker threads.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::batching::{self, Candidate, Pick};
use super::ModelRun;
use crate::device::Device;

/// How often a worker looks again at runs waiting for a minimum batch, so that runs
/// whose clients left are finished without new work arriving.
const BATCH_RECHECK: Duration = Duration::from_millis(100);

/// Work a queue runs. `cancel` is called instead of `run` when the queue stops first.
pub trait Job: Send + 'static {
    fn run(self: Box<Self>);
    fn cancel(self: Box<Self>, reason: &str);
}

pub struct RunQueue {
    pub device: Device,
    shared: Arc<Shared>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

struct Shared {
    state: Mutex<State>,
    ready: Condvar,
    /// CPU time spent by this queue's workers, in microseconds.
    cpu_us: AtomicU64,
    done: AtomicU64,
    /// Runs of this device's models done on the main thread instead (`exec::inline`).
    inline_done: AtomicU64,
}

/// Queued work: model runs (which may batch) or any other job.
pub enum Work {
    Model(Box<ModelRun>),
    Other(Box<dyn Job>),
}

impl Work {
    pub fn run(self) {
        match self {
            Work::Model(run) => run.run(),
            Work::Other(job) => job.run(),
        }
    }

    pub fn cancel(self, reason: &str) {
        match self {
            Work::Model(run) => run.cancel(reason),
            Work::Other(job) => job.cancel(reason),
        }
    }
}

struct Queued {
    work: Work,
    enqueued: Instant,
}

struct State {
    jobs: VecDeque<Queued>,
    stopping: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Counters of a queue for INFO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueStats {
    pub pending: usize,
    pub done: u64,
    pub cpu_us: u64,
    pub threads: usize,
    pub inline_done: u64,
}

impl RunQueue {
    /// Starts a queue with `threads` workers (at least one).
    pub fn start(device: Device, threads: usize) -> std::io::Result<RunQueue> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                jobs: VecDeque::new(),
                stopping: false,
            }),
            ready: Condvar::new(),
            cpu_us: AtomicU64::new(0),
            done: AtomicU64::new(0),
            inline_done: AtomicU64::new(0),
        });
        let mut workers = Vec::new();
        for index in 0..threads.max(1) {
            let shared = Arc::clone(&shared);
            let worker = std::thread::Builder::new()
                .name(format!("ai-{device}-{index}"))
                .spawn(move || work(&shared))?;
            workers.push(worker);
        }
        Ok(RunQueue {
            device,
            shared,
            workers: Mutex::new(workers),
        })
    }

    /// Queues work; a stopped queue hands it back.
    pub fn push(&self, work: Work) -> Result<(), Work> {
        let mut state = self.shared.lock();
        if state.stopping {
            return Err(work);
        }
        state.jobs.push_back(Queued {
            work,
            enqueued: Instant::now(),
        });
        drop(state);
        // Every worker may have to reconsider a batch that was waiting for more rows.
        self.shared.ready.notify_all();
        Ok(())
    }

    pub fn stats(&self) -> QueueStats {
        let pending = self.shared.lock().jobs.len();
        QueueStats {
            pending,
            done: self.shared.done.load(Ordering::Relaxed),
            cpu_us: self.shared.cpu_us.load(Ordering::Relaxed),
            threads: self.workers.lock().map(|w| w.len()).unwrap_or_default(),
            inline_done: self.shared.inline_done.load(Ordering::Relaxed),
        }
    }

    /// Counts a run of one of this device's models that ran on the main thread.
    pub fn count_inline_run(&self) {
        self.shared.inline_done.fetch_add(1, Ordering::Relaxed);
    }

    /// Cancels the jobs still queued, lets running ones finish, and joins the workers.
    pub fn stop(&self) {
        let pending: Vec<Queued> = {
            let mut state = self.shared.lock();
            state.stopping = true;
            state.jobs.drain(..).collect()
        };
        self.shared.ready.notify_all();
        for queued in pending {
            queued.work.cancel("ERR the server is shutting down");
        }
        let workers: Vec<JoinHandle<()>> = self
            .workers
            .lock()
            .map(|mut w| w.drain(..).collect())
            .unwrap_or_default();
        for worker in workers {
            let _ = worker.join();
        }
    }
}

fn work(shared: &Shared) {
    loop {
        let taken = {
            let mut state = shared.lock();
            loop {
                if state.stopping {
                    return;
                }
                match choose(&state.jobs) {
                    Pick::Run(positions) => break take(&mut state.jobs, positions),
                    Pick::Wait(until) => {
                        let wait = until
                            .map(|t| t.saturating_duration_since(Instant::now()))
                            .unwrap_or(BATCH_RECHECK)
                            .min(BATCH_RECHECK);
                        state = if state.jobs.is_empty() {
                            shared
                                .ready
                                .wait(state)
                                .unwrap_or_else(|poisoned| poisoned.into_inner())
                        } else {
                            shared
                                .ready
                                .wait_timeout(state, wait)
                                .unwrap_or_else(|poisoned| poisoned.into_inner())
                                .0
                        };
                    }
                }
            }
        };
        let cpu_before = thread_cpu_us();
        // A panicking job must not take the worker down with it; jobs report their own
        // panics to their clients (see `ModelRun`).
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_taken(taken)));
        shared.cpu_us.fetch_add(
            thread_cpu_us().saturating_sub(cpu_before),
            Ordering::Relaxed,
        );
        shared.done.fetch_add(1, Ordering::Relaxed);
    }
}

fn choose(jobs: &VecDeque<Queued>) -> Pick {
    let now = Instant::now();
    let candidates: Vec<Option<Candidate<'_>>> = jobs
        .iter()
        .map(|queued| match &queued.work {
            Work::Model(run) => Some(Candidate {
                model: &run.model,
                inputs: &run.inputs,
                enqueued: queued.enqueued,
                expired: run.expired(now),
            }),
            Work::Other(_) => None,
        })
        .collect();
    batching::pick(&candidates, now)
}

/// Removes the chosen positions from the queue, head first.
fn take(jobs: &mut VecDeque<Queued>, positions: Vec<usize>) -> Vec<Work> {
    let mut sorted = positions.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    let mut removed: Vec<(usize, Work)> = sorted
        .into_iter()
        .filter_map(|position| jobs.remove(position).map(|queued| (position, queued.work)))
        .collect();
    removed.sort_by_key(|(position, _)| positions.iter().position(|p| p == position));
    removed.into_iter().map(|(_, work)| work).collect()
}

fn run_taken(mut taken: Vec<Work>) {
    if taken.len() == 1 {
        if let Some(work) = taken.pop() {
            work.run();
        }
        return;
    }
    let runs: Vec<Box<ModelRun>> = taken
        .into_iter()
        .filter_map(|work| match work {
            Work::Model(run) => Some(run),
            // `pick` batches model runs only.
            Work::Other(job) => {
                job.run();
                None
            }
        })
        .collect();
    ModelRun::run_batch(runs);
}

/// CPU time of the calling thread, in microseconds.
fn thread_cpu_us() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    let status = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    if status != 0 {
        return 0;
    }
    (now.tv_sec as u64)
        .saturating_mul(1_000_000)
        .saturating_add(now.tv_nsec as u64 / 1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    use crate::exec::test_jobs::Record;

    #[test]
    fn runs_jobs_in_order_on_one_worker() {
        let queue = RunQueue::start(Device::CPU, 1).expect("start");
        let (tx, rx) = mpsc::channel();
        for name in ["a", "b", "c"] {
            assert!(queue
                .push(Work::Other(Box::new(Record(tx.clone(), name))))
                .is_ok());
        }
        let got: Vec<String> = (0..3).map(|_| rx.recv().expect("result")).collect();
        assert_eq!(got, vec!["ran a", "ran b", "ran c"]);
        queue.stop();
        assert_eq!(queue.stats().done, 3);
        assert!(queue
            .push(Work::Other(Box::new(Record(tx, "late"))))
            .is_err());
    }

    #[test]
    fn stop_cancels_pending_jobs() {
        struct Block(mpsc::Receiver<()>);
        impl Job for Block {
            fn run(self: Box<Self>) {
                let _ = self.0.recv();
            }
            fn cancel(self: Box<Self>, _: &str) {}
        }
        let queue = Arc::new(RunQueue::start(Device::CPU, 1).expect("start"));
        let (unblock_tx, unblock_rx) = mpsc::channel();
        assert!(queue.push(Work::Other(Box::new(Block(unblock_rx)))).is_ok());
        let (tx, rx) = mpsc::channel();
        assert!(queue
            .push(Work::Other(Box::new(Record(tx, "pending"))))
            .is_ok());
        std::thread::sleep(std::time::Duration::from_millis(50));
        let stopper = {
            let queue = Arc::clone(&queue);
            std::thread::spawn(move || queue.stop())
        };
        let cancelled = rx.recv().expect("cancel");
        assert!(cancelled.starts_with("cancelled pending"), "{cancelled}");
        let _ = unblock_tx.send(());
        stopper.join().expect("join");
    }
}
