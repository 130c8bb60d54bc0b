//! The tensor data type: RDB encoding, AOF rewrite, memory usage, digest, copy, free.
//!
//! Encoding versions 0 to 4 are RedisAI's (read by [`redisai_engine::redisai_formats`], so data
//! written by RedisAI loads); ours start at 100, and a value is always saved in ours.

use std::ffi::{c_char, c_void, CString};
use std::os::raw::c_int;
use std::sync::Arc;

use redis_module::logging::RedisLogLevel;
use redis_module::native_types::RedisType;
use redis_module::{raw, RedisString};
use redisai_engine::redisai_formats;
use redisai_engine::tensor::{AlignedBuffer, DType, Tensor};

use super::{boxed, RdbSource};

/// Name shown by `TYPE key`, as in RedisAI.
const TYPE_NAME: &str = "AI_TENSOR";
/// dtype code, rank, dims (signed), data buffer.
const ENCODING_V100: i32 = 100;
pub const CURRENT_ENCODING: i32 = ENCODING_V100;
/// No real tensor has more axes; a larger rank in a file means corruption.
const MAX_RANK: u64 = 1024;

pub static TENSOR_TYPE: RedisType = RedisType::new(
    TYPE_NAME,
    CURRENT_ENCODING,
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
        "tensor RDB load",
        std::ptr::null_mut(),
        || match load_tensor(rdb, encver) {
            Ok(tensor) => boxed::into_raw(Arc::new(tensor)),
            Err(reason) => {
                redis_module::logging::log_io_error(
                    rdb,
                    RedisLogLevel::Warning,
                    &format!("cannot load tensor: {reason}"),
                );
                std::ptr::null_mut()
            }
        },
    )
}

fn load_tensor(rdb: *mut raw::RedisModuleIO, encver: c_int) -> Result<Tensor, String> {
    if redisai_formats::is_redisai_encoding(encver) {
        return redisai_formats::load_tensor(&mut RdbSource(rdb), encver)
            .map_err(|reason| format!("RedisAI encoding {encver}: {reason}"));
    }
    if encver != ENCODING_V100 {
        return Err(format!(
            "unknown tensor encoding version {encver} (this build reads RedisAI's 0 to 4 and \
             {ENCODING_V100})"
        ));
    }
    let io = |err: redis_module::error::Error| format!("short read: {err}");
    let code = raw::load_unsigned(rdb).map_err(io)?;
    let dtype = DType::from_code(code).ok_or_else(|| format!("unknown dtype code {code}"))?;
    let rank = raw::load_unsigned(rdb).map_err(io)?;
    if rank > MAX_RANK {
        return Err(format!("tensor rank {rank} is larger than {MAX_RANK}"));
    }
    let shape = (0..rank)
        .map(|_| raw::load_signed(rdb).map_err(io))
        .collect::<Result<Vec<i64>, String>>()?;
    let blob = raw::load_string_buffer(rdb).map_err(io)?;
    let data = AlignedBuffer::copy_from(blob.as_ref())
        .map_err(|err| format!("cannot allocate {} bytes", err.bytes))?;
    Tensor::from_buffer(dtype, shape, data).map_err(|err| err.to_string())
}

extern "C" fn rdb_save(rdb: *mut raw::RedisModuleIO, value: *mut c_void) {
    boxed::callback("tensor RDB save", (), || {
        // SAFETY: Redis passes a value of this type, created as a `Box<Arc<Tensor>>`.
        let Some(tensor) = (unsafe { boxed::borrow::<Arc<Tensor>>(value) }) else {
            return;
        };
        raw::save_unsigned(rdb, u64::from(tensor.dtype().code()));
        raw::save_unsigned(rdb, tensor.shape().len() as u64);
        for &dim in tensor.shape() {
            raw::save_signed(rdb, dim);
        }
        raw::save_slice(rdb, tensor.data());
    })
}

/// Emits `AI.TENSORSET key dtype dims... BLOB data`.
extern "C" fn aof_rewrite(
    aof: *mut raw::RedisModuleIO,
    key: *mut raw::RedisModuleString,
    value: *mut c_void,
) {
    boxed::callback("tensor AOF rewrite", (), || {
        // SAFETY: as in `rdb_save`.
        let Some(tensor) = (unsafe { boxed::borrow::<Arc<Tensor>>(value) }) else {
            return;
        };
        // SAFETY: the API table is filled once at module load and only read afterwards.
        let Some(emit) = (unsafe { raw::RedisModule_EmitAOF }) else {
            return;
        };
        let dims: Vec<RedisString> = tensor
            .shape()
            .iter()
            .map(|dim| RedisString::create(None, dim.to_string().as_str()))
            .collect();
        let mut dim_ptrs: Vec<*mut raw::RedisModuleString> =
            dims.iter().map(|dim| dim.inner).collect();
        let dtype = CString::new(tensor.dtype().name()).unwrap_or_default();
        let data = tensor.data();
        // SAFETY: the format "scvcb" matches the arguments that follow: a key string, a C
        // string, an array of strings with its length, a C string, and a buffer with its
        // length. Every pointer stays valid for the duration of the call.
        unsafe {
            emit(
                aof,
                c"AI.TENSORSET".as_ptr(),
                c"scvcb".as_ptr(),
                key,
                dtype.as_ptr(),
                dim_ptrs.as_mut_ptr(),
                dim_ptrs.len(),
                c"BLOB".as_ptr(),
                data.as_ptr().cast::<c_char>(),
                data.len(),
            );
        }
    })
}

extern "C" fn mem_usage(value: *const c_void) -> usize {
    boxed::callback("tensor memory usage", 0, || {
        // SAFETY: as in `rdb_save`.
        unsafe { boxed::borrow::<Arc<Tensor>>(value) }.map_or(0, |tensor| tensor.memory_usage())
    })
}

extern "C" fn digest(md: *mut raw::RedisModuleDigest, value: *mut c_void) {
    boxed::callback("tensor digest", (), || {
        // SAFETY: as in `rdb_save`.
        let Some(tensor) = (unsafe { boxed::borrow::<Arc<Tensor>>(value) }) else {
            return;
        };
        // SAFETY: the API table is filled once at module load and only read afterwards.
        let (Some(add), Some(end)) = (unsafe {
            (
                raw::RedisModule_DigestAddStringBuffer,
                raw::RedisModule_DigestEndSequence,
            )
        }) else {
            return;
        };
        let mut header = tensor.dtype().name().as_bytes().to_vec();
        for dim in tensor.shape() {
            header.extend_from_slice(format!(" {dim}").as_bytes());
        }
        // SAFETY: `md` is the digest Redis passed in; the buffers outlive the calls.
        unsafe {
            add(md, header.as_ptr().cast_mut().cast(), header.len());
            add(
                md,
                tensor.data().as_ptr().cast_mut().cast(),
                tensor.data().len(),
            );
            end(md);
        }
    })
}

extern "C" fn copy(
    _from_key: *mut raw::RedisModuleString,
    _to_key: *mut raw::RedisModuleString,
    value: *const c_void,
) -> *mut c_void {
    boxed::callback("tensor copy", std::ptr::null_mut(), || {
        // SAFETY: as in `rdb_save`.
        unsafe { boxed::borrow::<Arc<Tensor>>(value) }.map_or(std::ptr::null_mut(), |tensor| {
            boxed::into_raw(tensor.clone())
        })
    })
}

extern "C" fn free(value: *mut c_void) {
    boxed::callback("tensor free", (), || {
        // SAFETY: Redis frees each value once, and it was created as a `Box<Arc<Tensor>>`.
        unsafe { boxed::drop_raw::<Arc<Tensor>>(value) }
    })
}
