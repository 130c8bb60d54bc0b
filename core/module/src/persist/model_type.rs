//! The model data type: RDB encoding, AOF rewrite, memory usage, digest, copy, free.
//!
//! Encodings start at 100, as for tensors; RedisAI's (0 to 4) are read by
//! [`redisai_engine::redisai_formats`].

use std::ffi::c_void;
use std::os::raw::c_int;
use std::sync::Arc;

use redis_module::logging::RedisLogLevel;
use redis_module::native_types::RedisType;
use redis_module::raw;
use redisai_engine::device::Device;
use redisai_engine::model::{Batching, Model, ModelDefinition, SharedModel};
use redisai_engine::redisai_formats;

use super::{boxed, RdbSource};

const TYPE_NAME: &str = "AI__MODEL";
/// backend, device, tag, batching (3 numbers), input names, output names, blob.
const ENCODING_V100: i32 = 100;
const MAX_NAMES: u64 = 1 << 16;

pub static MODEL_TYPE: RedisType = RedisType::new(
    TYPE_NAME,
    ENCODING_V100,
    super::type_methods(super::TypeCallbacks {
        rdb_load: Some(rdb_load),
        rdb_save: Some(rdb_save),
        aof_rewrite: Some(aof_rewrite),
        mem_usage: Some(mem_usage),
        digest: Some(digest),
        free: Some(free),
        copy: Some(copy),
    }),
);

extern "C" fn rdb_load(rdb: *mut raw::RedisModuleIO, encver: c_int) -> *mut c_void {
    boxed::callback(
        "model RDB load",
        std::ptr::null_mut(),
        || match load_definition(rdb, encver) {
            Ok(definition) => {
                let model = Model::restore(definition);
                if let Err(reason) = &model.runtime {
                    redis_module::logging::log_warning(format!(
                        "a {} model was loaded without its backend: {reason}; it is kept and \
                         will answer with this error until it is stored again",
                        model.backend
                    ));
                }
                boxed::into_raw::<SharedModel>(Arc::new(model))
            }
            Err(reason) => {
                redis_module::logging::log_io_error(
                    rdb,
                    RedisLogLevel::Warning,
                    &format!("cannot load model: {reason}"),
                );
                std::ptr::null_mut()
            }
        },
    )
}

fn load_definition(rdb: *mut raw::RedisModuleIO, encver: c_int) -> Result<ModelDefinition, String> {
    if redisai_formats::is_redisai_encoding(encver) {
        return redisai_formats::load_model(&mut RdbSource(rdb), encver)
            .map_err(|reason| format!("RedisAI encoding {encver}: {reason}"));
    }
    if encver != ENCODING_V100 {
        return Err(format!(
            "unknown model encoding version {encver} (this build reads RedisAI's 0 to 4 and \
             {ENCODING_V100})"
        ));
    }
    let io = |err: redis_module::error::Error| format!("short read: {err}");
    let string = |rdb| -> Result<Vec<u8>, String> {
        Ok(raw::load_string_buffer(rdb).map_err(io)?.as_ref().to_vec())
    };
    let backend = String::from_utf8_lossy(&string(rdb)?).into_owned();
    let device_text = string(rdb)?;
    let device = Device::parse(&device_text)
        .ok_or_else(|| format!("invalid device '{}'", String::from_utf8_lossy(&device_text)))?;
    let tag = string(rdb)?;
    let batching = Batching {
        size: raw::load_unsigned(rdb).map_err(io)?,
        min_size: raw::load_unsigned(rdb).map_err(io)?,
        min_timeout_ms: raw::load_unsigned(rdb).map_err(io)?,
    };
    let names = || -> Result<Vec<String>, String> {
        let count = raw::load_unsigned(rdb).map_err(io)?;
        if count > MAX_NAMES {
            return Err(format!("{count} names is more than {MAX_NAMES}"));
        }
        (0..count)
            .map(|_| string(rdb).map(|n| String::from_utf8_lossy(&n).into_owned()))
            .collect()
    };
    let inputs = names()?;
    let outputs = names()?;
    let blob = string(rdb)?;
    Ok(ModelDefinition {
        backend,
        device,
        device_name: String::from_utf8_lossy(&device_text).into_owned(),
        tag,
        batching,
        inputs,
        outputs,
        blob,
    })
}

extern "C" fn rdb_save(rdb: *mut raw::RedisModuleIO, value: *mut c_void) {
    boxed::callback("model RDB save", (), || {
        // SAFETY: Redis passes a value of this type, created as a `Box<SharedModel>`.
        let Some(model) = (unsafe { boxed::borrow::<SharedModel>(value) }) else {
            return;
        };
        raw::save_slice(rdb, model.backend.as_bytes());
        raw::save_slice(rdb, model.device_name.as_bytes());
        raw::save_slice(rdb, &model.tag);
        raw::save_unsigned(rdb, model.batching.size);
        raw::save_unsigned(rdb, model.batching.min_size);
        raw::save_unsigned(rdb, model.batching.min_timeout_ms);
        for names in [&model.declared_inputs, &model.declared_outputs] {
            raw::save_unsigned(rdb, names.len() as u64);
            for name in names {
                raw::save_slice(rdb, name.as_bytes());
            }
        }
        raw::save_slice(rdb, &model.blob);
    })
}

/// The arguments of `AI.MODELSTORE` that recreate `model` (after the key), with the
/// blob split into chunks of at most `chunk_size` bytes.
pub fn store_arguments(model: &Model, chunk_size: usize) -> Vec<Vec<u8>> {
    let mut args: Vec<Vec<u8>> = vec![
        model.backend.clone().into_bytes(),
        model.device_name.clone().into_bytes(),
        b"TAG".to_vec(),
        model.tag.clone(),
    ];
    if model.batching.size > 0 {
        args.push(b"BATCHSIZE".to_vec());
        args.push(model.batching.size.to_string().into_bytes());
        if model.batching.min_size > 0 {
            args.push(b"MINBATCHSIZE".to_vec());
            args.push(model.batching.min_size.to_string().into_bytes());
            if model.batching.min_timeout_ms > 0 {
                args.push(b"MINBATCHTIMEOUT".to_vec());
                args.push(model.batching.min_timeout_ms.to_string().into_bytes());
            }
        }
    }
    for (keyword, names) in [
        ("INPUTS", &model.declared_inputs),
        ("OUTPUTS", &model.declared_outputs),
    ] {
        if names.is_empty() {
            continue;
        }
        args.push(keyword.as_bytes().to_vec());
        args.push(names.len().to_string().into_bytes());
        args.extend(names.iter().map(|n| n.clone().into_bytes()));
    }
    args.push(b"BLOB".to_vec());
    args.extend(model.blob.chunks(chunk_size.max(1)).map(<[u8]>::to_vec));
    if model.blob.is_empty() {
        args.push(Vec::new());
    }
    args
}

extern "C" fn aof_rewrite(
    aof: *mut raw::RedisModuleIO,
    key: *mut raw::RedisModuleString,
    value: *mut c_void,
) {
    boxed::callback("model AOF rewrite", (), || {
        // SAFETY: as in `rdb_save`.
        let Some(model) = (unsafe { boxed::borrow::<SharedModel>(value) }) else {
            return;
        };
        let chunk_size = redisai_engine::settings::read().model_chunk_size as usize;
        super::emit_aof_command(
            aof,
            key,
            "AI.MODELSTORE",
            &store_arguments(model, chunk_size),
        );
    })
}

extern "C" fn mem_usage(value: *const c_void) -> usize {
    boxed::callback("model memory usage", 0, || {
        // SAFETY: as in `rdb_save`.
        unsafe { boxed::borrow::<SharedModel>(value) }.map_or(0, |model| model.memory_usage())
    })
}

extern "C" fn digest(md: *mut raw::RedisModuleDigest, value: *mut c_void) {
    boxed::callback("model digest", (), || {
        // SAFETY: as in `rdb_save`.
        let Some(model) = (unsafe { boxed::borrow::<SharedModel>(value) }) else {
            return;
        };
        super::digest_sequence(md, &store_arguments(model, usize::MAX));
    })
}

extern "C" fn copy(
    _from_key: *mut raw::RedisModuleString,
    _to_key: *mut raw::RedisModuleString,
    value: *const c_void,
) -> *mut c_void {
    boxed::callback("model copy", std::ptr::null_mut(), || {
        // SAFETY: as in `rdb_save`.
        unsafe { boxed::borrow::<SharedModel>(value) }.map_or(std::ptr::null_mut(), |model| {
            boxed::into_raw(Arc::clone(model))
        })
    })
}

extern "C" fn free(value: *mut c_void) {
    boxed::callback("model free", (), || {
        // SAFETY: Redis frees each value once; it was created as a `Box<SharedModel>`.
        unsafe { boxed::drop_raw::<SharedModel>(value) }
    })
}
