//! Run queues: one per device, each with its own worker threads.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::device::Device;

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
}

struct State {
    jobs: VecDeque<Box<dyn Job>>,
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

    /// Queues a job; a stopped queue hands it back.
    pub fn push(&self, job: Box<dyn Job>) -> Result<(), Box<dyn Job>> {
        let mut state = self.shared.lock();
        if state.stopping {
            return Err(job);
        }
        state.jobs.push_back(job);
        drop(state);
        self.shared.ready.notify_one();
        Ok(())
    }

    pub fn stats(&self) -> QueueStats {
        let pending = self.shared.lock().jobs.len();
        QueueStats {
            pending,
            done: self.shared.done.load(Ordering::Relaxed),
            cpu_us: self.shared.cpu_us.load(Ordering::Relaxed),
            threads: self.workers.lock().map(|w| w.len()).unwrap_or_default(),
        }
    }

    /// Cancels the jobs still queued, lets running ones finish, and joins the workers.
    pub fn stop(&self) {
        let pending: Vec<Box<dyn Job>> = {
            let mut state = self.shared.lock();
            state.stopping = true;
            state.jobs.drain(..).collect()
        };
        self.shared.ready.notify_all();
        for job in pending {
            job.cancel("ERR the server is shutting down");
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
        let job = {
            let mut state = shared.lock();
            loop {
                if let Some(job) = state.jobs.pop_front() {
                    break job;
                }
                if state.stopping {
                    return;
                }
                state = shared
                    .ready
                    .wait(state)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
        };
        let cpu_before = thread_cpu_us();
        // A panicking job must not take the worker down with it; jobs report their own
        // panics to their clients (see `ModelRun`).
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run()));
        shared.cpu_us.fetch_add(
            thread_cpu_us().saturating_sub(cpu_before),
            Ordering::Relaxed,
        );
        shared.done.fetch_add(1, Ordering::Relaxed);
    }
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

    struct Send1(mpsc::Sender<String>, &'static str);

    impl Job for Send1 {
        fn run(self: Box<Self>) {
            let _ = self.0.send(format!("ran {}", self.1));
        }
        fn cancel(self: Box<Self>, reason: &str) {
            let _ = self.0.send(format!("cancelled {}: {reason}", self.1));
        }
    }

    #[test]
    fn runs_jobs_in_order_on_one_worker() {
        let queue = RunQueue::start(Device::CPU, 1).expect("start");
        let (tx, rx) = mpsc::channel();
        for name in ["a", "b", "c"] {
            assert!(queue.push(Box::new(Send1(tx.clone(), name))).is_ok());
        }
        let got: Vec<String> = (0..3).map(|_| rx.recv().expect("result")).collect();
        assert_eq!(got, vec!["ran a", "ran b", "ran c"]);
        queue.stop();
        assert_eq!(queue.stats().done, 3);
        assert!(queue.push(Box::new(Send1(tx, "late"))).is_err());
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
        assert!(queue.push(Box::new(Block(unblock_rx))).is_ok());
        let (tx, rx) = mpsc::channel();
        assert!(queue.push(Box::new(Send1(tx, "pending"))).is_ok());
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
