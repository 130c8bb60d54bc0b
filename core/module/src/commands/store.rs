//! Writing a model or a script into the keyspace for AI.MODELSTORE / AI.SCRIPTSTORE
//! (and their deprecated SET forms), with the backend's load off the main thread.
//!
//! The command parses and checks its arguments on the main thread, then blocks its
//! client and hands the load to the loader thread (`exec::loader`). When the load is
//! done, the main thread checks the key again (it may hold another type by now:
//! WRONGTYPE, nothing stored), stores the value, replicates the command as it was
//! received, and replies. A client that disconnects meanwhile gets nothing stored and
//! nothing replicated, as for any blocked command that never completed.
//!
//! Where a client cannot be blocked (MULTI/EXEC, Lua, RM_Call without blocking, AOF
//! loading, the master's stream on a replica) the load runs at once, as before.

use std::ffi::CString;
use std::marker::PhantomData;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use redis_module::{
    raw, Context, ContextFlags, NotifyEvent, RedisError, RedisResult, RedisString, RedisValue,
};
use redisai_engine::exec::{loader, Job};
use redisai_engine::model::{Model, SharedModel};
use redisai_engine::script::{Script, SharedScript};
use redisai_engine::tensor::ByteSource;

use super::keyspace::{self, key_name};
use crate::blocking::{self, BlockedClient, Completion};
use crate::persist::model_type::MODEL_TYPE;
use crate::persist::script_type::SCRIPT_TYPE;
use crate::reply::panic_message;
use crate::retained::RetainedString;

/// A value a store command writes: a model or a script.
pub(super) trait Storable: Send + Sized + 'static {
    /// The keyspace event of a store.
    const EVENT: &'static str;

    /// WRONGTYPE when `key` holds a value of another type.
    fn ensure_type(ctx: &Context, key: &RedisString) -> Result<(), RedisError>;

    /// Stores `self` at `key`, unless the key holds another type (WRONGTYPE).
    fn write(self, ctx: &Context, key: &RedisString) -> Result<(), RedisError>;
}

impl Storable for Model {
    const EVENT: &'static str = "ai.modelstore";

    fn ensure_type(ctx: &Context, key: &RedisString) -> Result<(), RedisError> {
        keyspace::ensure_empty_or::<SharedModel>(ctx, key, &MODEL_TYPE)
    }

    fn write(self, ctx: &Context, key: &RedisString) -> Result<(), RedisError> {
        Self::ensure_type(ctx, key)?;
        ctx.open_key_writable(key)
            .set_value::<SharedModel>(&MODEL_TYPE, Arc::new(self))
    }
}

impl Storable for Script {
    const EVENT: &'static str = "ai.scriptstore";

    fn ensure_type(ctx: &Context, key: &RedisString) -> Result<(), RedisError> {
        keyspace::ensure_empty_or::<SharedScript>(ctx, key, &SCRIPT_TYPE)
    }

    fn write(self, ctx: &Context, key: &RedisString) -> Result<(), RedisError> {
        Self::ensure_type(ctx, key)?;
        ctx.open_key_writable(key)
            .set_value::<SharedScript>(&SCRIPT_TYPE, Arc::new(self))
    }
}

/// Whether the caller may wait for the loader: not inside MULTI, Lua or another
/// context that cannot block, and not while loading data or applying the master's
/// stream (those must see the value stored when the command returns).
fn can_block(ctx: &Context) -> bool {
    blocking::ensure_can_block(ctx).is_ok() && !restoring(ctx)
}

/// Whether the command comes from the AOF being loaded or the master's stream: a value
/// whose backend is missing here is then kept (without a runtime) rather than failing.
pub(super) fn restoring(ctx: &Context) -> bool {
    ctx.get_flags()
        .intersects(ContextFlags::LOADING | ContextFlags::REPLICATED)
}

/// Stores what `create` makes at the key `args[1]`: on the loader thread while the
/// client waits, or at once where the client cannot be blocked. `create` returns the
/// error reply's text (`ERR ...`) when the backend refuses.
pub(super) fn load_then_store<V, F>(ctx: &Context, args: Vec<RedisString>, create: F) -> RedisResult
where
    V: Storable,
    F: FnOnce() -> Result<V, String> + Send + 'static,
{
    if !can_block(ctx) {
        let value = create().map_err(RedisError::String)?;
        return store_now(ctx, &args, value);
    }
    let key = args
        .get(1)
        .map(|key| key.as_slice().to_vec())
        .ok_or(RedisError::WrongArity)?;
    let command = ReceivedCommand::retain(&args);
    let blocked = blocking::block(ctx, None)?;
    loader::submit(Box::new(Load {
        create,
        key,
        command,
        blocked,
        value: PhantomData,
    }));
    Ok(RedisValue::NoReply)
}

/// Stores `value` at `args[1]` now, on the main thread, and replicates the command.
pub(super) fn store_now<V: Storable>(ctx: &Context, args: &[RedisString], value: V) -> RedisResult {
    let key = args.get(1).ok_or(RedisError::WrongArity)?;
    value.write(ctx, key)?;
    ctx.replicate_verbatim();
    ctx.notify_keyspace_event(NotifyEvent::MODULE, V::EVENT, key);
    Ok(RedisValue::SimpleStringStatic("OK"))
}

/// A store command's arguments as Redis received them, kept (not copied: a model blob
/// may be large) until the store is replicated.
struct ReceivedCommand {
    args: Vec<RetainedString>,
}

impl ReceivedCommand {
    /// Call on the main thread.
    fn retain(args: &[RedisString]) -> ReceivedCommand {
        ReceivedCommand {
            args: args.iter().map(RetainedString::retain).collect(),
        }
    }

    /// Sends the command, as received, to replicas and the AOF. A reply callback may
    /// not replicate verbatim (the client it answers may be a different one by then),
    /// so the command is named explicitly.
    fn replicate(&self, ctx: &Context) {
        // SAFETY: the API table is filled at load time and only read afterwards.
        let Some(replicate) = (unsafe { raw::RedisModule_Replicate }) else {
            return;
        };
        let Some((name, rest)) = self.args.split_first() else {
            return;
        };
        let Ok(name) = CString::new(name.bytes()) else {
            return;
        };
        let rest: Vec<*mut raw::RedisModuleString> =
            rest.iter().map(RetainedString::as_ptr).collect();
        // SAFETY: the format "v" takes an array of Redis strings and its length; the
        // strings are alive (we hold a reference to each) and Redis takes its own.
        unsafe {
            replicate(
                ctx.ctx,
                name.as_ptr(),
                c"v".as_ptr(),
                rest.as_ptr(),
                rest.len(),
            );
        }
    }
}

/// A load waiting for the loader thread.
struct Load<V, F> {
    create: F,
    key: Vec<u8>,
    command: ReceivedCommand,
    blocked: BlockedClient,
    value: PhantomData<fn() -> V>,
}

impl<V, F> Job for Load<V, F>
where
    V: Storable,
    F: FnOnce() -> Result<V, String> + Send + 'static,
{
    fn run(self: Box<Self>) {
        let Load {
            create,
            key,
            command,
            blocked,
            ..
        } = *self;
        let outcome = if blocked.abandoned().load(Ordering::Relaxed) != 0 {
            // The client left (or the server is stopping): nobody would see the value.
            Err("ERR the client left before its load started".to_owned())
        } else {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(create)).unwrap_or_else(
                |payload| {
                    Err(format!(
                        "ERR internal error while loading: {}",
                        panic_message(payload.as_ref())
                    ))
                },
            )
        };
        blocked.unblock(Box::new(Stored {
            key,
            outcome,
            command,
        }));
    }

    fn cancel(self: Box<Self>, reason: &str) {
        let Load {
            key,
            command,
            blocked,
            ..
        } = *self;
        blocked.unblock(Box::new(Stored::<V> {
            key,
            outcome: Err(reason.to_owned()),
            command,
        }));
    }
}

/// A finished load, written and replied on the main thread.
struct Stored<V> {
    key: Vec<u8>,
    outcome: Result<V, String>,
    /// Released with this completion, on the main thread.
    command: ReceivedCommand,
}

impl<V: Storable> Completion for Stored<V> {
    fn reply(self: Box<Self>, ctx: &Context) -> RedisResult {
        let value = self.outcome.map_err(RedisError::String)?;
        let key = key_name(&self.key);
        value.write(ctx, &key)?;
        self.command.replicate(ctx);
        ctx.notify_keyspace_event(NotifyEvent::MODULE, V::EVENT, &key);
        Ok(RedisValue::SimpleStringStatic("OK"))
    }
}
