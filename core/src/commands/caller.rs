//! Who runs the current command, for the checks the module makes itself (MODULE LOAD
//! rights, which keys a user may list, whose ACL a script's `redis.execute` obeys).
//!
//! A command does not always come from a connected client. Reached through
//! `RedisModule_Call` (a script's `redis.execute`, another module), it runs on a
//! temporary client whose user is NULL ("root"), and `RedisModule_GetCurrentUserName`
//! then dereferences that NULL (Redis 7.0 and Valkey 8 do not check). So the name is
//! read with `RedisModule_GetClientUserNameById`, which answers NULL for a client that
//! has no user or is not a connected one. A command that one of our scripts calls is
//! charged to the user who ran the script, recorded for the call by [`as_script_caller`].

use std::cell::RefCell;

use redis_module::{raw, Context, RedisError, RedisString};

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

/// The name of the ACL user the current command runs for: the connected client's user,
/// or the user whose script made the call. None where no user applies (the AOF, the
/// replication stream, another module's `RedisModule_Call`): those run unchecked, as
/// Redis runs them.
pub fn current_user(ctx: &Context) -> Option<Vec<u8>> {
    if let Some(user) = SCRIPT_CALLER.with(|slot| slot.borrow().clone()) {
        return Some(user);
    }
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

    /// The user of the current command (see [`current_user`]). `Err` carries the name of
    /// a user that no longer exists.
    pub fn current(ctx: &Context) -> Result<Option<AclUser>, Vec<u8>> {
        match current_user(ctx) {
            None => Ok(None),
            Some(name) => AclUser::find(&name).map(Some).ok_or(name),
        }
    }

    pub fn as_ptr(&self) -> *mut raw::RedisModuleUser {
        self.0.as_ptr()
    }

    /// Whether the user may run the command `argv` (name first).
    pub fn may_run(&self, argv: &[&[u8]]) -> bool {
        // SAFETY: the API table is filled at load time and only read afterwards.
        let Some(check) = (unsafe { raw::RedisModule_ACLCheckCommandPermissions }) else {
            return true;
        };
        let strings: Vec<RedisString> = argv
            .iter()
            .map(|arg| RedisString::create(None, *arg))
            .collect();
        let mut ptrs: Vec<*mut raw::RedisModuleString> = strings.iter().map(|s| s.inner).collect();
        // SAFETY: the user is live; `ptrs` holds live strings for the call.
        let status = unsafe { check(self.as_ptr(), ptrs.as_mut_ptr(), ptrs.len() as i32) };
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
/// itself. Commands with no user (AOF, replication, another module's call) pass.
pub fn ensure_admin(ctx: &Context, what: &str) -> Result<(), RedisError> {
    let user = match AclUser::current(ctx) {
        Ok(Some(user)) => user,
        Ok(None) => return Ok(()),
        Err(name) => {
            return Err(RedisError::String(format!(
                "NOPERM user '{}' no longer exists",
                String::from_utf8_lossy(&name)
            )))
        }
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
