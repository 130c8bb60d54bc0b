//! AI.CONFIG is registered as a container of sub-commands, each with its own flags, so
//! ACL rules can tell `AI.CONFIG GET` from `AI.CONFIG LOADBACKEND`.

use std::ffi::{c_int, CString};

use redis_module::{raw, Context, Status};

use super::{config, guarded, Handler};

macro_rules! trampoline {
    ($name:ident, $handler:path) => {
        extern "C" fn $name(
            ctx: *mut raw::RedisModuleCtx,
            argv: *mut *mut raw::RedisModuleString,
            argc: c_int,
        ) -> c_int {
            let context = Context::new(ctx);
            let args = redis_module::decode_args(ctx, argv, argc);
            let handler: Handler = $handler;
            let response = guarded(&context, args, handler);
            context.reply(response) as c_int
        }
    };
}

trampoline!(config_get, config::get);
trampoline!(config_backends_path, config::backends_path);
trampoline!(config_model_chunk_size, config::model_chunk_size);
trampoline!(config_load_backend, config::load_backend);
trampoline!(
    config_inline_execution_limit,
    config::inline_execution_limit
);

type CommandFn =
    extern "C" fn(*mut raw::RedisModuleCtx, *mut *mut raw::RedisModuleString, c_int) -> c_int;

/// Registers `AI.CONFIG` and its sub-commands.
pub fn register_config(ctx: &Context) -> Status {
    let subcommands: [(&str, CommandFn, &str); 5] = [
        ("GET", config_get, "readonly fast"),
        ("MODEL_CHUNK_SIZE", config_model_chunk_size, "fast"),
        ("BACKENDSPATH", config_backends_path, "admin"),
        ("LOADBACKEND", config_load_backend, "admin"),
        (
            "INLINE_EXECUTION_LIMIT_US",
            config_inline_execution_limit,
            "admin fast",
        ),
    ];
    // SAFETY: the API table is filled at load time, before this runs.
    let (Some(create), Some(get_command), Some(create_sub)) = (unsafe {
        (
            raw::RedisModule_CreateCommand,
            raw::RedisModule_GetCommand,
            raw::RedisModule_CreateSubcommand,
        )
    }) else {
        ctx.log_warning("this Redis cannot register sub-commands (Redis 7.0 or newer is needed)");
        return Status::Err;
    };
    let name = c"AI.CONFIG";
    // SAFETY: a container command has no handler of its own; the strings outlive the call.
    let status = unsafe { create(ctx.ctx, name.as_ptr(), None, c"".as_ptr(), 0, 0, 0) };
    if status != raw::Status::Ok as c_int {
        ctx.log_warning("cannot register AI.CONFIG");
        return Status::Err;
    }
    // SAFETY: the command was just created.
    let parent = unsafe { get_command(ctx.ctx, name.as_ptr()) };
    if parent.is_null() {
        return Status::Err;
    }
    for (sub, handler, flags) in subcommands {
        let (Ok(sub_name), Ok(sub_flags)) = (CString::new(sub), CString::new(flags)) else {
            return Status::Err;
        };
        // SAFETY: `parent` is a live command; strings outlive the call.
        let status = unsafe {
            create_sub(
                parent,
                sub_name.as_ptr(),
                Some(handler),
                sub_flags.as_ptr(),
                0,
                0,
                0,
            )
        };
        if status != raw::Status::Ok as c_int {
            ctx.log_warning(&format!("cannot register AI.CONFIG {sub}"));
            return Status::Err;
        }
    }
    Status::Ok
}
