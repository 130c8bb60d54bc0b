//! AI.CONFIG: read and change the module's settings.

use redis_module::{Context, RedisError, RedisResult, RedisString, RedisValue};

use super::reply_error;
use crate::settings;

/// `AI.CONFIG BACKENDSPATH path | MODEL_CHUNK_SIZE n | LOADBACKEND id path | GET name`
pub fn config(_ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    if args.len() < 2 {
        return Err(RedisError::WrongArity);
    }
    let subcommand = args[1].as_slice();
    let value = args.get(2).map(RedisString::as_slice);
    if subcommand.eq_ignore_ascii_case(b"GET") {
        let name = match (value, args.len()) {
            (Some(name), 3) => name,
            _ => return Err(RedisError::WrongArity),
        };
        return get(name);
    }
    if subcommand.eq_ignore_ascii_case(b"LOADBACKEND") {
        if args.len() != 4 {
            return Err(RedisError::WrongArity);
        }
        return Err(RedisError::Str(
            "ERR Could not load backend: backend plugins are not available in this build yet",
        ));
    }
    let value = match (value, args.len()) {
        (Some(value), 3) => value,
        _ => return Err(RedisError::WrongArity),
    };
    if subcommand.eq_ignore_ascii_case(b"BACKENDSPATH") {
        settings::write()
            .set_backends_path(value)
            .map_err(|err| reply_error(format!("ERR {err}")))?;
    } else if subcommand.eq_ignore_ascii_case(b"MODEL_CHUNK_SIZE") {
        settings::write()
            .set_model_chunk_size(value)
            .map_err(|err| reply_error(format!("ERR {err}")))?;
    } else {
        return Err(RedisError::Str("ERR unsupported subcommand"));
    }
    Ok(RedisValue::SimpleStringStatic("OK"))
}

fn get(name: &[u8]) -> RedisResult {
    let config = settings::read();
    if name.eq_ignore_ascii_case(b"BACKENDSPATH") {
        Ok(RedisValue::BulkString(
            config.backends_path.display().to_string(),
        ))
    } else if name.eq_ignore_ascii_case(b"MODEL_CHUNK_SIZE") {
        Ok(RedisValue::Integer(
            i64::try_from(config.model_chunk_size).unwrap_or(i64::MAX),
        ))
    } else {
        Ok(RedisValue::Null)
    }
}
