//! The ONNX Runtime library and the process's one ort environment.
//!
//! # Finding the library
//! [`library_path`]: the environment variable [`RUNTIME_LIB_ENV`] when set and not empty,
//! otherwise [`RUNTIME_LIB_NAME`] in the folder of the shared object this code was loaded
//! from (found with `dladdr`), so a backend folder can be copied anywhere as a unit.
//! The library is opened once per process; every later [`runtime`] call shares it.
//!
//! # BACKEND_MEMORY_LIMIT
//! ONNX Runtime has no per-process memory cap, but its BFC arena has `max_mem`: an
//! allocation that would grow the arena past it fails, and the failure comes back as an
//! error of the model load or run (never an abort). While the limit is set, the plugin
//! registers one CPU arena allocator with `max_mem` = limit on the environment
//! (`CreateAndRegisterAllocator`) and every session loaded then uses it
//! (`session.use_env_allocators`), so the limit bounds the memory that the runs of all
//! those sessions allocate together: intermediate values and outputs. The models' weights
//! (initializers, which ONNX Runtime allocates outside the arena) are bounded apart: the
//! backend counts the size of each loaded model's serialised form and refuses a load that
//! would take that total past the limit (see `backend::WEIGHTS_HELD`), so weights and
//! arena together stay under twice the limit. Not counted: input tensors (the host's
//! memory, borrowed) and ONNX Runtime's own bookkeeping. The arena keeps what it has
//! grown to for reuse, up to the limit.
//! The limit is read at each model load; when it changed, the shared arena is replaced
//! for the sessions loaded from then on (sessions already loaded keep the arena they
//! were created with). With no limit (0), sessions use ONNX Runtime's default
//! per-session arena.

use std::ffi::CStr;
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};

use ort::environment::Environment;
use ort::logging::LogLevel as OrtLogLevel;
use ort::memory::{AllocationDevice, AllocatorType, MemoryInfo, MemoryType};
use ort::AsPointer;
use redisai_plugin_api::sdk::{self, Error, LogLevel, Result, RetryOnce, RuntimeLibrary};

/// Environment variable that overrides where the runtime library is loaded from.
pub const RUNTIME_LIB_ENV: &str = "REDISAI_ONNXRUNTIME_LIB";
/// File name of the runtime library, looked up beside the plugin. The GPU variant
/// (`cuda` feature) uses the `onnxruntime-gpu` wheel's, whose newest release is 1.31.1
/// (C API 31, which is all the plugin asks for).
#[cfg(not(feature = "cuda"))]
pub const RUNTIME_LIB_NAME: &str = "libonnxruntime.so.1.32.0";
#[cfg(feature = "cuda")]
pub const RUNTIME_LIB_NAME: &str = "libonnxruntime.so.1.31.1";
/// The runtime's version, as the plugin reports it.
#[cfg(not(feature = "cuda"))]
pub const RUNTIME_VERSION: &CStr = c"1.32.0";
#[cfg(feature = "cuda")]
pub const RUNTIME_VERSION: &CStr = c"1.31.1";

/// The loaded runtime: its environment and the shared arena state.
pub struct Runtime {
    env: Environment,
    library: PathBuf,
    /// Bytes of the arena registered on the environment, if any. Model loads hold the
    /// read lock while they create their session; replacing the arena takes the write lock.
    arena_limit: RwLock<Option<u64>>,
}

static RUNTIME: RetryOnce<Runtime> = RetryOnce::new();

/// The process's runtime, loading the library on first use. A failure is not cached: a
/// later call tries again (for example once the library has been put in place).
pub fn runtime() -> Result<&'static Runtime> {
    RUNTIME.get_or_try_init(Runtime::load)
}

/// Where the runtime library is looked for (see the module docs).
pub fn library_path() -> Result<PathBuf> {
    RuntimeLibrary {
        backend: "ONNX",
        env_var: RUNTIME_LIB_ENV,
        file_name: RUNTIME_LIB_NAME,
    }
    .path()
}

impl Runtime {
    fn load() -> Result<Runtime> {
        let library = library_path()?;
        if !library.is_file() {
            return Err(Error::new(format!(
                "the ONNX Runtime library {} does not exist (it belongs beside the plugin; scripts/fetch-onnxruntime downloads it; {RUNTIME_LIB_ENV} overrides the path)",
                library.display()
            )));
        }
        // No ort::Error may be built before the library is loaded: ort would try to load
        // a default library to create it. `init_from` reports its own error type.
        let builder = ort::init_from(&library).map_err(|err| {
            Error::new(format!(
                "could not load the ONNX Runtime library {}: {err}",
                library.display()
            ))
        })?;
        let env = builder
            .with_name("redisai")
            .with_telemetry(false)
            .with_logger(Arc::new(forward_log))
            .build()
            .map_err(|err| {
                Error::new(format!(
                    "could not create the ONNX Runtime environment: {err}"
                ))
            })?;
        // The environment starts at verbose so that the logger sees everything; keep
        // warnings and errors only.
        env.set_log_level(OrtLogLevel::Warning);
        Ok(Runtime {
            env,
            library,
            arena_limit: RwLock::new(None),
        })
    }

    pub fn env(&self) -> &Environment {
        &self.env
    }

    /// The library this runtime was loaded from.
    pub fn library(&self) -> &Path {
        &self.library
    }

    /// Makes the shared arena match `limit_bytes` (None: no limit) and returns a guard to
    /// hold while a session is created; the guard tells whether sessions must use the
    /// environment's allocator.
    pub fn arena_for(&self, limit_bytes: Option<u64>) -> Result<ArenaGuard<'_>> {
        loop {
            let current = self
                .arena_limit
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            if *current == limit_bytes {
                return Ok(ArenaGuard { limit: current });
            }
            drop(current);
            let mut current = self
                .arena_limit
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            if *current != limit_bytes {
                // The state follows each step, so a failure leaves it true.
                if current.is_some() {
                    unregister_env_arena(&self.env)?;
                    *current = None;
                }
                if let Some(limit) = limit_bytes {
                    register_env_arena(&self.env, limit)?;
                    *current = Some(limit);
                }
            }
        }
    }
}

impl Runtime {
    /// The BACKEND_MEMORY_LIMIT in bytes (`None`: no limit, hence no shared arena).
    pub fn arena_limit(&self) -> Option<u64> {
        *self
            .arena_limit
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Bytes the BACKEND_MEMORY_LIMIT arena holds now (what it reserved from the
    /// system, in use or not) and its limit; `None` when no limit (hence no shared arena)
    /// is set, or ONNX Runtime cannot say. (ONNX Runtime 1.32 gives no statistics for an
    /// arena registered on the environment: `AllocatorGetStats` answers no entries.)
    pub fn arena_held(&self) -> Option<(u64, u64)> {
        let current = self
            .arena_limit
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let limit = (*current)?;
        let info = cpu_arena_info().ok()?;
        let api = ort::api();
        let mut allocator: *mut ort::sys::OrtAllocator = ptr::null_mut();
        // SAFETY: the environment and `info` are live for the call; `allocator` is a valid
        // out-pointer. The shared allocator belongs to the environment (not released here)
        // and stays registered while the read lock is held.
        let status = unsafe {
            (api.GetSharedAllocator)(self.env.ptr().cast_mut(), info.ptr(), &mut allocator)
        };
        check(status, "could not find the BACKEND_MEMORY_LIMIT arena").ok()?;
        if allocator.is_null() {
            return None;
        }
        let mut pairs: *mut ort::sys::OrtKeyValuePairs = ptr::null_mut();
        // SAFETY: a live allocator and a valid out-pointer.
        let status = unsafe { (api.AllocatorGetStats)(allocator, &mut pairs) };
        check(status, "could not read the arena's statistics").ok()?;
        if pairs.is_null() {
            return None;
        }
        // SAFETY: `pairs` is live until released below; the value (a NUL-terminated
        // string owned by `pairs`) is copied before that.
        let total = unsafe {
            let value = (api.GetKeyValue)(pairs, c"TotalAllocated".as_ptr());
            let total = if value.is_null() {
                None
            } else {
                std::ffi::CStr::from_ptr(value)
                    .to_str()
                    .ok()
                    .and_then(|text| text.parse::<u64>().ok())
            };
            (api.ReleaseKeyValuePairs)(pairs);
            total
        };
        Some((total?, limit))
    }
}

/// Held while a session is created (see [`Runtime::arena_for`]).
pub struct ArenaGuard<'a> {
    limit: RwLockReadGuard<'a, Option<u64>>,
}

impl ArenaGuard<'_> {
    /// Whether sessions created now must use the environment's (limited) arena.
    pub fn use_env_allocators(&self) -> bool {
        self.limit.is_some()
    }
}

/// Checks a raw ONNX Runtime status.
fn check(status: ort::sys::OrtStatusPtr, what: &str) -> Result<()> {
    // SAFETY: `status` was just returned by an ONNX Runtime API call; this takes
    // ownership of it (it is released when the ort error is dropped).
    unsafe { ort::Error::result_from_status(status) }
        .map_err(|err| Error::new(format!("{what}: {err}")))
}

fn cpu_arena_info() -> Result<MemoryInfo<'static>> {
    MemoryInfo::new(
        AllocationDevice::CPU,
        0,
        AllocatorType::Arena,
        MemoryType::Default,
    )
    .map_err(|err| Error::new(format!("could not describe the CPU arena: {err}")))
}

/// Removes the CPU arena registered on the environment.
fn unregister_env_arena(env: &Environment) -> Result<()> {
    let info = cpu_arena_info()?;
    // SAFETY: the environment and `info` are live ONNX Runtime objects for the call;
    // sessions that use the old allocator keep it alive through their own reference.
    let status = unsafe { (ort::api().UnregisterAllocator)(env.ptr().cast_mut(), info.ptr()) };
    check(
        status,
        "could not remove the previous BACKEND_MEMORY_LIMIT arena",
    )
}

/// Registers a CPU arena with `max_mem` = `limit_bytes` on the environment.
fn register_env_arena(env: &Environment, limit_bytes: u64) -> Result<()> {
    let api = ort::api();
    let info = cpu_arena_info()?;
    let max_mem = usize::try_from(limit_bytes).unwrap_or(usize::MAX);
    let keys = [c"max_mem".as_ptr(), c"arena_extend_strategy".as_ptr()];
    // arena_extend_strategy 1 = kSameAsRequested: grow by what is asked, so the arena
    // does not reserve power-of-two chunks that overshoot a small limit.
    let values: [usize; 2] = [max_mem, 1];
    let mut cfg: *mut ort::sys::OrtArenaCfg = ptr::null_mut();
    // SAFETY: `keys` and `values` are arrays of the stated length that outlive the call;
    // `cfg` is a valid out-pointer.
    let status =
        unsafe { (api.CreateArenaCfgV2)(keys.as_ptr(), values.as_ptr(), keys.len(), &mut cfg) };
    check(status, "could not configure the BACKEND_MEMORY_LIMIT arena")?;
    // SAFETY: the environment, `info` and `cfg` are live for the call; ONNX Runtime copies
    // what it needs from `cfg`.
    let status = unsafe { (api.CreateAndRegisterAllocator)(env.ptr().cast_mut(), info.ptr(), cfg) };
    // SAFETY: `cfg` was created above, is released once, and is not used afterwards.
    unsafe { (api.ReleaseArenaCfg)(cfg) };
    check(status, "could not register the BACKEND_MEMORY_LIMIT arena")
}

/// ONNX Runtime's log lines go to the Redis log (to stderr before the host is known).
fn forward_log(level: OrtLogLevel, category: &str, _id: &str, location: &str, message: &str) {
    let (level, name) = match level {
        OrtLogLevel::Verbose => (LogLevel::Debug, "verbose"),
        OrtLogLevel::Info => (LogLevel::Verbose, "info"),
        OrtLogLevel::Warning => (LogLevel::Warning, "warning"),
        OrtLogLevel::Error => (LogLevel::Warning, "error"),
        OrtLogLevel::Fatal => (LogLevel::Warning, "fatal"),
    };
    let message = message.trim_end();
    let line = if location.is_empty() {
        format!("onnxruntime {name} [{category}]: {message}")
    } else {
        format!("onnxruntime {name} [{category}] {location}: {message}")
    };
    match sdk::host() {
        Some(host) => host.log(level, &line),
        None if level == LogLevel::Warning => eprintln!("{line}"),
        None => {}
    }
}
