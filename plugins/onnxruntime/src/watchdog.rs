//! Deadlines for model runs: one background thread fires the action of each watch whose
//! deadline passes (for a run: set the terminate flag of its ONNX Runtime run options).
//! A watch costs a mutex lock and a notify; no thread is started per run.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

type Action = Box<dyn FnOnce() + Send>;

struct Entry {
    fired: Arc<AtomicBool>,
    action: Action,
}

struct State {
    next_id: u64,
    entries: BTreeMap<(Instant, u64), Entry>,
    thread_started: bool,
    /// When the serving thread will look at the entries again on its own (None: only
    /// when notified). A new deadline before it needs a notify; a later one does not,
    /// so runs with the same timeout wake the thread at most once per timeout.
    wake_at: Option<Instant>,
}

/// A set of deadlines served by one thread, started on first use.
pub struct Watchdog {
    state: Mutex<State>,
    wake: Condvar,
}

/// The process's watchdog for model runs.
pub static WATCHDOG: Watchdog = Watchdog::new();

/// A pending deadline; dropping it (or [`Watch::finish`]) cancels it.
pub struct Watch {
    watchdog: &'static Watchdog,
    /// None for a deadline too far away to represent, which never fires.
    key: Option<(Instant, u64)>,
    fired: Arc<AtomicBool>,
}

impl Watch {
    /// Cancels the deadline; returns whether it had already fired.
    pub fn finish(self) -> bool {
        if let Some(key) = self.key {
            self.watchdog.cancel(key);
        }
        self.fired.load(Ordering::SeqCst)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(key) = self.key {
            self.watchdog.cancel(key);
        }
    }
}

impl Watchdog {
    pub const fn new() -> Watchdog {
        Watchdog {
            state: Mutex::new(State {
                next_id: 0,
                entries: BTreeMap::new(),
                thread_started: false,
                wake_at: None,
            }),
            wake: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent across a panic (no user code runs under the lock
        // except actions, which are taken out of the map first).
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `action` once `timeout` has passed, unless the returned watch is finished or
    /// dropped before.
    pub fn watch(
        &'static self,
        timeout: Duration,
        action: impl FnOnce() + Send + 'static,
    ) -> std::io::Result<Watch> {
        let fired = Arc::new(AtomicBool::new(false));
        let Some(deadline) = Instant::now().checked_add(timeout) else {
            return Ok(Watch {
                watchdog: self,
                key: None,
                fired,
            });
        };
        let mut state = self.lock();
        if !state.thread_started {
            std::thread::Builder::new()
                .name("onnx-watchdog".into())
                .spawn(move || self.serve())?;
            state.thread_started = true;
        }
        let key = (deadline, state.next_id);
        state.next_id += 1;
        state.entries.insert(
            key,
            Entry {
                fired: Arc::clone(&fired),
                action: Box::new(action),
            },
        );
        let notify = state.wake_at.is_none_or(|wake_at| deadline < wake_at);
        drop(state);
        if notify {
            self.wake.notify_one();
        }
        Ok(Watch {
            watchdog: self,
            key: Some(key),
            fired,
        })
    }

    fn cancel(&self, key: (Instant, u64)) {
        self.lock().entries.remove(&key);
    }

    fn serve(&self) {
        let mut state = self.lock();
        loop {
            let now = Instant::now();
            let next = state.entries.keys().next().map(|&(deadline, _)| deadline);
            match next {
                None => {
                    state.wake_at = None;
                    state = self
                        .wake
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                Some(deadline) if deadline <= now => {
                    if let Some((_, entry)) = state.entries.pop_first() {
                        // Mark first: the run sees the flag once the action made it fail.
                        entry.fired.store(true, Ordering::SeqCst);
                        drop(state);
                        let _ =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(entry.action));
                        state = self.lock();
                    }
                }
                Some(deadline) => {
                    state.wake_at = Some(deadline);
                    state = self
                        .wake
                        .wait_timeout(state, deadline - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    static TEST_WATCHDOG: Watchdog = Watchdog::new();

    #[test]
    fn fires_after_the_deadline() {
        let (tx, rx) = mpsc::channel();
        let start = Instant::now();
        let watch = TEST_WATCHDOG
            .watch(Duration::from_millis(50), move || {
                let _ = tx.send(Instant::now());
            })
            .expect("watch");
        let fired_at = rx.recv_timeout(Duration::from_secs(5)).expect("fired");
        assert!(fired_at - start >= Duration::from_millis(50));
        assert!(watch.finish());
    }

    #[test]
    fn finished_watches_do_not_fire() {
        let (tx, rx) = mpsc::channel::<()>();
        let watch = TEST_WATCHDOG
            .watch(Duration::from_millis(30), move || {
                let _ = tx.send(());
            })
            .expect("watch");
        assert!(!watch.finish());
        assert!(rx.recv_timeout(Duration::from_millis(150)).is_err());
    }

    #[test]
    fn earlier_deadlines_fire_first() {
        let (tx, rx) = mpsc::channel();
        let tx2 = tx.clone();
        let late = TEST_WATCHDOG
            .watch(Duration::from_millis(300), move || {
                let _ = tx.send("late");
            })
            .expect("watch");
        let early = TEST_WATCHDOG
            .watch(Duration::from_millis(20), move || {
                let _ = tx2.send("early");
            })
            .expect("watch");
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok("early"));
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok("late"));
        assert!(early.finish());
        assert!(late.finish());
    }

    #[test]
    fn later_deadlines_added_while_waiting_still_fire() {
        let (tx, rx) = mpsc::channel();
        let watches: Vec<Watch> = [40u64, 80, 120]
            .into_iter()
            .map(|ms| {
                let tx = tx.clone();
                TEST_WATCHDOG
                    .watch(Duration::from_millis(ms), move || {
                        let _ = tx.send(ms);
                    })
                    .expect("watch")
            })
            .collect();
        for expected in [40, 80, 120] {
            assert_eq!(rx.recv_timeout(Duration::from_secs(5)), Ok(expected));
        }
        assert!(watches.into_iter().all(Watch::finish));
    }
}
