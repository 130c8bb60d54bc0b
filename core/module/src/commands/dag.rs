//! AI.DAGEXECUTE, AI.DAGEXECUTE_RO and the deprecated AI.DAGRUN, AI.DAGRUN_RO.

use std::ffi::{c_char, c_long, CString};
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis_module::{raw, Context, NotifyEvent, RedisError, RedisResult, RedisString, RedisValue};
use redisai_engine::dag::parse::{dag_key_positions, parse_dag, DagFlavor};
use redisai_engine::dag::plan::plan;
use redisai_engine::dag::run::{DagOutcome, DagRun, OpResult};
use redisai_engine::model::parse::ParseError;
use redisai_engine::model::SharedModel;
use redisai_engine::script::SharedScript;
use redisai_engine::tensor::Tensor;

use super::keyspace::{self, key_name};
use super::{arg_slices, reply_error, tensor};
use crate::blocking::{self, Completion};

pub fn dagexecute(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    dag(
        ctx,
        args,
        DagFlavor {
            read_only: false,
            deprecated: false,
        },
    )
}

pub fn dagexecute_ro(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    dag(
        ctx,
        args,
        DagFlavor {
            read_only: true,
            deprecated: false,
        },
    )
}

pub fn dagrun(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    dag(
        ctx,
        args,
        DagFlavor {
            read_only: false,
            deprecated: true,
        },
    )
}

pub fn dagrun_ro(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    dag(
        ctx,
        args,
        DagFlavor {
            read_only: true,
            deprecated: true,
        },
    )
}

fn dag(ctx: &Context, args: Vec<RedisString>, flavor: DagFlavor) -> RedisResult {
    let slices = arg_slices(&args);
    if ctx.is_keys_position_request() {
        for position in dag_key_positions(&slices) {
            let access = super::key_specs::dag_key_access(&slices, position);
            super::key_specs::key_at(ctx, position, access);
        }
        return Ok(RedisValue::NoReply);
    }
    blocking::ensure_can_block(ctx)?;
    let parsed = parse_dag(&slices[1..], flavor).map_err(reply_error)?;
    super::memory::ensure_room_for(ctx, parsed.local_tensor_bytes())?;
    // Keyspace errors (WRONGTYPE) must keep their own code, so they travel separately.
    let keyspace_error: Mutex<Option<RedisError>> = Mutex::new(None);
    let find_model = |key: &[u8]| -> Result<SharedModel, ParseError> {
        keyspace::read_model(ctx, &key_name(key)).map_err(|err| {
            let text = match &err {
                RedisError::Str(s) => (*s).to_owned(),
                RedisError::String(s) => s.clone(),
                _ => String::new(),
            };
            if let Ok(mut slot) = keyspace_error.lock() {
                *slot = Some(err);
            }
            ParseError(text)
        })
    };
    let find_script = |key: &[u8]| -> Result<SharedScript, ParseError> {
        let script = keyspace::read_script(ctx, &key_name(key)).map_err(|err| {
            let text = match &err {
                RedisError::Str(s) => (*s).to_owned(),
                RedisError::String(s) => s.clone(),
                _ => String::new(),
            };
            if let Ok(mut slot) = keyspace_error.lock() {
                *slot = Some(err);
            }
            ParseError(text)
        })?;
        script.runtime().map_err(ParseError)?;
        Ok(script)
    };
    let planned = match plan(&parsed, &find_model, &find_script) {
        Ok(mut planned) => {
            planned.db = super::script::selected_db(ctx);
            planned.user = super::caller::current_user(ctx);
            planned.output_budget = super::memory::output_budget(ctx);
            planned
        }
        Err(err) => {
            let stored = keyspace_error.lock().ok().and_then(|mut e| e.take());
            return Err(stored.unwrap_or_else(|| reply_error(err)));
        }
    };
    let loaded = planned
        .load
        .iter()
        .map(|key| keyspace::read_tensor(ctx, &key_name(key)))
        .collect::<Result<Vec<Arc<Tensor>>, RedisError>>()?;
    for (key, _) in &planned.persist {
        keyspace::ensure_tensor_or_empty(ctx, &key_name(key))?;
    }
    let deadline = planned
        .timeout_ms
        .map(|ms| Instant::now() + Duration::from_millis(ms));
    let timeout_ms = planned.timeout_ms;
    let abandoned = Arc::new(AtomicU32::new(0));
    let sink = Arc::new(Mutex::new(DagSink::Running));
    let run = {
        let sink = Arc::clone(&sink);
        DagRun::start(
            planned,
            loaded,
            Arc::clone(&abandoned),
            deadline,
            Box::new(move |outcome| DagSink::finish(&sink, outcome)),
        )
    };
    // Ops that could run here (tensor ops, tiny models) have; the rest are queued.
    run.close_inline_window();
    let mut state = sink.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let DagSink::Done(outcome) = std::mem::replace(&mut *state, DagSink::Running) {
        drop(state);
        return Box::new(DagReply { outcome }).reply(ctx);
    }
    match blocking::block_with_flag(ctx, timeout_ms, Arc::clone(&abandoned)) {
        Ok(blocked) => {
            *state = DagSink::Blocked(blocked);
            Ok(RedisValue::NoReply)
        }
        Err(err) => {
            // Nobody will take the outcome: stop what can be stopped.
            abandoned.store(1, std::sync::atomic::Ordering::Relaxed);
            Err(err)
        }
    }
}

/// Where a DAG's outcome goes: kept for the command if the DAG finished while the
/// command was still running, else to the client blocked meanwhile. The lock orders the
/// two: the command blocks its client holding it, a finishing worker waits for it.
enum DagSink {
    Running,
    Done(DagOutcome),
    Blocked(blocking::BlockedClient),
}

impl DagSink {
    fn finish(sink: &Mutex<DagSink>, outcome: DagOutcome) {
        let mut state = sink.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match std::mem::replace(&mut *state, DagSink::Running) {
            DagSink::Blocked(blocked) => blocked.unblock(Box::new(DagReply { outcome })),
            DagSink::Running | DagSink::Done(_) => *state = DagSink::Done(outcome),
        }
    }
}

/// Persists a finished DAG's keys and replies with one entry per op.
struct DagReply {
    outcome: DagOutcome,
}

impl Completion for DagReply {
    fn reply(self: Box<Self>, ctx: &Context) -> RedisResult {
        let (results, persist) = match self.outcome {
            DagOutcome::Finished { results, persist } => (results, persist),
            DagOutcome::TimedOut => return Ok(RedisValue::SimpleStringStatic("TIMEDOUT")),
            DagOutcome::Abandoned => return Ok(RedisValue::NoReply),
        };
        if !persist.is_empty() {
            super::memory::ensure_within_maxmemory()?;
        }
        for (name, tensor) in &persist {
            let key = key_name(name);
            keyspace::write_tensor(ctx, &key, Arc::clone(tensor))?;
            keyspace::replicate_tensor(ctx, &key, tensor);
            ctx.notify_keyspace_event(NotifyEvent::MODULE, "ai.tensorset", &key);
        }
        let raw_ctx = ctx.ctx;
        raw::reply_with_array(raw_ctx, results.len() as c_long);
        for result in results {
            match result {
                OpResult::Done => {
                    raw::reply_with_simple_string(raw_ctx, c"OK".as_ptr());
                }
                OpResult::NotRun => {
                    raw::reply_with_simple_string(raw_ctx, c"NA".as_ptr());
                }
                OpResult::Value(tensor, format) => tensor::reply_tensor(ctx, &tensor, format),
                OpResult::Failed(failure) => {
                    let text =
                        crate::reply::reply_bytes(&crate::error_text::failure_text(&failure));
                    let text = CString::new(text).unwrap_or_default();
                    raw::reply_with_error(raw_ctx, text.as_ptr().cast::<c_char>());
                }
            }
        }
        Ok(RedisValue::NoReply)
    }
}
