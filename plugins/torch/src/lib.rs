//! The TORCH backend of redisai-rs: TorchScript models and scripts, run with libtorch
//! 2.13 (the `torch` wheel's `libtorch_cpu.so`).
//!
//! Built as `libredisai_torch.so` and laid out as `backends/redisai_torch/redisai_torch.so`
//! with libtorch beside it in the wheels' own layout (`torch/lib/libtorch_cpu.so`,
//! `libc10.so`, `libgomp.so.1`, and `nvidia/cu13/lib/libcudart.so.13`, `libcupti.so.13`,
//! which libtorch_cpu loads even on CPU), found through `$ORIGIN` rpaths: the folder is
//! relocatable. libtorch is reached through a small C++ shim (`shim/*.cpp`, behind
//! [`ffi`]) that catches every C++ exception and returns its message.
//!
//! # Models
//! TorchScript modules (`torch.jit.save` / `.pt` files), run on the CPU (or a GPU, in
//! the GPU variant). Inputs are the arguments of `forward` by position, named after
//! them; outputs are what it returns: a tensor, or a tuple or list of tensors. Dtypes: FLOAT, DOUBLE, INT8, INT16, INT32,
//! INT64, UINT8, UINT16 (libtorch's support for its operators is limited) and BOOL; not
//! STRING (torch has no string tensors).
//!
//! # Scripts
//! TorchScript source; entry functions are `fn(tensors: List[Tensor], keys: List[str],
//! args: List[str])` and return a tensor, a list or tuple of tensors, or None. Inside a
//! script `redis.execute(cmd, args...)`, `redis.asList(reply)` and
//! `redisAI.model_execute(key, inputs, n_outputs)` reach the host (see [`extensions`]).
//!
//! # Sandbox
//! A stored model or script is hostile input: each is checked against the sandbox
//! policy ([`policy`]) when the plugin loads it (every store, RDB/AOF load and
//! replica goes through that load), and refused when it could run an operation outside
//! the policy, e.g. `model uses a forbidden operation: aten::from_file (file access)`.
//! The refused operators are also stubbed out of libtorch's registry at init.
//!
//! # BACKEND_MEMORY_LIMIT
//! At init the shim puts a counting CPU allocator in front of libtorch's
//! (`c10::SetAllocator`, shim/memory.cpp): every CPU tensor storage (weights at load,
//! inputs copied in, intermediate values, outputs until the host releases them) is
//! counted, and one that would take the total past the limit (MB, 10^6 bytes, read before
//! each load and run) is refused with `c10::OutOfMemoryError`, which unwinds the operator
//! and fails the run or load with `TORCH memory limit exceeded: ...`. Not counted:
//! libtorch's small bookkeeping (graphs, IValues), buffers oneDNN and BLAS allocate for
//! themselves, and CUDA memory. The plugin reports the count (ABI 1.3 `memory_stats`) and
//! each model's parameters and buffers (`model_memory`).
//!
//! # GPU variant
//! Built with the `cuda` feature, it is laid out as `backends/redisai_torch_gpu/` with
//! libtorch's CUDA libraries and NVIDIA's beside it (scripts/build-backend-torch-gpu) and
//! declares the CPU and GPU devices. Models and scripts on `GPU:n` run on
//! `torch::Device(kCUDA, n)`: a model's parameters are mapped there when it is loaded,
//! inputs are copied to the device and outputs back to the CPU by the shim (see
//! [`cuda`] for how libtorch's CUDA backend is loaded and what happens without a GPU).
//! In a script on a GPU, tensors the script makes itself (`torch.zeros(...)`) and the
//! outputs of `redisAI.model_execute` are CPU tensors: move them with `.to(x.device)`.
//!
//! # Settings
//! `INTRA_OP_PARALLELISM` and `INTER_OP_PARALLELISM` set libtorch's thread pools at
//! init (0 keeps libtorch's defaults). A run cannot be interrupted: timeouts and the
//! cancel flag are not watched.

#![warn(clippy::undocumented_unsafe_blocks)]

#[cfg(not(target_endian = "little"))]
compile_error!("tensor data crosses the plugin ABI as little-endian bytes");

pub mod archive_check;
pub mod cuda;
mod extensions;
pub mod ffi;
pub mod policy;

use std::ffi::CStr;

use redisai_plugin_api::sdk::{
    Config, ConfigKey, DType, Device, DeviceKind, Error, Host, LogLevel, MemoryStats, ModelOptions,
    OwnedTensor, Plugin, Result, RunOptions, ScriptCall, ScriptConvention, TensorRef,
};

pub use ffi::{make_module, make_module_with_child, torch_version, Module, Script, TorchDevice};

/// The libtorch version the plugin is built for (checked against the library at init).
pub const TORCH_VERSION: &str = "2.13.0";

/// The TORCH backend as a plugin.
pub struct TorchPlugin {
    host: Host,
}

impl TorchPlugin {
    /// Applies BACKEND_MEMORY_LIMIT (MB, 10^6 bytes as in RedisAI; 0: none) as it is now:
    /// read before each load and run, so `AI.CONFIG` changes take effect at the next one.
    fn refresh_memory_limit(&self) {
        ffi::set_memory_limit(self.host.memory_limit_bytes().unwrap_or(0));
    }
}

/// Where a model or script (`what`) stored on `device` runs. The GPU variant (`cuda`
/// feature) loads libtorch's CUDA backend from the plugin's folder first and checks that
/// libtorch sees the device; the CPU build refuses GPUs.
fn torch_device(device: Device, what: &str) -> Result<TorchDevice> {
    match device.kind {
        DeviceKind::Cpu => Ok(TorchDevice::Cpu),
        DeviceKind::Gpu if cfg!(feature = "cuda") => {
            let id = u32::try_from(device.id)
                .map_err(|_| Error::new(format!("invalid GPU index {}", device.id)))?;
            cuda::own_dir()
                .and_then(|dir| cuda::prepare(&dir, id))
                .map_err(|err| err.context(format_args!("cannot run the {what} on GPU:{id}")))?;
            Ok(TorchDevice::Cuda(id))
        }
        DeviceKind::Gpu => Err(Error::new(
            "the TORCH backend of this build runs on the CPU only (the GPU variant is redisai_torch_gpu, built by scripts/build-gpu)",
        )),
    }
}

/// A marker scripts/build-backend-torch-gpu looks for, to tell the GPU variant's file
/// from the CPU build's (both are target/release/libredisai_torch.so).
#[cfg(feature = "cuda")]
#[used]
static VARIANT_MARKER: [u8; 31] = *b"redisai-torch variant: cuda gpu";

#[cfg(feature = "cuda")]
const DEVICE_KINDS: &[DeviceKind] = &[DeviceKind::Cpu, DeviceKind::Gpu];
#[cfg(not(feature = "cuda"))]
const DEVICE_KINDS: &[DeviceKind] = &[DeviceKind::Cpu];

impl Plugin for TorchPlugin {
    type Model = Module;
    type Script = Script;
    const SCRIPTS: bool = true;

    const NAME: &'static CStr = c"TORCH";
    const RUNTIME_VERSION: &'static CStr = c"2.13.0";
    const DEVICES: &'static [DeviceKind] = DEVICE_KINDS;
    const DTYPES: &'static [DType] = DType::NUMERIC;
    const CONCURRENT_RUN: bool = true;

    fn init(host: Host) -> Result<Self> {
        // First of all (see cuda::load_backend): libtorch's CUDA backend, for GPU:n.
        #[cfg(feature = "cuda")]
        if let Err(err) = cuda::own_dir().and_then(|dir| cuda::load_backend(&dir)) {
            host.log(
                LogLevel::Warning,
                &format!(
                    "TORCH backend (GPU variant): libtorch's CUDA backend is not loaded, models and scripts on a GPU will be refused: {err}"
                ),
            );
        }
        let version = torch_version();
        if version != TORCH_VERSION {
            return Err(Error::new(format!(
                "the TORCH backend was built for libtorch {TORCH_VERSION} but loaded {version}"
            )));
        }
        let intra = host.config(ConfigKey::IntraOpParallelism);
        let inter = host.config(ConfigKey::InterOpParallelism);
        if let Err(err) = ffi::set_threads(intra, inter) {
            host.log(
                LogLevel::Warning,
                &format!(
                    "TORCH backend: could not set thread counts (intra {intra}, inter {inter}): {err}"
                ),
            );
        }
        extensions::register()
            .map_err(|err| err.context("could not register the script extensions"))?;
        // Before any model or script is loaded (see policy::install).
        policy::install()?;
        // BACKEND_MEMORY_LIMIT: every CPU tensor storage is counted from here on.
        ffi::install_memory_limit()
            .map_err(|err| err.context("could not install the memory limit"))?;
        let plugin = TorchPlugin { host };
        plugin.refresh_memory_limit();
        Ok(plugin)
    }

    fn memory_stats(&self) -> Option<MemoryStats> {
        let (held_bytes, peak_bytes, limit) = ffi::memory_stats();
        Some(MemoryStats {
            held_bytes,
            peak_bytes,
            limit_bytes: Some(limit),
        })
    }

    fn model_memory(&self, model: &Module) -> Option<u64> {
        model.memory_bytes()
    }

    fn load_model(&self, options: &ModelOptions, blob: &[u8]) -> Result<Module> {
        self.refresh_memory_limit();
        let device = torch_device(options.device, "model")?;
        archive_check::check(blob).map_err(Error::new)?;
        ffi::limit_aware(|| Module::load_on(blob, device))
    }

    fn input_names(&self, model: &Module) -> Vec<String> {
        model.input_names().to_vec()
    }

    fn output_names(&self, model: &Module) -> Vec<String> {
        (0..model.output_count())
            .map(|i| format!("output_{i}"))
            .collect()
    }

    fn run(
        &self,
        model: &Module,
        _options: &RunOptions,
        inputs: &[TensorRef<'_>],
        n_outputs: usize,
    ) -> Result<Vec<OwnedTensor>> {
        self.refresh_memory_limit();
        let outputs = ffi::limit_aware(|| model.forward(inputs))?;
        if outputs.len() != n_outputs {
            return Err(Error::invalid_input(format!(
                "the model returned {} tensors but {n_outputs} outputs were asked for",
                outputs.len()
            )));
        }
        Ok(outputs)
    }

    fn load_script(&self, device: Device, source: &str, entry_points: &[String]) -> Result<Script> {
        self.refresh_memory_limit();
        let device = torch_device(device, "script")?;
        ffi::limit_aware(|| Script::load_on(source, entry_points, device))
    }

    fn run_script(
        &self,
        script: &Script,
        options: &RunOptions,
        call: &ScriptCall<'_>,
        max_outputs: usize,
    ) -> Result<Vec<OwnedTensor>> {
        self.refresh_memory_limit();
        let outputs = {
            let _context = extensions::RunContext::enter(options.host_ctx);
            ffi::limit_aware(|| match call.convention {
                ScriptConvention::Lists => {
                    script.run(&call.function, &call.inputs, &call.keys, &call.args)
                }
                ScriptConvention::Positional { variadic } => {
                    script.run_positional(&call.function, &call.inputs, variadic)
                }
            })?
        };
        if outputs.len() > max_outputs {
            self.host.log(
                LogLevel::Verbose,
                &format!(
                    "TORCH script function {} returned {} tensors, {max_outputs} were asked for",
                    call.function,
                    outputs.len()
                ),
            );
            return Err(Error::new(format!(
                "function {} returned {} tensors but {max_outputs} outputs were given",
                call.function,
                outputs.len()
            )));
        }
        Ok(outputs)
    }
}

redisai_plugin_api::export_plugin!(TorchPlugin);
