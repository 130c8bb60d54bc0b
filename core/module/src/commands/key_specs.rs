//! What each command does to its keys, told to Redis so that ACL read-only and
//! write-only key selectors (`%R~`, `%W~`) apply: commands registered with a plain
//! (first, last, step) range get key specs once they exist, and the `getkeys-api`
//! commands declare each key with flags.
//!
//! Without this Redis assumes full access to every key, which refuses a `%R~` user
//! even AI.TENSORGET (safe, but too strict).

pub use redisai_engine::script::parse::KeyAccess;

use std::ffi::{c_int, CStr};

use redis_module::{raw, Context, Status};

/// Key flags (REDISMODULE_CMD_KEY_*).
const READ: u64 = (raw::REDISMODULE_CMD_KEY_RO | raw::REDISMODULE_CMD_KEY_ACCESS) as u64;
const OVERWRITE: u64 = (raw::REDISMODULE_CMD_KEY_OW | raw::REDISMODULE_CMD_KEY_UPDATE) as u64;
const READ_WRITE: u64 = (raw::REDISMODULE_CMD_KEY_RW
    | raw::REDISMODULE_CMD_KEY_ACCESS
    | raw::REDISMODULE_CMD_KEY_UPDATE) as u64;
const DELETE: u64 = (raw::REDISMODULE_CMD_KEY_RM | raw::REDISMODULE_CMD_KEY_DELETE) as u64;

/// Commands whose only key is the first argument, with what they do to it.
const SINGLE_KEY: [(&CStr, u64); 11] = [
    (c"AI.TENSORGET", READ),
    (c"AI.MODELGET", READ),
    (c"AI.SCRIPTGET", READ),
    (c"AI.SCRIPTSTORE", OVERWRITE),
    (c"AI.SCRIPTSET", OVERWRITE),
    (c"AI.SCRIPTDEL", DELETE),
    (c"AI.INFO", READ),
    (c"AI.TENSORSET", OVERWRITE),
    (c"AI.MODELSTORE", OVERWRITE),
    (c"AI.MODELSET", OVERWRITE),
    (c"AI.MODELDEL", DELETE),
];

fn key_spec(flags: u64) -> raw::RedisModuleCommandKeySpec {
    raw::RedisModuleCommandKeySpec {
        notes: std::ptr::null(),
        flags,
        begin_search_type: raw::RedisModuleKeySpecBeginSearchType_REDISMODULE_KSPEC_BS_INDEX,
        bs: raw::RedisModuleCommandKeySpec__bindgen_ty_1 {
            index: raw::RedisModuleCommandKeySpec__bindgen_ty_1__bindgen_ty_1 { pos: 1 },
        },
        find_keys_type: raw::RedisModuleKeySpecFindKeysType_REDISMODULE_KSPEC_FK_RANGE,
        fk: raw::RedisModuleCommandKeySpec__bindgen_ty_2 {
            range: raw::RedisModuleCommandKeySpec__bindgen_ty_2__bindgen_ty_1 {
                lastkey: 0,
                keystep: 1,
                limit: 0,
            },
        },
    }
}

/// The all-zero key spec that ends a key spec array.
fn end_of_specs() -> raw::RedisModuleCommandKeySpec {
    // SAFETY: the struct is plain C data (pointers, integers, unions of them) for which
    // all zeroes is the documented terminator.
    unsafe { std::mem::zeroed() }
}

/// Declares the key specs of [`SINGLE_KEY`]; call after the commands are created.
/// On a Redis without `RedisModule_SetCommandInfo` the commands keep full access.
pub fn declare(ctx: &Context) -> Status {
    // SAFETY: the API table is filled at load time, before this runs.
    let (Some(get_command), Some(set_info)) =
        (unsafe { (raw::RedisModule_GetCommand, raw::RedisModule_SetCommandInfo) })
    else {
        ctx.log_notice("this Redis takes no command key specs; ACL key selectors see full access");
        return Status::Ok;
    };
    let version = raw::RedisModuleCommandInfoVersion {
        version: 1,
        sizeof_historyentry: std::mem::size_of::<raw::RedisModuleCommandHistoryEntry>(),
        sizeof_keyspec: std::mem::size_of::<raw::RedisModuleCommandKeySpec>(),
        sizeof_arg: std::mem::size_of::<raw::RedisModuleCommandArg>(),
    };
    for (name, flags) in SINGLE_KEY {
        // SAFETY: a live context during OnLoad and a NUL-terminated name.
        let command = unsafe { get_command(ctx.ctx, name.as_ptr()) };
        if command.is_null() {
            ctx.log_warning(&format!(
                "no command {} to declare keys for",
                name.to_string_lossy()
            ));
            return Status::Err;
        }
        let mut specs = [key_spec(flags), end_of_specs()];
        let info = raw::RedisModuleCommandInfo {
            version: &version,
            summary: std::ptr::null(),
            complexity: std::ptr::null(),
            since: std::ptr::null(),
            history: std::ptr::null_mut(),
            tips: std::ptr::null(),
            arity: 0,
            key_specs: specs.as_mut_ptr(),
            args: std::ptr::null_mut(),
        };
        // SAFETY: `command` is live; Redis copies what `info` points to during the call.
        if unsafe { set_info(command, &info) } != raw::Status::Ok as c_int {
            ctx.log_warning(&format!(
                "cannot declare the keys of {}",
                name.to_string_lossy()
            ));
            return Status::Err;
        }
    }
    Status::Ok
}

/// Declares one key of a `getkeys-api` command with its flags.
pub fn key_at(ctx: &Context, position: usize, access: KeyAccess) {
    let flags = match access {
        KeyAccess::Read => READ,
        KeyAccess::Write => OVERWRITE,
        KeyAccess::ReadWrite => READ_WRITE,
    };
    let Ok(position) = c_int::try_from(position) else {
        return;
    };
    // SAFETY: the API table is filled at load time; Redis asks for keys with a live
    // context and `position` is inside argv (the callers keep it so).
    unsafe {
        match raw::RedisModule_KeyAtPosWithFlags {
            Some(key_at_pos) => key_at_pos(ctx.ctx, position, flags as c_int),
            None => ctx.key_at_pos(position),
        }
    }
}

/// Key positions of MODELEXECUTE/MODELRUN that are written: those after the first
/// `OUTPUTS` word (a key named OUTPUTS among the inputs only makes this stricter).
fn is_model_output(args: &[&[u8]], position: usize) -> bool {
    args.iter()
        .take(position)
        .skip(2)
        .any(|a| a.eq_ignore_ascii_case(b"OUTPUTS"))
}

/// What a MODELEXECUTE/MODELRUN does to the key at `position`.
pub fn model_key_access(args: &[&[u8]], position: usize) -> KeyAccess {
    if is_model_output(args, position) {
        KeyAccess::Write
    } else {
        KeyAccess::Read
    }
}

/// What a DAG command does to the key at `position`: PERSIST keys are written, the
/// DAG's script KEYS read and written, the rest read.
pub fn dag_key_access(args: &[&[u8]], position: usize) -> KeyAccess {
    if is_dag_persist(args, position) {
        KeyAccess::Write
    } else if in_dag_section(args, position, "KEYS") {
        KeyAccess::ReadWrite
    } else {
        KeyAccess::Read
    }
}

/// Key positions of a DAG command that are written: the PERSIST keys.
fn is_dag_persist(args: &[&[u8]], position: usize) -> bool {
    in_dag_section(args, position, "PERSIST")
}

/// Whether `position` is one of the keys of the DAG's `section` (LOAD, PERSIST, KEYS).
fn in_dag_section(args: &[&[u8]], position: usize, section: &str) -> bool {
    let count_at = |i: usize| {
        args.get(i)
            .and_then(|a| std::str::from_utf8(a).ok())
            .and_then(|a| a.parse::<usize>().ok())
            .unwrap_or(0)
    };
    let mut index = 1;
    while index < args.len() && args[index] != b"|>" {
        let word = args[index];
        let counted = [&b"PERSIST"[..], b"LOAD", b"KEYS"];
        if counted.iter().any(|w| word.eq_ignore_ascii_case(w)) {
            let first = index + 2;
            let end = first.saturating_add(count_at(index + 1));
            if word.eq_ignore_ascii_case(section.as_bytes()) && (first..end).contains(&position) {
                return true;
            }
            index = end.max(index + 2);
        } else {
            index += 1;
        }
    }
    false
}
