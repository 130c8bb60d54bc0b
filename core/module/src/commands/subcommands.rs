//! AI.CONFIG is registered as a container of sub-commands, each with its own flags, so
//! ACL rules can tell `AI.CONFIG GET` from `AI.CONFIG LOADBACKEND`.
//!
//! Redis answers an unknown sub-command of a container itself (`unknown subcommand
//! 'X'. Try AI.CONFIG HELP.`), before any module code runs, and a container may have no
//! handler of its own. RedisAI answered `ERR unsupported subcommand`, so a command filter
//! (which runs before Redis looks the command up) puts [`UNSUPPORTED`] in front of an
//! unknown sub-command's arguments; that sub-command, open to every user, gives
//! RedisAI's reply. Known ones pass untouched, so their ACL rules apply as before.

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
trampoline!(config_unsupported, config::unsupported);

/// The sub-command an unknown one is routed to.
const UNSUPPORTED: &str = "_UNSUPPORTED";

/// The sub-commands registered below, [`UNSUPPORTED`] aside.
const KNOWN: [&str; 5] = [
    "GET",
    "MODEL_CHUNK_SIZE",
    "BACKENDSPATH",
    "LOADBACKEND",
    "INLINE_EXECUTION_LIMIT_US",
];

/// Whether a command line (`AI.CONFIG sub ...`) names a sub-command that is not
/// registered and should be routed to [`UNSUPPORTED`].
fn needs_rerouting(command: &[u8], sub: &[u8]) -> bool {
    command.eq_ignore_ascii_case(b"AI.CONFIG")
        && !KNOWN
            .iter()
            .any(|known| known.as_bytes().eq_ignore_ascii_case(sub))
}

/// The bytes of a filtered command's argument `pos`.
///
/// # Safety
/// `fctx` is the live filter context Redis passed to the callback.
unsafe fn filter_arg<'a>(
    fctx: *mut raw::RedisModuleCommandFilterCtx,
    pos: c_int,
) -> Option<&'a [u8]> {
    let (Some(arg_get), Some(ptr_len)) = (
        raw::RedisModule_CommandFilterArgGet,
        raw::RedisModule_StringPtrLen,
    ) else {
        return None;
    };
    let arg = arg_get(fctx, pos);
    if arg.is_null() {
        return None;
    }
    let mut len = 0usize;
    let data = ptr_len(arg, &mut len);
    if data.is_null() {
        return None;
    }
    // SAFETY: Redis keeps the argument alive for the whole filter callback.
    Some(std::slice::from_raw_parts(data.cast::<u8>(), len))
}

/// The command filter: routes `AI.CONFIG <unknown> ...` to [`UNSUPPORTED`]. It runs for
/// every command, so it only compares the first argument's length and bytes.
extern "C" fn reroute_unknown_config(fctx: *mut raw::RedisModuleCommandFilterCtx) {
    // SAFETY: Redis passes a live filter context; every API pointer is checked.
    unsafe {
        let Some(count) = raw::RedisModule_CommandFilterArgsCount else {
            return;
        };
        if count(fctx) < 2 {
            return;
        }
        let Some(command) = filter_arg(fctx, 0) else {
            return;
        };
        if command.len() != b"AI.CONFIG".len() {
            return;
        }
        let Some(sub) = filter_arg(fctx, 1) else {
            return;
        };
        if !needs_rerouting(command, sub) {
            return;
        }
        let (Some(create), Some(insert)) = (
            raw::RedisModule_CreateString,
            raw::RedisModule_CommandFilterArgInsert,
        ) else {
            return;
        };
        // Not auto-memory: Redis owns an inserted argument from here on.
        let name = create(
            std::ptr::null_mut(),
            UNSUPPORTED.as_ptr().cast(),
            UNSUPPORTED.len(),
        );
        if !name.is_null() {
            insert(fctx, 1, name);
        }
    }
}

type CommandFn =
    extern "C" fn(*mut raw::RedisModuleCtx, *mut *mut raw::RedisModuleString, c_int) -> c_int;

/// Registers `AI.CONFIG` and its sub-commands.
pub fn register_config(ctx: &Context) -> Status {
    let subcommands: [(&str, CommandFn, &str); 6] = [
        ("GET", config_get, "readonly fast"),
        ("MODEL_CHUNK_SIZE", config_model_chunk_size, "fast"),
        ("BACKENDSPATH", config_backends_path, "admin"),
        ("LOADBACKEND", config_load_backend, "admin"),
        (
            "INLINE_EXECUTION_LIMIT_US",
            config_inline_execution_limit,
            "admin fast",
        ),
        (UNSUPPORTED, config_unsupported, "fast"),
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
    // SAFETY: the filter is registered at load time with a callback that lives as long
    // as the module.
    let filter = unsafe {
        raw::RedisModule_RegisterCommandFilter
            .map(|register| register(ctx.ctx, Some(reroute_unknown_config), 0))
    };
    if filter.is_none_or(|f| f.is_null()) {
        // Redis's own text for unknown sub-commands remains; everything else works.
        ctx.log_warning("cannot register the AI.CONFIG command filter");
    }
    Status::Ok
}
