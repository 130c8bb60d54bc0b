//! Running a planned DAG: ops start as soon as their inputs exist; model ops go to
//! their device's queue, so independent ops on different devices run in parallel.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use super::plan::{OpKind, Plan};
use crate::backend::RunContext;
use crate::exec::{Failure, ModelRun, Origin, RunOutcome, ScriptRun, Work};
use crate::tensor::parse::GetFormat;
use crate::tensor::Tensor;

/// The reply slot of one op.
pub enum OpResult {
    /// Not run, because an op it depends on failed ("NA").
    NotRun,
    Done,
    /// An AI.TENSORGET result.
    Value(Arc<Tensor>, GetFormat),
    Failed(Failure),
}

pub enum DagOutcome {
    Finished {
        results: Vec<OpResult>,
        /// Keys to write, empty when any op failed (a DAG persists all or nothing).
        persist: Vec<(Vec<u8>, Arc<Tensor>)>,
    },
    TimedOut,
    Abandoned,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Status {
    Waiting,
    Running,
    Succeeded,
    Failed,
}

struct State {
    slots: Vec<Option<Arc<Tensor>>>,
    results: Vec<OpResult>,
    status: Vec<Status>,
    remaining: usize,
    stopped: Option<DagOutcome>,
}

type Finish = Box<dyn FnOnce(DagOutcome) + Send>;

pub struct DagRun {
    plan: Plan,
    state: Mutex<State>,
    abandoned: Arc<AtomicU32>,
    deadline: Option<Instant>,
    finish: Mutex<Option<Finish>>,
    /// Open while the command that started the DAG is still on the main thread: model
    /// ops may then run there (`exec::run_inline`) instead of going to their queue.
    inline_window: AtomicBool,
}

impl DagRun {
    /// Starts the DAG with the LOADed tensors; `finish` is called exactly once, on the
    /// thread that completes the last op (the caller's, if no op needs a queue). Model
    /// ops that may run inline run on the caller's thread until
    /// [`DagRun::close_inline_window`].
    pub fn start(
        plan: Plan,
        loaded: Vec<Arc<Tensor>>,
        abandoned: Arc<AtomicU32>,
        deadline: Option<Instant>,
        finish: Finish,
    ) -> Arc<DagRun> {
        let mut slots: Vec<Option<Arc<Tensor>>> = vec![None; plan.slot_count];
        for (slot, tensor) in slots.iter_mut().zip(loaded) {
            *slot = Some(tensor);
        }
        let ops = plan.ops.len();
        let run = Arc::new(DagRun {
            state: Mutex::new(State {
                slots,
                results: (0..ops).map(|_| OpResult::NotRun).collect(),
                status: vec![Status::Waiting; ops],
                remaining: ops,
                stopped: None,
            }),
            plan,
            abandoned,
            deadline,
            finish: Mutex::new(Some(finish)),
            inline_window: AtomicBool::new(true),
        });
        run.advance();
        run
    }

    /// From now on every model op goes to its queue (the caller leaves the main thread).
    pub fn close_inline_window(&self) {
        self.inline_window.store(false, Ordering::SeqCst);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts every op whose inputs are ready, finishes inline ops, and calls `finish`
    /// once nothing remains.
    fn advance(self: &Arc<Self>) {
        loop {
            let mut to_queue = Vec::new();
            let mut progressed = false;
            {
                let mut state = self.lock();
                for index in 0..self.plan.ops.len() {
                    if state.status[index] != Status::Waiting {
                        continue;
                    }
                    let op = &self.plan.ops[index];
                    let deps: Vec<Status> = op.deps.iter().map(|&d| state.status[d]).collect();
                    if deps.contains(&Status::Failed) || state.stopped.is_some() {
                        state.status[index] = Status::Failed;
                        state.remaining -= 1;
                        progressed = true;
                        continue;
                    }
                    if deps.iter().any(|&s| s != Status::Succeeded) {
                        continue;
                    }
                    progressed = true;
                    match &op.kind {
                        OpKind::TensorSet(tensor) => {
                            state.slots[op.outputs[0]] = Some(Arc::clone(tensor));
                            state.results[index] = OpResult::Done;
                            state.status[index] = Status::Succeeded;
                            state.remaining -= 1;
                        }
                        OpKind::TensorGet(format) => {
                            match state.slots[op.inputs[0]].clone() {
                                Some(tensor) => {
                                    state.results[index] = OpResult::Value(tensor, *format);
                                    state.status[index] = Status::Succeeded;
                                }
                                None => {
                                    state.results[index] = OpResult::Failed(Failure::new(
                                        Origin::Dag,
                                        "INPUT key cannot be found in DAG",
                                    ));
                                    state.status[index] = Status::Failed;
                                }
                            }
                            state.remaining -= 1;
                        }
                        OpKind::Model(_) | OpKind::Script { .. } => {
                            state.status[index] = Status::Running;
                            let inputs: Option<Vec<Arc<Tensor>>> = op
                                .inputs
                                .iter()
                                .map(|&slot| state.slots[slot].clone())
                                .collect();
                            to_queue.push((index, inputs.unwrap_or_default()));
                        }
                    }
                }
            }
            for (index, inputs) in to_queue {
                match self.try_inline(index, &inputs) {
                    Some(outcome) => self.record(index, outcome),
                    None => self.queue_model(index, inputs),
                }
            }
            if !progressed {
                break;
            }
        }
        self.finish_if_done();
    }

    fn queue_model(self: &Arc<Self>, index: usize, inputs: Vec<Arc<Tensor>>) {
        let op = &self.plan.ops[index];
        let dag = Arc::clone(self);
        let model = match &op.kind {
            OpKind::Model(model) => model,
            OpKind::Script {
                script,
                function,
                args,
                calling,
            } => {
                let run = ScriptRun {
                    script: Arc::clone(script),
                    function: function.clone(),
                    inputs,
                    args: args.clone(),
                    calling: *calling,
                    n_outputs: op.outputs.len(),
                    deadline: self.deadline,
                    context: RunContext {
                        db: self.plan.db,
                        user: self.plan.user.clone(),
                        keys: self.plan.keys.clone(),
                        cancel: Arc::clone(&self.abandoned),
                        deadline: self.deadline,
                        output_budget: self.plan.output_budget.clone(),
                    },
                    finish: Box::new(move |outcome| dag.model_done(index, outcome)),
                };
                crate::exec::submit(script.device, Work::Other(Box::new(run)));
                return;
            }
            _ => return,
        };
        let run = ModelRun {
            model: Arc::clone(model),
            inputs,
            n_outputs: op.outputs.len(),
            deadline: self.deadline,
            abandoned: Arc::clone(&self.abandoned),
            output_budget: self.plan.output_budget.clone(),
            finish: Box::new(move |outcome| dag.model_done(index, outcome)),
        };
        crate::exec::submit(model.device, Work::Model(Box::new(run)));
    }

    /// Runs model op `index` here and now if the inline window is open and the model
    /// may run inline (see `exec::inline`); None when it must be queued.
    fn try_inline(&self, index: usize, inputs: &[Arc<Tensor>]) -> Option<RunOutcome> {
        if !self.inline_window.load(Ordering::SeqCst) || self.abandoned.load(Ordering::Relaxed) != 0
        {
            return None;
        }
        let op = &self.plan.ops[index];
        let OpKind::Model(model) = &op.kind else {
            return None;
        };
        let time_left_ms = match self.deadline {
            Some(deadline) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    // Queued, the run reports the timeout.
                    return None;
                }
                Some(left.as_millis().max(1) as u64)
            }
            None => None,
        };
        let outcome = crate::exec::run_inline(
            model,
            inputs,
            op.outputs.len(),
            time_left_ms,
            &self.plan.output_budget,
        )?;
        crate::exec::count_inline_run(model.device);
        Some(outcome)
    }

    fn model_done(self: &Arc<Self>, index: usize, outcome: RunOutcome) {
        self.record(index, outcome);
        self.advance();
    }

    /// Records how op `index` ended.
    fn record(&self, index: usize, outcome: RunOutcome) {
        let mut state = self.lock();
        let op = &self.plan.ops[index];
        match outcome {
            RunOutcome::Done(outputs) => {
                for (&slot, tensor) in op.outputs.iter().zip(outputs) {
                    state.slots[slot] = Some(Arc::new(tensor));
                }
                state.results[index] = OpResult::Done;
                state.status[index] = Status::Succeeded;
            }
            RunOutcome::Failed(failure) => {
                state.results[index] = OpResult::Failed(failure);
                state.status[index] = Status::Failed;
            }
            RunOutcome::TimedOut => {
                state.status[index] = Status::Failed;
                state.stopped.get_or_insert(DagOutcome::TimedOut);
            }
            RunOutcome::Abandoned => {
                state.status[index] = Status::Failed;
                state.stopped.get_or_insert(DagOutcome::Abandoned);
            }
        }
        state.remaining -= 1;
    }

    fn finish_if_done(&self) {
        let outcome = {
            let mut state = self.lock();
            if state.remaining > 0 {
                return;
            }
            match state.stopped.take() {
                Some(stopped) => stopped,
                None => {
                    let failed = state.status.contains(&Status::Failed);
                    let persist = if failed {
                        Vec::new()
                    } else {
                        self.plan
                            .persist
                            .iter()
                            .filter_map(|(key, slot)| {
                                state.slots[*slot].clone().map(|t| (key.clone(), t))
                            })
                            .collect()
                    };
                    DagOutcome::Finished {
                        results: std::mem::take(&mut state.results),
                        persist,
                    }
                }
            }
        };
        let finish = self
            .finish
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(finish) = finish {
            finish(outcome);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dag::parse::{parse_dag, DagFlavor};
    use crate::dag::plan::plan;
    use std::sync::mpsc;

    #[test]
    fn tensor_ops_run_inline_and_persist() {
        let args: Vec<&[u8]> =
            "PERSIST 1 b |> AI.TENSORSET a FLOAT 1 VALUES 3 |> AI.TENSORGET a VALUES \
             |> AI.TENSORSET b INT8 1 VALUES 1 |> AI.TENSORGET missing_is_caught_at_plan META"
                .split_whitespace()
                .map(str::as_bytes)
                .collect();
        let dag = parse_dag(
            &args,
            DagFlavor {
                read_only: false,
                deprecated: false,
            },
        )
        .expect("parse");
        assert!(
            plan(&dag, &|_| unreachable!(), &|_| unreachable!()).is_err(),
            "unknown input found at planning"
        );

        let args: Vec<&[u8]> =
            "PERSIST 1 b |> AI.TENSORSET a FLOAT 1 VALUES 3 |> AI.TENSORGET a VALUES \
             |> AI.TENSORSET b INT8 1 VALUES 1"
                .split_whitespace()
                .map(str::as_bytes)
                .collect();
        let dag = parse_dag(
            &args,
            DagFlavor {
                read_only: false,
                deprecated: false,
            },
        )
        .expect("parse");
        let planned = plan(&dag, &|_| unreachable!(), &|_| unreachable!()).expect("plan");
        let (tx, rx) = mpsc::channel();
        DagRun::start(
            planned,
            Vec::new(),
            Arc::new(AtomicU32::new(0)),
            None,
            Box::new(move |o| {
                let _ = tx.send(o);
            }),
        );
        let Ok(DagOutcome::Finished { results, persist }) = rx.try_recv() else {
            panic!("finished synchronously")
        };
        assert!(matches!(results[0], OpResult::Done));
        assert!(matches!(results[1], OpResult::Value(ref t, _) if t.shape() == [1]));
        assert_eq!(persist.len(), 1);
        assert_eq!(persist[0].0, b"b".to_vec());
    }
}
