//! Opening TensorFlow's libraries in a link namespace of their own (`dlmopen`).
//!
//! Why: `libtensorflow_framework.so.2` exports the zlib, BoringSSL and zstd it bundles and
//! calls them through those exported names. Opened the usual way inside redis-server, whose
//! executable exports a `zcalloc` of its own (with another signature) and which has
//! OpenSSL 3 and libzstd loaded, TensorFlow's calls bind to Redis's functions first (the
//! global scope comes before a library's own): a graph that inflates a zlib stream crashes
//! the server. `RTLD_DEEPBIND` is no way out (Redis aborts with it). A new namespace
//! (`LM_ID_NEWLM`) has its own global scope, with its own copy of libc, libstdc++ and
//! libgcc_s: the host's symbols are invisible to TensorFlow and TensorFlow's to the host.
//!
//! Two copies of libc in one process share the dynamic loader, the threads and their
//! descriptors, but not their books. What follows from it, and how this crate keeps to it:
//! - Nothing allocated on one side is freed on the other (each side has its own `malloc`):
//!   tensors are created and deleted with TensorFlow's functions, and data is copied across.
//! - Thread-specific data keys (`pthread_key_create`) are numbered by each libc from 0, but
//!   the values live in the thread's descriptor, shared: the host's key 0 and TensorFlow's
//!   key 0 would be one slot (absl's per-thread state then overwrites jemalloc's and the
//!   other way round, and Redis aborts). The namespace's libc is made to hand out its first
//!   [`RESERVED_KEYS`] keys at once, never used by TensorFlow, so TensorFlow's keys lie
//!   above any the host will make (their destructors mirror the host's: see below).
//! - Above key 31 a libc keeps the values in blocks it allocates, and the libc that made a
//!   thread frees them when the thread exits: a host thread that ran TensorFlow code would
//!   hand TensorFlow's blocks to the host's `free`. So no host thread runs TensorFlow code:
//!   every call goes to threads made by the namespace's own `pthread_create` (see
//!   [`super::threads`]), which never exit.
//! - TensorFlow's libc reads its own copy of the environment, taken when the namespace is
//!   made; variables for TensorFlow are set with *that* libc's `setenv`, so the host's
//!   environment is never written (no `setenv` racing other threads of the host).
//! - The dynamic loader is shared, and it allocates with the *host's* `malloc` (after
//!   startup `ld.so` uses the main program's `malloc`: jemalloc in Debian's redis-server,
//!   which links libjemalloc): every thread's DTV and the dynamic TLS blocks of libraries
//!   opened later (TensorFlow's `thread_local`s, made on first use by `__tls_get_addr`)
//!   come from it, on TensorFlow's threads too. jemalloc ties its per-thread state (its
//!   `tsd` and thread cache, which live in the thread's static TLS, on its stack, and are
//!   linked into jemalloc's global lists) to a key of the host's libc, whose destructor
//!   unlinks it when the thread exits. But a thread made by the namespace's libc runs, at
//!   its exit, only the destructors of the *namespace* libc's keys: when one of
//!   TensorFlow's threads ended (MatchingFiles runs a temporary `ForEach` thread pool),
//!   jemalloc's lists kept pointing into its unmapped or reused stack, and the next thread
//!   start, allocation or statistics merge (Redis's `serverCron`) walked freed memory: a
//!   SIGSEGV in jemalloc within seconds. Reproduced in this crate's tests
//!   (`tests/thread_exit.rs`, jemalloc preloaded: SIGSEGV after one MatchingFiles run, in
//!   jemalloc's `malloc` called from `__tls_get_addr` on a new `tf_ForEach` thread; still
//!   so with glibc's stack cache off, so stack reuse is not the cause). So each reserved
//!   key (below) gets a *mirror* destructor: the namespace's key `k` runs the host's
//!   destructor of the host's key `k` (read from the host libc's `__pthread_keys` when it
//!   runs, and only while the host's key is in its first life, as the namespace's is), so
//!   a TensorFlow thread that ends releases the host's per-thread state as a host thread
//!   would. With glibc's `malloc` as the host's there is no such key, and an ended
//!   TensorFlow thread leaves its host thread cache behind (a leak, not a corruption:
//!   glibc frees it only from the host libc's own thread exit).
//! - Thread stacks: both libcs keep the stacks of ended threads in one cache, in the
//!   dynamic loader's shared state, and a `pthread_create` reuses a cached stack of a
//!   fitting size (at least the size asked for, at most four times it), freeing the
//!   dynamic TLS blocks the previous thread left in it with its *own* `free`. Those blocks
//!   come from the loader's `malloc`, the host's (above): the namespace's libc taking a
//!   cached stack would hand host blocks to its own `free` ("free(): invalid pointer"; seen
//!   once ONNX Runtime had ended 8 MiB-stack threads before TensorFlow started its own). So
//!   the namespace's libc is given a default stack size of [`STACK_SIZE`] (its
//!   `pthread_setattr_default_np`): its threads never ask for a size the host's stacks
//!   (8 MiB by default, 2 MiB for Rust threads) can satisfy, and their stacks are too big
//!   for the host's default requests. And 64 MiB is above the cache's limit (40 MiB unless
//!   the `glibc.pthread.stack_cache_size` tunable says more): the stack of a joined
//!   TensorFlow thread is unmapped as soon as it is queued, its TLS freed by the loader's
//!   (the right) `free`, so the namespace's libc never finds one of its own in the cache
//!   either (under gdb: 66 `get_cached_stack` calls in 20 MatchingFiles runs, none freeing
//!   a block). That left a window: a *detached* thread of the namespace queues its stack
//!   while still running on it, so that stack stays cached until the next thread exit
//!   trims the cache, and a `pthread_create` of the namespace in that window would free its
//!   blocks with the wrong `free` (tsl's `Env::SchedClosure` starts detached threads). So
//!   the namespace's first object is a threads shim (`threads_shim.c`, built by build.rs,
//!   embedded in the plugin and opened from a memfd), ahead of its libc in the namespace's
//!   global scope: it interposes `pthread_create` for everything loaded there and gives
//!   each thread a stack it maps itself (`pthread_attr_setstack`). glibc never caches a
//!   user-provided stack and never hands one out: the thread's TLS is freed by the
//!   loader's `free` when it is joined, and the shim unmaps the stack once a join tells
//!   the kernel is done with it (threads are kept joinable underneath; one created or
//!   made detached is joined by the shim, with `pthread_tryjoin_np`, at a later create or
//!   detach once it has ended). So no thread TensorFlow starts ever takes a cached stack.
//!   Left outside: threads glibc starts internally for the namespace (`SIGEV_THREAD`
//!   timers, `mq_notify`, asynchronous I/O), which TensorFlow's kernels do not use; and a
//!   system where a memfd cannot be mapped executable (`vm.memfd_noexec=2`), where the
//!   namespace is made without the shim and only the stack size guards.
//!   The cost of the stack size is address space, not memory.
//! - BACKEND_MEMORY_LIMIT: the same first object (`memory_shim.c`, linked with the threads
//!   shim) interposes `malloc` & co. for the namespace, counts what TensorFlow holds and
//!   refuses the `posix_memalign` TensorFlow makes its tensors with past the limit (see
//!   [`set_memory_limit`], [`memory`]). Without the shim nothing is counted or bounded.
//! - glibc has room for 16 namespaces: the plugin makes one per process, reused when a
//!   failed load is retried, and never closes it.
//! - A `fork` (Redis's BGSAVE) runs only the host libc's fork handlers: the child must not
//!   call TensorFlow (the core's child never does).

mod keys;
#[cfg(test)]
mod tests;

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Mutex, PoisonError};

use keys::{host_key_table, HOST_KEYS, MIRRORS};

/// Thread-specific data keys the namespace's libc hands out (and forgets) before TensorFlow
/// is loaded: the host's keys must stay below this. glibc has 1024 keys per libc.
pub const RESERVED_KEYS: usize = 256;

/// The default stack size of threads made by the namespace's libc (TensorFlow's, and the
/// plugin's `tf-call` threads), 64 MiB: see the module docs (thread stacks). A cached host
/// stack is reused for it only if it is 64 to 256 MiB; one of these is reused by the host
/// only for a request of 16 MiB or more.
pub const STACK_SIZE: usize = 64 << 20;

/// A `dlopen` handle; never closed.
#[derive(Clone, Copy)]
pub struct Handle(*mut c_void);

// SAFETY: a dlopen handle is an opaque token that dlsym accepts from any thread.
unsafe impl Send for Handle {}
// SAFETY: as above.
unsafe impl Sync for Handle {}

/// `pthread_create` of the namespace's libc.
pub type PthreadCreate = unsafe extern "C" fn(
    *mut libc::pthread_t,
    *const libc::pthread_attr_t,
    extern "C" fn(*mut c_void) -> *mut c_void,
    *mut c_void,
) -> c_int;
/// `pthread_detach` of the namespace's libc.
pub type PthreadDetach = unsafe extern "C" fn(libc::pthread_t) -> c_int;

/// `redisai_tf_threads_counts` of the threads shim.
type ShimCounts = unsafe extern "C" fn(*mut u64, *mut u64);

/// `redisai_tf_memory_set_limit` of the memory shim (memory_shim.c).
type ShimSetLimit = unsafe extern "C" fn(u64);
/// `redisai_tf_memory_stats` of the memory shim: held, peak, limit, refused.
type ShimMemoryStats = unsafe extern "C" fn(*mut u64, *mut u64, *mut u64, *mut u64);

/// The memory shim's functions (see memory_shim.c): the namespace's counting allocator.
#[derive(Clone, Copy)]
struct MemoryShim {
    set_limit: ShimSetLimit,
    stats: ShimMemoryStats,
}

/// What the memory shim counts in TensorFlow's namespace (bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NamespaceMemory {
    /// Bytes the namespace's allocations hold now.
    pub held: u64,
    /// The highest `held` so far.
    pub peak: u64,
    /// BACKEND_MEMORY_LIMIT in bytes (0: none).
    pub limit: u64,
    /// Tensor allocations the limit refused so far.
    pub refused: u64,
}

/// The namespace TensorFlow lives in, and what its libc offers (`pthread_create` and
/// `pthread_detach` are the threads shim's, when it is there).
#[derive(Clone, Copy)]
pub struct Namespace {
    id: libc::Lmid_t,
    pub pthread_create: PthreadCreate,
    pub pthread_detach: PthreadDetach,
    shim_counts: Option<ShimCounts>,
    memory: Option<MemoryShim>,
}

impl Namespace {
    /// The threads shim's counts: threads made on stacks of its own, and those stacks
    /// unmapped after their thread ended. None without the shim.
    pub fn thread_stacks(&self) -> Option<(u64, u64)> {
        let counts = self.shim_counts?;
        let (mut made, mut unmapped) = (0u64, 0u64);
        // SAFETY: the shim's function, with two valid out-pointers.
        unsafe { counts(&mut made, &mut unmapped) };
        Some((made, unmapped))
    }
}

/// The threads shim (src/ffi/threads_shim.c, built by build.rs).
static THREADS_SHIM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/libredisai_tf_threads.so"));

/// Opens the threads shim as the first object of a new namespace, from a memfd (nothing to
/// ship beside the plugin, no file left behind). Err when it cannot be (no memfd, or one
/// that may not be mapped executable): the namespace is then made without it.
fn open_shim() -> Result<Handle, String> {
    // SAFETY: a NUL-terminated name and flags; the fd is owned here and closed below.
    let fd = unsafe { libc::memfd_create(c"redisai_tf_threads".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(format!("memfd_create: {}", std::io::Error::last_os_error()));
    }
    let result = (|| {
        let mut written = 0;
        while written < THREADS_SHIM.len() {
            let rest = &THREADS_SHIM[written..];
            // SAFETY: writes from a live slice of `rest.len()` bytes to our fd.
            let n = unsafe { libc::write(fd, rest.as_ptr().cast(), rest.len()) };
            if n <= 0 {
                return Err(format!(
                    "writing the threads shim: {}",
                    std::io::Error::last_os_error()
                ));
            }
            written += n as usize;
        }
        let path = CString::new(format!("/proc/self/fd/{fd}")).expect("no NUL");
        // SAFETY: dlmopen takes a NUL-terminated path; the shim's initialiser only looks up
        // the functions it wraps, inside the new namespace (the C library it depends on is
        // opened there too).
        let handle = unsafe {
            libc::dlmopen(
                libc::LM_ID_NEWLM,
                path.as_ptr(),
                libc::RTLD_NOW | libc::RTLD_LOCAL,
            )
        };
        if handle.is_null() {
            return Err(dl_error());
        }
        let handle = Handle(handle);
        type Ready = unsafe extern "C" fn() -> c_int;
        // SAFETY: the shim's function of that name and C signature.
        let ready = unsafe {
            std::mem::transmute::<*mut c_void, Ready>(symbol(handle, c"redisai_tf_threads_ready")?)
        };
        // SAFETY: no preconditions.
        if unsafe { ready() } == 0 {
            return Err("the threads shim did not find the functions it wraps".to_owned());
        }
        Ok(handle)
    })();
    // SAFETY: our fd, closed once; the mapping made by dlmopen stays.
    unsafe { libc::close(fd) };
    result
}

static NAMESPACE: Mutex<Option<Namespace>> = Mutex::new(None);

/// Sets BACKEND_MEMORY_LIMIT (bytes, 0: none) in the memory shim; false when there is no
/// shim (no namespace yet, or one made without it), so nothing is bounded.
pub fn set_memory_limit(bytes: u64) -> bool {
    let namespace = *NAMESPACE.lock().unwrap_or_else(PoisonError::into_inner);
    match namespace.and_then(|n| n.memory) {
        Some(memory) => {
            // SAFETY: the shim's function; a plain integer stored atomically.
            unsafe { (memory.set_limit)(bytes) };
            true
        }
        None => false,
    }
}

/// What the memory shim counts now; None without it.
pub fn memory() -> Option<NamespaceMemory> {
    let namespace = *NAMESPACE.lock().unwrap_or_else(PoisonError::into_inner);
    let memory = namespace?.memory?;
    let (mut held, mut peak, mut limit, mut refused) = (0, 0, 0, 0);
    // SAFETY: the shim's function, with four valid out-pointers; atomic loads only.
    unsafe { (memory.stats)(&mut held, &mut peak, &mut limit, &mut refused) };
    Some(NamespaceMemory {
        held,
        peak,
        limit,
        refused,
    })
}

/// The threads shim's counts for the process's namespace (see [`Namespace::thread_stacks`]):
/// None before the namespace is made or without the shim.
pub fn thread_stacks() -> Option<(u64, u64)> {
    let namespace = *NAMESPACE.lock().unwrap_or_else(PoisonError::into_inner);
    namespace?.thread_stacks()
}

/// The memory shim's functions, when it found the allocator functions it wraps.
fn memory_shim(handle: Handle) -> Option<MemoryShim> {
    type Ready = unsafe extern "C" fn() -> c_int;
    // SAFETY: each symbol is the shim's function of that name, and the type its C
    // signature (one function pointer type transmuted to another of the same size).
    unsafe {
        let ready = std::mem::transmute::<*mut c_void, Ready>(
            symbol(handle, c"redisai_tf_memory_ready").ok()?,
        );
        if ready() == 0 {
            return None;
        }
        Some(MemoryShim {
            set_limit: std::mem::transmute::<*mut c_void, ShimSetLimit>(
                symbol(handle, c"redisai_tf_memory_set_limit").ok()?,
            ),
            stats: std::mem::transmute::<*mut c_void, ShimMemoryStats>(
                symbol(handle, c"redisai_tf_memory_stats").ok()?,
            ),
        })
    }
}

/// The text of the last dynamic-loader error of this thread.
fn dl_error() -> String {
    // SAFETY: dlerror returns null or a NUL-terminated string valid until the next dl*
    // call on this thread; it is copied at once.
    let text = unsafe { libc::dlerror() };
    if text.is_null() {
        "unknown dynamic loader error".to_owned()
    } else {
        // SAFETY: see above.
        unsafe { CStr::from_ptr(text) }
            .to_string_lossy()
            .into_owned()
    }
}

fn c_path(path: &Path) -> Result<CString, String> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| format!("the path {} contains a NUL byte", path.display()))
}

/// The process's TensorFlow namespace, made on first use: a new namespace holding a libc
/// of its own, with its low thread-specific data keys reserved and `environment` set in
/// its environment (without overriding what the host's environment already set).
pub fn namespace(environment: &[(&CStr, &CStr)]) -> Result<Namespace, String> {
    let mut slot = NAMESPACE.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(namespace) = *slot {
        return Ok(namespace);
    }
    // The threads shim first (see the module docs, thread stacks), with the C library it
    // depends on; the C library alone where the shim cannot be opened.
    let shim = open_shim();
    let libc_handle = match shim {
        Ok(handle) => handle.0,
        // SAFETY: dlmopen takes a NUL-terminated name; opening the C library runs only its
        // own initialisers, inside the new namespace.
        Err(_) => unsafe {
            libc::dlmopen(
                libc::LM_ID_NEWLM,
                c"libc.so.6".as_ptr(),
                libc::RTLD_NOW | libc::RTLD_LOCAL,
            )
        },
    };
    if libc_handle.is_null() {
        return Err(format!(
            "could not create a link namespace for TensorFlow (dlmopen of libc.so.6): {}",
            dl_error()
        ));
    }
    let handle = Handle(libc_handle);
    let shim_counts = match shim {
        // SAFETY: the shim's function of that name and C signature.
        Ok(_) => unsafe {
            symbol(handle, c"redisai_tf_threads_counts")
                .ok()
                .map(|f| std::mem::transmute::<*mut c_void, ShimCounts>(f))
        },
        Err(_) => None,
    };
    let memory = match shim {
        Ok(_) => memory_shim(handle),
        Err(_) => None,
    };
    let mut id: libc::Lmid_t = 0;
    // SAFETY: RTLD_DI_LMID writes one Lmid_t through the pointer, which is valid.
    let found = unsafe {
        libc::dlinfo(
            libc_handle,
            libc::RTLD_DI_LMID,
            (&mut id as *mut libc::Lmid_t).cast(),
        )
    };
    if found != 0 {
        return Err(format!(
            "could not read the id of TensorFlow's link namespace: {}",
            dl_error()
        ));
    }
    type KeyCreate = unsafe extern "C" fn(
        *mut libc::pthread_key_t,
        Option<unsafe extern "C" fn(*mut c_void)>,
    ) -> c_int;
    type Setenv = unsafe extern "C" fn(*const c_char, *const c_char, c_int) -> c_int;
    // SAFETY: each symbol is the libc function of that name, and the type its C signature
    // (one function pointer type transmuted to another of the same size).
    let (key_create, setenv, pthread_create, pthread_detach) = unsafe {
        (
            std::mem::transmute::<*mut c_void, KeyCreate>(symbol(handle, c"pthread_key_create")?),
            std::mem::transmute::<*mut c_void, Setenv>(symbol(handle, c"setenv")?),
            std::mem::transmute::<*mut c_void, PthreadCreate>(symbol(handle, c"pthread_create")?),
            std::mem::transmute::<*mut c_void, PthreadDetach>(symbol(handle, c"pthread_detach")?),
        )
    };
    let host_keys = host_key_table();
    for index in 0..RESERVED_KEYS {
        let mut key: libc::pthread_key_t = 0;
        // The namespace's libc hands out keys from 0 in order: key `index` is the host's
        // key `index`, whose destructor the mirror runs (see the module docs).
        let destructor = host_keys.map(|_| MIRRORS[index / 16][index % 16]);
        // SAFETY: a valid out-pointer; the destructor (if any) is a mirror, which runs the
        // host's destructor of the same key. The key is never used or deleted.
        let failed = unsafe { key_create(&mut key, destructor) };
        if failed != 0 {
            return Err(format!(
                "could not reserve thread-specific data keys in TensorFlow's link namespace (error {failed})"
            ));
        }
        if key as usize != index {
            return Err(format!(
                "TensorFlow's link namespace handed out thread-specific data key {key} where {index} was expected"
            ));
        }
    }
    if let Some(table) = host_keys {
        HOST_KEYS.store(table, Ordering::Release);
    }
    set_default_stack_size(handle)?;
    for (name, value) in environment {
        // SAFETY: NUL-terminated strings; this setenv changes only the environment of the
        // namespace's own libc, which nothing else uses yet.
        unsafe { setenv(name.as_ptr(), value.as_ptr(), 0) };
    }
    let namespace = Namespace {
        id,
        pthread_create,
        pthread_detach,
        shim_counts,
        memory,
    };
    *slot = Some(namespace);
    Ok(namespace)
}

/// Makes [`STACK_SIZE`] the default stack size of the namespace's libc.
fn set_default_stack_size(libc_handle: Handle) -> Result<(), String> {
    type AttrFn = unsafe extern "C" fn(*mut libc::pthread_attr_t) -> c_int;
    type SetStackSize = unsafe extern "C" fn(*mut libc::pthread_attr_t, libc::size_t) -> c_int;
    type SetDefault = unsafe extern "C" fn(*const libc::pthread_attr_t) -> c_int;
    // SAFETY: each symbol is the namespace libc's function of that name, and the type its
    // C signature.
    let (init, destroy, set_stack_size, set_default) = unsafe {
        (
            std::mem::transmute::<*mut c_void, AttrFn>(symbol(libc_handle, c"pthread_attr_init")?),
            std::mem::transmute::<*mut c_void, AttrFn>(symbol(
                libc_handle,
                c"pthread_attr_destroy",
            )?),
            std::mem::transmute::<*mut c_void, SetStackSize>(symbol(
                libc_handle,
                c"pthread_attr_setstacksize",
            )?),
            std::mem::transmute::<*mut c_void, SetDefault>(symbol(
                libc_handle,
                c"pthread_setattr_default_np",
            )?),
        )
    };
    // SAFETY: a pthread_attr_t is plain storage that pthread_attr_init initialises; it is
    // used by the same libc only, and destroyed once.
    let failed = unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        let mut failed = init(&mut attr);
        if failed == 0 {
            failed = set_stack_size(&mut attr, STACK_SIZE);
            if failed == 0 {
                failed = set_default(&attr);
            }
            destroy(&mut attr);
        }
        failed
    };
    if failed != 0 {
        return Err(format!(
            "could not set the default thread stack size in TensorFlow's link namespace (error {failed})"
        ));
    }
    Ok(())
}

/// Opens the libraries at `paths`, in order, in `namespace`. Returns the handle of the last
/// one. Call it on one of the namespace's threads: the libraries' initialisers run on it.
pub fn open(namespace: &Namespace, paths: &[&Path]) -> Result<Handle, String> {
    let mut last = None;
    for path in paths {
        let name = c_path(path)?;
        // SAFETY: dlmopen takes a NUL-terminated path. The library's initialisers run here,
        // inside TensorFlow's namespace, where they set up TensorFlow's own state.
        let handle = unsafe {
            libc::dlmopen(
                namespace.id,
                name.as_ptr(),
                libc::RTLD_NOW | libc::RTLD_LOCAL,
            )
        };
        if handle.is_null() {
            return Err(format!("could not load {}: {}", path.display(), dl_error()));
        }
        last = Some(Handle(handle));
    }
    last.ok_or_else(|| "no library to open".to_owned())
}

/// The address of `name` in `handle` (its object or one it depends on).
///
/// # Safety
/// The caller must use the address only as what the symbol really is.
pub unsafe fn symbol(handle: Handle, name: &CStr) -> Result<*mut c_void, String> {
    // SAFETY: a handle from dlmopen and a NUL-terminated name. Clearing dlerror first
    // tells a missing symbol from one whose value is null.
    let address = unsafe {
        libc::dlerror();
        libc::dlsym(handle.0, name.as_ptr())
    };
    if address.is_null() {
        return Err(format!("{}: {}", name.to_string_lossy(), dl_error()));
    }
    Ok(address)
}
