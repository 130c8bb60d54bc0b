//! Persistence glue: RDB encodings, AOF rewrite and digests of the module's data types.

pub mod boxed;
pub mod model_type;
pub mod script_type;
pub mod tensor_type;

use redis_module::{raw, RedisString};
use redisai_engine::redisai_formats::FieldSource;

/// The callbacks each of our data types implements.
pub struct TypeCallbacks {
    pub rdb_load: raw::RedisModuleTypeLoadFunc,
    pub rdb_save: raw::RedisModuleTypeSaveFunc,
    pub aof_rewrite: raw::RedisModuleTypeRewriteFunc,
    pub mem_usage: raw::RedisModuleTypeMemUsageFunc,
    pub digest: raw::RedisModuleTypeDigestFunc,
    pub free: raw::RedisModuleTypeFreeFunc,
    pub copy: raw::RedisModuleTypeCopyFunc,
}

/// The type methods table for `callbacks`; every optional method we do not implement
/// stays unset.
pub const fn type_methods(callbacks: TypeCallbacks) -> raw::RedisModuleTypeMethods {
    raw::RedisModuleTypeMethods {
        version: raw::REDISMODULE_TYPE_METHOD_VERSION as u64,
        rdb_load: callbacks.rdb_load,
        rdb_save: callbacks.rdb_save,
        aof_rewrite: callbacks.aof_rewrite,
        mem_usage: callbacks.mem_usage,
        digest: callbacks.digest,
        free: callbacks.free,
        aux_load: None,
        aux_save: None,
        aux_save2: None,
        aux_save_triggers: 0,
        free_effort: None,
        unlink: None,
        copy: callbacks.copy,
        defrag: None,
        mem_usage2: None,
        free_effort2: None,
        unlink2: None,
        copy2: None,
    }
}

/// Emits `command key args...` into a rewritten AOF.
pub fn emit_aof_command(
    aof: *mut raw::RedisModuleIO,
    key: *mut raw::RedisModuleString,
    command: &str,
    args: &[Vec<u8>],
) {
    // SAFETY: the API table is filled once at module load and only read afterwards.
    let Some(emit) = (unsafe { raw::RedisModule_EmitAOF }) else {
        return;
    };
    let args: Vec<RedisString> = args
        .iter()
        .map(|arg| RedisString::create_from_slice(std::ptr::null_mut(), arg))
        .collect();
    let ptrs: Vec<*mut raw::RedisModuleString> = args.iter().map(|a| a.inner).collect();
    let command = std::ffi::CString::new(command).unwrap_or_default();
    // SAFETY: the format "sv" matches a key string followed by an array of strings with
    // its length; everything outlives the call.
    unsafe {
        emit(
            aof,
            command.as_ptr(),
            c"sv".as_ptr(),
            key,
            ptrs.as_ptr(),
            ptrs.len(),
        );
    }
}

/// Adds `parts` to a digest as one sequence.
pub fn digest_sequence(md: *mut raw::RedisModuleDigest, parts: &[Vec<u8>]) {
    // SAFETY: the API table is filled once at module load and only read afterwards.
    let (Some(add), Some(end)) = (unsafe {
        (
            raw::RedisModule_DigestAddStringBuffer,
            raw::RedisModule_DigestEndSequence,
        )
    }) else {
        return;
    };
    for part in parts {
        // SAFETY: `md` is the digest Redis passed in; the buffer outlives the call.
        unsafe { add(md, part.as_ptr().cast_mut().cast(), part.len()) };
    }
    // SAFETY: as above.
    unsafe { end(md) };
}

/// Reads the fields of a RedisAI encoding from the RDB stream Redis hands to `rdb_load`.
pub struct RdbSource(pub *mut raw::RedisModuleIO);

fn short_read(err: redis_module::error::Error) -> String {
    format!("short read: {err}")
}

impl FieldSource for RdbSource {
    fn unsigned(&mut self) -> Result<u64, String> {
        raw::load_unsigned(self.0).map_err(short_read)
    }

    fn signed(&mut self) -> Result<i64, String> {
        raw::load_signed(self.0).map_err(short_read)
    }

    fn string(&mut self) -> Result<Vec<u8>, String> {
        Ok(raw::load_string_buffer(self.0)
            .map_err(short_read)?
            .as_ref()
            .to_vec())
    }
}
