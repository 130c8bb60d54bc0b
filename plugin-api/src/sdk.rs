//! The safe Rust side of the plugin ABI.
//!
//! A plugin implements [`Plugin`] and invokes [`export_plugin!`](crate::export_plugin).
//! The generated entry points catch every panic and turn it into an error (or, for
//! functions that cannot report one, a log line), so nothing unwinds into the host.

use std::ffi::{c_char, c_void, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

pub use crate::abi::{RaiConfigKey as ConfigKey, RaiDType as DType, RaiDeviceKind as DeviceKind};
use crate::abi::{
    RaiDevice, RaiError, RaiHostApi, RaiModel, RaiModelOptions, RaiReply, RaiReplyKind,
    RaiRunOptions, RaiScript, RaiScriptCall, RaiTensorOut, RaiTensorView,
};

/// An error a plugin returns; its message reaches the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl Error {
    pub fn new(message: impl Into<String>) -> Error {
        Error(message.into())
    }
}

impl<T: std::fmt::Display> From<T> for Error {
    fn from(err: T) -> Self {
        Error(err.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A device: kind and index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Device {
    pub kind: DeviceKind,
    pub id: i32,
}

impl From<RaiDevice> for Device {
    fn from(device: RaiDevice) -> Self {
        Device {
            kind: device.kind,
            id: device.id,
        }
    }
}

/// Services of the host (the Redis module).
#[derive(Clone, Copy)]
pub struct Host {
    api: &'static RaiHostApi,
}

impl Host {
    pub fn log(&self, level: LogLevel, message: &str) {
        let Some(log) = self.api.log else { return };
        let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
        // SAFETY: the host's log function takes a NUL-terminated string for the call.
        unsafe { log(level as u32, text.as_ptr()) };
    }

    pub fn config(&self, key: ConfigKey) -> i64 {
        // SAFETY: the host's config function takes a plain enum value.
        self.api
            .config_get
            .map_or(0, |get| unsafe { get(key as u32) })
    }

    /// Runs a Redis command for the run that `ctx` belongs to (`redis.execute` in a
    /// script). An error reply from Redis is `Ok(Reply::Error(..))`; `Err` means the
    /// host could not run the command at all.
    pub fn redis_command(&self, ctx: HostContext, args: &[&[u8]]) -> Result<Reply> {
        let command = self
            .api_fn(|api| api.redis_command)
            .ok_or_else(|| Error::new("the host does not offer redis_command"))?;
        let mut ptrs = Vec::with_capacity(args.len());
        let mut lens = Vec::with_capacity(args.len());
        for arg in args {
            ptrs.push(arg.as_ptr().cast::<c_char>());
            lens.push(arg.len());
        }
        // SAFETY: `ptrs` and `lens` describe `args`, which outlive the call; `ctx` came
        // from the host for the run in progress.
        let raw = unsafe { command(ctx.0, ptrs.as_ptr(), lens.as_ptr(), args.len()) };
        // SAFETY: the host returns a reply tree it owns until `reply_free`.
        Ok(unsafe { self.take_reply(raw) }.unwrap_or(Reply::Nil))
    }

    /// Runs the stored model at `key` on `inputs` for the run that `ctx` belongs to
    /// (`redisAI.model_execute` in a script) and returns `n_outputs` tensors.
    pub fn model_execute(
        &self,
        ctx: HostContext,
        key: &str,
        inputs: &[TensorRef<'_>],
        n_outputs: usize,
    ) -> Result<Vec<OwnedTensor>> {
        let (Some(execute), Some(release)) = (
            self.api_fn(|api| api.model_execute),
            self.api_fn(|api| api.host_tensor_release),
        ) else {
            return Err(Error::new("the host does not offer model_execute"));
        };
        let key = CString::new(key).map_err(|_| Error::new("model key contains NUL"))?;
        let views: Vec<RaiTensorView> = inputs.iter().map(view_of).collect();
        let empty = RaiTensorOut {
            view: view_of(&TensorRef {
                dtype: DType::Float,
                device: Device {
                    kind: DeviceKind::Cpu,
                    id: 0,
                },
                shape: &[],
                data: &[],
            }),
            owner: std::ptr::null_mut(),
        };
        let mut outs = vec![empty; n_outputs];
        // SAFETY: the views borrow `inputs`, which outlive the call; `outs` has room for
        // `n_outputs` outputs; `ctx` came from the host for the run in progress.
        let raw = unsafe {
            execute(
                ctx.0,
                key.as_ptr(),
                views.as_ptr(),
                views.len(),
                outs.as_mut_ptr(),
                n_outputs,
            )
        };
        // SAFETY: a non-null result is an error reply the host owns until `reply_free`.
        if let Some(reply) = unsafe { self.take_reply(raw) } {
            return Err(Error(match reply {
                Reply::Error(message) => message,
                other => format!("model_execute failed: {other:?}"),
            }));
        }
        let mut tensors = Vec::with_capacity(n_outputs);
        for out in outs {
            // SAFETY: on success the host filled every output with a valid view.
            let tensor = unsafe { tensor_ref(&out.view) }.map(|t| OwnedTensor {
                dtype: t.dtype,
                shape: t.shape.to_vec(),
                data: t.data.to_vec(),
            });
            // SAFETY: each output is released once, after its data was copied.
            unsafe { release(out.owner) };
            tensors.push(tensor?);
        }
        Ok(tensors)
    }

    /// A minor-1 host function, or `None` when the host's table predates it.
    fn api_fn<F>(&self, field: impl FnOnce(&RaiHostApi) -> Option<F>) -> Option<F> {
        let needed = std::mem::offset_of!(RaiHostApi, host_tensor_release)
            + std::mem::size_of::<Option<unsafe extern "C" fn(*mut c_void)>>();
        if self.api.abi_minor < 1 || self.api.struct_size < needed {
            return None;
        }
        field(self.api)
    }

    /// Copies a host reply into a [`Reply`] and releases it; `None` for a null pointer.
    ///
    /// # Safety
    /// `raw` must be null or a reply from this host not yet released.
    unsafe fn take_reply(&self, raw: *mut RaiReply) -> Option<Reply> {
        if raw.is_null() {
            return None;
        }
        // SAFETY: guaranteed by the caller.
        let reply = unsafe { Reply::from_raw(&*raw) };
        if let Some(free) = self.api_fn(|api| api.reply_free) {
            // SAFETY: released once, after the copy above.
            unsafe { free(raw) };
        }
        Some(reply)
    }
}

/// The host's handle on the run in progress, for [`Host::redis_command`] and
/// [`Host::model_execute`]. Valid only while that run's call into the plugin lasts.
#[derive(Debug, Clone, Copy)]
pub struct HostContext(*mut c_void);

// SAFETY: the host accepts the context from any thread during the run it belongs to.
unsafe impl Send for HostContext {}
// SAFETY: as above.
unsafe impl Sync for HostContext {}

/// A Redis reply, owned.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Nil,
    Integer(i64),
    /// A bulk or status string.
    String(Vec<u8>),
    Error(String),
    Array(Vec<Reply>),
    Double(f64),
}

impl Reply {
    /// Copies a host reply tree.
    ///
    /// # Safety
    /// `raw` and everything it points to must be valid.
    unsafe fn from_raw(raw: &RaiReply) -> Reply {
        let bytes = || {
            if raw.str.is_null() || raw.len == 0 {
                Vec::new()
            } else {
                // SAFETY: guaranteed by the caller: `str` holds `len` bytes.
                unsafe { std::slice::from_raw_parts(raw.str.cast::<u8>(), raw.len) }.to_vec()
            }
        };
        match raw.kind {
            RaiReplyKind::Nil => Reply::Nil,
            RaiReplyKind::Integer => Reply::Integer(raw.integer),
            RaiReplyKind::Double => Reply::Double(raw.double_value),
            RaiReplyKind::String => Reply::String(bytes()),
            RaiReplyKind::Error => Reply::Error(String::from_utf8_lossy(&bytes()).into_owned()),
            RaiReplyKind::Array => {
                let items = if raw.elements.is_null() || raw.n_elements == 0 {
                    &[][..]
                } else {
                    // SAFETY: guaranteed by the caller.
                    unsafe { std::slice::from_raw_parts(raw.elements, raw.n_elements) }
                };
                // SAFETY: guaranteed by the caller, recursively.
                Reply::Array(
                    items
                        .iter()
                        .map(|item| unsafe { Reply::from_raw(item) })
                        .collect(),
                )
            }
        }
    }
}

pub use crate::abi::RaiLogLevel as LogLevel;

/// What the host asks of a model at load time.
#[derive(Debug, Clone)]
pub struct ModelOptions {
    pub device: Device,
    pub batch_size: u64,
    pub input_names: Vec<String>,
    pub output_names: Vec<String>,
}

/// Per-run settings.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// 0 means no limit.
    pub timeout_ms: u64,
    /// Set by the host when the run's result is no longer wanted.
    pub cancel: Option<CancelFlag>,
    /// For [`Host::redis_command`] and [`Host::model_execute`] during this run; `None`
    /// when the host offers none (model runs, or an older host).
    pub host_ctx: Option<HostContext>,
}

/// The host's "stop this run" flag. It may be read from any thread, but only while the
/// `run` call it came with is in progress.
#[derive(Debug, Clone, Copy)]
pub struct CancelFlag(*const std::sync::atomic::AtomicU32);

// SAFETY: the flag is an atomic the host keeps alive for the whole call; reading it
// from another thread during the call is what it is for.
unsafe impl Send for CancelFlag {}
// SAFETY: as above.
unsafe impl Sync for CancelFlag {}

impl CancelFlag {
    /// Whether the host asked the run to stop.
    pub fn is_set(&self) -> bool {
        // SAFETY: valid during the call (see the type's documentation); AtomicU32 has
        // the layout of u32.
        unsafe { (*self.0).load(std::sync::atomic::Ordering::Relaxed) != 0 }
    }
}

/// A borrowed input tensor (row-major, on the CPU).
#[derive(Debug, Clone, Copy)]
pub struct TensorRef<'a> {
    pub dtype: DType,
    pub device: Device,
    pub shape: &'a [i64],
    /// Raw bytes: little-endian numbers, or NUL-terminated strings for STRING.
    pub data: &'a [u8],
}

impl<'a> TensorRef<'a> {
    pub fn element_count(&self) -> usize {
        self.shape.iter().map(|&d| d.max(0) as usize).product()
    }

    /// The elements of a STRING tensor, without their terminating NULs.
    pub fn string_elements(&self) -> Vec<&'a [u8]> {
        let data = self.data;
        match data.strip_suffix(b"\0") {
            Some(body) => body.split(|&b| b == 0).collect(),
            None => Vec::new(),
        }
    }
}

/// An output tensor produced by a plugin (row-major, on the CPU).
#[derive(Debug, Clone, PartialEq)]
pub struct OwnedTensor {
    pub dtype: DType,
    pub shape: Vec<i64>,
    /// Raw bytes in the same layout as [`TensorRef::data`].
    pub data: Vec<u8>,
}

impl OwnedTensor {
    /// A STRING tensor from its elements (each must not contain NUL).
    pub fn from_strings<S: AsRef<[u8]>>(shape: Vec<i64>, elements: &[S]) -> OwnedTensor {
        let mut data = Vec::new();
        for element in elements {
            data.extend(element.as_ref().iter().copied().filter(|&b| b != 0));
            data.push(0);
        }
        OwnedTensor {
            dtype: DType::String,
            shape,
            data,
        }
    }
}

/// The arguments of one script function call (`AI.SCRIPTEXECUTE`).
#[derive(Debug, Clone)]
pub struct ScriptCall<'a> {
    pub function: String,
    pub inputs: Vec<TensorRef<'a>>,
    pub keys: Vec<String>,
    pub args: Vec<String>,
}

/// A backend. One instance exists per process, created by [`Plugin::init`].
pub trait Plugin: Sized + Send + Sync + 'static {
    type Model: Send + Sync + 'static;
    /// A compiled script; `()` for backends without scripts.
    type Script: Send + Sync + 'static;
    /// Whether the backend compiles and runs scripts (then it implements
    /// [`Plugin::load_script`] and [`Plugin::run_script`]).
    const SCRIPTS: bool = false;

    /// Backend name, e.g. `c"ONNX"`.
    const NAME: &'static CStr;
    /// Version of the framework runtime, e.g. `c"1.32.0"`.
    const RUNTIME_VERSION: &'static CStr;
    const DEVICES: &'static [DeviceKind];
    const DTYPES: &'static [DType];
    /// Whether `run` may be called on the same model from several threads at once.
    const CONCURRENT_RUN: bool;

    fn init(host: Host) -> Result<Self>;
    fn load_model(&self, options: &ModelOptions, blob: &[u8]) -> Result<Self::Model>;
    fn input_names(&self, model: &Self::Model) -> Vec<String>;
    fn output_names(&self, model: &Self::Model) -> Vec<String>;
    /// Runs the model and returns exactly `n_outputs` tensors.
    fn run(
        &self,
        model: &Self::Model,
        options: &RunOptions,
        inputs: &[TensorRef<'_>],
        n_outputs: usize,
    ) -> Result<Vec<OwnedTensor>>;

    /// Compiles a script whose callable functions are `entry_points`.
    fn load_script(
        &self,
        _device: Device,
        _source: &str,
        _entry_points: &[String],
    ) -> Result<Self::Script> {
        Err(Error(format!(
            "the {} backend does not support scripts",
            Self::NAME.to_string_lossy()
        )))
    }

    /// Runs one function of a script; returns at most `max_outputs` tensors.
    fn run_script(
        &self,
        _script: &Self::Script,
        _options: &RunOptions,
        _call: &ScriptCall<'_>,
        _max_outputs: usize,
    ) -> Result<Vec<OwnedTensor>> {
        Err(Error(format!(
            "the {} backend does not support scripts",
            Self::NAME.to_string_lossy()
        )))
    }
}

/// Where the one instance of a plugin lives; implemented by `export_plugin!`.
pub trait Instance: Plugin {
    fn cell() -> &'static OnceLock<Self>;
}

/// Exports a [`Plugin`] as the ABI's entry symbol.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        impl $crate::sdk::Instance for $plugin {
            fn cell() -> &'static ::std::sync::OnceLock<Self> {
                static CELL: ::std::sync::OnceLock<$plugin> = ::std::sync::OnceLock::new();
                &CELL
            }
        }

        /// The plugin's entry symbol.
        #[no_mangle]
        pub extern "C" fn redisai_plugin_entry() -> *const $crate::abi::RaiPluginApi {
            static TABLE: $crate::abi::RaiPluginApi = $crate::sdk::table::<$plugin>();
            &TABLE
        }
    };
}

/// The function table for plugin `P`.
pub const fn table<P: Instance>() -> crate::abi::RaiPluginApi {
    crate::abi::RaiPluginApi {
        abi_major: crate::abi::RAI_PLUGIN_ABI_MAJOR,
        abi_minor: crate::abi::RAI_PLUGIN_ABI_MINOR,
        struct_size: std::mem::size_of::<crate::abi::RaiPluginApi>(),
        name: P::NAME.as_ptr(),
        runtime_version: P::RUNTIME_VERSION.as_ptr(),
        device_mask: device_mask(P::DEVICES),
        dtype_mask: dtype_mask(P::DTYPES),
        flags: if P::CONCURRENT_RUN {
            crate::abi::RAI_PLUGIN_FLAG_CONCURRENT_RUN
        } else {
            0
        },
        init: Some(ffi_init::<P>),
        error_message: Some(ffi_error_message),
        error_free: Some(ffi_error_free),
        model_load: Some(ffi_model_load::<P>),
        model_free: Some(ffi_model_free::<P>),
        model_input_count: Some(ffi_input_count::<P>),
        model_input_name: Some(ffi_input_name::<P>),
        model_output_count: Some(ffi_output_count::<P>),
        model_output_name: Some(ffi_output_name::<P>),
        model_run: Some(ffi_model_run::<P>),
        tensor_release: Some(ffi_tensor_release),
        script_load: if P::SCRIPTS {
            Some(ffi_script_load::<P>)
        } else {
            None
        },
        script_free: if P::SCRIPTS {
            Some(ffi_script_free::<P>)
        } else {
            None
        },
        script_run: if P::SCRIPTS {
            Some(ffi_script_run::<P>)
        } else {
            None
        },
    }
}

const fn device_mask(devices: &[DeviceKind]) -> u32 {
    let mut mask = 0;
    let mut i = 0;
    while i < devices.len() {
        mask |= 1 << devices[i] as u32;
        i += 1;
    }
    mask
}

const fn dtype_mask(dtypes: &[DType]) -> u32 {
    let mut mask = 0;
    let mut i = 0;
    while i < dtypes.len() {
        mask |= 1 << dtypes[i] as u32;
        i += 1;
    }
    mask
}

static HOST: OnceLock<Host> = OnceLock::new();

/// The host services, once `init` has run.
pub fn host() -> Option<Host> {
    HOST.get().copied()
}

/// The error object behind `RaiError *`.
struct ErrorBox {
    message: CString,
}

fn error_ptr(err: Error) -> *mut RaiError {
    let message = CString::new(err.0.replace('\0', " ")).unwrap_or_default();
    Box::into_raw(Box::new(ErrorBox { message })).cast()
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

/// Runs `body`, turning an error or a panic into a `RaiError *`.
fn guard(what: &str, body: impl FnOnce() -> Result<()>) -> *mut RaiError {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => std::ptr::null_mut(),
        Ok(Err(err)) => error_ptr(err),
        Err(payload) => error_ptr(Error(format!(
            "panic in backend plugin during {what}: {}",
            panic_text(payload.as_ref())
        ))),
    }
}

/// Runs `body` for a function that cannot report errors; a panic is logged.
fn guard_quiet<R>(what: &str, fallback: R, body: impl FnOnce() -> R) -> R {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|payload| {
        if let Some(host) = host() {
            host.log(
                LogLevel::Warning,
                &format!(
                    "panic in backend plugin during {what}: {}",
                    panic_text(payload.as_ref())
                ),
            );
        }
        fallback
    })
}

fn instance<P: Instance>() -> Result<&'static P> {
    P::cell()
        .get()
        .ok_or_else(|| Error::new("the plugin was used before init"))
}

/// A loaded model with its input and output names kept as C strings.
struct ModelBox<M> {
    model: M,
    inputs: Vec<CString>,
    outputs: Vec<CString>,
}

fn c_strings(names: Vec<String>) -> Vec<CString> {
    names
        .into_iter()
        .map(|name| CString::new(name.replace('\0', " ")).unwrap_or_default())
        .collect()
}

/// Reads `count` C strings from `ptrs`.
///
/// # Safety
/// `ptrs` must point to `count` valid NUL-terminated strings, or be null with count 0.
unsafe fn read_strings(ptrs: *const *const c_char, count: usize) -> Result<Vec<String>> {
    if count == 0 || ptrs.is_null() {
        return Ok(Vec::new());
    }
    // SAFETY: guaranteed by the caller.
    let ptrs = unsafe { std::slice::from_raw_parts(ptrs, count) };
    ptrs.iter()
        .map(|&ptr| {
            if ptr.is_null() {
                return Err(Error::new("null string"));
            }
            // SAFETY: guaranteed by the caller.
            Ok(unsafe { CStr::from_ptr(ptr) }
                .to_string_lossy()
                .into_owned())
        })
        .collect()
}

/// Borrows a host tensor view as a [`TensorRef`].
///
/// # Safety
/// The view's pointers must be valid for the lengths it states.
unsafe fn tensor_ref<'a>(view: &RaiTensorView) -> Result<TensorRef<'a>> {
    if !view.strides.is_null() {
        // The host only sends contiguous tensors; a strided one is refused, not misread.
        // SAFETY: guaranteed by the caller.
        let strides = unsafe { std::slice::from_raw_parts(view.strides, view.ndim) };
        // SAFETY: guaranteed by the caller.
        let shape = unsafe { std::slice::from_raw_parts(view.shape, view.ndim) };
        let mut expected = 1i64;
        for (&stride, &dim) in strides.iter().zip(shape).rev() {
            if dim > 1 && stride != expected {
                return Err(Error::new("non-contiguous input tensors are not supported"));
            }
            expected = expected.saturating_mul(dim);
        }
    }
    let shape = if view.ndim == 0 {
        &[][..]
    } else {
        // SAFETY: guaranteed by the caller.
        unsafe { std::slice::from_raw_parts(view.shape, view.ndim) }
    };
    let data = if view.byte_len == 0 {
        &[][..]
    } else {
        // SAFETY: guaranteed by the caller.
        unsafe { std::slice::from_raw_parts(view.data.cast::<u8>(), view.byte_len) }
    };
    Ok(TensorRef {
        dtype: view.dtype,
        device: view.device.into(),
        shape,
        data,
    })
}

fn out_of(tensor: OwnedTensor) -> RaiTensorOut {
    let tensor = Box::new(tensor);
    let view = RaiTensorView {
        dtype: tensor.dtype,
        device: RaiDevice {
            kind: DeviceKind::Cpu,
            id: 0,
        },
        ndim: tensor.shape.len(),
        shape: tensor.shape.as_ptr(),
        strides: std::ptr::null(),
        data: tensor.data.as_ptr().cast(),
        byte_len: tensor.data.len(),
    };
    RaiTensorOut {
        view,
        owner: Box::into_raw(tensor).cast(),
    }
}

unsafe extern "C" fn ffi_init<P: Instance>(host: *const RaiHostApi) -> *mut RaiError {
    guard("init", || {
        // SAFETY: the host passes a table that lives for the rest of the process.
        let api = unsafe { host.as_ref() }.ok_or_else(|| Error::new("null host table"))?;
        let host = Host { api };
        let _ = HOST.set(host);
        if P::cell().get().is_some() {
            return Ok(());
        }
        let plugin = P::init(host)?;
        let _ = P::cell().set(plugin);
        Ok(())
    })
}

unsafe extern "C" fn ffi_error_message(error: *const RaiError) -> *const c_char {
    // SAFETY: errors handed to the host are `ErrorBox`es until `error_free`.
    match unsafe { error.cast::<ErrorBox>().as_ref() } {
        Some(error) => error.message.as_ptr(),
        None => c"".as_ptr(),
    }
}

unsafe extern "C" fn ffi_error_free(error: *mut RaiError) {
    if !error.is_null() {
        // SAFETY: created by `error_ptr` and freed once by the host.
        drop(unsafe { Box::from_raw(error.cast::<ErrorBox>()) });
    }
}

unsafe extern "C" fn ffi_model_load<P: Instance>(
    options: *const RaiModelOptions,
    blob: *const u8,
    blob_len: usize,
    out: *mut *mut RaiModel,
) -> *mut RaiError {
    guard("model load", || {
        let plugin = instance::<P>()?;
        // SAFETY: the host passes valid options for the duration of the call.
        let options = unsafe { options.as_ref() }.ok_or_else(|| Error::new("null options"))?;
        let options = ModelOptions {
            device: options.device.into(),
            batch_size: options.batch_size,
            // SAFETY: the host passes arrays of the stated lengths.
            input_names: unsafe { read_strings(options.input_names, options.n_input_names)? },
            // SAFETY: as above.
            output_names: unsafe { read_strings(options.output_names, options.n_output_names)? },
        };
        let blob = if blob_len == 0 {
            &[][..]
        } else {
            // SAFETY: the host passes a blob of `blob_len` bytes.
            unsafe { std::slice::from_raw_parts(blob, blob_len) }
        };
        let model = plugin.load_model(&options, blob)?;
        let boxed = ModelBox {
            inputs: c_strings(plugin.input_names(&model)),
            outputs: c_strings(plugin.output_names(&model)),
            model,
        };
        if out.is_null() {
            return Err(Error::new("null output pointer"));
        }
        // SAFETY: `out` is a valid pointer provided by the host.
        unsafe { *out = Box::into_raw(Box::new(boxed)).cast() };
        Ok(())
    })
}

/// Borrows the model behind a `RaiModel *`.
///
/// # Safety
/// `model` must come from `ffi_model_load::<P>` and not be freed.
unsafe fn model_box<'a, P: Plugin>(model: *const RaiModel) -> Option<&'a ModelBox<P::Model>> {
    // SAFETY: guaranteed by the caller.
    unsafe { model.cast::<ModelBox<P::Model>>().as_ref() }
}

unsafe extern "C" fn ffi_model_free<P: Instance>(model: *mut RaiModel) {
    guard_quiet("model free", (), || {
        if !model.is_null() {
            // SAFETY: created by `ffi_model_load::<P>` and freed once by the host.
            drop(unsafe { Box::from_raw(model.cast::<ModelBox<P::Model>>()) });
        }
    })
}

unsafe extern "C" fn ffi_input_count<P: Instance>(model: *const RaiModel) -> usize {
    // SAFETY: the host passes a live model of this plugin.
    unsafe { model_box::<P>(model) }.map_or(0, |m| m.inputs.len())
}

unsafe extern "C" fn ffi_input_name<P: Instance>(
    model: *const RaiModel,
    index: usize,
) -> *const c_char {
    // SAFETY: the host passes a live model of this plugin.
    unsafe { model_box::<P>(model) }
        .and_then(|m| m.inputs.get(index))
        .map_or(std::ptr::null(), |name| name.as_ptr())
}

unsafe extern "C" fn ffi_output_count<P: Instance>(model: *const RaiModel) -> usize {
    // SAFETY: the host passes a live model of this plugin.
    unsafe { model_box::<P>(model) }.map_or(0, |m| m.outputs.len())
}

unsafe extern "C" fn ffi_output_name<P: Instance>(
    model: *const RaiModel,
    index: usize,
) -> *const c_char {
    // SAFETY: the host passes a live model of this plugin.
    unsafe { model_box::<P>(model) }
        .and_then(|m| m.outputs.get(index))
        .map_or(std::ptr::null(), |name| name.as_ptr())
}

unsafe extern "C" fn ffi_model_run<P: Instance>(
    model: *mut RaiModel,
    options: *const RaiRunOptions,
    inputs: *const RaiTensorView,
    n_inputs: usize,
    outputs: *mut RaiTensorOut,
    n_outputs: usize,
) -> *mut RaiError {
    guard("model run", || {
        let plugin = instance::<P>()?;
        // SAFETY: the host passes a live model of this plugin.
        let model = unsafe { model_box::<P>(model) }.ok_or_else(|| Error::new("null model"))?;
        // SAFETY: the host passes valid options for the duration of the call.
        let options = unsafe { run_options(options) };
        // SAFETY: the host passes `n_inputs` valid views.
        let inputs = unsafe { tensor_refs(inputs, n_inputs)? };
        let produced = plugin.run(&model.model, &options, &inputs, n_outputs)?;
        if produced.len() != n_outputs {
            return Err(Error(format!(
                "the backend produced {} outputs, {n_outputs} were expected",
                produced.len()
            )));
        }
        // SAFETY: the host passes room for `n_outputs` outputs.
        unsafe { write_outputs(produced, outputs) }
    })
}

/// Reads the host's run options.
///
/// # Safety
/// `options` must be null or valid for the call.
unsafe fn run_options(options: *const RaiRunOptions) -> RunOptions {
    let host_has_ctx = host().is_some_and(|h| h.api.abi_minor >= 1);
    // SAFETY: guaranteed by the caller.
    unsafe { options.as_ref() }
        .map(|o| RunOptions {
            timeout_ms: o.timeout_ms,
            cancel: (!o.cancel.is_null()).then_some(CancelFlag(o.cancel.cast())),
            host_ctx: (host_has_ctx && !o.host_ctx.is_null()).then_some(HostContext(o.host_ctx)),
        })
        .unwrap_or(RunOptions {
            timeout_ms: 0,
            cancel: None,
            host_ctx: None,
        })
}

/// Borrows `count` host tensor views.
///
/// # Safety
/// `views` must point to `count` views whose pointers are valid for the call.
unsafe fn tensor_refs<'a>(views: *const RaiTensorView, count: usize) -> Result<Vec<TensorRef<'a>>> {
    if count == 0 {
        return Ok(Vec::new());
    }
    if views.is_null() {
        return Err(Error::new("null tensor array"));
    }
    // SAFETY: guaranteed by the caller.
    let views = unsafe { std::slice::from_raw_parts(views, count) };
    views
        .iter()
        // SAFETY: guaranteed by the caller.
        .map(|view| unsafe { tensor_ref(view) })
        .collect()
}

/// A borrowed view of a plugin-side tensor, for handing to the host.
fn view_of(tensor: &TensorRef<'_>) -> RaiTensorView {
    RaiTensorView {
        dtype: tensor.dtype,
        device: RaiDevice {
            kind: tensor.device.kind,
            id: tensor.device.id,
        },
        ndim: tensor.shape.len(),
        shape: tensor.shape.as_ptr(),
        strides: std::ptr::null(),
        data: tensor.data.as_ptr().cast(),
        byte_len: tensor.data.len(),
    }
}

/// Writes `produced` into the host's output array.
///
/// # Safety
/// `outputs` must have room for `produced.len()` outputs.
unsafe fn write_outputs(produced: Vec<OwnedTensor>, outputs: *mut RaiTensorOut) -> Result<()> {
    if !produced.is_empty() && outputs.is_null() {
        return Err(Error::new("null outputs array"));
    }
    for (index, tensor) in produced.into_iter().enumerate() {
        // SAFETY: guaranteed by the caller.
        unsafe { outputs.add(index).write(out_of(tensor)) };
    }
    Ok(())
}

unsafe extern "C" fn ffi_script_load<P: Instance>(
    device: RaiDevice,
    source: *const c_char,
    entry_points: *const *const c_char,
    n_entry_points: usize,
    out: *mut *mut RaiScript,
) -> *mut RaiError {
    guard("script load", || {
        let plugin = instance::<P>()?;
        if source.is_null() || out.is_null() {
            return Err(Error::new("null script source or output pointer"));
        }
        // SAFETY: the host passes a NUL-terminated source for the call.
        let source = unsafe { CStr::from_ptr(source) }
            .to_str()
            .map_err(|_| Error::new("script source is not valid UTF-8"))?;
        // SAFETY: the host passes `n_entry_points` strings.
        let entry_points = unsafe { read_strings(entry_points, n_entry_points)? };
        let script = plugin.load_script(device.into(), source, &entry_points)?;
        // SAFETY: `out` is a valid pointer provided by the host.
        unsafe { *out = Box::into_raw(Box::new(script)).cast() };
        Ok(())
    })
}

unsafe extern "C" fn ffi_script_free<P: Instance>(script: *mut RaiScript) {
    guard_quiet("script free", (), || {
        if !script.is_null() {
            // SAFETY: created by `ffi_script_load::<P>` and freed once by the host.
            drop(unsafe { Box::from_raw(script.cast::<P::Script>()) });
        }
    })
}

unsafe extern "C" fn ffi_script_run<P: Instance>(
    script: *mut RaiScript,
    options: *const RaiRunOptions,
    call: *const RaiScriptCall,
    outputs: *mut RaiTensorOut,
    max_outputs: usize,
    n_outputs: *mut usize,
) -> *mut RaiError {
    guard("script run", || {
        let plugin = instance::<P>()?;
        // SAFETY: the host passes a live script of this plugin.
        let script = unsafe { script.cast::<P::Script>().as_ref() }
            .ok_or_else(|| Error::new("null script"))?;
        // SAFETY: the host passes valid options for the duration of the call.
        let options = unsafe { run_options(options) };
        // SAFETY: the host passes a valid call for the duration of the call.
        let call = unsafe { call.as_ref() }.ok_or_else(|| Error::new("null script call"))?;
        if call.function.is_null() || n_outputs.is_null() {
            return Err(Error::new("null function name or output count"));
        }
        let call = ScriptCall {
            // SAFETY: the host passes a NUL-terminated function name.
            function: unsafe { CStr::from_ptr(call.function) }
                .to_string_lossy()
                .into_owned(),
            // SAFETY: the host passes `n_inputs` valid views.
            inputs: unsafe { tensor_refs(call.inputs, call.n_inputs)? },
            // SAFETY: the host passes arrays of the stated lengths.
            keys: unsafe { read_strings(call.keys, call.n_keys)? },
            // SAFETY: as above.
            args: unsafe { read_strings(call.args, call.n_args)? },
        };
        let produced = plugin.run_script(script, &options, &call, max_outputs)?;
        if produced.len() > max_outputs {
            return Err(Error(format!(
                "the script produced {} outputs, at most {max_outputs} were expected",
                produced.len()
            )));
        }
        let count = produced.len();
        // SAFETY: the host passes room for `max_outputs` outputs.
        unsafe { write_outputs(produced, outputs)? };
        // SAFETY: checked non-null above; valid for the call.
        unsafe { *n_outputs = count };
        Ok(())
    })
}

unsafe extern "C" fn ffi_tensor_release(owner: *mut c_void) {
    guard_quiet("tensor release", (), || {
        if !owner.is_null() {
            // SAFETY: created by `out_of` and released once by the host.
            drop(unsafe { Box::from_raw(owner.cast::<OwnedTensor>()) });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        assert_eq!(device_mask(&[DeviceKind::Cpu, DeviceKind::Gpu]), 0b11);
        assert_eq!(dtype_mask(&[DType::Float, DType::String]), 1 | (1 << 9));
    }

    #[test]
    fn string_outputs() {
        let tensor = OwnedTensor::from_strings(vec![2], &["ab", ""]);
        assert_eq!(tensor.data, b"ab\0\0");
    }

    #[test]
    fn errors_cross_as_boxes() {
        let err = guard("test", || Err(Error::new("bad blob")));
        // SAFETY: `err` is a live error from `guard`.
        let message = unsafe { CStr::from_ptr(ffi_error_message(err)) };
        assert_eq!(message.to_str(), Ok("bad blob"));
        // SAFETY: freed once.
        unsafe { ffi_error_free(err) };
        let panicked = guard("test", || panic!("boom"));
        // SAFETY: as above.
        let message = unsafe { CStr::from_ptr(ffi_error_message(panicked)) };
        assert!(message.to_string_lossy().contains("boom"));
        // SAFETY: freed once.
        unsafe { ffi_error_free(panicked) };
    }
}
