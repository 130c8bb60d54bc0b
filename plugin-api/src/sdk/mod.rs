//! The safe Rust side of the plugin ABI.
//!
//! A plugin implements [`Plugin`] and invokes [`export_plugin!`](crate::export_plugin).
//! The generated entry points catch every panic and turn it into an error (or, for
//! functions that cannot report one, a log line), so nothing unwinds into the host.
//!
//! Besides the table: [`Error`] (a code and the client's message), what the built-in
//! backends share ([`Config`] for the host's settings, [`RuntimeLibrary`] and
//! [`RetryOnce`] for the runtime library, [`DType`]'s names and sizes) and
//! [`cancel::watch`].

use std::ffi::CStr;
use std::sync::OnceLock;

pub mod cancel;
mod dtype;
mod error;
mod ffi;
mod host;
mod library;
mod once;
mod output;
mod settings;
mod system_alloc;

pub use error::{Error, ErrorCode};
use ffi::*;
pub use host::{Host, HostContext, Reply};
pub use library::{own_object_path, RuntimeLibrary};
pub use once::RetryOnce;
pub use output::OutputBuffer;
pub use settings::{effective_timeout, limit_bytes, thread_count, Config};
pub use system_alloc::SystemAllocator;

use crate::abi::RaiDevice;
pub use crate::abi::{RaiConfigKey as ConfigKey, RaiDType as DType, RaiDeviceKind as DeviceKind};

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
    /// Checks that input `index` of a model (its input `name`) has the `expected` dtype
    /// and lies in CPU memory; the error ([`ErrorCode::InvalidInput`]) says which is not so.
    pub fn check_input(&self, index: usize, name: &str, expected: DType) -> Result<()> {
        if self.dtype != expected {
            return Err(Error::invalid_input(format!(
                "input {index} ('{name}') has dtype {}, the model expects {}",
                self.dtype.name(),
                expected.name()
            )));
        }
        if self.device.kind != DeviceKind::Cpu {
            return Err(Error::invalid_input(format!(
                "input {index} ('{name}') is not in CPU memory"
            )));
        }
        Ok(())
    }

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
    /// Raw bytes in the same layout as [`TensorRef::data`], in memory the host lent
    /// for the run when the plugin asked for it ([`OutputBuffer`]).
    pub data: OutputBuffer,
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
            data: data.into(),
        }
    }
}

/// How the inputs of a script call map to the function's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptConvention {
    /// `AI.SCRIPTEXECUTE`: `fn(tensors: List[Tensor], keys: List[str], args: List[str])`.
    Lists,
    /// The deprecated `AI.SCRIPTRUN`: the inputs are the function's parameters, in
    /// order; `variadic` is the index of the first input after the `$` marker (those
    /// form one list of tensors), `None` when the command had no `$`.
    Positional { variadic: Option<usize> },
}

/// The arguments of one script function call (`AI.SCRIPTEXECUTE` or `AI.SCRIPTRUN`).
#[derive(Debug, Clone)]
pub struct ScriptCall<'a> {
    pub function: String,
    pub inputs: Vec<TensorRef<'a>>,
    pub keys: Vec<String>,
    pub args: Vec<String>,
    pub convention: ScriptConvention,
}

/// The memory a backend holds, as [`Plugin::memory_stats`] reports it (bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Bytes held now, as far as the runtime's allocator counts them.
    pub held_bytes: u64,
    /// Highest `held_bytes` since init.
    pub peak_bytes: u64,
    /// The bound enforced now: `Some(0)` for none, `None` when the backend cannot bound
    /// its memory.
    pub limit_bytes: Option<u64>,
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
    /// Whether `run` always stops at the run's timeout (`RAI_PLUGIN_FLAG_INTERRUPTIBLE_RUN`).
    const INTERRUPTIBLE_RUN: bool = false;

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

    /// The memory the backend holds now and its peak (ABI minor 3); `None` when its
    /// runtime cannot tell. Called from any thread; must be cheap.
    fn memory_stats(&self) -> Option<MemoryStats> {
        None
    }

    /// Bytes one model holds (weights and what the runtime keeps for it); `None` when
    /// the runtime cannot tell.
    fn model_memory(&self, _model: &Self::Model) -> Option<u64> {
        None
    }

    /// Compiles a script whose callable functions are `entry_points`.
    fn load_script(
        &self,
        _device: Device,
        _source: &str,
        _entry_points: &[String],
    ) -> Result<Self::Script> {
        Err(Error::new(format!(
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
        Err(Error::new(format!(
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
        flags: flag(
            P::CONCURRENT_RUN,
            crate::abi::RAI_PLUGIN_FLAG_CONCURRENT_RUN,
        ) | flag(
            P::INTERRUPTIBLE_RUN,
            crate::abi::RAI_PLUGIN_FLAG_INTERRUPTIBLE_RUN,
        ),
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
        memory_stats: Some(ffi_memory_stats::<P>),
        model_memory: Some(ffi_model_memory::<P>),
        error_code: Some(ffi_error_code),
    }
}

const fn flag(set: bool, bit: u32) -> u32 {
    if set {
        bit
    } else {
        0
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
