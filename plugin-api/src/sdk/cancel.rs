//! Stopping runs the host no longer wants (client gone, server shutting down), for
//! runtimes that can be told to stop a run from another thread: one thread polls the
//! host's cancel flags of the runs in progress and, when one is set, fires the run's
//! action (ONNX Runtime: terminate the run options; TensorFlow: close the session). While
//! runs keep coming it polls on its own, so registering a run wakes nobody; after a
//! second without runs it sleeps until the next one. Each plugin library has its own
//! thread (the SDK is compiled into each).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::CancelFlag;

/// How often the flags are looked at while runs are in progress.
const POLL_INTERVAL: Duration = Duration::from_millis(10);
/// How long the thread keeps polling without runs before it sleeps.
const IDLE_LINGER: Duration = Duration::from_secs(1);

/// What stops a run; it keeps alive what it acts on.
pub type Action = Box<dyn FnOnce() + Send>;

struct Entry {
    flag: CancelFlag,
    action: Option<Action>,
    fired: Arc<AtomicBool>,
}

struct State {
    next_id: u64,
    entries: BTreeMap<u64, Entry>,
    thread_started: bool,
    /// The thread waits for a notification (rather than polling).
    sleeping: bool,
}

static STATE: Mutex<State> = Mutex::new(State {
    next_id: 0,
    entries: BTreeMap::new(),
    thread_started: false,
    sleeping: false,
});
static WAKE: Condvar = Condvar::new();

fn lock() -> MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A run being watched; dropping it (or [`CancelWatch::finish`]) stops watching. It must
/// be dropped before the run call returns: the flag is valid only until then.
pub struct CancelWatch {
    id: u64,
    fired: Arc<AtomicBool>,
}

impl CancelWatch {
    /// Stops watching; returns whether the action was fired because of the flag.
    pub fn finish(self) -> bool {
        let fired = Arc::clone(&self.fired);
        drop(self);
        // Read after the entry is gone: no firing can start any more.
        fired.load(Ordering::SeqCst)
    }
}

impl Drop for CancelWatch {
    fn drop(&mut self) {
        lock().entries.remove(&self.id);
    }
}

/// Fires `action` (once, on the watcher thread) when `flag` is set.
pub fn watch(flag: CancelFlag, action: Action) -> std::io::Result<CancelWatch> {
    let fired = Arc::new(AtomicBool::new(false));
    let mut state = lock();
    if !state.thread_started {
        std::thread::Builder::new()
            .name("rai-cancel".into())
            .spawn(serve)?;
        state.thread_started = true;
    }
    let id = state.next_id;
    state.next_id += 1;
    state.entries.insert(
        id,
        Entry {
            flag,
            action: Some(action),
            fired: Arc::clone(&fired),
        },
    );
    let wake = std::mem::take(&mut state.sleeping);
    drop(state);
    if wake {
        WAKE.notify_one();
    }
    Ok(CancelWatch { id, fired })
}

fn serve() {
    let mut state = lock();
    let mut idle_since = Instant::now();
    loop {
        if state.entries.is_empty() {
            if idle_since.elapsed() >= IDLE_LINGER {
                state.sleeping = true;
                while state.sleeping {
                    state = WAKE.wait(state).unwrap_or_else(PoisonError::into_inner);
                }
                idle_since = Instant::now();
                continue;
            }
        } else {
            idle_since = Instant::now();
        }
        // Entries are removed (under this lock) before their run returns, so every flag
        // read here belongs to a call still in progress.
        let mut due = Vec::new();
        for entry in state.entries.values_mut() {
            if entry.action.is_some() && entry.flag.is_set() {
                entry.fired.store(true, Ordering::SeqCst);
                due.extend(entry.action.take());
            }
        }
        if !due.is_empty() {
            // Outside the lock: an action may take a moment (closing a session cancels its
            // run's kernels), and runs that end meanwhile must be able to unregister. An
            // action keeps what it acts on alive itself.
            drop(state);
            for action in due {
                action();
            }
            state = lock();
            continue;
        }
        state = WAKE
            .wait_timeout(state, POLL_INTERVAL)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;
    use std::sync::mpsc;

    /// A watch on `flag` whose action sends on the returned channel.
    fn watched(flag: &AtomicU32) -> (CancelWatch, mpsc::Receiver<()>) {
        let (tx, rx) = mpsc::channel();
        let watch = watch(
            CancelFlag(flag),
            Box::new(move || {
                let _ = tx.send(());
            }),
        )
        .expect("watcher thread");
        (watch, rx)
    }

    #[test]
    fn fires_once_when_the_flag_is_set_and_not_before() {
        let flag = AtomicU32::new(0);
        let (watch, rx) = watched(&flag);
        assert!(rx.recv_timeout(POLL_INTERVAL * 5).is_err(), "fired early");
        flag.store(1, Ordering::Relaxed);
        rx.recv_timeout(Duration::from_secs(5)).expect("fired");
        assert!(watch.finish(), "finish reports the firing");
    }

    #[test]
    fn a_finished_watch_never_fires() {
        let flag = AtomicU32::new(0);
        let (watch, rx) = watched(&flag);
        assert!(!watch.finish());
        flag.store(1, Ordering::Relaxed);
        assert!(
            rx.recv_timeout(POLL_INTERVAL * 5).is_err(),
            "fired after finish"
        );
    }
}
