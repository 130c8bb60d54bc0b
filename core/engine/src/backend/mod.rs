//! Backend plugins: loading them (with the ABI check), the services the core offers
//! them, and safe wrappers around the models they create.

mod error;
pub mod host;
pub mod host_services;
mod lent;
mod loader;
pub mod output_budget;
mod plugin_model;
mod plugin_script;
pub mod registry;
pub mod reply;

pub use error::{BackendError, ErrorCode};
pub use host::RunContext;
pub use loader::{load_plugin, LoadError};
pub use output_budget::OutputBudget;
pub use plugin_model::{tensor_view, ModelLoadOptions, PluginModel};
pub use plugin_script::{PluginScript, ScriptCallArgs, MAX_UNDECLARED_OUTPUTS};

use std::ffi::CStr;
use std::path::PathBuf;

use redisai_plugin_api::abi::{
    RaiError, RaiMemoryStats, RaiPluginApi, RAI_MEMORY_UNKNOWN, RAI_PLUGIN_FLAG_CONCURRENT_RUN,
    RAI_PLUGIN_FLAG_INTERRUPTIBLE_RUN,
};

use crate::device::DeviceKind;

/// The memory one backend holds, as its plugin reports it (see
/// [`Backend::memory_stats`] and [`registry::memory_stats`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendMemory {
    /// Backend name, e.g. "ONNX".
    pub name: String,
    /// Bytes its runtime holds now.
    pub held_bytes: u64,
    /// Highest `held_bytes` since the backend was loaded.
    pub peak_bytes: u64,
    /// The bound it enforces (BACKEND_MEMORY_LIMIT in bytes; `Some(0)`: none), or `None`
    /// when the backend cannot bound its memory.
    pub limit_bytes: Option<u64>,
}

/// A loaded plugin. Plugins stay loaded for the life of the process: the runtimes they
/// carry cannot be unloaded safely.
pub struct Backend {
    /// The name the plugin gives itself (`ONNX`, `TORCH`, ...), upper-case.
    pub name: String,
    pub runtime_version: String,
    pub abi_version: (u32, u32),
    pub path: PathBuf,
    device_mask: u32,
    dtype_mask: u32,
    flags: u32,
    api: &'static RaiPluginApi,
}

impl Backend {
    pub fn supports_device(&self, kind: DeviceKind) -> bool {
        let bit = match kind {
            DeviceKind::Cpu => 1,
            DeviceKind::Gpu => 2,
        };
        self.device_mask & bit != 0
    }

    pub fn device_names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        if self.supports_device(DeviceKind::Cpu) {
            names.push("CPU");
        }
        if self.supports_device(DeviceKind::Gpu) {
            names.push("GPU");
        }
        names
    }

    pub fn supports_dtype(&self, dtype: crate::tensor::DType) -> bool {
        self.dtype_mask & (1 << dtype.code()) != 0
    }

    pub fn concurrent_run(&self) -> bool {
        self.flags & RAI_PLUGIN_FLAG_CONCURRENT_RUN != 0
    }

    /// Whether the plugin stops a run at its timeout, so its runs may go inline.
    pub fn interruptible_run(&self) -> bool {
        self.flags & RAI_PLUGIN_FLAG_INTERRUPTIBLE_RUN != 0
    }

    /// Whether the plugin says what kind of failure each error is (ABI minor 4
    /// `error_code`); an older plugin's errors are all [`ErrorCode::Failed`].
    pub fn reports_error_codes(&self) -> bool {
        self.api.error_code.is_some()
    }

    /// What the backend holds now and its peak, when the plugin can tell (ABI minor 3
    /// `memory_stats`); `None` for an older plugin or one whose runtime cannot count.
    pub fn memory_stats(&self) -> Option<BackendMemory> {
        let fill = self.api.memory_stats?;
        let mut stats = RaiMemoryStats {
            struct_size: std::mem::size_of::<RaiMemoryStats>(),
            held_bytes: RAI_MEMORY_UNKNOWN,
            peak_bytes: RAI_MEMORY_UNKNOWN,
            limit_bytes: RAI_MEMORY_UNKNOWN,
        };
        // SAFETY: `stats` is a valid, writable struct whose `struct_size` is set; the
        // plugin writes only within it.
        unsafe { fill(&mut stats) };
        let known = |bytes: u64| (bytes != RAI_MEMORY_UNKNOWN).then_some(bytes);
        let held_bytes = known(stats.held_bytes)?;
        Some(BackendMemory {
            name: self.name.clone(),
            held_bytes,
            peak_bytes: known(stats.peak_bytes).unwrap_or(held_bytes),
            limit_bytes: known(stats.limit_bytes),
        })
    }

    /// Reads and frees a plugin error (its code, when the plugin reports codes, and its
    /// message); `None` for success.
    fn take_error(&self, error: *mut RaiError) -> Option<BackendError> {
        if error.is_null() {
            return None;
        }
        let message = match self.api.error_message {
            // SAFETY: `error` is a live error object of this plugin; the message stays
            // valid until `error_free`.
            Some(message) => unsafe {
                let text = message(error);
                if text.is_null() {
                    String::new()
                } else {
                    CStr::from_ptr(text).to_string_lossy().into_owned()
                }
            },
            None => String::new(),
        };
        let code = match self.api.error_code {
            // SAFETY: as above; `error_code` only reads the live error.
            Some(error_code) => ErrorCode::from_raw(unsafe { error_code(error) }),
            None => ErrorCode::Failed,
        };
        if let Some(free) = self.api.error_free {
            // SAFETY: each error is freed exactly once, here.
            unsafe { free(error) };
        }
        let message = if message.is_empty() {
            format!("backend {} reported an error without a message", self.name)
        } else {
            message
        };
        Some(BackendError { code, message })
    }
}
