//! AI.CONFIG: read and change the module's settings, load backends.
//!
//! Each sub-command is registered on its own so that Redis's ACLs apply per
//! sub-command: LOADBACKEND and BACKENDSPATH load native code and are flagged `admin`
//! (ACL categories @admin and @dangerous); GET stays open to every user.

use std::path::PathBuf;

use redis_module::{Context, RedisError, RedisResult, RedisString, RedisValue};
use redisai_engine::backend::registry;
use redisai_engine::settings;

use super::caller::ensure_admin;
use super::reply_error;

/// `AI.CONFIG GET BACKENDSPATH | MODEL_CHUNK_SIZE | INLINE_EXECUTION_LIMIT_US`
pub fn get(_ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    if args.len() != 3 {
        return Err(RedisError::WrongArity);
    }
    let name = args[2].as_slice();
    let config = settings::read();
    if name.eq_ignore_ascii_case(b"BACKENDSPATH") {
        Ok(RedisValue::BulkString(
            config.backends_path.display().to_string(),
        ))
    } else if name.eq_ignore_ascii_case(b"MODEL_CHUNK_SIZE") {
        Ok(RedisValue::Integer(
            i64::try_from(config.model_chunk_size).unwrap_or(i64::MAX),
        ))
    } else if name.eq_ignore_ascii_case(b"INLINE_EXECUTION_LIMIT_US") {
        Ok(RedisValue::Integer(
            i64::try_from(config.inline_execution_limit_us).unwrap_or(i64::MAX),
        ))
    } else {
        Ok(RedisValue::Null)
    }
}

/// `AI.CONFIG BACKENDSPATH path`; a relative path is taken from Redis's working
/// directory, as RedisAI took it.
pub fn backends_path(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    ensure_admin(ctx, "BACKENDSPATH")?;
    if args.len() < 3 {
        return Err(RedisError::Str("ERR BACKENDSPATH: missing path argument"));
    }
    settings::write()
        .set_backends_path(args[2].as_slice())
        .map_err(|err| reply_error(format!("ERR {err}")))?;
    Ok(RedisValue::SimpleStringStatic("OK"))
}

/// `AI.CONFIG MODEL_CHUNK_SIZE bytes`: it changes every client's MODELGET replies and
/// how AOF rewrites write models (a size of 1 writes one string per byte), so it needs
/// the same rights as BACKENDSPATH.
pub fn model_chunk_size(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    ensure_admin(ctx, "MODEL_CHUNK_SIZE")?;
    if args.len() < 3 {
        return Err(RedisError::Str("ERR MODEL_CHUNK_SIZE: missing chunk size"));
    }
    settings::write()
        .set_model_chunk_size(args[2].as_slice())
        .map_err(|_| RedisError::Str("ERR MODEL_CHUNK_SIZE: invalid chunk size"))?;
    Ok(RedisValue::SimpleStringStatic("OK"))
}

/// `AI.CONFIG INLINE_EXECUTION_LIMIT_US micros`: how long a model's runs may take to
/// run on Redis's main thread (0: never). It decides how long Redis may answer nobody,
/// so only users who may load native code (MODULE LOAD) may change it.
pub fn inline_execution_limit(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    if args.len() != 3 {
        return Err(RedisError::WrongArity);
    }
    ensure_admin(ctx, "INLINE_EXECUTION_LIMIT_US")?;
    settings::write()
        .set_inline_execution_limit(args[2].as_slice())
        .map_err(|err| reply_error(format!("ERR {err}")))?;
    Ok(RedisValue::SimpleStringStatic("OK"))
}

/// `AI.CONFIG LOADBACKEND name path`: a relative path is taken inside BACKENDSPATH.
/// Arguments after the path are ignored, as RedisAI ignored them.
pub fn load_backend(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    if args.len() < 4 {
        return Err(RedisError::WrongArity);
    }
    ensure_admin(ctx, "LOADBACKEND")?;
    let name = String::from_utf8_lossy(args[2].as_slice()).to_ascii_uppercase();
    let path = settings::read()
        .resolve_backend_path(args[3].as_slice())
        .map_err(|err| RedisError::String(format!("ERR Could not load backend {name}: {err}")))?;
    load_named(ctx, &name, path)?;
    Ok(RedisValue::SimpleStringStatic("OK"))
}

/// `AI.CONFIG <anything else>`: RedisAI's reply. Redis itself would answer an unknown
/// sub-command of a container command with its own text, so the command filter in
/// `subcommands` routes unknown ones here.
pub fn unsupported(_ctx: &Context, _args: Vec<RedisString>) -> RedisResult {
    Err(RedisError::Str("ERR unsupported subcommand"))
}

/// Loads backend `name` from `path`, logging the outcome.
pub fn load_named(ctx: &Context, name: &str, path: PathBuf) -> Result<(), RedisError> {
    match registry::load(name, &path) {
        Ok(backend) => {
            ctx.log_notice(&format!(
                "backend {} loaded from {} (runtime {}, plugin ABI {}.{})",
                backend.name,
                path.display(),
                backend.runtime_version,
                backend.abi_version.0,
                backend.abi_version.1
            ));
            Ok(())
        }
        Err(reason) => {
            ctx.log_warning(&format!("Could not load backend {name}: {reason}"));
            Err(RedisError::String(format!(
                "ERR Could not load backend {name}: {reason}"
            )))
        }
    }
}
