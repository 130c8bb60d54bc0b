//! Execution: run queues per device, and the jobs that run on them.

mod batching;
mod failure;
pub mod inline;
pub mod loader;
mod model_run;
mod queue;
mod script_run;

pub use failure::{Failure, Origin};
pub use model_run::{run_inline, ModelRun, RunOutcome};
pub use queue::{Job, QueueStats, RunQueue, Work};
pub use script_run::ScriptRun;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::device::Device;

static QUEUES: Mutex<BTreeMap<Device, Arc<RunQueue>>> = Mutex::new(BTreeMap::new());

fn queues() -> MutexGuard<'static, BTreeMap<Device, Arc<RunQueue>>> {
    QUEUES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Queues `work` on the run queue of `device`, starting that queue on first use with
/// THREADS_PER_QUEUE workers. Work that cannot be queued is cancelled with the reason.
pub fn submit(device: Device, work: Work) {
    let device = device.queue_device();
    // A model restored from an RDB written before indices were bounded may name any.
    if let Err(reason) = device.check_index() {
        work.cancel(&reason);
        return;
    }
    let queue = {
        let mut queues = queues();
        if let Some(queue) = queues.get(&device) {
            Arc::clone(queue)
        } else {
            let threads = crate::settings::read().threads_per_queue as usize;
            match RunQueue::start(device, threads) {
                Ok(queue) => {
                    let queue = Arc::new(queue);
                    queues.insert(device, Arc::clone(&queue));
                    queue
                }
                Err(err) => {
                    drop(queues);
                    work.cancel(&format!(
                        "ERR cannot start the run queue of {device}: {err}"
                    ));
                    return;
                }
            }
        }
    };
    if let Err(work) = queue.push(work) {
        work.cancel("ERR the server is shutting down");
    }
}

/// Counts a run of a model on `device` that ran on the main thread, on the device's
/// queue (which exists: a model runs on a worker before it may run inline).
pub fn count_inline_run(device: Device) {
    if let Some(queue) = queues().get(&device.queue_device()) {
        queue.count_inline_run();
    }
}

/// Stops every queue: pending jobs are cancelled, running ones finish, workers join.
pub fn stop_all() {
    let all: Vec<Arc<RunQueue>> = queues().values().cloned().collect();
    for queue in all {
        queue.stop();
    }
}

/// Statistics of every queue, by device.
pub fn queue_stats() -> Vec<(Device, QueueStats)> {
    queues()
        .iter()
        .map(|(device, queue)| (*device, queue.stats()))
        .collect()
}

/// A job for the queue and loader tests that says what happened to it.
#[cfg(test)]
pub(crate) mod test_jobs {
    use std::sync::mpsc;

    use super::Job;

    /// Sends "ran <name>" or "cancelled <name>: <reason>".
    pub struct Record(pub mpsc::Sender<String>, pub &'static str);

    impl Job for Record {
        fn run(self: Box<Self>) {
            let _ = self.0.send(format!("ran {}", self.1));
        }
        fn cancel(self: Box<Self>, reason: &str) {
            let _ = self.0.send(format!("cancelled {}: {reason}", self.1));
        }
    }
}
