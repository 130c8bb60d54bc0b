//! The loader: one thread that creates models and compiles scripts for AI.MODELSTORE and
//! AI.SCRIPTSTORE, so a slow backend load blocks only the client that asked for it,
//! never Redis's main thread, and never waits behind (or takes) a run queue's worker.
//!
//! Loads run one at a time, in the order they were submitted: two stores of one key
//! finish in the order Redis received them. The thread is started on first use and
//! stopped at shutdown ([`stop`]): loads still waiting are cancelled (their clients get
//! an error), the one in progress finishes.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use super::Job;

/// The reason given to loads cancelled by [`stop`].
pub const SHUTTING_DOWN: &str = "ERR the server is shutting down";

struct Shared {
    state: Mutex<State>,
    ready: Condvar,
}

#[derive(Default)]
struct State {
    jobs: VecDeque<Box<dyn Job>>,
    /// Whether the thread is running a job.
    busy: bool,
    stopping: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Counters of the loader for INFO.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoaderStats {
    /// Loads waiting for the thread.
    pub pending: usize,
    /// Whether a load is in progress.
    pub busy: bool,
}

/// A loader thread with its queue.
pub struct Loader {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Loader {
    /// Starts the thread.
    pub fn start() -> std::io::Result<Loader> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            ready: Condvar::new(),
        });
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("ai-loader".to_owned())
                .spawn(move || work(&shared))?
        };
        Ok(Loader {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Queues `job`; a stopped loader hands it back.
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

    /// Jobs queued and not started yet, and whether one is running.
    pub fn stats(&self) -> LoaderStats {
        let state = self.shared.lock();
        LoaderStats {
            pending: state.jobs.len(),
            busy: state.busy,
        }
    }

    /// Cancels the queued jobs with [`SHUTTING_DOWN`], lets the running one finish and
    /// joins the thread. Later pushes are refused.
    pub fn stop(&self) {
        let pending: Vec<Box<dyn Job>> = {
            let mut state = self.shared.lock();
            state.stopping = true;
            state.jobs.drain(..).collect()
        };
        self.shared.ready.notify_all();
        for job in pending {
            job.cancel(SHUTTING_DOWN);
        }
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

fn work(shared: &Shared) {
    loop {
        let job = {
            let mut state = shared.lock();
            state.busy = false;
            loop {
                if state.stopping {
                    return;
                }
                if let Some(job) = state.jobs.pop_front() {
                    state.busy = true;
                    break job;
                }
                state = shared
                    .ready
                    .wait(state)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
        };
        // Jobs answer their own panics (see `commands::store`); this only keeps the
        // thread alive for the next one.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run()));
    }
}

/// The module's loader, started by the first [`submit`].
static LOADER: Mutex<Option<Arc<Loader>>> = Mutex::new(None);
/// Set by [`stop`]: no loader starts after shutdown began.
static STOPPED: AtomicBool = AtomicBool::new(false);

fn loader() -> Result<Arc<Loader>, String> {
    if STOPPED.load(Ordering::SeqCst) {
        return Err(SHUTTING_DOWN.to_owned());
    }
    let mut slot = LOADER.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(loader) = slot.as_ref() {
        return Ok(Arc::clone(loader));
    }
    let loader = Arc::new(
        Loader::start().map_err(|err| format!("ERR cannot start the loader thread: {err}"))?,
    );
    *slot = Some(Arc::clone(&loader));
    Ok(loader)
}

/// Queues `job` on the module's loader, starting it on first use. A job that cannot be
/// queued is cancelled with the reason.
pub fn submit(job: Box<dyn Job>) {
    match loader() {
        Ok(loader) => {
            if let Err(job) = loader.push(job) {
                job.cancel(SHUTTING_DOWN);
            }
        }
        Err(reason) => job.cancel(&reason),
    }
}

/// Stops the module's loader (at shutdown): see [`Loader::stop`].
pub fn stop() {
    STOPPED.store(true, Ordering::SeqCst);
    let loader = LOADER.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if let Some(loader) = loader {
        loader.stop();
    }
}

/// What the module's loader is doing (for INFO).
pub fn stats() -> LoaderStats {
    LOADER
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_ref()
        .map(|loader| loader.stats())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    use crate::exec::test_jobs::Record;

    struct Panics(mpsc::Sender<String>);

    impl Job for Panics {
        fn run(self: Box<Self>) {
            let _ = self.0.send("about to panic".to_owned());
            panic!("a job panicked");
        }
        fn cancel(self: Box<Self>, _: &str) {}
    }

    struct Waits(mpsc::Receiver<()>, mpsc::Sender<String>);

    impl Job for Waits {
        fn run(self: Box<Self>) {
            let _ = self.1.send("waiting".to_owned());
            let _ = self.0.recv();
            let _ = self.1.send("ran waiter".to_owned());
        }
        fn cancel(self: Box<Self>, _: &str) {}
    }

    fn next(rx: &mpsc::Receiver<String>) -> String {
        rx.recv_timeout(Duration::from_secs(10)).expect("a result")
    }

    #[test]
    fn runs_jobs_in_order_and_survives_a_panic() {
        let loader = Loader::start().expect("start");
        let (tx, rx) = mpsc::channel();
        assert!(loader.push(Box::new(Record(tx.clone(), "a"))).is_ok());
        assert!(loader.push(Box::new(Panics(tx.clone()))).is_ok());
        assert!(loader.push(Box::new(Record(tx.clone(), "b"))).is_ok());
        let got: Vec<String> = (0..3).map(|_| next(&rx)).collect();
        assert_eq!(got, vec!["ran a", "about to panic", "ran b"]);
        loader.stop();
        let refused = loader.push(Box::new(Record(tx, "late")));
        assert!(refused.is_err());
    }

    #[test]
    fn stop_cancels_waiting_jobs_and_lets_the_running_one_finish() {
        let loader = Arc::new(Loader::start().expect("start"));
        let (tx, rx) = mpsc::channel();
        let (release, gate) = mpsc::channel();
        assert!(loader.push(Box::new(Waits(gate, tx.clone()))).is_ok());
        assert_eq!(next(&rx), "waiting");
        assert!(loader.push(Box::new(Record(tx, "queued"))).is_ok());
        assert_eq!(
            loader.stats(),
            LoaderStats {
                pending: 1,
                busy: true
            }
        );
        let stopper = {
            let loader = Arc::clone(&loader);
            std::thread::spawn(move || loader.stop())
        };
        assert_eq!(next(&rx), format!("cancelled queued: {SHUTTING_DOWN}"));
        let _ = release.send(());
        assert_eq!(next(&rx), "ran waiter");
        stopper.join().expect("stop");
        assert_eq!(loader.stats().pending, 0);
    }
}
