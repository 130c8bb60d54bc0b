//! AI.MODELSTORE, AI.MODELSET, AI.MODELGET, AI.MODELDEL, AI.MODELEXECUTE, AI.MODELRUN,
//! AI._MODELSCAN.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis_module::{Context, NotifyEvent, RedisError, RedisResult, RedisString, RedisValue};
use redisai_engine::backend::registry;
use redisai_engine::config::BackendKind;
use redisai_engine::exec::{Failure, ModelRun, Origin, RunOutcome, Work};
use redisai_engine::model::parse::{self, ExecuteArgs};
use redisai_engine::model::{Model, ModelDefinition, SharedModel};
use redisai_engine::tensor::Tensor;

use super::keyspace::{self, key_name};
use super::{arg_slices, key_specs, reply_error, store};
use crate::blocking::{self, Completion};
use crate::error_text::failure_text;
use crate::persist::model_type::MODEL_TYPE;

/// `AI.MODELSTORE key backend device [TAG t] [BATCHSIZE n [MINBATCHSIZE m
/// [MINBATCHTIMEOUT t]]] [INPUTS n ...] [OUTPUTS n ...] BLOB chunk...`
pub fn modelstore(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    store(ctx, args, false)
}

/// Deprecated `AI.MODELSET key backend device [TAG t] [BATCHSIZE n [MINBATCHSIZE m]]
/// [INPUTS name...] [OUTPUTS name...] BLOB model`
pub fn modelset(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    store(ctx, args, true)
}

fn store(ctx: &Context, args: Vec<RedisString>, legacy: bool) -> RedisResult {
    // RedisAI: AI.MODELSTORE needs 6 arguments, the deprecated AI.MODELSET 4.
    if args.len() < if legacy { 4 } else { 6 } {
        return Err(RedisError::WrongArity);
    }
    let keep_without_backend = store::restoring(ctx);
    // RedisAI checks the backend before anything else.
    let backend_name = String::from_utf8_lossy(args[2].as_slice()).to_ascii_uppercase();
    if !keep_without_backend
        && BackendKind::parse(backend_name.as_bytes()).is_none()
        && !registry::is_loaded(&backend_name)
    {
        return Err(RedisError::Str("ERR unsupported backend"));
    }
    let slices = arg_slices(&args[2..]);
    let spec = parse::parse_model_store(&slices, legacy).map_err(reply_error)?;
    // Checked again when the value is stored: the load may take a while.
    <Model as store::Storable>::ensure_type(ctx, &args[1])?;
    let definition = ModelDefinition {
        backend: spec.backend.clone(),
        device: spec.device,
        device_name: String::from_utf8_lossy(args[3].as_slice()).into_owned(),
        tag: spec.tag.to_vec(),
        batching: spec.batching,
        inputs: spec.inputs.clone(),
        outputs: spec.outputs.clone(),
        blob: spec.blob(),
    };
    if keep_without_backend {
        let model = Model::restore(definition);
        if let Err(reason) = &model.runtime {
            ctx.log_warning(&format!(
                "model stored without a runtime: {reason}; it answers with this error until \
                 stored again"
            ));
        }
        return store::store_now(ctx, &args, model);
    }
    // The backend loads the model off the main thread (see `commands::store`).
    store::load_then_store(ctx, args, move || {
        Model::create(definition)
            .map_err(|reason| failure_text(&Failure::new(Origin::ModelStore, reason)))
    })
}

/// `AI.MODELGET key [META] [BLOB]`
pub fn modelget(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    if !(2..=4).contains(&args.len()) {
        return Err(RedisError::WrongArity);
    }
    let (mut meta, mut blob) = (false, false);
    for arg in &args[2..] {
        let arg = arg.as_slice();
        if arg.eq_ignore_ascii_case(b"META") {
            meta = true;
        } else if arg.eq_ignore_ascii_case(b"BLOB") {
            blob = true;
        } else {
            return Err(RedisError::String(format!(
                "ERR unrecognized argument: {}",
                String::from_utf8_lossy(arg)
            )));
        }
    }
    if !meta && !blob {
        meta = true;
        blob = true;
    }
    let model = keyspace::read_model(ctx, &args[1])?;
    let chunk_size = redisai_engine::settings::read().model_chunk_size as usize;
    let blob_reply = || {
        if model.blob.len() > chunk_size {
            RedisValue::Array(
                model
                    .blob
                    .chunks(chunk_size.max(1))
                    .map(|c| RedisValue::StringBuffer(c.to_vec()))
                    .collect(),
            )
        } else {
            RedisValue::StringBuffer(model.blob.clone())
        }
    };
    if !meta {
        return Ok(blob_reply());
    }
    let names = |names: Vec<String>| {
        RedisValue::Array(names.into_iter().map(RedisValue::BulkString).collect())
    };
    let mut reply = vec![
        RedisValue::SimpleStringStatic("backend"),
        RedisValue::BulkString(model.backend.clone()),
        RedisValue::SimpleStringStatic("device"),
        RedisValue::BulkString(model.device_name.clone()),
        RedisValue::SimpleStringStatic("tag"),
        RedisValue::StringBuffer(model.tag.clone()),
        RedisValue::SimpleStringStatic("batchsize"),
        RedisValue::Integer(model.batching.size as i64),
        RedisValue::SimpleStringStatic("minbatchsize"),
        RedisValue::Integer(model.batching.min_size as i64),
        RedisValue::SimpleStringStatic("inputs"),
        names(model.input_names()),
        RedisValue::SimpleStringStatic("outputs"),
        names(model.output_names()),
        RedisValue::SimpleStringStatic("minbatchtimeout"),
        RedisValue::Integer(model.batching.min_timeout_ms as i64),
    ];
    if blob {
        reply.push(RedisValue::SimpleStringStatic("blob"));
        reply.push(blob_reply());
    }
    Ok(RedisValue::Array(reply))
}

/// `AI.MODELDEL key`
pub fn modeldel(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    keyspace::delete_checked(
        ctx,
        &args,
        |ctx, key| keyspace::read_model(ctx, key).map(drop),
        "ai.modeldel",
    )
}

/// `AI._MODELSCAN`: every model key with its tag.
pub fn modelscan(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    keyspace::scan_command::<SharedModel>(ctx, &args, &MODEL_TYPE, |model| model.tag.clone())
}

/// `AI.MODELEXECUTE key INPUTS n k... OUTPUTS n k... [TIMEOUT ms]`
pub fn modelexecute(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    if ctx.is_keys_position_request() {
        let slices = arg_slices(&args);
        for position in parse::model_execute_key_positions(&slices) {
            key_specs::key_at(
                ctx,
                position,
                key_specs::model_key_access(&slices, position),
            );
        }
        return Ok(RedisValue::NoReply);
    }
    if args.len() < 8 {
        return Err(RedisError::WrongArity);
    }
    let slices = arg_slices(&args[1..]);
    let parsed = parse::parse_model_execute(&slices).map_err(reply_error)?;
    execute(ctx, parsed)
}

/// Deprecated `AI.MODELRUN key [TIMEOUT ms] INPUTS k... OUTPUTS k...`
pub fn modelrun(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    if ctx.is_keys_position_request() {
        let slices = arg_slices(&args);
        for position in parse::model_run_key_positions(&slices) {
            key_specs::key_at(
                ctx,
                position,
                key_specs::model_key_access(&slices, position),
            );
        }
        return Ok(RedisValue::NoReply);
    }
    if args.len() < 6 {
        return Err(RedisError::WrongArity);
    }
    let slices = arg_slices(&args[1..]);
    let parsed = parse::parse_model_run(&slices).map_err(reply_error)?;
    execute(ctx, parsed)
}

fn execute(ctx: &Context, parsed: ExecuteArgs<'_>) -> RedisResult {
    blocking::ensure_can_block(ctx)?;
    let model = keyspace::read_model(ctx, &key_name(parsed.model_key))?;
    let runtime = model.runtime().map_err(RedisError::String)?;
    if !runtime.input_names.is_empty() && runtime.input_names.len() != parsed.inputs.len() {
        return Err(RedisError::Str(
            "ERR Number of keys given as INPUTS here does not match model definition",
        ));
    }
    let expected_outputs = model.output_names().len();
    if expected_outputs != 0 && expected_outputs != parsed.outputs.len() {
        return Err(RedisError::Str(
            "ERR Number of keys given as OUTPUTS here does not match model definition",
        ));
    }
    let inputs = parsed
        .inputs
        .iter()
        .map(|name| keyspace::read_tensor(ctx, &key_name(name)))
        .collect::<Result<Vec<Arc<Tensor>>, RedisError>>()?;
    for name in &parsed.outputs {
        keyspace::ensure_tensor_or_empty(ctx, &key_name(name))?;
    }
    let output_keys: Vec<Vec<u8>> = parsed.outputs.iter().map(|k| k.to_vec()).collect();
    let device = model.device;
    let output_budget = super::memory::output_budget(ctx);
    if let Some(outcome) = redisai_engine::exec::run_inline(
        &model,
        &inputs,
        output_keys.len(),
        parsed.timeout_ms,
        &output_budget,
    ) {
        redisai_engine::exec::count_inline_run(device);
        return Box::new(WriteOutputs {
            output_keys,
            outcome,
        })
        .reply(ctx);
    }
    let blocked = blocking::block(ctx, parsed.timeout_ms)?;
    let abandoned = blocked.abandoned();
    let job = ModelRun {
        model,
        inputs,
        n_outputs: output_keys.len(),
        deadline: parsed
            .timeout_ms
            .map(|ms| Instant::now() + Duration::from_millis(ms)),
        abandoned,
        output_budget,
        finish: Box::new(move |outcome| {
            blocked.unblock(Box::new(WriteOutputs {
                output_keys,
                outcome,
            }))
        }),
    };
    redisai_engine::exec::submit(device, Work::Model(Box::new(job)));
    Ok(RedisValue::NoReply)
}

/// Writes a finished run's outputs on the main thread and replies.
pub(super) struct WriteOutputs {
    pub(super) output_keys: Vec<Vec<u8>>,
    pub(super) outcome: RunOutcome,
}

impl Completion for WriteOutputs {
    fn reply(self: Box<Self>, ctx: &Context) -> RedisResult {
        match self.outcome {
            RunOutcome::Done(tensors) => {
                super::memory::ensure_within_maxmemory()?;
                for (name, tensor) in self.output_keys.iter().zip(tensors) {
                    let key = key_name(name);
                    let tensor = Arc::new(tensor);
                    keyspace::write_tensor(ctx, &key, Arc::clone(&tensor))?;
                    keyspace::replicate_tensor(ctx, &key, &tensor);
                    ctx.notify_keyspace_event(NotifyEvent::MODULE, "ai.tensorset", &key);
                }
                Ok(RedisValue::SimpleStringStatic("OK"))
            }
            RunOutcome::Failed(failure) => Err(RedisError::String(failure_text(&failure))),
            RunOutcome::TimedOut => Ok(RedisValue::SimpleStringStatic("TIMEDOUT")),
            RunOutcome::Abandoned => Ok(RedisValue::NoReply),
        }
    }
}
