//! Which queued work a worker takes next, and which model runs it joins into one batch.
//! Plain data in, indexes out: no threads here.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::model::{Batching, Model};
use crate::tensor::Tensor;

/// A queued model run as the batching rules see it.
pub struct Candidate<'a> {
    pub model: &'a Arc<Model>,
    pub inputs: &'a [Arc<Tensor>],
    pub enqueued: Instant,
    /// Timed out or abandoned: it should be finished now, never waited for.
    pub expired: bool,
}

/// The worker's choice.
#[derive(Debug, PartialEq, Eq)]
pub enum Pick {
    /// Take these queue positions (the first is the head) and run them together.
    Run(Vec<usize>),
    /// Nothing is ready: wait for new work, or until this instant at the latest.
    Wait(Option<Instant>),
}

impl Candidate<'_> {
    fn policy(&self) -> Batching {
        self.model.batching
    }

    fn rows(&self) -> usize {
        self.inputs.first().map_or(1, |t| t.rows())
    }

    /// Runs that can share a batch: the same stored model, and inputs that stack.
    fn joins(&self, other: &Candidate<'_>) -> bool {
        Arc::ptr_eq(self.model, other.model)
            && !other.expired
            && self.inputs.len() == other.inputs.len()
            && self
                .inputs
                .iter()
                .zip(other.inputs)
                .all(|(a, b)| a.batch_compatible(b))
    }
}

/// Chooses the next work from the queue. `None` entries are jobs that never batch and
/// are always ready.
pub fn pick(queue: &[Option<Candidate<'_>>], now: Instant) -> Pick {
    let mut earliest_wait: Option<Instant> = None;
    for (index, entry) in queue.iter().enumerate() {
        let Some(head) = entry else {
            return Pick::Run(vec![index]);
        };
        let policy = head.policy();
        let max_rows = policy.size as usize;
        if policy.size == 0 || head.expired || head.rows() >= max_rows || head.inputs.is_empty() {
            return Pick::Run(vec![index]);
        }
        let mut batch = vec![index];
        let mut rows = head.rows();
        for (other_index, other) in queue.iter().enumerate().skip(index + 1) {
            if let Some(other) = other {
                if head.joins(other) && rows + other.rows() <= max_rows {
                    batch.push(other_index);
                    rows += other.rows();
                }
            }
        }
        let min_rows = policy.min_size as usize;
        if min_rows == 0 || rows >= min_rows {
            return Pick::Run(batch);
        }
        if policy.min_timeout_ms > 0 {
            let deadline = head.enqueued + Duration::from_millis(policy.min_timeout_ms);
            if now >= deadline {
                return Pick::Run(batch);
            }
            earliest_wait = Some(earliest_wait.map_or(deadline, |e| e.min(deadline)));
        }
    }
    Pick::Wait(earliest_wait)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::Device;
    use crate::model::ModelDefinition;
    use crate::tensor::parse::tensor_from_args;

    fn model(size: u64, min_size: u64, min_timeout_ms: u64) -> Arc<Model> {
        Arc::new(Model::without_runtime(ModelDefinition {
            backend: "TEST".into(),
            device: Device::CPU,
            device_name: "CPU".into(),
            tag: Vec::new(),
            batching: Batching {
                size,
                min_size,
                min_timeout_ms,
            },
            inputs: Vec::new(),
            outputs: Vec::new(),
            blob: Vec::new(),
        }))
    }

    fn input(text: &str) -> Vec<Arc<Tensor>> {
        let args: Vec<&[u8]> = text.split(' ').map(str::as_bytes).collect();
        vec![Arc::new(tensor_from_args(&args).expect("tensor"))]
    }

    fn candidate<'a>(
        model: &'a Arc<Model>,
        inputs: &'a [Arc<Tensor>],
        at: Instant,
    ) -> Option<Candidate<'a>> {
        Some(Candidate {
            model,
            inputs,
            enqueued: at,
            expired: false,
        })
    }

    #[test]
    fn unbatched_work_runs_in_order() {
        let now = Instant::now();
        let plain = model(0, 0, 0);
        let x = input("FLOAT 1 2");
        assert_eq!(
            pick(&[None, candidate(&plain, &x, now)], now),
            Pick::Run(vec![0])
        );
        assert_eq!(
            pick(&[candidate(&plain, &x, now), None], now),
            Pick::Run(vec![0])
        );
        assert_eq!(pick(&[], now), Pick::Wait(None));
    }

    #[test]
    fn compatible_runs_of_one_model_join_up_to_the_batch_size() {
        let now = Instant::now();
        let batched = model(4, 0, 0);
        let other = model(4, 0, 0);
        let one = input("FLOAT 1 2");
        let two = input("FLOAT 2 2");
        let wide = input("FLOAT 1 3");
        let queue = [
            candidate(&batched, &one, now),
            candidate(&other, &one, now),
            candidate(&batched, &wide, now),
            candidate(&batched, &two, now),
            candidate(&batched, &two, now),
            candidate(&batched, &one, now),
        ];
        // 1 + 2 rows, then the next 2 rows would exceed 4, the last row fits.
        assert_eq!(pick(&queue, now), Pick::Run(vec![0, 3, 5]));
    }

    #[test]
    fn min_batch_size_waits_until_enough_rows_or_the_timeout() {
        let start = Instant::now();
        let patient = model(8, 3, 0);
        let one = input("FLOAT 1 2");
        let queue = [
            candidate(&patient, &one, start),
            candidate(&patient, &one, start),
        ];
        assert_eq!(pick(&queue, start), Pick::Wait(None));
        let queue = [
            candidate(&patient, &one, start),
            candidate(&patient, &one, start),
            candidate(&patient, &one, start),
        ];
        assert_eq!(pick(&queue, start), Pick::Run(vec![0, 1, 2]));

        let bounded = model(8, 3, 50);
        let queue = [candidate(&bounded, &one, start), None];
        assert_eq!(
            pick(&queue, start),
            Pick::Run(vec![1]),
            "others are not held up"
        );
        let queue = [candidate(&bounded, &one, start)];
        assert_eq!(
            pick(&queue, start),
            Pick::Wait(Some(start + Duration::from_millis(50)))
        );
        assert_eq!(
            pick(&queue, start + Duration::from_millis(60)),
            Pick::Run(vec![0])
        );
    }

    #[test]
    fn expired_and_oversized_runs_go_alone() {
        let now = Instant::now();
        let patient = model(2, 2, 0);
        let big = input("FLOAT 3 2");
        let one = input("FLOAT 1 2");
        assert_eq!(
            pick(&[candidate(&patient, &big, now)], now),
            Pick::Run(vec![0])
        );
        let expired = Some(Candidate {
            model: &patient,
            inputs: &one,
            enqueued: now,
            expired: true,
        });
        assert_eq!(pick(&[expired], now), Pick::Run(vec![0]));
    }
}
