//! Persistence glue: RDB encodings, AOF rewrite and digests of the module's data types.

pub mod boxed;
pub mod model_type;
pub mod script_type;
pub mod tensor_type;

use redis_module::raw;

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
