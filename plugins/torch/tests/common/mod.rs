//! Drives the plugin through its exported C table with `redisai-plugin-testkit`, as the
//! core does, initialised with a test host whose `redis_command` is a tiny in-memory key
//! space and whose `model_execute` runs models registered by key through the same plugin.
#![allow(dead_code)]

use std::collections::HashMap;
use std::ffi::{c_char, c_void, CStr};
use std::ptr;
use std::sync::{Mutex, OnceLock};

use redisai_plugin_api::abi::{
    RaiDevice, RaiHostApi, RaiModel, RaiReply, RaiReplyKind, RaiRunOptions, RaiTensorOut,
    RaiTensorView, RAI_PLUGIN_ABI_MAJOR, RAI_PLUGIN_ABI_MINOR,
};
use redisai_plugin_testkit::host::{host_config, host_log};
use redisai_plugin_testkit::runtime;
use redisai_plugin_testkit::script::Call;
use redisai_plugin_testkit::table::RunOptions;
// Re-exported for the tests; each test binary uses some.
#[allow(unused_imports)]
pub use redisai_plugin_testkit::{
    script::Script,
    table::{Model, Plugin, CPU, GPU0},
    Input as Tensor,
};
use redisai_torch::redisai_plugin_entry;

/// The context the tests pass as `host_ctx`; host functions check they get it back.
pub static RUN_CTX: u8 = 7;

pub fn run_ctx() -> *mut c_void {
    ptr::addr_of!(RUN_CTX).cast_mut().cast()
}

// ---- the test host ----

/// A reply tree the host hands out: the root first, so `reply_free` finds the box.
#[repr(C)]
struct HostReply {
    root: RaiReply,
    strings: Vec<Vec<u8>>,
    arrays: Vec<Vec<RaiReply>>,
}

/// A reply as the fake Redis builds it.
#[derive(Clone, Debug)]
pub enum Fake {
    Nil,
    Int(i64),
    Str(Vec<u8>),
    Err(String),
    Arr(Vec<Fake>),
}

fn build(fake: &Fake, strings: &mut Vec<Vec<u8>>, arrays: &mut Vec<Vec<RaiReply>>) -> RaiReply {
    let mut reply = RaiReply {
        kind: RaiReplyKind::Nil,
        integer: 0,
        double_value: 0.0,
        str: ptr::null(),
        len: 0,
        elements: ptr::null(),
        n_elements: 0,
    };
    let mut text = |reply: &mut RaiReply, bytes: &[u8]| {
        let mut owned = bytes.to_vec();
        owned.push(0);
        reply.str = owned.as_ptr().cast();
        reply.len = bytes.len();
        strings.push(owned);
    };
    match fake {
        Fake::Nil => {}
        Fake::Int(value) => {
            reply.kind = RaiReplyKind::Integer;
            reply.integer = *value;
        }
        Fake::Str(bytes) => {
            reply.kind = RaiReplyKind::String;
            text(&mut reply, bytes);
        }
        Fake::Err(message) => {
            reply.kind = RaiReplyKind::Error;
            text(&mut reply, message.as_bytes());
        }
        Fake::Arr(items) => {
            let built: Vec<RaiReply> = items.iter().map(|i| build(i, strings, arrays)).collect();
            reply.kind = RaiReplyKind::Array;
            reply.elements = built.as_ptr();
            reply.n_elements = built.len();
            arrays.push(built);
        }
    }
    reply
}

fn host_reply(fake: &Fake) -> *mut RaiReply {
    let mut strings = Vec::new();
    let mut arrays = Vec::new();
    let root = build(fake, &mut strings, &mut arrays);
    let boxed = Box::new(HostReply {
        root,
        strings,
        arrays,
    });
    Box::into_raw(boxed).cast()
}

/// Key -> its values (one for a string, several for a list).
type Keyspace = Mutex<HashMap<Vec<u8>, Vec<Vec<u8>>>>;

fn keyspace() -> &'static Keyspace {
    static KEYS: OnceLock<Keyspace> = OnceLock::new();
    KEYS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Models `model_execute` may run, by key (pointers stored as integers).
fn models() -> &'static Mutex<HashMap<String, usize>> {
    static MODELS: OnceLock<Mutex<HashMap<String, usize>>> = OnceLock::new();
    MODELS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Lets scripts run `model` as `key` through `redisAI.model_execute`; the test keeps the
/// model alive while they may.
pub fn register_model(key: &str, model: &Model) {
    models()
        .lock()
        .expect("models")
        .insert(key.to_owned(), model.as_raw() as usize);
}

/// A small Redis: SET, GET, INCR, RPUSH, LRANGE (whole list), DEL; anything else errors.
fn fake_redis(args: &[Vec<u8>]) -> Fake {
    let mut keys = keyspace().lock().expect("keyspace");
    let name = String::from_utf8_lossy(&args[0]).to_uppercase();
    match (name.as_str(), args.len()) {
        ("SET", 3) => {
            keys.insert(args[1].clone(), vec![args[2].clone()]);
            Fake::Str(b"OK".to_vec())
        }
        ("GET", 2) => match keys.get(&args[1]) {
            Some(value) => Fake::Str(value[0].clone()),
            None => Fake::Nil,
        },
        ("INCR", 2) => {
            let entry = keys
                .entry(args[1].clone())
                .or_insert_with(|| vec![b"0".to_vec()]);
            let value: i64 = String::from_utf8_lossy(&entry[0]).parse().unwrap_or(0) + 1;
            entry[0] = value.to_string().into_bytes();
            Fake::Int(value)
        }
        ("RPUSH", n) if n >= 3 => {
            let entry = keys.entry(args[1].clone()).or_default();
            entry.extend(args[2..].iter().cloned());
            Fake::Int(entry.len() as i64)
        }
        ("LRANGE", 4) => Fake::Arr(
            keys.get(&args[1])
                .map(|items| items.iter().cloned().map(Fake::Str).collect())
                .unwrap_or_default(),
        ),
        ("DEL", 2) => Fake::Int(i64::from(keys.remove(&args[1]).is_some())),
        _ => Fake::Err(format!(
            "ERR unknown command '{}'",
            String::from_utf8_lossy(&args[0])
        )),
    }
}

unsafe extern "C" fn host_redis_command(
    ctx: *mut c_void,
    argv: *const *const c_char,
    argv_len: *const usize,
    argc: usize,
) -> *mut RaiReply {
    if ctx != run_ctx() {
        return host_reply(&Fake::Err("ERR wrong host context".into()));
    }
    let args: Vec<Vec<u8>> = (0..argc)
        .map(|i| {
            // SAFETY: the plugin passes `argc` pointers and lengths valid for the call.
            let (ptr, len) = unsafe { (*argv.add(i), *argv_len.add(i)) };
            if len == 0 {
                Vec::new()
            } else {
                // SAFETY: as above.
                unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) }.to_vec()
            }
        })
        .collect();
    if args.is_empty() {
        return host_reply(&Fake::Err("ERR empty command".into()));
    }
    host_reply(&fake_redis(&args))
}

unsafe extern "C" fn host_reply_free(reply: *mut RaiReply) {
    // SAFETY: every reply the host hands out is a boxed HostReply, freed once.
    drop(unsafe { Box::from_raw(reply.cast::<HostReply>()) });
}

unsafe extern "C" fn host_model_execute(
    ctx: *mut c_void,
    key: *const c_char,
    inputs: *const RaiTensorView,
    n_inputs: usize,
    outputs: *mut RaiTensorOut,
    n_outputs: usize,
) -> *mut RaiReply {
    if ctx != run_ctx() {
        return host_reply(&Fake::Err("ERR wrong host context".into()));
    }
    // SAFETY: a NUL-terminated key.
    let key = unsafe { CStr::from_ptr(key) }
        .to_string_lossy()
        .into_owned();
    let Some(model) = models().lock().expect("models").get(&key).copied() else {
        return host_reply(&Fake::Err("ERR model key is empty".into()));
    };
    let options = RaiRunOptions {
        timeout_ms: 0,
        cancel: ptr::null(),
        host_ctx: ptr::null_mut(),
    };
    let run = plugin().api().model_run.expect("model_run");
    // SAFETY: a registered model the test keeps alive; the views and the room for the
    // outputs come from the plugin, valid for the call; the error is the plugin's.
    let result = unsafe {
        let err = run(
            model as *mut RaiModel,
            &options,
            inputs,
            n_inputs,
            outputs,
            n_outputs,
        );
        plugin().take_error(err)
    };
    match result {
        Err(message) => host_reply(&Fake::Err(message)),
        Ok(()) => ptr::null_mut(),
    }
}

unsafe extern "C" fn host_tensor_release(owner: *mut c_void) {
    // Outputs of model_execute are the plugin's own: released through its table.
    let release = plugin().api().tensor_release.expect("tensor_release");
    // SAFETY: each output is released once.
    unsafe { release(owner) };
}

/// The testkit's log and config (BACKEND_MEMORY_LIMIT and the rest through
/// `redisai_plugin_testkit::host::set_config`) with the fake Redis and nested model runs.
static HOST: RaiHostApi = RaiHostApi {
    abi_major: RAI_PLUGIN_ABI_MAJOR,
    abi_minor: RAI_PLUGIN_ABI_MINOR,
    struct_size: std::mem::size_of::<RaiHostApi>(),
    log: Some(host_log),
    config_get: Some(host_config),
    redis_command: Some(host_redis_command),
    reply_free: Some(host_reply_free),
    model_execute: Some(host_model_execute),
    host_tensor_release: Some(host_tensor_release),
    output_alloc: None,
};

// ---- driving the plugin ----

/// The plugin's table, initialised with the test host (once per test binary).
pub fn plugin() -> Plugin {
    static INIT: OnceLock<()> = OnceLock::new();
    // SAFETY: the entry point returns a pointer to a static table.
    let plugin = unsafe { Plugin::from_entry(redisai_plugin_entry) };
    INIT.get_or_init(|| plugin.init(&HOST).expect("init"));
    plugin
}

pub fn model_bytes(name: &str) -> Vec<u8> {
    runtime::model_bytes("torch", name)
}

/// The folder of the TorchScript test models.
pub fn models_dir() -> std::path::PathBuf {
    runtime::repo_root().join("tests/models/torch")
}

pub fn load(blob: &[u8]) -> Result<Model, String> {
    load_on(blob, CPU)
}

/// Loads a model onto `device`.
pub fn load_on(blob: &[u8], device: RaiDevice) -> Result<Model, String> {
    plugin().load(device, blob, &[], &[])
}

pub fn run(model: &Model, inputs: &[Tensor], n_outputs: usize) -> Result<Vec<Tensor>, String> {
    model.run(inputs, n_outputs)
}

pub fn load_script(source: &str, entry_points: &[&str]) -> Result<Script, String> {
    load_script_on(CPU, source, entry_points)
}

/// Compiles a script for `device`.
pub fn load_script_on(
    device: RaiDevice,
    source: &str,
    entry_points: &[&str],
) -> Result<Script, String> {
    plugin().load_script(device, source, entry_points)
}

/// Runs a script function the AI.SCRIPTEXECUTE way (three lists) with the test host
/// context (or none).
pub fn run_script(
    script: &Script,
    function: &str,
    inputs: &[Tensor],
    keys: &[&str],
    args: &[&str],
    max_outputs: usize,
    with_ctx: bool,
) -> Result<Vec<Tensor>, String> {
    let options = if with_ctx {
        RunOptions::host_ctx(run_ctx())
    } else {
        RunOptions::default()
    };
    let call = Call::Lists { keys, args };
    script.run(function, call, inputs, max_outputs, options)
}

/// Runs a script function the AI.SCRIPTRUN way: the inputs are its parameters, those
/// from `variadic` on (after `$`) its list of tensors.
pub fn run_script_positional(
    script: &Script,
    function: &str,
    inputs: &[Tensor],
    variadic: Option<usize>,
    max_outputs: usize,
) -> Result<Vec<Tensor>, String> {
    let call = Call::Positional { variadic };
    script.run(function, call, inputs, max_outputs, RunOptions::default())
}
