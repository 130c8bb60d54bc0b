//! Typed access to the module's values in the keyspace.

use std::ffi::c_char;
use std::sync::Arc;

use redis_module::native_types::RedisType;
use redis_module::{
    raw, Context, KeyType, KeysCursor, NotifyEvent, RedisError, RedisResult, RedisString,
    RedisValue,
};
use redisai_engine::model::SharedModel;
use redisai_engine::script::SharedScript;
use redisai_engine::tensor::Tensor;

use super::caller::AclUser;
use crate::persist::model_type::MODEL_TYPE;
use crate::persist::script_type::SCRIPT_TYPE;
use crate::persist::tensor_type::TENSOR_TYPE;

pub const EMPTY_TENSOR_KEY: &str = "ERR tensor key is empty or in a different shard";
pub const EMPTY_MODEL_KEY: &str = "ERR model key is empty";
pub const EMPTY_SCRIPT_KEY: &str = "ERR script key is empty";

/// The tensor stored at `key`.
pub fn read_tensor(ctx: &Context, key: &RedisString) -> Result<Arc<Tensor>, RedisError> {
    let opened = ctx.open_key(key);
    if opened.key_type() == KeyType::Empty {
        return Err(RedisError::Str(EMPTY_TENSOR_KEY));
    }
    opened
        .get_value::<Arc<Tensor>>(&TENSOR_TYPE)
        .map_err(|_| RedisError::WrongType)?
        .cloned()
        .ok_or(RedisError::Str(EMPTY_TENSOR_KEY))
}

/// Fails with WRONGTYPE unless `key` is empty or holds a tensor.
pub fn ensure_tensor_or_empty(ctx: &Context, key: &RedisString) -> Result<(), RedisError> {
    ensure_empty_or::<Arc<Tensor>>(ctx, key, &TENSOR_TYPE)
}

/// WRONGTYPE unless `key` is empty or holds a value of `value_type`.
pub fn ensure_empty_or<T: 'static>(
    ctx: &Context,
    key: &RedisString,
    value_type: &RedisType,
) -> Result<(), RedisError> {
    let opened = ctx.open_key(key);
    if opened.key_type() != KeyType::Empty && opened.get_value::<T>(value_type).is_err() {
        return Err(RedisError::WrongType);
    }
    Ok(())
}

/// Stores `tensor` at `key` (which must be empty or hold a tensor).
pub fn write_tensor(
    ctx: &Context,
    key: &RedisString,
    tensor: Arc<Tensor>,
) -> Result<(), RedisError> {
    let opened = ctx.open_key_writable(key);
    if opened.key_type() != KeyType::Empty && opened.get_value::<Arc<Tensor>>(&TENSOR_TYPE).is_err()
    {
        return Err(RedisError::WrongType);
    }
    opened.set_value(&TENSOR_TYPE, tensor)?;
    Ok(())
}

/// Sends `AI.TENSORSET key dtype dims... BLOB data` to replicas and the AOF; a large
/// tensor is not copied for them when neither is there to read it.
pub fn replicate_tensor(ctx: &Context, key: &RedisString, tensor: &Tensor) {
    // SAFETY: the API table is filled at load time and only read afterwards.
    let Some(replicate) = (unsafe { raw::RedisModule_Replicate }) else {
        return;
    };
    if tensor.data().len() >= super::propagation::WORTH_ASKING_BYTES
        && !super::propagation::is_read(ctx)
    {
        return;
    }
    let dims: Vec<RedisString> = tensor
        .shape()
        .iter()
        .map(|dim| RedisString::create(None, dim.to_string().as_str()))
        .collect();
    let dim_ptrs: Vec<*mut raw::RedisModuleString> = dims.iter().map(|d| d.inner).collect();
    let dtype = std::ffi::CString::new(tensor.dtype().name()).unwrap_or_default();
    let data = tensor.data();
    // SAFETY: the format "scvcb" matches the arguments: a string, a C string, an array of
    // strings with its length, a C string, and a buffer with its length; all outlive
    // the call.
    unsafe {
        replicate(
            ctx.ctx,
            c"AI.TENSORSET".as_ptr(),
            c"scvcb".as_ptr(),
            key.inner,
            dtype.as_ptr(),
            dim_ptrs.as_ptr(),
            dim_ptrs.len(),
            c"BLOB".as_ptr(),
            data.as_ptr().cast::<c_char>(),
            data.len(),
        );
    }
}

/// The model stored at `key`.
pub fn read_model(ctx: &Context, key: &RedisString) -> Result<SharedModel, RedisError> {
    let opened = ctx.open_key(key);
    if opened.key_type() == KeyType::Empty {
        return Err(RedisError::Str(EMPTY_MODEL_KEY));
    }
    opened
        .get_value::<SharedModel>(&MODEL_TYPE)
        .map_err(|_| RedisError::WrongType)?
        .cloned()
        .ok_or(RedisError::Str(EMPTY_MODEL_KEY))
}

/// The script stored at `key`.
pub fn read_script(ctx: &Context, key: &RedisString) -> Result<SharedScript, RedisError> {
    let opened = ctx.open_key(key);
    if opened.key_type() == KeyType::Empty {
        return Err(RedisError::Str(EMPTY_SCRIPT_KEY));
    }
    opened
        .get_value::<SharedScript>(&SCRIPT_TYPE)
        .map_err(|_| RedisError::WrongType)?
        .cloned()
        .ok_or(RedisError::Str(EMPTY_SCRIPT_KEY))
}

/// Key names are created with no context so they may outlive the command.
pub fn key_name(bytes: &[u8]) -> RedisString {
    RedisString::create_from_slice(std::ptr::null_mut(), bytes)
}

/// `AI.MODELDEL` / `AI.SCRIPTDEL`: deletes `args[1]` once `check` has found the right
/// type there (its error otherwise), replicates the command and notifies `event`.
pub fn delete_checked(
    ctx: &Context,
    args: &[RedisString],
    check: impl FnOnce(&Context, &RedisString) -> Result<(), RedisError>,
    event: &str,
) -> RedisResult {
    if args.len() != 2 {
        return Err(RedisError::WrongArity);
    }
    check(ctx, &args[1])?;
    ctx.open_key_writable(&args[1]).delete()?;
    ctx.replicate_verbatim();
    ctx.notify_keyspace_event(NotifyEvent::MODULE, event, &args[1]);
    Ok(RedisValue::SimpleStringStatic("OK"))
}

/// `AI._MODELSCAN` / `AI._SCRIPTSCAN`: every key of `value_type` the caller may read,
/// with its tag.
pub fn scan_command<T: 'static>(
    ctx: &Context,
    args: &[RedisString],
    value_type: &RedisType,
    tag_of: impl Fn(&T) -> Vec<u8>,
) -> RedisResult {
    if args.len() != 1 {
        return Err(RedisError::WrongArity);
    }
    scan_tags(ctx, value_type, tag_of)
}

/// Every key that holds a value of `value_type`, with its tag: the reply of
/// `AI._MODELSCAN` and `AI._SCRIPTSCAN`.
pub fn scan_tags<T: 'static>(
    ctx: &Context,
    value_type: &RedisType,
    tag_of: impl Fn(&T) -> Vec<u8>,
) -> RedisResult {
    let readable = ReadableKeys::of_caller(ctx)?;
    let mut found = Vec::new();
    let cursor = KeysCursor::new();
    while cursor.scan(ctx, &|_ctx, name, key| {
        if !readable.allows(name) {
            return;
        }
        if let Some(Ok(Some(value))) = key.map(|k| k.get_value::<T>(value_type)) {
            found.push(RedisValue::Array(vec![
                RedisValue::StringBuffer(name.as_slice().to_vec()),
                RedisValue::StringBuffer(tag_of(value)),
            ]));
        }
    }) {}
    Ok(RedisValue::Array(found))
}

/// The caller's ACL key patterns, for commands that list keys: a user restricted to
/// some keys (`~app1:*`, `%R~...`) sees only the keys it may read.
struct ReadableKeys {
    /// None: Redis replaying data (AOF, master): every key.
    user: Option<AclUser>,
}

impl ReadableKeys {
    fn of_caller(ctx: &Context) -> Result<ReadableKeys, RedisError> {
        let user = super::caller::user_to_check(ctx, "listing keys")?;
        Ok(ReadableKeys { user })
    }

    fn allows(&self, key: &RedisString) -> bool {
        self.user
            .as_ref()
            .is_none_or(|user| user.may_access_key(key, raw::REDISMODULE_CMD_KEY_ACCESS))
    }
}
