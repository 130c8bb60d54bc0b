//! The script-time host services behind `RaiHostApi.redis_command` and
//! `RaiHostApi.model_execute` (see `backend/host.rs` for the design): they run on a
//! worker, take Redis's global lock through a thread-safe context, and touch the
//! keyspace for the script run whose `RunContext` is the `host_ctx`.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::Arc;
use std::time::Duration;

use redis_module::raw;
use redisai_engine::backend::host::{refusal, RunContext};
use redisai_engine::backend::output_budget::past_maxmemory;
use redisai_engine::backend::reply::{make_reply, ReplyValue};
use redisai_engine::exec::{Failure, Origin};
use redisai_engine::model::SharedModel;
use redisai_engine::tensor::{AlignedBuffer, DType, Tensor};
use redisai_plugin_api::abi::{RaiReply, RaiTensorOut, RaiTensorView};

use crate::error_text::failure_text;

fn error(text: impl Into<String>) -> *mut RaiReply {
    make_reply(ReplyValue::Error(text.into().into_bytes()))
}

/// Redis's global lock, held through a thread-safe context.
struct Locked {
    ctx: *mut raw::RedisModuleCtx,
}

impl Locked {
    /// Takes the lock, giving up when the run is cancelled.
    fn acquire(run: &RunContext) -> Result<Locked, String> {
        // SAFETY: the API table is filled at load time and only read afterwards.
        let (Some(get), Some(try_lock), Some(free)) = (unsafe {
            (
                raw::RedisModule_GetThreadSafeContext,
                raw::RedisModule_ThreadSafeContextTryLock,
                raw::RedisModule_FreeThreadSafeContext,
            )
        }) else {
            return Err("ERR this Redis offers no thread-safe contexts".into());
        };
        // SAFETY: a detached thread-safe context, freed in `drop` or below.
        let ctx = unsafe { get(std::ptr::null_mut()) };
        if ctx.is_null() {
            return Err("ERR cannot create a thread-safe context".into());
        }
        let mut pause = Duration::from_micros(20);
        loop {
            // SAFETY: `ctx` is live.
            if unsafe { try_lock(ctx) } == raw::REDISMODULE_OK as c_int {
                break;
            }
            if run.cancelled() {
                // SAFETY: `ctx` is live and not locked.
                unsafe { free(ctx) };
                return Err("ERR the script run was cancelled".into());
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(1));
        }
        let locked = Locked { ctx };
        crate::retained::set_holds_redis_lock(true);
        // SAFETY: as above; `ctx` holds the lock.
        if let Some(select) = unsafe { raw::RedisModule_SelectDb } {
            // SAFETY: `ctx` is live and locked.
            unsafe { select(ctx, run.db) };
        }
        Ok(locked)
    }
}

impl Drop for Locked {
    fn drop(&mut self) {
        crate::retained::set_holds_redis_lock(false);
        // SAFETY: the API table is filled at load time; `ctx` is live and locked.
        unsafe {
            if let Some(unlock) = raw::RedisModule_ThreadSafeContextUnlock {
                unlock(self.ctx);
            }
            if let Some(free) = raw::RedisModule_FreeThreadSafeContext {
                free(self.ctx);
            }
        }
    }
}

/// Redis strings made under the lock, freed with it.
struct Strings {
    ctx: *mut raw::RedisModuleCtx,
    items: Vec<*mut raw::RedisModuleString>,
}

impl Strings {
    fn new(locked: &Locked, args: &[Vec<u8>]) -> Result<Strings, String> {
        // SAFETY: the API table is filled at load time and only read afterwards.
        let Some(create) = (unsafe { raw::RedisModule_CreateString }) else {
            return Err("ERR cannot create strings".into());
        };
        let items = args
            .iter()
            // SAFETY: the context is locked; the bytes outlive the call.
            .map(|a| unsafe { create(locked.ctx, a.as_ptr().cast::<c_char>(), a.len()) })
            .collect();
        Ok(Strings {
            ctx: locked.ctx,
            items,
        })
    }
}

impl Drop for Strings {
    fn drop(&mut self) {
        // SAFETY: the API table is filled at load time; each string is freed once,
        // while the lock (declared before these strings) is still held.
        if let Some(free) = unsafe { raw::RedisModule_FreeString } {
            for &item in &self.items {
                // SAFETY: as above.
                unsafe { free(self.ctx, item) };
            }
        }
    }
}

/// Positions of the keys `argv` names, as Redis finds them; None when the command names
/// no keys. A command Redis does not know, or a keyed one with the wrong number of
/// arguments, is an error (see below). A Redis without RedisModule_GetCommandKeys
/// (before 7.0) cannot tell, so scripts may not call commands there.
fn key_positions(
    locked: &Locked,
    strings: &Strings,
    command: &str,
) -> Result<Option<Vec<usize>>, String> {
    // SAFETY: the API table is filled at load time and only read afterwards.
    let (Some(get_keys), Some(free)) =
        (unsafe { (raw::RedisModule_GetCommandKeys, raw::RedisModule_Free) })
    else {
        return Err(
            "ERR this Redis cannot tell which keys a command touches (Redis 7 is needed \
             for redis.execute)"
                .into(),
        );
    };
    let mut count: c_int = 0;
    // SAFETY: errno is this thread's; Redis sets it only on some of its paths.
    unsafe { *libc::__errno_location() = 0 };
    // SAFETY: the context is locked; `argv` holds `items.len()` live strings.
    let positions = unsafe {
        get_keys(
            locked.ctx,
            strings.items.as_ptr().cast_mut(),
            strings.items.len() as c_int,
            &mut count,
        )
    };
    if positions.is_null() {
        // Redis checks a keyed command's arity here. The ACL check that comes next reads
        // the keys where the command's key specs say they are, without checking the
        // arguments are there (a `ZUNION` or `SET` without its arguments crashed Redis
        // in `ACLCheckAllUserCommandPerm`): a command Redis does not know or that has
        // the wrong number of arguments stops here.
        return match std::io::Error::last_os_error().raw_os_error() {
            Some(libc::ENOENT) | Some(libc::EINVAL) => Err(errno_text(command)),
            _ => Ok(None),
        };
    }
    // SAFETY: Redis returned `count` integers at `positions`, freed below.
    let found = unsafe { std::slice::from_raw_parts(positions, count.max(0) as usize) }
        .iter()
        .filter_map(|&p| usize::try_from(p).ok())
        .collect();
    // SAFETY: allocated by Redis for the caller to free.
    unsafe { free(positions.cast::<c_void>()) };
    Ok(Some(found))
}

/// Checks the command against the caller's ACL user.
fn acl_check(run: &RunContext, strings: &Strings) -> Result<(), String> {
    let Some(name) = &run.user else {
        return Ok(());
    };
    let user = super::caller::AclUser::find(name).ok_or_else(|| {
        format!(
            "NOPERM user '{}' no longer exists",
            String::from_utf8_lossy(name)
        )
    })?;
    if user.may_run_strings(&strings.items) {
        Ok(())
    } else {
        Err(
            "NOPERM this user has no permissions to run this command or its subcommand \
             (called from a script)"
                .into(),
        )
    }
}

/// Converts a call reply (recursively) while the lock is held.
fn convert(reply: *mut raw::RedisModuleCallReply, depth: usize) -> ReplyValue {
    if reply.is_null() || depth > 64 {
        return ReplyValue::Nil;
    }
    // SAFETY: the API table is filled at load time; `reply` is a live call reply.
    unsafe {
        let kind = raw::RedisModule_CallReplyType.map_or(-1, |f| f(reply));
        let text = || {
            let mut len = 0usize;
            let ptr = raw::RedisModule_CallReplyStringPtr
                .map_or(std::ptr::null(), |f| f(reply, &mut len));
            if ptr.is_null() {
                Vec::new()
            } else {
                std::slice::from_raw_parts(ptr.cast::<u8>(), len).to_vec()
            }
        };
        match kind as isize {
            raw::REDISMODULE_REPLY_STRING => ReplyValue::String(text()),
            raw::REDISMODULE_REPLY_ERROR => ReplyValue::Error(text()),
            raw::REDISMODULE_REPLY_INTEGER => {
                ReplyValue::Integer(raw::RedisModule_CallReplyInteger.map_or(0, |f| f(reply)))
            }
            raw::REDISMODULE_REPLY_ARRAY | raw::REDISMODULE_REPLY_SET => {
                let n = raw::RedisModule_CallReplyLength.map_or(0, |f| f(reply));
                let element = raw::RedisModule_CallReplyArrayElement;
                ReplyValue::Array(
                    (0..n)
                        .map(|i| {
                            element.map_or(ReplyValue::Nil, |f| convert(f(reply, i), depth + 1))
                        })
                        .collect(),
                )
            }
            raw::REDISMODULE_REPLY_DOUBLE => {
                ReplyValue::Double(raw::RedisModule_CallReplyDouble.map_or(0.0, |f| f(reply)))
            }
            raw::REDISMODULE_REPLY_BOOL => ReplyValue::Integer(i64::from(
                raw::RedisModule_CallReplyBool.map_or(0, |f| f(reply)) != 0,
            )),
            _ => ReplyValue::Nil,
        }
    }
}

fn errno_text(command: &str) -> String {
    match std::io::Error::last_os_error().raw_os_error() {
        // ENOENT
        Some(2) => {
            format!("ERR unknown command '{command}' (called from a script)")
        }
        // EINVAL
        Some(22) => {
            format!("ERR wrong number of arguments for '{command}' command (called from a script)")
        }
        // EPERM, ENOSPC, EACCES, EROFS
        Some(1) => format!("NOPERM '{command}' is not permitted (called from a script)"),
        Some(28) => "OOM command not allowed when used memory > 'maxmemory'".into(),
        Some(13) => format!("ERR '{command}' cannot be called from a script"),
        Some(30) => "ERR write commands are not allowed on this server now".into(),
        other => format!("ERR '{command}' failed (errno {other:?}) when called from a script"),
    }
}

fn run_command(run: &RunContext, args: Vec<Vec<u8>>) -> ReplyValue {
    let Some(name) = args.first() else {
        return ReplyValue::Error(b"ERR redis.execute needs a command".to_vec());
    };
    if let Some(reason) = refusal(name) {
        return ReplyValue::Error(reason.into_bytes());
    }
    let command = String::from_utf8_lossy(name).into_owned();
    let locked = match Locked::acquire(run) {
        Ok(locked) => locked,
        Err(reason) => return ReplyValue::Error(reason.into_bytes()),
    };
    let strings = match Strings::new(&locked, &args) {
        Ok(strings) => strings,
        Err(reason) => return ReplyValue::Error(reason.into_bytes()),
    };
    let positions = match key_positions(&locked, &strings, &command) {
        Ok(positions) => positions,
        Err(reason) => return ReplyValue::Error(reason.into_bytes()),
    };
    if let Some(positions) = positions {
        for position in positions {
            let Some(key) = args.get(position) else {
                continue;
            };
            if !run.declares(key) {
                return ReplyValue::Error(
                    format!(
                        "ERR key '{}' is not declared in the KEYS of AI.SCRIPTEXECUTE",
                        String::from_utf8_lossy(key)
                    )
                    .into_bytes(),
                );
            }
        }
    }
    if let Err(reason) = acl_check(run, &strings) {
        return ReplyValue::Error(reason.into_bytes());
    }
    // SAFETY: the API table is filled at load time and only read afterwards.
    let (Some(call), Some(free_reply)) =
        (unsafe { (raw::RedisModule_Call, raw::RedisModule_FreeCallReply) })
    else {
        return ReplyValue::Error(b"ERR this Redis cannot call commands".to_vec());
    };
    let Ok(c_name) = std::ffi::CString::new(name.as_slice()) else {
        return ReplyValue::Error(b"ERR command name contains NUL".to_vec());
    };
    // The command runs on a client without a user: this module's own commands read
    // the script's caller instead (see `caller`).
    let reply = super::caller::as_script_caller(run.user.as_deref(), || {
        // SAFETY: the context is locked; "v!SM" takes an array of live strings and
        // its length; the name is NUL-terminated.
        unsafe {
            call(
                locked.ctx,
                c_name.as_ptr(),
                c"v!SM".as_ptr(),
                strings.items.as_ptr().add(1),
                strings.items.len() - 1,
            )
        }
    });
    if reply.is_null() {
        return ReplyValue::Error(errno_text(&command).into_bytes());
    }
    let value = convert(reply, 0);
    // SAFETY: `reply` is freed once, under the lock.
    unsafe { free_reply(reply) };
    drop(strings);
    drop(locked);
    value
}

pub unsafe extern "C" fn redis_command(
    host_ctx: *mut c_void,
    argv: *const *const c_char,
    argv_len: *const usize,
    argc: usize,
) -> *mut RaiReply {
    std::panic::catch_unwind(|| {
        // SAFETY: the plugin passes the host_ctx of the run in progress, a
        // `RunContext` alive for the whole run.
        let Some(run) = (unsafe { host_ctx.cast::<RunContext>().as_ref() }) else {
            return error("ERR redis_command needs the host_ctx of a script run");
        };
        if argc == 0 || argv.is_null() || argv_len.is_null() {
            return error("ERR redis.execute needs a command");
        }
        // SAFETY: the plugin passes `argc` pointers and lengths, valid for the call.
        let (ptrs, lens) = unsafe {
            (
                std::slice::from_raw_parts(argv, argc),
                std::slice::from_raw_parts(argv_len, argc),
            )
        };
        let mut args = Vec::with_capacity(argc);
        for (&ptr, &len) in ptrs.iter().zip(lens) {
            if ptr.is_null() && len > 0 {
                return error("ERR redis.execute got a null argument");
            }
            args.push(if len == 0 {
                Vec::new()
            } else {
                // SAFETY: `len` bytes at `ptr`, valid for the call.
                unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) }.to_vec()
            });
        }
        make_reply(run_command(run, args))
    })
    .unwrap_or_else(|_| error("ERR internal error in redis_command"))
}

/// Copies a plugin's input view into a tensor.
fn view_to_tensor(view: &RaiTensorView) -> Result<Tensor, String> {
    // SAFETY: reading the enum fields as integers: any value the plugin wrote is a
    // valid u32.
    let (dtype_code, device_kind) = unsafe {
        (
            *(std::ptr::addr_of!(view.dtype).cast::<u32>()),
            *(std::ptr::addr_of!(view.device.kind).cast::<u32>()),
        )
    };
    let dtype = DType::from_code(u64::from(dtype_code))
        .ok_or_else(|| format!("ERR unknown input dtype {dtype_code}"))?;
    if device_kind != 0 {
        return Err("ERR model_execute inputs must be on the CPU".into());
    }
    if view.ndim > 0 && view.shape.is_null() || view.byte_len > 0 && view.data.is_null() {
        return Err("ERR model_execute input without data".into());
    }
    if !view.strides.is_null() {
        return Err("ERR model_execute inputs must be contiguous (strides null)".into());
    }
    let shape = if view.ndim == 0 {
        Vec::new()
    } else {
        // SAFETY: the plugin passes `ndim` dimensions, valid for the call.
        unsafe { std::slice::from_raw_parts(view.shape, view.ndim) }.to_vec()
    };
    let bytes = if view.byte_len == 0 {
        &[][..]
    } else {
        // SAFETY: the plugin passes `byte_len` bytes, valid for the call.
        unsafe { std::slice::from_raw_parts(view.data.cast::<u8>(), view.byte_len) }
    };
    let buffer = AlignedBuffer::copy_from(bytes)
        .map_err(|e| format!("ERR cannot allocate {} bytes", e.bytes))?;
    Tensor::from_buffer(dtype, shape, buffer).map_err(|e| format!("ERR bad input: {e}"))
}

fn find_model(run: &RunContext, key: &[u8]) -> Result<SharedModel, String> {
    if !run.declares(key) {
        return Err(format!(
            "ERR model key '{}' is not declared in the KEYS of AI.SCRIPTEXECUTE",
            String::from_utf8_lossy(key)
        ));
    }
    let locked = Locked::acquire(run)?;
    let context = redis_module::Context::new(locked.ctx);
    let name = redis_module::RedisString::create_from_slice(locked.ctx, key);
    let opened = context.open_key(&name);
    let model = match opened.get_value::<SharedModel>(&crate::persist::model_type::MODEL_TYPE) {
        Ok(Some(model)) => Ok(Arc::clone(model)),
        Ok(None) => Err(crate::commands::keyspace::EMPTY_MODEL_KEY.to_owned()),
        Err(_) => Err("WRONGTYPE Operation against a key holding the wrong kind of value".into()),
    };
    drop(opened);
    drop(name);
    drop(locked);
    model
}

pub unsafe extern "C" fn model_execute(
    host_ctx: *mut c_void,
    key: *const c_char,
    inputs: *const RaiTensorView,
    n_inputs: usize,
    outputs: *mut RaiTensorOut,
    n_outputs: usize,
) -> *mut RaiReply {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // SAFETY: as in `redis_command`.
        let Some(run) = (unsafe { host_ctx.cast::<RunContext>().as_ref() }) else {
            return error("ERR model_execute needs the host_ctx of a script run");
        };
        if key.is_null()
            || (n_inputs > 0 && inputs.is_null())
            || (n_outputs > 0 && outputs.is_null())
        {
            return error("ERR model_execute got a null argument");
        }
        // SAFETY: a NUL-terminated key, valid for the call.
        let key = unsafe { CStr::from_ptr(key) }.to_bytes().to_vec();
        let model = match find_model(run, &key) {
            Ok(model) => model,
            Err(reason) => return error(reason),
        };
        let views = if n_inputs == 0 {
            &[][..]
        } else {
            // SAFETY: `n_inputs` views, valid for the call.
            unsafe { std::slice::from_raw_parts(inputs, n_inputs) }
        };
        // The inputs are copied through Redis's allocator for the run: held to the
        // script run's room under `maxmemory` until they are freed.
        let input_bytes = views
            .iter()
            .fold(0usize, |sum, view| sum.saturating_add(view.byte_len));
        let Some(_inputs_held) = run.output_budget.reserve(input_bytes) else {
            return error(failure_text(&Failure::new(
                Origin::ModelRun,
                past_maxmemory(),
            )));
        };
        let tensors = match views
            .iter()
            .map(view_to_tensor)
            .collect::<Result<Vec<_>, _>>()
        {
            Ok(tensors) => tensors,
            Err(reason) => return error(reason),
        };
        let runtime = match model.runtime() {
            Ok(runtime) => runtime,
            Err(reason) => return error(reason),
        };
        let expected = model.output_names().len();
        if expected != 0 && expected != n_outputs {
            return error(format!(
                "ERR model has {expected} outputs, model_execute asked for {n_outputs}"
            ));
        }
        let refs: Vec<&Tensor> = tensors.iter().collect();
        let started = std::time::Instant::now();
        // Drawn from the script run's budget (the scope of its call inherits it too).
        let result = runtime.run(
            &refs,
            n_outputs,
            run.time_left_ms(),
            &run.cancel,
            &run.output_budget,
        );
        let rows = refs.first().map_or(1, |t| t.rows()) as u64;
        model.stats.record(started.elapsed(), rows, result.is_err());
        let produced = match result {
            Ok(produced) => produced,
            Err(err) => return error(failure_text(&Failure::new(Origin::ModelRun, err))),
        };
        for (index, tensor) in produced.into_iter().enumerate().take(n_outputs) {
            let boxed = Box::new(tensor);
            let view = redisai_engine::backend::tensor_view(&boxed);
            let owner = Box::into_raw(boxed).cast::<c_void>();
            // SAFETY: `outputs` has room for `n_outputs` entries; the view points
            // into the boxed tensor, alive until `host_tensor_release(owner)`.
            unsafe { outputs.add(index).write(RaiTensorOut { view, owner }) };
        }
        std::ptr::null_mut()
    }))
    .unwrap_or_else(|_| error("ERR internal error in model_execute"))
}
