//! Drives the plugin through its exported C table, as the core does, with a test host
//! table whose `redis_command` is a tiny in-memory key space and whose `model_execute`
//! runs models stored (by key) through the same plugin.
#![allow(dead_code)]

use std::collections::HashMap;
use std::ffi::{c_char, c_void, CStr, CString};
use std::path::PathBuf;
use std::ptr;
use std::sync::{Mutex, OnceLock};

use redisai_plugin_api::abi::{
    RaiDevice, RaiDeviceKind, RaiError, RaiHostApi, RaiModel, RaiModelOptions, RaiPluginApi,
    RaiReply, RaiReplyKind, RaiRunOptions, RaiScript, RaiScriptCall, RaiTensorOut, RaiTensorView,
    RAI_PLUGIN_ABI_MAJOR, RAI_PLUGIN_ABI_MINOR, RAI_SCRIPT_CALL_LISTS, RAI_SCRIPT_CALL_POSITIONAL,
};
use redisai_plugin_api::sdk::DType;
use redisai_torch::redisai_plugin_entry;

pub const CPU: RaiDevice = RaiDevice {
    kind: RaiDeviceKind::Cpu,
    id: 0,
};

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

pub fn register_model(key: &str, model: *mut RaiModel) {
    models()
        .lock()
        .expect("models")
        .insert(key.to_owned(), model as usize);
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

unsafe extern "C" fn host_log(_level: u32, _message: *const c_char) {}

/// BACKEND_MEMORY_LIMIT (MB) the test host reports; 0 (none) unless a test sets it.
pub static MEMORY_LIMIT_MB: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

unsafe extern "C" fn host_config(key: u32) -> i64 {
    if key == redisai_plugin_api::abi::RaiConfigKey::BackendMemoryLimitMb as u32 {
        return MEMORY_LIMIT_MB.load(std::sync::atomic::Ordering::SeqCst);
    }
    0
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
    let api = table();
    let options = RaiRunOptions {
        timeout_ms: 0,
        cancel: ptr::null(),
        host_ctx: ptr::null_mut(),
    };
    let run = api.model_run.expect("model_run");
    // SAFETY: the views and output room come from the plugin, valid for the call.
    let err = unsafe {
        run(
            model as *mut RaiModel,
            &options,
            inputs,
            n_inputs,
            outputs,
            n_outputs,
        )
    };
    match take_error(api, err) {
        Some(message) => host_reply(&Fake::Err(message)),
        None => ptr::null_mut(),
    }
}

unsafe extern "C" fn host_tensor_release(owner: *mut c_void) {
    // Outputs of model_execute are the plugin's own: released through its table.
    let release = table().tensor_release.expect("tensor_release");
    // SAFETY: each output is released once.
    unsafe { release(owner) };
}

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

pub fn table() -> &'static RaiPluginApi {
    // SAFETY: the entry point returns a pointer to a static table.
    unsafe { &*redisai_plugin_entry() }
}

/// The table, initialised with the test host (once per test binary).
pub fn api() -> &'static RaiPluginApi {
    static INIT: OnceLock<()> = OnceLock::new();
    let api = table();
    INIT.get_or_init(|| {
        let init = api.init.expect("init");
        // SAFETY: the host table is static.
        let err = unsafe { init(&HOST) };
        assert_eq!(take_error(api, err), None, "init");
    });
    api
}

/// Takes an error's message and frees it.
pub fn take_error(api: &RaiPluginApi, err: *mut RaiError) -> Option<String> {
    if err.is_null() {
        return None;
    }
    let message = api.error_message.expect("error_message");
    let free = api.error_free.expect("error_free");
    // SAFETY: a live error of this plugin, freed once after reading.
    let text = unsafe { CStr::from_ptr(message(err)) }
        .to_string_lossy()
        .into_owned();
    // SAFETY: as above.
    unsafe { free(err) };
    Some(text)
}

pub fn model_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/models/torch")
        .join(name)
}

pub fn model_bytes(name: &str) -> Vec<u8> {
    std::fs::read(model_path(name)).unwrap_or_else(|err| panic!("{name}: {err}"))
}

pub fn load(blob: &[u8]) -> Result<*mut RaiModel, String> {
    load_on(blob, CPU)
}

/// Loads a model onto `device`.
pub fn load_on(blob: &[u8], device: RaiDevice) -> Result<*mut RaiModel, String> {
    let api = api();
    let options = RaiModelOptions {
        device,
        batch_size: 0,
        input_names: ptr::null(),
        n_input_names: 0,
        output_names: ptr::null(),
        n_output_names: 0,
    };
    let mut model = ptr::null_mut();
    let load = api.model_load.expect("model_load");
    // SAFETY: options, blob and out-pointer valid for the call.
    let err = unsafe { load(&options, blob.as_ptr(), blob.len(), &mut model) };
    take_error(api, err).map_or(Ok(model), Err)
}

pub fn free_model(model: *mut RaiModel) {
    let free = api().model_free.expect("model_free");
    // SAFETY: each model is freed once.
    unsafe { free(model) };
}

/// An input tensor: dtype, shape and little-endian bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub dtype: DType,
    pub shape: Vec<i64>,
    pub data: Vec<u8>,
}

impl Tensor {
    pub fn new(dtype: DType, shape: &[i64], data: Vec<u8>) -> Tensor {
        Tensor {
            dtype,
            shape: shape.to_vec(),
            data,
        }
    }

    pub fn f32(shape: &[i64], values: &[f32]) -> Tensor {
        Tensor::new(
            DType::Float,
            shape,
            values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        )
    }

    pub fn to_f32(&self) -> Vec<f32> {
        assert_eq!(self.dtype, DType::Float);
        self.data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    fn view(&self) -> RaiTensorView {
        RaiTensorView {
            dtype: self.dtype,
            device: CPU,
            ndim: self.shape.len(),
            shape: self.shape.as_ptr(),
            strides: ptr::null(),
            data: self.data.as_ptr().cast(),
            byte_len: self.data.len(),
        }
    }
}

fn empty_out() -> RaiTensorOut {
    RaiTensorOut {
        view: Tensor::f32(&[], &[]).view(),
        owner: ptr::null_mut(),
    }
}

/// Copies outputs out of the plugin, releasing them.
fn collect(api: &RaiPluginApi, outputs: &[RaiTensorOut]) -> Vec<Tensor> {
    let release = api.tensor_release.expect("tensor_release");
    outputs
        .iter()
        .map(|out| {
            let v = out.view;
            let shape = if v.ndim == 0 {
                Vec::new()
            } else {
                // SAFETY: the plugin filled the view; valid until released below.
                unsafe { std::slice::from_raw_parts(v.shape, v.ndim) }.to_vec()
            };
            let data = if v.byte_len == 0 {
                Vec::new()
            } else {
                // SAFETY: as above.
                unsafe { std::slice::from_raw_parts(v.data.cast::<u8>(), v.byte_len) }.to_vec()
            };
            // SAFETY: released once.
            unsafe { release(out.owner) };
            Tensor {
                dtype: v.dtype,
                shape,
                data,
            }
        })
        .collect()
}

pub fn run(
    model: *mut RaiModel,
    inputs: &[Tensor],
    n_outputs: usize,
) -> Result<Vec<Tensor>, String> {
    let api = api();
    let views: Vec<RaiTensorView> = inputs.iter().map(Tensor::view).collect();
    let mut outputs = vec![empty_out(); n_outputs];
    let options = RaiRunOptions {
        timeout_ms: 0,
        cancel: ptr::null(),
        host_ctx: ptr::null_mut(),
    };
    let model_run = api.model_run.expect("model_run");
    // SAFETY: views borrow `inputs`; `outputs` has room for `n_outputs`.
    let err = unsafe {
        model_run(
            model,
            &options,
            views.as_ptr(),
            views.len(),
            outputs.as_mut_ptr(),
            n_outputs,
        )
    };
    if let Some(message) = take_error(api, err) {
        return Err(message);
    }
    Ok(collect(api, &outputs))
}

pub fn load_script(source: &str, entry_points: &[&str]) -> Result<*mut RaiScript, String> {
    load_script_on(CPU, source, entry_points)
}

/// Compiles a script for `device`.
pub fn load_script_on(
    device: RaiDevice,
    source: &str,
    entry_points: &[&str],
) -> Result<*mut RaiScript, String> {
    let api = api();
    let source = CString::new(source).expect("source");
    let names: Vec<CString> = entry_points
        .iter()
        .map(|n| CString::new(*n).expect("name"))
        .collect();
    let ptrs: Vec<*const c_char> = names.iter().map(|n| n.as_ptr()).collect();
    let mut script = ptr::null_mut();
    let load = api.script_load.expect("script_load");
    // SAFETY: all strings live for the call.
    let err = unsafe {
        load(
            device,
            source.as_ptr(),
            ptrs.as_ptr(),
            ptrs.len(),
            &mut script,
        )
    };
    take_error(api, err).map_or(Ok(script), Err)
}

pub fn free_script(script: *mut RaiScript) {
    let free = api().script_free.expect("script_free");
    // SAFETY: freed once.
    unsafe { free(script) };
}

/// Runs a script function the AI.SCRIPTEXECUTE way (three lists) with the test host
/// context (or none).
pub fn run_script(
    script: *mut RaiScript,
    function: &str,
    inputs: &[Tensor],
    keys: &[&str],
    args: &[&str],
    max_outputs: usize,
    with_ctx: bool,
) -> Result<Vec<Tensor>, String> {
    let call = Call {
        keys,
        args,
        convention: RAI_SCRIPT_CALL_LISTS,
        variadic: -1,
    };
    call_script(script, function, inputs, &call, max_outputs, with_ctx)
}

/// Runs a script function the AI.SCRIPTRUN way: the inputs are its parameters, those
/// from `variadic` on (after `$`) its list of tensors.
pub fn run_script_positional(
    script: *mut RaiScript,
    function: &str,
    inputs: &[Tensor],
    variadic: Option<usize>,
    max_outputs: usize,
) -> Result<Vec<Tensor>, String> {
    let call = Call {
        keys: &[],
        args: &[],
        convention: RAI_SCRIPT_CALL_POSITIONAL,
        variadic: variadic.map_or(-1, |index| index as i64),
    };
    call_script(script, function, inputs, &call, max_outputs, false)
}

/// What a script call passes besides the function and its tensors.
struct Call<'a> {
    keys: &'a [&'a str],
    args: &'a [&'a str],
    convention: u32,
    variadic: i64,
}

fn call_script(
    script: *mut RaiScript,
    function: &str,
    inputs: &[Tensor],
    call: &Call<'_>,
    max_outputs: usize,
    with_ctx: bool,
) -> Result<Vec<Tensor>, String> {
    let (keys, args) = (call.keys, call.args);
    let api = api();
    let function = CString::new(function).expect("function");
    let views: Vec<RaiTensorView> = inputs.iter().map(Tensor::view).collect();
    let keys: Vec<CString> = keys
        .iter()
        .map(|k| CString::new(*k).expect("key"))
        .collect();
    let args: Vec<CString> = args
        .iter()
        .map(|a| CString::new(*a).expect("arg"))
        .collect();
    let key_ptrs: Vec<*const c_char> = keys.iter().map(|k| k.as_ptr()).collect();
    let arg_ptrs: Vec<*const c_char> = args.iter().map(|a| a.as_ptr()).collect();
    let call = RaiScriptCall {
        function: function.as_ptr(),
        inputs: views.as_ptr(),
        n_inputs: views.len(),
        keys: key_ptrs.as_ptr(),
        n_keys: key_ptrs.len(),
        args: arg_ptrs.as_ptr(),
        n_args: arg_ptrs.len(),
        convention: call.convention,
        variadic: call.variadic,
    };
    let options = RaiRunOptions {
        timeout_ms: 0,
        cancel: ptr::null(),
        host_ctx: if with_ctx { run_ctx() } else { ptr::null_mut() },
    };
    let mut outputs = vec![empty_out(); max_outputs];
    let mut count = 0usize;
    let script_run = api.script_run.expect("script_run");
    // SAFETY: everything the call points to lives for the call.
    let err = unsafe {
        script_run(
            script,
            &options,
            &call,
            outputs.as_mut_ptr(),
            max_outputs,
            &mut count,
        )
    };
    if let Some(message) = take_error(api, err) {
        return Err(message);
    }
    Ok(collect(api, &outputs[..count]))
}
