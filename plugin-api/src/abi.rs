//! The C ABI between the redisai-rs core (the host) and a backend plugin.
//!
//! `include/redisai_plugin.h` is generated from this file (see `tests/header.rs`); C
//! plugins include that header, Rust plugins use [`crate::sdk`].
//!
//! # Versioning
//! A plugin exports one symbol, [`RAI_PLUGIN_ENTRY_SYMBOL`], of type [`RaiPluginEntryFn`].
//! The table it returns starts with `abi_major` and `abi_minor`, which never move. The
//! host refuses a plugin whose major differs from its own or whose minor is newer than
//! its own. Adding an optional function at the end of a table bumps the minor; any
//! other change bumps the major. `struct_size` tells the host how much of the table the
//! plugin filled, so an older plugin's table can be read by a newer host. A struct the
//! host passes in may also grow at its end with a minor (each new field says which); a
//! plugin reads such a field only when the host's `abi_minor` has it, and an older
//! plugin never sees it.
//!
//! # Ownership
//! - The host owns what it passes in (blobs, option strings, input tensors, the host
//!   table); pointers stay valid only for the duration of the call.
//! - The plugin owns what it returns (models, scripts, output tensors, errors) and frees
//!   it when the host calls the matching free function. The host calls each free
//!   function exactly once per object.
//! - Strings are NUL-terminated UTF-8 unless a length is given.
//! - From minor 5 the host may also lend output memory ([`RaiHostApi::output_alloc`]): an
//!   output whose data is such a buffer becomes the stored tensor without a copy. The
//!   plugin still releases the output's `owner`, but never frees lent memory itself.
//!
//! # Threading
//! - `init` is called once, before any other function and never alongside another call
//!   into the plugin: on Redis's main thread (module load, `AI.CONFIG LOADBACKEND`) or on
//!   the host's loader thread (a backend opened on first use by a model or script store).
//! - `model_load`, `model_free`, `script_load` and `script_free` may be called from any
//!   thread, one at a time per object.
//! - `model_run` on the same model may be called from several threads at once only when
//!   the plugin sets [`RAI_PLUGIN_FLAG_CONCURRENT_RUN`]; otherwise the host serialises
//!   runs of each model. Runs of different models may always overlap.
//! - Host services may be called from any thread during a call into the plugin.
//!   `redis_command` and `model_execute` need the `host_ctx` of the run they serve and
//!   are valid only during that run; the host serialises their access to the keyspace.
//!
//! # Errors
//! Every fallible function returns a `RaiError *`: null on success, otherwise an error
//! the host reads with `error_message` and releases with `error_free`. From minor 4 a
//! plugin may also say what kind of failure it was through `error_code` (a
//! [`RaiErrorCode`]); without it, or for a value the host does not know, an error counts
//! as [`RaiErrorCode::Failed`]. The code never changes the message. A plugin must
//! never abort the process, throw a C++ exception or unwind a Rust panic across this
//! boundary.

use std::ffi::{c_char, c_void};

/// Major version of this ABI. A plugin built for another major is refused.
pub const RAI_PLUGIN_ABI_MAJOR: u32 = 1;
/// Minor version of this ABI. A plugin with a newer minor is refused.
pub const RAI_PLUGIN_ABI_MINOR: u32 = 5;

/// Name of the one symbol a plugin exports.
pub const RAI_PLUGIN_ENTRY_SYMBOL: &str = "redisai_plugin_entry";

/// The plugin's `model_run` may be called concurrently on the same model.
pub const RAI_PLUGIN_FLAG_CONCURRENT_RUN: u32 = 1;
/// The plugin stops every `model_run` once [`RaiRunOptions::timeout_ms`] has passed
/// (within a few milliseconds) and returns an error. Only such a plugin's models may run
/// on the server's main thread, where a run that cannot be stopped would stall the
/// server for as long as it takes. A plugin without the flag (any plugin built before
/// it) is never run there.
pub const RAI_PLUGIN_FLAG_INTERRUPTIBLE_RUN: u32 = 2;

/// [`RaiScriptCall::convention`] of `AI.SCRIPTEXECUTE`: the function is called as
/// `fn(tensors: List[Tensor], keys: List[str], args: List[str])`.
pub const RAI_SCRIPT_CALL_LISTS: u32 = 0;
/// [`RaiScriptCall::convention`] of the deprecated `AI.SCRIPTRUN`: the inputs are the
/// function's own parameters, in order (no keys or args); those after `$` (from
/// [`RaiScriptCall::variadic`]) form one list of tensors.
pub const RAI_SCRIPT_CALL_POSITIONAL: u32 = 1;

/// Element types. Numeric data is little-endian; STRING data is the concatenation of
/// NUL-terminated elements; BOOL is one byte, 0 or 1.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RaiDType {
    Float = 0,
    Double = 1,
    Int8 = 2,
    Int16 = 3,
    Int32 = 4,
    Int64 = 5,
    Uint8 = 6,
    Uint16 = 7,
    Bool = 8,
    String = 9,
}

/// Kind of device a tensor's data lives on, or a model runs on.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RaiDeviceKind {
    Cpu = 0,
    Gpu = 1,
}

/// A device: its kind and index (`GPU:1` is `{Gpu, 1}`; `CPU` is `{Cpu, 0}`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaiDevice {
    pub kind: RaiDeviceKind,
    pub id: i32,
}

/// A borrowed tensor. `strides` counts elements and may be null for row-major
/// contiguous data (the only layout the host produces). For STRING tensors
/// `byte_len` is the total length of the NUL-terminated elements. `shape` may be null
/// when `ndim` is 0, and `data` when `byte_len` is 0.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct RaiTensorView {
    pub dtype: RaiDType,
    pub device: RaiDevice,
    pub ndim: usize,
    pub shape: *const i64,
    pub strides: *const i64,
    pub data: *const c_void,
    pub byte_len: usize,
}

/// An output tensor filled in by the plugin: a view of CPU data that stays valid until
/// the host calls `tensor_release(owner)`. The host reads outputs only when `model_run`
/// (or `script_run`) succeeds; on error the plugin keeps and frees what it produced.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct RaiTensorOut {
    pub view: RaiTensorView,
    pub owner: *mut c_void,
}

/// Minor 4: what kind of failure a [`RaiError`] reports, as `error_code` returns it. The
/// host reads the value as a plain `uint32_t` and treats any value it does not know as
/// [`RaiErrorCode::Failed`], so later minors may add codes.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RaiErrorCode {
    /// Any other failure (the only kind before minor 4).
    Failed = 0,
    /// The inputs do not fit the model or script: count, shape, element type or size.
    InvalidInput = 1,
    /// The run passed its `timeout_ms` and was stopped.
    TimedOut = 2,
    /// The run was stopped because the host set its `cancel` flag.
    Cancelled = 3,
    /// The backend refused an allocation (its BACKEND_MEMORY_LIMIT or the device's memory).
    OutOfMemory = 4,
}

impl RaiErrorCode {
    /// The code a raw `error_code` value stands for: unknown values are `Failed`.
    pub fn from_raw(raw: u32) -> RaiErrorCode {
        match raw {
            1 => RaiErrorCode::InvalidInput,
            2 => RaiErrorCode::TimedOut,
            3 => RaiErrorCode::Cancelled,
            4 => RaiErrorCode::OutOfMemory,
            _ => RaiErrorCode::Failed,
        }
    }
}

/// Opaque plugin-owned error.
#[repr(C)]
pub struct RaiError {
    _private: [u8; 0],
}

/// Opaque plugin-owned model.
#[repr(C)]
pub struct RaiModel {
    _private: [u8; 0],
}

/// Opaque plugin-owned script.
#[repr(C)]
pub struct RaiScript {
    _private: [u8; 0],
}

/// Log levels of [`RaiHostApi::log`], as Redis names them.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RaiLogLevel {
    Debug = 0,
    Verbose = 1,
    Notice = 2,
    Warning = 3,
}

/// Settings a plugin may read at any time through [`RaiHostApi::config_get`].
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RaiConfigKey {
    /// Threads inside one operator; 0 lets the runtime choose.
    IntraOpParallelism = 0,
    /// Operators run in parallel; 0 lets the runtime choose.
    InterOpParallelism = 1,
    /// Longest run of one model in milliseconds; 0 means none.
    ModelExecutionTimeoutMs = 2,
    /// Memory the backend may use in MB; 0 means no limit.
    BackendMemoryLimitMb = 3,
}

/// [`RaiMemoryStats`] and `model_memory` value for "the runtime cannot tell".
pub const RAI_MEMORY_UNKNOWN: u64 = u64::MAX;

/// Minor 3: the memory a backend holds, filled by [`RaiPluginApi::memory_stats`]. Each
/// field is a byte count, or [`RAI_MEMORY_UNKNOWN`]. The struct may grow at its end with
/// a minor; the host passes `struct_size` and the plugin fills only what fits.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaiMemoryStats {
    /// Size of this struct as the host knows it.
    pub struct_size: usize,
    /// Bytes the backend's runtime holds now (weights, arenas, live tensors), as far as
    /// its allocator can count them.
    pub held_bytes: u64,
    /// Highest `held_bytes` since the plugin was initialised.
    pub peak_bytes: u64,
    /// The bound the backend enforces now (BACKEND_MEMORY_LIMIT in bytes), 0 for none,
    /// or [`RAI_MEMORY_UNKNOWN`] when the backend cannot bound its memory.
    pub limit_bytes: u64,
}

/// Kind of a [`RaiReply`].
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RaiReplyKind {
    /// A null reply (a missing key, for example).
    Nil = 0,
    /// `integer` holds the value.
    Integer = 1,
    /// `str`/`len` hold the bytes (a bulk or status string).
    String = 2,
    /// `str`/`len` hold the error message, e.g. `ERR wrong number of arguments`.
    Error = 3,
    /// `elements`/`n_elements` hold the items.
    Array = 4,
    /// `double_value` holds the value.
    Double = 5,
}

/// A Redis reply as the host hands it to a plugin: a tree owned by the host, released
/// as a whole with [`RaiHostApi::reply_free`] on its root. Strings are binary safe (use
/// `len`) and also NUL-terminated for convenience.
#[repr(C)]
pub struct RaiReply {
    pub kind: RaiReplyKind,
    pub integer: i64,
    pub double_value: f64,
    pub str: *const c_char,
    pub len: usize,
    pub elements: *const RaiReply,
    pub n_elements: usize,
}

/// Services the host offers to the plugin, passed to `init` and valid until the
/// process exits.
#[repr(C)]
pub struct RaiHostApi {
    pub abi_major: u32,
    pub abi_minor: u32,
    pub struct_size: usize,
    /// Writes a line to the Redis log. `level` is a [`RaiLogLevel`] (passed as a plain
    /// integer so that no value can be misread). Callable from any thread.
    pub log: Option<unsafe extern "C" fn(level: u32, message: *const c_char)>,
    /// Reads a setting; `key` is a [`RaiConfigKey`]; unknown keys give 0.
    pub config_get: Option<unsafe extern "C" fn(key: u32) -> i64>,

    // Minor 1.
    /// Runs a Redis command (`argv[0]` is its name; each argument is `argv_len[i]`
    /// bytes) on behalf of the run that owns `host_ctx`, as `redis.execute` does in a
    /// script. Never null: a refused or failed command comes back as an error reply.
    /// Release it with `reply_free`.
    pub redis_command: Option<
        unsafe extern "C" fn(
            host_ctx: *mut c_void,
            argv: *const *const c_char,
            argv_len: *const usize,
            argc: usize,
        ) -> *mut RaiReply,
    >,
    /// Releases a reply from `redis_command` or `model_execute`.
    pub reply_free: Option<unsafe extern "C" fn(reply: *mut RaiReply)>,
    /// Runs the stored model at `key` (of any backend) on `inputs`, on the calling
    /// thread, for the run that owns `host_ctx`, as `redisAI.model_execute` does in a
    /// script. On success returns null and fills exactly `n_outputs` host-owned
    /// outputs, each released with `host_tensor_release(owner)`; on failure returns an
    /// error reply (release it with `reply_free`) and fills nothing.
    pub model_execute: Option<
        unsafe extern "C" fn(
            host_ctx: *mut c_void,
            key: *const c_char,
            inputs: *const RaiTensorView,
            n_inputs: usize,
            outputs: *mut RaiTensorOut,
            n_outputs: usize,
        ) -> *mut RaiReply,
    >,
    /// Releases an output of `model_execute`.
    pub host_tensor_release: Option<unsafe extern "C" fn(owner: *mut c_void)>,

    // Minor 5 (read only when the host's `abi_minor` >= 5 and `struct_size` covers it).
    /// Optional: lends `byte_len` bytes of host memory (64-byte aligned, uninitialised,
    /// from the host's allocator, so the server counts it as its own) for an output of
    /// the `model_run` or `script_run` call in progress; null when it cannot (no memory,
    /// `byte_len` 0, or not called from the thread inside that call). An output whose
    /// `view.data` is a pointer this returned during the same call, with `view.byte_len`
    /// at most the length asked for, is adopted by the host with no copy; the plugin
    /// still releases the output's `owner`, but must not free that data. The host frees
    /// every lent buffer that is not adopted (error paths, buffers left unused) when the
    /// call returns; the plugin must not touch any of them after that.
    pub output_alloc: Option<unsafe extern "C" fn(byte_len: usize) -> *mut c_void>,
}

/// What the host asks of a model at load time.
#[repr(C)]
pub struct RaiModelOptions {
    pub device: RaiDevice,
    /// BATCHSIZE given at MODELSTORE (0: no autobatching).
    pub batch_size: u64,
    /// Input and output node names (TF only; counts are 0 for other backends).
    pub input_names: *const *const c_char,
    pub n_input_names: usize,
    pub output_names: *const *const c_char,
    pub n_output_names: usize,
}

/// Per-run information.
#[repr(C)]
pub struct RaiRunOptions {
    /// Milliseconds this run may take; 0 for no limit. Plugins that can interrupt a run
    /// should stop it after this long and return an error.
    pub timeout_ms: u64,
    /// Null, or a flag the host sets to non-zero (from another thread) when the run's
    /// result is no longer wanted: its client went away, or the server is shutting
    /// down. Plugins that can interrupt a run should watch it (read it atomically, e.g.
    /// `__atomic_load_n`) and stop with an error. Valid only during the call.
    pub cancel: *const u32,
    /// Minor 1 (read only when the host's `abi_minor` >= 1): the context to pass to
    /// `redis_command` and `model_execute` during this run; null when the run offers
    /// them none.
    pub host_ctx: *mut c_void,
}

/// Arguments of a script function call, as `AI.SCRIPTEXECUTE` or `AI.SCRIPTRUN` gives
/// them.
#[repr(C)]
pub struct RaiScriptCall {
    pub function: *const c_char,
    pub inputs: *const RaiTensorView,
    pub n_inputs: usize,
    pub keys: *const *const c_char,
    pub n_keys: usize,
    pub args: *const *const c_char,
    pub n_args: usize,
    /// Minor 2 (read only when the host's `abi_minor` >= 2; before, every call is
    /// [`RAI_SCRIPT_CALL_LISTS`]): how `inputs` map to the function's parameters, a
    /// `RAI_SCRIPT_CALL_*` value. A plugin that knows only the lists convention may
    /// ignore it.
    pub convention: u32,
    /// Minor 2: with [`RAI_SCRIPT_CALL_POSITIONAL`], the index in `inputs` of the first
    /// tensor after `AI.SCRIPTRUN`'s `$` marker (`n_inputs` when nothing follows it), or
    /// -1 when the command had no `$`. -1 with [`RAI_SCRIPT_CALL_LISTS`].
    pub variadic: i64,
}

/// The table a plugin returns from its entry symbol. It must stay valid for the life
/// of the process.
#[repr(C)]
pub struct RaiPluginApi {
    pub abi_major: u32,
    pub abi_minor: u32,
    pub struct_size: usize,

    /// Backend name, e.g. "ONNX".
    pub name: *const c_char,
    /// Version of the framework runtime inside, e.g. "1.32.0".
    pub runtime_version: *const c_char,
    /// Bit `1 << RaiDeviceKind` for each device kind the plugin can run on.
    pub device_mask: u32,
    /// Bit `1 << RaiDType` for each element type the plugin accepts.
    pub dtype_mask: u32,
    /// `RAI_PLUGIN_FLAG_*` bits.
    pub flags: u32,

    /// Called once before anything else.
    pub init: Option<unsafe extern "C" fn(host: *const RaiHostApi) -> *mut RaiError>,

    pub error_message: Option<unsafe extern "C" fn(error: *const RaiError) -> *const c_char>,
    pub error_free: Option<unsafe extern "C" fn(error: *mut RaiError)>,

    /// Builds a model from its serialised form.
    pub model_load: Option<
        unsafe extern "C" fn(
            options: *const RaiModelOptions,
            blob: *const u8,
            blob_len: usize,
            out: *mut *mut RaiModel,
        ) -> *mut RaiError,
    >,
    pub model_free: Option<unsafe extern "C" fn(model: *mut RaiModel)>,
    pub model_input_count: Option<unsafe extern "C" fn(model: *const RaiModel) -> usize>,
    /// Name of input `index`, valid while the model lives.
    pub model_input_name:
        Option<unsafe extern "C" fn(model: *const RaiModel, index: usize) -> *const c_char>,
    pub model_output_count: Option<unsafe extern "C" fn(model: *const RaiModel) -> usize>,
    pub model_output_name:
        Option<unsafe extern "C" fn(model: *const RaiModel, index: usize) -> *const c_char>,
    /// Runs the model: fills exactly `n_outputs` outputs, or returns an error.
    pub model_run: Option<
        unsafe extern "C" fn(
            model: *mut RaiModel,
            options: *const RaiRunOptions,
            inputs: *const RaiTensorView,
            n_inputs: usize,
            outputs: *mut RaiTensorOut,
            n_outputs: usize,
        ) -> *mut RaiError,
    >,
    /// Releases an output's data (the `owner` of a [`RaiTensorOut`]).
    pub tensor_release: Option<unsafe extern "C" fn(owner: *mut c_void)>,

    /// Optional (null when the backend has no scripts): compiles a script.
    pub script_load: Option<
        unsafe extern "C" fn(
            device: RaiDevice,
            source: *const c_char,
            entry_points: *const *const c_char,
            n_entry_points: usize,
            out: *mut *mut RaiScript,
        ) -> *mut RaiError,
    >,
    pub script_free: Option<unsafe extern "C" fn(script: *mut RaiScript)>,
    /// Optional: runs a script function; fills at most `max_outputs` outputs and sets
    /// `n_outputs` to how many.
    pub script_run: Option<
        unsafe extern "C" fn(
            script: *mut RaiScript,
            options: *const RaiRunOptions,
            call: *const RaiScriptCall,
            outputs: *mut RaiTensorOut,
            max_outputs: usize,
            n_outputs: *mut usize,
        ) -> *mut RaiError,
    >,

    // Minor 3 (the host reads these only when `abi_minor` >= 3 and `struct_size` covers
    // them; both optional).
    /// Optional: fills `stats` (whose `struct_size` the host has set) with the memory
    /// the backend holds now and its peak. Callable from any thread, at any time after
    /// `init`; cheap (no allocation, no lock held for long).
    pub memory_stats: Option<unsafe extern "C" fn(stats: *mut RaiMemoryStats)>,
    /// Optional: bytes held by one model (its weights and what its runtime keeps for
    /// it), or [`RAI_MEMORY_UNKNOWN`]. Callable from any thread while the model lives.
    pub model_memory: Option<unsafe extern "C" fn(model: *const RaiModel) -> u64>,

    // Minor 4 (read only when `abi_minor` >= 4 and `struct_size` covers it).
    /// Optional: the [`RaiErrorCode`] of an error this plugin returned, as a plain
    /// integer; the host reads unknown values as `Failed`. Callable from any thread
    /// until the error's `error_free`.
    pub error_code: Option<unsafe extern "C" fn(error: *const RaiError) -> u32>,
}

/// Type of the exported entry symbol: returns the plugin's table (never null).
pub type RaiPluginEntryFn = unsafe extern "C" fn() -> *const RaiPluginApi;

// SAFETY: the table is immutable after construction; its pointers refer to 'static data.
unsafe impl Sync for RaiPluginApi {}
// SAFETY: as above.
unsafe impl Sync for RaiHostApi {}
