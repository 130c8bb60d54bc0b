//! AI.TENSORSET and AI.TENSORGET.

use std::os::raw::{c_char, c_long};
use std::sync::Arc;

use redis_module::{raw, Context, NotifyEvent, RedisError, RedisResult, RedisString, RedisValue};
use redisai_engine::tensor::parse::{DataArg, DataFormat, GetFormat, ShapeRule, TensorArgs};
use redisai_engine::tensor::{Element, Tensor};

use super::{arg_slices, keyspace, reply_error};
use crate::retained::RetainedString;

/// `AI.TENSORSET key type dim... [BLOB data | VALUES v...]`
pub fn tensorset(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    if args.len() < 4 {
        return Err(RedisError::WrongArity);
    }
    keyspace::ensure_tensor_or_empty(ctx, &args[1])?;
    let slices = arg_slices(&args[2..]);
    let rule = if super::store::restoring(ctx) {
        ShapeRule::Restoring
    } else {
        ShapeRule::Client
    };
    let parsed = TensorArgs::parse_with(&slices, rule).map_err(reply_error)?;
    let tensor = match parsed.data {
        // The argument is kept as the tensor's data: no copy of the blob.
        DataArg::Blob { position, .. } => {
            let blob = RetainedString::retain(&args[2 + position]);
            Tensor::from_source(parsed.dtype, parsed.shape, Box::new(blob))
        }
        _ => parsed.build(),
    }
    .map_err(reply_error)?;
    keyspace::write_tensor(ctx, &args[1], Arc::new(tensor))?;
    ctx.replicate_verbatim();
    ctx.notify_keyspace_event(NotifyEvent::MODULE, "ai.tensorset", &args[1]);
    Ok(RedisValue::SimpleStringStatic("OK"))
}

/// `AI.TENSORGET key [META] [BLOB | VALUES]`
pub fn tensorget(ctx: &Context, args: Vec<RedisString>) -> RedisResult {
    if !(2..=4).contains(&args.len()) {
        return Err(RedisError::WrongArity);
    }
    let format = GetFormat::parse(&arg_slices(&args[2..])).map_err(reply_error)?;
    let tensor = keyspace::read_tensor(ctx, &args[1])?;
    reply_tensor(ctx, &tensor, format);
    Ok(RedisValue::NoReply)
}

/// Writes the reply straight from the tensor's buffer, so BLOB replies are not copied
/// on the way.
pub fn reply_tensor(ctx: &Context, tensor: &Tensor, format: GetFormat) {
    let ctx = ctx.ctx;
    if !format.meta {
        match format.data {
            Some(DataFormat::Blob) | None => reply_bytes(ctx, tensor.data()),
            Some(DataFormat::Values) => reply_values(ctx, tensor),
        }
        return;
    }
    let fields = if format.data.is_some() { 6 } else { 4 };
    raw::reply_with_array(ctx, fields);
    reply_bytes(ctx, b"dtype");
    reply_bytes(ctx, tensor.dtype().name().as_bytes());
    reply_bytes(ctx, b"shape");
    raw::reply_with_array(ctx, tensor.shape().len() as c_long);
    for &dim in tensor.shape() {
        raw::reply_with_long_long(ctx, dim);
    }
    match format.data {
        Some(DataFormat::Blob) => {
            reply_bytes(ctx, b"blob");
            reply_bytes(ctx, tensor.data());
        }
        Some(DataFormat::Values) => {
            reply_bytes(ctx, b"values");
            reply_values(ctx, tensor);
        }
        None => {}
    }
}

fn reply_values(ctx: *mut raw::RedisModuleCtx, tensor: &Tensor) {
    raw::reply_with_array(ctx, tensor.len() as c_long);
    for element in tensor.elements() {
        match element {
            Element::Float(value) => {
                raw::reply_with_double(ctx, value);
            }
            Element::Int(value) => {
                raw::reply_with_long_long(ctx, value);
            }
            Element::Str(bytes) => reply_bytes(ctx, bytes),
        }
    }
}

fn reply_bytes(ctx: *mut raw::RedisModuleCtx, bytes: &[u8]) {
    raw::reply_with_string_buffer(ctx, bytes.as_ptr().cast::<c_char>(), bytes.len());
}
