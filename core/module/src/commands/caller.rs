//! Who runs the current command, for the checks the module makes itself (MODULE LOAD
//! rights, which keys a user may list, whose ACL a script's `redis.execute` obeys).
//!
//! A command does not always come from a connected client. Reached through
//! `RedisModule_Call` (a script's `redis.execute`, another module) it runs on a
//! temporary client whose user is NULL ("root"), as does the master's stream on a
//! replica, and `RedisModule_GetCurrentUserName` then dereferences that NULL (Redis 7.0
//! and Valkey 8 do not check): this module never calls it. The name is read with
//! `RedisModule_GetClientUserNameById`, which answers only for connected clients. A
//! command one of our scripts calls is charged to the user who ran the script, recorded
//! for the call by [`as_script_caller`]. Anything else without a connected client is
//! either Redis replaying data (the AOF, the master: unchecked, as Redis runs them) or
//! a call whose user cannot be told (a Lua script, another module's `RedisModule_Call`):
//! the checks that need a user refuse those.

use std::cell::RefCell;

use redis_module::{raw, Context, ContextFlags, RedisError, RedisString};

thread_local! {
    /// The user whose script is calling a command through `redis.execute` on this
    /// thread (the call runs synchronously on the thread that makes it).
    static SCRIPT_CALLER: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
}

/// Runs `call` (a `RedisModule_Call` made for a script) with the commands it reaches
/// charged to `user`.
pub fn as_script_caller<T>(user: Option<&[u8]>, call: impl FnOnce() -> T) -> T {
    struct Restore(Option<Vec<u8>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            SCRIPT_CALLER.with(|slot| *slot.borrow_mut() = previous);
        }
    }
    let previous = SCRIPT_CALLER.with(|slot| slot.replace(user.map(<[u8]>::to_vec)));
    let _restore = Restore(previous);
    call()
}

/// Who the current command runs for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// A connected client's ACL user, or the user whose script made the call.
    User(Vec<u8>),
    /// Redis replaying data: the AOF being loaded, the master's stream.
    Replay,
    /// A client without a user this module can name: a Lua script or function, or
    /// another module's `RedisModule_Call`.
    Unknown,
}

pub fn caller(ctx: &Context) -> Caller {
    if let Some(user) = SCRIPT_CALLER.with(|slot| slot.borrow().clone()) {
        return Caller::User(user);
    }
    if let Some(user) = connected_user(ctx) {
        return Caller::User(user);
    }
    if ctx
        .get_flags()
        .intersects(ContextFlags::LOADING | ContextFlags::REPLICATED)
    {
        Caller::Replay
    } else {
        Caller::Unknown
    }
}

/// The ACL user name of the current command's caller where there is one to name (see
/// [`caller`]): the user a script run or a DAG acts for.
pub fn current_user(ctx: &Context) -> Option<Vec<u8>> {
    match caller(ctx) {
        Caller::User(name) => Some(name),
        Caller::Replay | Caller::Unknown => None,
    }
}

/// The user of the connected client that sent the current command.
fn connected_user(ctx: &Context) -> Option<Vec<u8>> {
    // SAFETY: the API table is filled at load time and only read afterwards.
    let (Some(client_id), Some(user_name)) = (unsafe {
        (
            raw::RedisModule_GetClientId,
            raw::RedisModule_GetClientUserNameById,
        )
    }) else {
        return None;
    };
    // SAFETY: `ctx` is the live command context; 0 means no client.
    let id = unsafe { client_id(ctx.ctx) };
    if id == 0 {
        return None;
    }
    // SAFETY: as above; NULL for a client that is not connected or has no user. The
    // string is owned by us (freed by the wrapper below).
    let name = unsafe { user_name(ctx.ctx, id) };
    if name.is_null() {
        return None;
    }
    let owned = RedisString::from_redis_module_string(ctx.ctx, name);
    Some(owned.as_slice().to_vec())
}

/// The ACL user a check applies to: `Ok(None)` when the command replays data (no check),
/// an error reply when the user cannot be told or no longer exists.
pub fn user_to_check(ctx: &Context, what: &str) -> Result<Option<AclUser>, RedisError> {
    match caller(ctx) {
        Caller::Replay => Ok(None),
        Caller::Unknown => Err(RedisError::String(format!(
            "NOPERM {what} cannot tell which ACL user runs it here (a Lua script or another \
             module's call): send it from a client"
        ))),
        Caller::User(name) => AclUser::find(&name).map(Some).ok_or_else(|| {
            RedisError::String(format!(
                "NOPERM user '{}' no longer exists",
                String::from_utf8_lossy(&name)
            ))
        }),
    }
}

/// An ACL user looked up by name, freed on drop.
pub struct AclUser(std::ptr::NonNull<raw::RedisModuleUser>);

impl AclUser {
    /// The user named `name`, if it exists.
    pub fn find(name: &[u8]) -> Option<AclUser> {
        // SAFETY: the API table is filled at load time and only read afterwards.
        let get = unsafe { raw::RedisModule_GetModuleUserFromUserName }?;
        let name = RedisString::create(None, name);
        // SAFETY: `name` is a live string; the user is freed in `drop`.
        std::ptr::NonNull::new(unsafe { get(name.inner) }).map(AclUser)
    }

    pub fn as_ptr(&self) -> *mut raw::RedisModuleUser {
        self.0.as_ptr()
    }

    /// Whether the user may run the command `argv` (name first).
    pub fn may_run(&self, argv: &[&[u8]]) -> bool {
        let strings: Vec<RedisString> = argv
            .iter()
            .map(|arg| RedisString::create(None, *arg))
            .collect();
        let ptrs: Vec<*mut raw::RedisModuleString> = strings.iter().map(|s| s.inner).collect();
        self.may_run_strings(&ptrs)
    }

    /// [`AclUser::may_run`] of a command already made of Redis strings (live for the call;
    /// Redis checks the arity of a keyed command first, see `host_calls::key_positions`).
    pub fn may_run_strings(&self, argv: &[*mut raw::RedisModuleString]) -> bool {
        // SAFETY: the API table is filled at load time and only read afterwards.
        let Some(check) = (unsafe { raw::RedisModule_ACLCheckCommandPermissions }) else {
            return true;
        };
        // SAFETY: the user is live; `argv` holds live strings, which Redis only reads.
        let status = unsafe { check(self.as_ptr(), argv.as_ptr().cast_mut(), argv.len() as i32) };
        status == raw::Status::Ok as i32
    }

    /// Whether the user may access `key` as `flags` (`REDISMODULE_CMD_KEY_*`) say.
    pub fn may_access_key(&self, key: &RedisString, flags: u32) -> bool {
        // SAFETY: the API table is filled at load time and only read afterwards.
        let Some(check) = (unsafe { raw::RedisModule_ACLCheckKeyPermissions }) else {
            return true;
        };
        // SAFETY: the user is live; `key` is a live string.
        let status = unsafe { check(self.as_ptr(), key.inner, flags as i32) };
        status == raw::Status::Ok as i32
    }
}

impl Drop for AclUser {
    fn drop(&mut self) {
        // SAFETY: the API table is filled at load time; the user came from
        // RedisModule_GetModuleUserFromUserName and is freed once.
        if let Some(free) = unsafe { raw::RedisModule_FreeModuleUser } {
            // SAFETY: as above.
            unsafe { free(self.0.as_ptr()) };
        }
    }
}

/// Loading native code, or changing what the whole server does, needs the rights of
/// MODULE LOAD (ACL categories @admin and @dangerous). Redis 7.0 does not give module
/// sub-commands the categories their `admin` flag implies, so the module checks this
/// itself. Replayed commands (AOF, master) pass.
pub fn ensure_admin(ctx: &Context, what: &str) -> Result<(), RedisError> {
    let Some(user) = user_to_check(ctx, &format!("AI.CONFIG {what}"))? else {
        return Ok(());
    };
    if user.may_run(&[b"MODULE", b"LOAD", b"backend"]) {
        Ok(())
    } else {
        Err(RedisError::String(format!(
            "NOPERM this user has no permissions to run AI.CONFIG {what}: it needs the rights \
             of MODULE LOAD (@admin, @dangerous)"
        )))
    }
}
