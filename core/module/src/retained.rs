//! Command arguments kept alive as tensor data, so AI.TENSORSET ... BLOB stores the
//! bytes Redis already received instead of copying them.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::thread::ThreadId;

use redis_module::{raw, RedisString};
use redisai_engine::tensor::ByteSource;

static MAIN_THREAD: OnceLock<ThreadId> = OnceLock::new();
static SHUTTING_DOWN: AtomicBool = AtomicBool::new(false);

/// Records Redis's main thread; call once from the module's load function.
pub fn set_main_thread() {
    let _ = MAIN_THREAD.set(std::thread::current().id());
}

pub fn on_main_thread() -> bool {
    MAIN_THREAD.get() == Some(&std::thread::current().id())
}

thread_local! {
    /// Whether this thread holds Redis's lock (a script's `redis.execute` on a worker).
    static HOLDS_REDIS_LOCK: Cell<bool> = const { Cell::new(false) };
}

/// Tells [`RetainedString`] that this thread has taken (`true`) or given back
/// (`false`) Redis's lock. A string released while the lock is held (a tensor that a
/// script's `redis.execute("SET", ...)` overwrites) is freed directly: the lock is not
/// reentrant, and taking it again would deadlock the worker and with it Redis.
pub fn set_holds_redis_lock(held: bool) {
    HOLDS_REDIS_LOCK.with(|flag| flag.set(held));
}

fn holds_redis_lock() -> bool {
    HOLDS_REDIS_LOCK.with(Cell::get)
}

/// After this, strings released off the main thread are leaked instead of taking
/// Redis's lock, which the main thread may hold while it waits for our workers.
pub fn set_shutting_down() {
    SHUTTING_DOWN.store(true, Ordering::SeqCst);
}

/// A Redis string whose reference we hold. Redis strings are not atomically
/// reference counted, so the reference is only ever released under Redis's lock.
pub struct RetainedString {
    inner: *mut raw::RedisModuleString,
    ptr: *const u8,
    len: usize,
}

// SAFETY: the bytes are immutable while we hold a reference (`retain` does the one
// reallocation Redis would make, before any other thread sees them; Redis never modifies a
// string object shared by several owners), and the reference is released under the
// Redis lock (see Drop).
unsafe impl Send for RetainedString {}
// SAFETY: as above; shared access only reads the bytes.
unsafe impl Sync for RetainedString {}

impl RetainedString {
    /// Takes a reference to `string`; call on the main thread, before the string can be
    /// seen by another thread.
    ///
    /// When a module command returns, Redis trims the spare room of every argument the
    /// module retained (`trimStringObjectIfNeeded` in `RedisModuleCommandDispatcher`, in
    /// Redis 7.0 and Valkey 8): a large argument read straight from the query buffer is
    /// reallocated, and a pointer taken before then would dangle, or be read by a worker
    /// while it moves. Trimming it here first, while nothing else reads it, makes that
    /// later trim a no-op, so the pointer taken below stays valid.
    pub fn retain(string: &RedisString) -> RetainedString {
        let inner = string.inner;
        raw::string_retain_string(std::ptr::null_mut(), inner);
        // SAFETY: the API table is filled at load time; on the main thread, no other
        // thread holds this string yet.
        if let Some(trim) = unsafe { raw::RedisModule_TrimStringAllocation } {
            // SAFETY: as above; `inner` is a live string.
            unsafe { trim(inner) };
        }
        let mut len = 0;
        let ptr = raw::string_ptr_len(inner, &mut len).cast::<u8>();
        RetainedString { inner, ptr, len }
    }

    /// The Redis string itself, for module API calls that take one (e.g. to replicate
    /// it); valid while `self` lives.
    pub fn as_ptr(&self) -> *mut raw::RedisModuleString {
        self.inner
    }
}

impl ByteSource for RetainedString {
    fn bytes(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: `ptr` and `len` describe the string's buffer, alive while we hold it.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for RetainedString {
    fn drop(&mut self) {
        // SAFETY: the API table is filled at load time and only read afterwards.
        let free = unsafe { raw::RedisModule_FreeString };
        let Some(free) = free else { return };
        if on_main_thread() || holds_redis_lock() {
            // SAFETY: we own one reference, released once, on the main thread or on a
            // thread that holds Redis's lock.
            unsafe { free(std::ptr::null_mut(), self.inner) };
            return;
        }
        // SAFETY: the thread-safe context functions are part of the module API; the
        // lock serialises this release with the main thread.
        unsafe {
            let (Some(get), Some(try_lock), Some(unlock), Some(release)) = (
                raw::RedisModule_GetThreadSafeContext,
                raw::RedisModule_ThreadSafeContextTryLock,
                raw::RedisModule_ThreadSafeContextUnlock,
                raw::RedisModule_FreeThreadSafeContext,
            ) else {
                return;
            };
            let ctx = get(std::ptr::null_mut());
            // The shutdown handler holds the lock while it joins the workers: a worker
            // waiting for the lock there would never be joined. So the lock is only
            // tried, and once shutdown has begun the string is left to the exiting
            // process.
            let mut pause = std::time::Duration::from_micros(20);
            loop {
                if SHUTTING_DOWN.load(Ordering::SeqCst) {
                    // The context, too, is left: freeing it touches the server's
                    // client books, which only the lock's holder may.
                    return;
                }
                if try_lock(ctx) == raw::REDISMODULE_OK as std::ffi::c_int {
                    break;
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(1));
            }
            free(std::ptr::null_mut(), self.inner);
            unlock(ctx);
            release(ctx);
        }
    }
}
