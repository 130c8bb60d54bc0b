//! AI.INFO: run statistics of a model (or script).

use redis_module::{Context, RedisError, RedisResult, RedisString, RedisValue};

use super::keyspace;

const NO_RUN_INFO: &str = "ERR cannot find run info for key";

/// `AI.INFO key [RESETSTAT]`
pub fn info(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    let reset = match args.len() {
        2 => false,
        3 if args[2].as_slice().eq_ignore_ascii_case(b"RESETSTAT") => true,
        3 => {
            return Err(RedisError::Str(
                "ERR unsupported argument, expected RESETSTAT",
            ))
        }
        _ => return Err(RedisError::WrongArity),
    };
    let model = match keyspace::read_model(ctx, &args[1]) {
        Ok(model) => model,
        Err(_) => return script_info(ctx, &args[1], reset),
    };
    if reset {
        ensure_may_reset(ctx, &args[1], b"AI.MODELDEL")?;
        model.stats.reset();
        return Ok(RedisValue::SimpleStringStatic("OK"));
    }
    let stats = model.stats.snapshot();
    let field = RedisValue::SimpleStringStatic;
    let count = |n: u64| RedisValue::Integer(i64::try_from(n).unwrap_or(i64::MAX));
    Ok(RedisValue::Array(vec![
        field("key"),
        RedisValue::StringBuffer(args[1].as_slice().to_vec()),
        field("type"),
        field("MODEL"),
        field("backend"),
        RedisValue::BulkString(model.backend.clone()),
        field("device"),
        RedisValue::BulkString(model.device_name.clone()),
        field("tag"),
        RedisValue::StringBuffer(model.tag.clone()),
        field("duration"),
        count(stats.duration_us),
        field("samples"),
        count(stats.samples),
        field("calls"),
        count(stats.calls),
        field("errors"),
        count(stats.errors),
        field("duration_p50"),
        count(stats.p50_us),
        field("duration_p99"),
        count(stats.p99_us),
        // Bytes the backend holds for this model (weights, its own buffers), where the
        // backend can tell; -1 where it cannot.
        field("memory"),
        model
            .runtime
            .as_ref()
            .ok()
            .and_then(|runtime| runtime.memory_bytes())
            .map_or(RedisValue::Integer(-1), count),
    ]))
}

/// AI.INFO of a script: as for models, with `samples` -1 as in RedisAI.
fn script_info(ctx: &Context, key: &RedisString, reset: bool) -> RedisResult {
    let script = keyspace::read_script(ctx, key).map_err(|_| RedisError::Str(NO_RUN_INFO))?;
    if reset {
        ensure_may_reset(ctx, key, b"AI.SCRIPTDEL")?;
        script.stats.reset();
        return Ok(RedisValue::SimpleStringStatic("OK"));
    }
    let stats = script.stats.snapshot();
    let field = RedisValue::SimpleStringStatic;
    let count = |n: u64| RedisValue::Integer(i64::try_from(n).unwrap_or(i64::MAX));
    Ok(RedisValue::Array(vec![
        field("key"),
        RedisValue::StringBuffer(key.as_slice().to_vec()),
        field("type"),
        field("SCRIPT"),
        field("backend"),
        field(redisai_engine::script::SCRIPT_BACKEND),
        field("device"),
        RedisValue::BulkString(script.device_name.clone()),
        field("tag"),
        RedisValue::StringBuffer(script.tag.clone()),
        field("duration"),
        count(stats.duration_us),
        field("samples"),
        RedisValue::Integer(-1),
        field("calls"),
        count(stats.calls),
        field("errors"),
        count(stats.errors),
        field("duration_p50"),
        count(stats.p50_us),
        field("duration_p99"),
        count(stats.p99_us),
    ]))
}

/// RESETSTAT changes what every client of the key sees, though AI.INFO is a read
/// command: the caller needs write access to the key and the rights of `delete` (the
/// command that removes the model or script) on it.
fn ensure_may_reset(ctx: &Context, key: &RedisString, delete: &[u8]) -> Result<(), RedisError> {
    let Some(user) = super::caller::user_to_check(ctx, "RESETSTAT")? else {
        return Ok(());
    };
    let writable = user.may_access_key(key, redis_module::raw::REDISMODULE_CMD_KEY_UPDATE);
    if writable && user.may_run(&[delete, key.as_slice()]) {
        Ok(())
    } else {
        Err(RedisError::Str(NO_RESET_RIGHTS))
    }
}

const NO_RESET_RIGHTS: &str =
    "NOPERM this user has no permissions to reset the statistics of this key (RESETSTAT needs write access to it)";
