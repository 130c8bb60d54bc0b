//! The script data type (`AI_SCRIPT`): RDB encoding, AOF rewrite as AI.SCRIPTSTORE,
//! memory usage, digest, copy, free. RedisAI's encodings (0 to 4) are read by
//! [`redisai_engine::redisai_formats`].

use std::ffi::c_void;
use std::os::raw::c_int;
use std::sync::Arc;

use redis_module::logging::RedisLogLevel;
use redis_module::native_types::RedisType;
use redis_module::raw;
use redisai_engine::device::Device;
use redisai_engine::redisai_formats;
use redisai_engine::script::{Script, ScriptDefinition, SharedScript};

use super::{boxed, RdbSource};

/// RedisAI's name (Redis requires exactly nine characters).
const TYPE_NAME: &str = "AI_SCRIPT";
/// device, tag, entry point names, source.
const ENCODING_V100: i32 = 100;
const MAX_ENTRY_POINTS: u64 = 1 << 16;

pub static SCRIPT_TYPE: RedisType = RedisType::new(
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
        "script RDB load",
        std::ptr::null_mut(),
        || match load_definition(rdb, encver) {
            Ok(definition) => {
                let script = Script::restore(definition);
                if let Err(reason) = &script.runtime {
                    redis_module::logging::log_warning(format!(
                        "a script was loaded without its backend: {reason}; it is kept and \
                         will answer with this error until it is stored again"
                    ));
                }
                boxed::into_raw::<SharedScript>(Arc::new(script))
            }
            Err(reason) => {
                redis_module::logging::log_io_error(
                    rdb,
                    RedisLogLevel::Warning,
                    &format!("cannot load script: {reason}"),
                );
                std::ptr::null_mut()
            }
        },
    )
}

fn load_definition(
    rdb: *mut raw::RedisModuleIO,
    encver: c_int,
) -> Result<ScriptDefinition, String> {
    if redisai_formats::is_redisai_encoding(encver) {
        return redisai_formats::load_script(&mut RdbSource(rdb), encver)
            .map_err(|reason| format!("RedisAI encoding {encver}: {reason}"));
    }
    if encver != ENCODING_V100 {
        return Err(format!(
            "unknown script encoding version {encver} (this build reads RedisAI's 0 to 4 and \
             {ENCODING_V100})"
        ));
    }
    let io = |err: redis_module::error::Error| format!("short read: {err}");
    let string = |rdb| -> Result<Vec<u8>, String> {
        Ok(raw::load_string_buffer(rdb).map_err(io)?.as_ref().to_vec())
    };
    let device_text = string(rdb)?;
    let device = Device::parse(&device_text)
        .ok_or_else(|| format!("invalid device '{}'", String::from_utf8_lossy(&device_text)))?;
    let tag = string(rdb)?;
    let count = raw::load_unsigned(rdb).map_err(io)?;
    if count > MAX_ENTRY_POINTS {
        return Err(format!(
            "{count} entry points is more than {MAX_ENTRY_POINTS}"
        ));
    }
    let entry_points = (0..count)
        .map(|_| string(rdb).map(|n| String::from_utf8_lossy(&n).into_owned()))
        .collect::<Result<Vec<_>, _>>()?;
    let source = string(rdb)?;
    Ok(ScriptDefinition {
        device,
        device_name: String::from_utf8_lossy(&device_text).into_owned(),
        tag,
        entry_points,
        source,
    })
}

extern "C" fn rdb_save(rdb: *mut raw::RedisModuleIO, value: *mut c_void) {
    boxed::callback("script RDB save", (), || {
        // SAFETY: Redis passes a value of this type, created as a `Box<SharedScript>`.
        let Some(script) = (unsafe { boxed::borrow::<SharedScript>(value) }) else {
            return;
        };
        raw::save_slice(rdb, script.device_name.as_bytes());
        raw::save_slice(rdb, &script.tag);
        raw::save_unsigned(rdb, script.entry_points.len() as u64);
        for name in &script.entry_points {
            raw::save_slice(rdb, name.as_bytes());
        }
        raw::save_slice(rdb, &script.source);
    })
}

/// The arguments (after the key) of the command that recreates `script`:
/// `AI.SCRIPTSTORE`, or `AI.SCRIPTSET` for a script stored without entry points.
pub fn store_command(script: &Script) -> (&'static str, Vec<Vec<u8>>) {
    let mut args: Vec<Vec<u8>> = vec![
        script.device_name.clone().into_bytes(),
        b"TAG".to_vec(),
        script.tag.clone(),
    ];
    let command = if script.entry_points.is_empty() {
        "AI.SCRIPTSET"
    } else {
        args.push(b"ENTRY_POINTS".to_vec());
        args.push(script.entry_points.len().to_string().into_bytes());
        args.extend(script.entry_points.iter().map(|n| n.clone().into_bytes()));
        "AI.SCRIPTSTORE"
    };
    args.push(b"SOURCE".to_vec());
    args.push(script.source.clone());
    (command, args)
}

extern "C" fn aof_rewrite(
    aof: *mut raw::RedisModuleIO,
    key: *mut raw::RedisModuleString,
    value: *mut c_void,
) {
    boxed::callback("script AOF rewrite", (), || {
        // SAFETY: as in `rdb_save`.
        let Some(script) = (unsafe { boxed::borrow::<SharedScript>(value) }) else {
            return;
        };
        let (command, args) = store_command(script);
        super::emit_aof_command(aof, key, command, &args);
    })
}

extern "C" fn mem_usage(value: *const c_void) -> usize {
    boxed::callback("script memory usage", 0, || {
        // SAFETY: as in `rdb_save`.
        unsafe { boxed::borrow::<SharedScript>(value) }.map_or(0, |script| script.memory_usage())
    })
}

extern "C" fn digest(md: *mut raw::RedisModuleDigest, value: *mut c_void) {
    boxed::callback("script digest", (), || {
        // SAFETY: as in `rdb_save`.
        let Some(script) = (unsafe { boxed::borrow::<SharedScript>(value) }) else {
            return;
        };
        super::digest_sequence(md, &store_command(script).1);
    })
}

extern "C" fn copy(
    _from_key: *mut raw::RedisModuleString,
    _to_key: *mut raw::RedisModuleString,
    value: *const c_void,
) -> *mut c_void {
    boxed::callback("script copy", std::ptr::null_mut(), || {
        // SAFETY: as in `rdb_save`.
        unsafe { boxed::borrow::<SharedScript>(value) }.map_or(std::ptr::null_mut(), |script| {
            boxed::into_raw(Arc::clone(script))
        })
    })
}

extern "C" fn free(value: *mut c_void) {
    boxed::callback("script free", (), || {
        // SAFETY: Redis frees each value once; it was created as a `Box<SharedScript>`.
        unsafe { boxed::drop_raw::<SharedScript>(value) }
    })
}
