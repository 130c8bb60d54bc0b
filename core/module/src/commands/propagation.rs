//! Whether what a command propagates is read by anything.
//!
//! Redis hands a module's `RedisModule_Replicate` to the AOF when it is on, and to the
//! replication stream when this server is a master that has replicas or keeps a backlog
//! for them; otherwise it drops it. A run's output is propagated as `AI.TENSORSET ...
//! BLOB`, which copies the whole tensor into a Redis string first: for a large output
//! with nobody to read it, that copy is the main thread's biggest cost after the socket.

use std::ffi::{c_int, CStr};

use redis_module::{raw, Context, ContextFlags};

/// Below this many bytes the copy costs less than asking (one INFO section).
pub const WORTH_ASKING_BYTES: usize = 64 * 1024;

/// False only when Redis would drop a propagated command: no AOF, and no replica and no
/// replication backlog. True whenever that cannot be read.
pub fn is_read(ctx: &Context) -> bool {
    if ctx.get_flags().contains(ContextFlags::AOF) {
        return true;
    }
    // SAFETY: the API table is filled at load time and only read afterwards.
    let (get, field, free) = match unsafe {
        (
            raw::RedisModule_GetServerInfo,
            raw::RedisModule_ServerInfoGetFieldUnsigned,
            raw::RedisModule_FreeServerInfo,
        )
    } {
        (Some(get), Some(field), Some(free)) => (get, field, free),
        _ => return true,
    };
    // SAFETY: `ctx` is the live context of a command or reply callback on the main
    // thread; the data is freed below.
    let info = unsafe { get(ctx.ctx, c"replication".as_ptr()) };
    if info.is_null() {
        return true;
    }
    let nonzero_or_unknown = |name: &CStr| {
        let mut failed: c_int = 0;
        // SAFETY: `info` is live; the field name is NUL-terminated.
        let value = unsafe { field(info, name.as_ptr(), &mut failed) };
        failed != 0 || value != 0
    };
    let read =
        nonzero_or_unknown(c"connected_slaves") || nonzero_or_unknown(c"repl_backlog_active");
    // SAFETY: freed once, after the last read.
    unsafe { free(ctx.ctx, info) };
    read
}
