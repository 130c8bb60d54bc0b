//! AI.SCRIPTSTORE, AI.SCRIPTSET, AI.SCRIPTGET, AI.SCRIPTDEL, AI.SCRIPTEXECUTE,
//! AI.SCRIPTRUN, AI._SCRIPTSCAN.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis_module::{raw, Context, RedisError, RedisResult, RedisString, RedisValue};
use redisai_engine::backend::RunContext;
use redisai_engine::exec::{Failure, Origin, ScriptRun, Work};
use redisai_engine::script::parse::{self, ScriptExecuteArgs};
use redisai_engine::script::{Script, ScriptDefinition, SharedScript};
use redisai_engine::tensor::Tensor;

use super::keyspace::{self, key_name};
use super::model::WriteOutputs;
use super::{arg_slices, key_specs, reply_error, store};
use crate::blocking;
use crate::error_text::failure_text;
use crate::persist::script_type::SCRIPT_TYPE;

/// `AI.SCRIPTSTORE key device [TAG t] ENTRY_POINTS n fn... SOURCE src`
pub fn scriptstore(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    store(ctx, args, false)
}

/// Deprecated `AI.SCRIPTSET key device [TAG t] SOURCE src`
pub fn scriptset(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    store(ctx, args, true)
}

fn store(ctx: &Context, args: Vec<RedisString>, legacy: bool) -> RedisResult {
    // RedisAI: AI.SCRIPTSTORE key device ENTRY_POINTS 1 ep SOURCE src at least;
    // AI.SCRIPTSET key device [TAG tag] SOURCE src exactly.
    let arity_ok = if legacy {
        matches!(args.len(), 5 | 7)
    } else {
        args.len() >= 8
    };
    if !arity_ok {
        return Err(RedisError::WrongArity);
    }
    let slices = arg_slices(&args[2..]);
    let spec = parse::parse_script_store(&slices, legacy).map_err(reply_error)?;
    // Checked again when the value is stored: the load may take a while.
    <Script as store::Storable>::ensure_type(ctx, &args[1])?;
    let definition = ScriptDefinition {
        device: spec.device,
        device_name: String::from_utf8_lossy(spec.device_name).into_owned(),
        tag: spec.tag.to_vec(),
        entry_points: spec.entry_points.clone(),
        source: spec.source.to_vec(),
    };
    if store::restoring(ctx) {
        let script = Script::restore(definition);
        if let Err(reason) = &script.runtime {
            ctx.log_warning(&format!("script stored without a runtime: {reason}"));
        }
        return store::store_now(ctx, &args, script);
    }
    // The backend compiles the script off the main thread (see `commands::store`).
    store::load_then_store(ctx, args, move || {
        Script::create(definition)
            .map_err(|reason| failure_text(&Failure::new(Origin::ScriptStore, reason)))
    })
}

/// `AI.SCRIPTGET key [META] [SOURCE]`
pub fn scriptget(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    if !(2..=4).contains(&args.len()) {
        return Err(RedisError::WrongArity);
    }
    let (mut meta, mut source) = (false, false);
    for arg in &args[2..] {
        let arg = arg.as_slice();
        if arg.eq_ignore_ascii_case(b"META") {
            meta = true;
        } else if arg.eq_ignore_ascii_case(b"SOURCE") {
            source = true;
        } else {
            return Err(RedisError::String(format!(
                "ERR unrecognized argument: {}",
                String::from_utf8_lossy(arg)
            )));
        }
    }
    if !meta && !source {
        meta = true;
        source = true;
    }
    let script = keyspace::read_script(ctx, &args[1])?;
    if !meta {
        return Ok(RedisValue::StringBuffer(script.source.clone()));
    }
    let mut reply = vec![
        RedisValue::SimpleStringStatic("device"),
        RedisValue::BulkString(script.device_name.clone()),
        RedisValue::SimpleStringStatic("tag"),
        RedisValue::StringBuffer(script.tag.clone()),
        RedisValue::SimpleStringStatic("Entry Points"),
        RedisValue::Array(
            script
                .entry_points
                .iter()
                .cloned()
                .map(RedisValue::BulkString)
                .collect(),
        ),
    ];
    if source {
        reply.push(RedisValue::SimpleStringStatic("source"));
        reply.push(RedisValue::StringBuffer(script.source.clone()));
    }
    Ok(RedisValue::Array(reply))
}

/// `AI.SCRIPTDEL key`
pub fn scriptdel(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    keyspace::delete_checked(
        ctx,
        &args,
        |ctx, key| keyspace::read_script(ctx, key).map(drop),
        "ai.scriptdel",
    )
}

/// `AI._SCRIPTSCAN`: every script key with its tag.
pub fn scriptscan(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    keyspace::scan_command::<SharedScript>(ctx, &args, &SCRIPT_TYPE, |script| script.tag.clone())
}

/// `AI.SCRIPTEXECUTE key fn [KEYS n k...] [INPUTS n k...] [ARGS n a...]
/// [OUTPUTS n k...] [TIMEOUT ms]`
pub fn scriptexecute(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    if ctx.is_keys_position_request() {
        let slices = arg_slices(&args);
        for (position, access) in parse::script_execute_keys(&slices) {
            key_specs::key_at(ctx, position, access);
        }
        return Ok(RedisValue::NoReply);
    }
    if args.len() < 4 {
        return Err(RedisError::WrongArity);
    }
    let slices = arg_slices(&args[1..]);
    let parsed = parse::parse_script_execute(&slices, false).map_err(reply_error)?;
    execute(ctx, parsed)
}

/// Deprecated `AI.SCRIPTRUN key fn [TIMEOUT ms] INPUTS k... [$ k...] OUTPUTS k...`
pub fn scriptrun(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    if ctx.is_keys_position_request() {
        let slices = arg_slices(&args);
        for (position, access) in parse::script_run_keys(&slices) {
            key_specs::key_at(ctx, position, access);
        }
        return Ok(RedisValue::NoReply);
    }
    if args.len() < 5 {
        return Err(RedisError::WrongArity);
    }
    let slices = arg_slices(&args[1..]);
    let parsed = parse::parse_script_run(&slices).map_err(reply_error)?;
    execute(ctx, parsed)
}

/// The database the caller selected.
pub fn selected_db(ctx: &Context) -> i32 {
    // SAFETY: the API table is filled at load time and only read afterwards.
    unsafe { raw::RedisModule_GetSelectedDb.map_or(0, |get| get(ctx.ctx)) }
}

fn execute(ctx: &Context, parsed: ScriptExecuteArgs<'_>) -> RedisResult {
    blocking::ensure_can_block(ctx)?;
    let script = keyspace::read_script(ctx, &key_name(parsed.script_key))?;
    script.runtime().map_err(RedisError::String)?;
    let function = String::from_utf8(parsed.function.to_vec())
        .map_err(|_| RedisError::Str("ERR function name must be UTF-8"))?;
    let inputs = parsed
        .inputs
        .iter()
        .map(|name| keyspace::read_tensor(ctx, &key_name(name)))
        .collect::<Result<Vec<Arc<Tensor>>, RedisError>>()?;
    for name in &parsed.outputs {
        keyspace::ensure_tensor_or_empty(ctx, &key_name(name))?;
    }
    let context = RunContext {
        db: selected_db(ctx),
        user: super::caller::current_user(ctx),
        keys: parsed.keys.iter().map(|k| k.to_vec()).collect(),
        cancel: Arc::new(Default::default()),
        deadline: parsed
            .timeout_ms
            .map(|ms| Instant::now() + Duration::from_millis(ms)),
        output_budget: super::memory::output_budget(ctx),
    };
    let blocked = blocking::block(ctx, parsed.timeout_ms)?;
    let context = RunContext {
        cancel: blocked.abandoned(),
        ..context
    };
    let output_keys: Vec<Vec<u8>> = parsed.outputs.iter().map(|k| k.to_vec()).collect();
    let device = script.device;
    let job = ScriptRun {
        script,
        function,
        inputs,
        args: parsed.args.iter().map(|a| a.to_vec()).collect(),
        calling: parsed.calling,
        n_outputs: output_keys.len(),
        deadline: context.deadline,
        context,
        finish: Box::new(move |outcome| {
            blocked.unblock(Box::new(WriteOutputs {
                output_keys,
                outcome,
            }))
        }),
    };
    redisai_engine::exec::submit(device, Work::Other(Box::new(job)));
    Ok(RedisValue::NoReply)
}
