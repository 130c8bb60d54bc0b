//! Interrupting runs the host no longer wants (client gone, server shutting down): one
//! thread polls the host's cancel flags of the runs in progress and terminates those
//! whose flag is set. While runs keep coming it polls on its own, so registering a run
//! wakes nobody; after a second without runs it sleeps until the next one.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use ort::session::RunOptions as OrtRunOptions;
use redisai_plugin_api::sdk::CancelFlag;

/// How often the flags are looked at while runs are in progress.
const POLL_INTERVAL: Duration = Duration::from_millis(10);
/// How long the thread keeps polling without runs before it sleeps.
const IDLE_LINGER: Duration = Duration::from_secs(1);

struct Entry {
    flag: CancelFlag,
    options: Arc<OrtRunOptions>,
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

/// A run being watched; dropping it (or [`CancelWatch::finish`]) stops watching. It
/// must be dropped before the run call returns: the flag is valid only until then.
pub struct CancelWatch {
    id: u64,
    fired: Arc<AtomicBool>,
}

impl CancelWatch {
    /// Stops watching; returns whether the run was terminated because of the flag.
    pub fn finish(self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }
}

impl Drop for CancelWatch {
    fn drop(&mut self) {
        lock().entries.remove(&self.id);
    }
}

/// Terminates the run behind `options` once `flag` is set.
pub fn watch(flag: CancelFlag, options: Arc<OrtRunOptions>) -> std::io::Result<CancelWatch> {
    let fired = Arc::new(AtomicBool::new(false));
    let mut state = lock();
    if !state.thread_started {
        std::thread::Builder::new()
            .name("onnx-cancel".into())
            .spawn(serve)?;
        state.thread_started = true;
    }
    let id = state.next_id;
    state.next_id += 1;
    state.entries.insert(
        id,
        Entry {
            flag,
            options,
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
        for entry in state.entries.values() {
            if !entry.fired.load(Ordering::SeqCst) && entry.flag.is_set() {
                entry.fired.store(true, Ordering::SeqCst);
                let _ = entry.options.terminate();
            }
        }
        // Entries are removed (under this lock) before their run returns, so every flag
        // read above belonged to a call still in progress.
        state = WAKE
            .wait_timeout(state, POLL_INTERVAL)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
}
