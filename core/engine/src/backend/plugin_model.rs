//! A model created by a plugin, and running it on tensors.

use std::ffi::{c_char, c_void, CStr, CString};
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex, TryLockError};

use redisai_plugin_api::abi::{
    RaiDType, RaiDevice, RaiDeviceKind, RaiModel, RaiModelOptions, RaiRunOptions, RaiTensorOut,
    RaiTensorView, RAI_MEMORY_UNKNOWN,
};

use super::lent::LentScope;
use super::{Backend, BackendError, OutputBudget};
use crate::device::{Device, DeviceKind};
use crate::tensor::{AlignedBuffer, DType, Tensor};

/// What MODELSTORE asks of the plugin.
#[derive(Debug, Clone)]
pub struct ModelLoadOptions {
    pub device: Device,
    pub batch_size: u64,
    pub input_names: Vec<String>,
    pub output_names: Vec<String>,
}

/// A model owned by a plugin; freed through the plugin when dropped.
pub struct PluginModel {
    backend: Arc<Backend>,
    raw: *mut RaiModel,
    /// Held around runs when the plugin does not allow concurrent runs of one model.
    run_lock: Option<Mutex<()>>,
    pub input_names: Vec<String>,
    pub output_names: Vec<String>,
}

// SAFETY: the plugin ABI allows a model to be used from any thread; concurrent runs are
// serialised by `run_lock` unless the plugin declares them safe.
unsafe impl Send for PluginModel {}
// SAFETY: as above.
unsafe impl Sync for PluginModel {}

/// Mirror of `RaiTensorOut` whose enum fields are plain integers, so that whatever a
/// plugin writes there can be read without undefined behaviour.
#[repr(C)]
pub(super) struct RawTensorOut {
    dtype: u32,
    device_kind: u32,
    device_id: i32,
    ndim: usize,
    shape: *const i64,
    strides: *const i64,
    data: *const c_void,
    byte_len: usize,
    owner: *mut c_void,
}

const _: () = assert!(std::mem::size_of::<RawTensorOut>() == std::mem::size_of::<RaiTensorOut>());

impl Backend {
    /// Creates a model from its serialised form.
    pub fn load_model(
        self: &Arc<Self>,
        options: &ModelLoadOptions,
        blob: &[u8],
    ) -> Result<PluginModel, String> {
        let load = self.api.model_load.ok_or("the plugin cannot load models")?;
        let to_c = |names: &[String]| -> Result<Vec<CString>, String> {
            names
                .iter()
                .map(|n| CString::new(n.as_str()).map_err(|_| format!("name '{n}' contains NUL")))
                .collect()
        };
        let inputs = to_c(&options.input_names)?;
        let outputs = to_c(&options.output_names)?;
        let input_ptrs: Vec<*const c_char> = inputs.iter().map(|s| s.as_ptr()).collect();
        let output_ptrs: Vec<*const c_char> = outputs.iter().map(|s| s.as_ptr()).collect();
        let raw_options = RaiModelOptions {
            device: rai_device(options.device),
            batch_size: options.batch_size,
            input_names: input_ptrs.as_ptr(),
            n_input_names: input_ptrs.len(),
            output_names: output_ptrs.as_ptr(),
            n_output_names: output_ptrs.len(),
        };
        let mut raw: *mut RaiModel = std::ptr::null_mut();
        // SAFETY: every pointer refers to data that outlives the call.
        let error = unsafe { load(&raw_options, blob.as_ptr(), blob.len(), &mut raw) };
        if let Some(error) = self.take_error(error) {
            return Err(error.message);
        }
        if raw.is_null() {
            return Err(format!("backend {} returned no model", self.name));
        }
        let mut model = PluginModel {
            backend: Arc::clone(self),
            raw,
            run_lock: (!self.concurrent_run()).then(|| Mutex::new(())),
            input_names: Vec::new(),
            output_names: Vec::new(),
        };
        model.input_names = model.names(self.api.model_input_count, self.api.model_input_name);
        model.output_names = model.names(self.api.model_output_count, self.api.model_output_name);
        Ok(model)
    }
}

type CountFn = Option<unsafe extern "C" fn(*const RaiModel) -> usize>;
type NameFn = Option<unsafe extern "C" fn(*const RaiModel, usize) -> *const c_char>;

impl PluginModel {
    fn names(&self, count: CountFn, name: NameFn) -> Vec<String> {
        let (Some(count), Some(name)) = (count, name) else {
            return Vec::new();
        };
        // SAFETY: `raw` is a live model of this plugin.
        let n = unsafe { count(self.raw) };
        (0..n)
            .map(|index| {
                // SAFETY: as above; the name lives as long as the model.
                let ptr = unsafe { name(self.raw, index) };
                if ptr.is_null() {
                    String::new()
                } else {
                    // SAFETY: a NUL-terminated string owned by the model.
                    unsafe { CStr::from_ptr(ptr) }
                        .to_string_lossy()
                        .into_owned()
                }
            })
            .collect()
    }

    pub fn backend(&self) -> &Arc<Backend> {
        &self.backend
    }

    /// Bytes this model holds inside its backend (weights and what the runtime keeps
    /// for it), when the plugin can tell (ABI minor 3 `model_memory`); `None` otherwise.
    /// Cheap and callable from any thread (e.g. for `MEMORY USAGE` of the model key).
    pub fn memory_bytes(&self) -> Option<u64> {
        let model_memory = self.backend.api.model_memory?;
        // SAFETY: `raw` is a live model of this plugin until `drop`.
        let bytes = unsafe { model_memory(self.raw) };
        (bytes != RAI_MEMORY_UNKNOWN).then_some(bytes)
    }

    /// Runs the model and copies its `n_outputs` outputs into tensors of our own,
    /// waiting for another run of the model to end if the plugin runs one at a time.
    /// The outputs the host allocates are charged to `budget` first (see
    /// [`OutputBudget`]).
    pub fn run(
        &self,
        inputs: &[&Tensor],
        n_outputs: usize,
        timeout_ms: u64,
        cancel: &AtomicU32,
        budget: &OutputBudget,
    ) -> Result<Vec<Tensor>, BackendError> {
        let _guard = self
            .run_lock
            .as_ref()
            .map(|lock| lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        self.run_holding_lock(inputs, n_outputs, timeout_ms, Some(cancel), budget)
    }

    /// Like [`PluginModel::run`], but gives up (`None`) instead of waiting when another
    /// run of the model holds it, and takes no cancel flag.
    pub fn try_run(
        &self,
        inputs: &[&Tensor],
        n_outputs: usize,
        timeout_ms: u64,
        budget: &OutputBudget,
    ) -> Option<Result<Vec<Tensor>, BackendError>> {
        let _guard = match self.run_lock.as_ref().map(Mutex::try_lock) {
            None => None,
            Some(Ok(guard)) => Some(guard),
            Some(Err(TryLockError::Poisoned(poisoned))) => Some(poisoned.into_inner()),
            Some(Err(TryLockError::WouldBlock)) => return None,
        };
        Some(self.run_holding_lock(inputs, n_outputs, timeout_ms, None, budget))
    }

    /// The run itself; the caller holds `run_lock` when there is one.
    fn run_holding_lock(
        &self,
        inputs: &[&Tensor],
        n_outputs: usize,
        timeout_ms: u64,
        cancel: Option<&AtomicU32>,
        budget: &OutputBudget,
    ) -> Result<Vec<Tensor>, BackendError> {
        let run = self
            .backend
            .api
            .model_run
            .ok_or("the plugin cannot run models")?;
        for (index, input) in inputs.iter().enumerate() {
            if !self.backend.supports_dtype(input.dtype()) {
                return Err(BackendError::failed(format!(
                    "input {index} has dtype {}, which backend {} does not support",
                    input.dtype(),
                    self.backend.name
                )));
            }
        }
        let views: Vec<RaiTensorView> = inputs.iter().map(|t| tensor_view(t)).collect();
        let mut outputs: Vec<RawTensorOut> =
            (0..n_outputs).map(|_| RawTensorOut::empty()).collect();
        let options = RaiRunOptions {
            timeout_ms,
            // The ABI allows no flag (null): the plugin then watches none.
            cancel: cancel.map_or(std::ptr::null(), |flag| flag.as_ptr().cast_const()),
            host_ctx: std::ptr::null_mut(),
        };
        // Open until the outputs are converted: what the plugin wrote into lent memory
        // is adopted, the rest freed when it ends.
        let lent = LentScope::enter(budget);
        // SAFETY: the views point into tensors that outlive the call; `outputs` has room
        // for `n_outputs` entries laid out as `RaiTensorOut`.
        let error = unsafe {
            run(
                self.raw,
                &options,
                views.as_ptr(),
                views.len(),
                outputs.as_mut_ptr().cast::<RaiTensorOut>(),
                n_outputs,
            )
        };
        if let Some(error) = self.backend.take_error(error) {
            // On error the plugin keeps ownership of anything it produced.
            return Err(lent.plugin_error(error));
        }
        let converted: Vec<Result<Tensor, BackendError>> = outputs
            .iter()
            .map(|out| output_to_tensor(&self.backend, out, &lent))
            .collect();
        for out in &outputs {
            self.release(out);
        }
        converted.into_iter().collect()
    }

    fn release(&self, out: &RawTensorOut) {
        release_output(&self.backend, out);
    }
}

/// A plugin output as a tensor of our own: its data adopted when the plugin wrote it into
/// memory `lent` during the call, copied otherwise (when the copy fits the call's output
/// budget).
pub(super) fn output_to_tensor(
    backend: &Backend,
    out: &RawTensorOut,
    lent: &LentScope,
) -> Result<Tensor, BackendError> {
    let dtype = DType::from_code(u64::from(out.dtype)).ok_or_else(|| {
        format!(
            "backend {} produced an unknown dtype {}",
            backend.name, out.dtype
        )
    })?;
    if out.device_kind != RaiDeviceKind::Cpu as u32 {
        return Err(BackendError::failed(format!(
            "backend {} returned an output that is not on the CPU",
            backend.name
        )));
    }
    if out.ndim > 0 && out.shape.is_null() || out.byte_len > 0 && out.data.is_null() {
        return Err(BackendError::failed(format!(
            "backend {} returned an output without data",
            backend.name
        )));
    }
    let shape = if out.ndim == 0 {
        Vec::new()
    } else {
        // SAFETY: the plugin filled `ndim` dimensions at `shape`, valid until release.
        unsafe { std::slice::from_raw_parts(out.shape, out.ndim) }.to_vec()
    };
    let buffer = match lent.adopt(out.data, out.byte_len) {
        Some(adopted) => adopted,
        None => copy_output(out, lent)?,
    };
    Tensor::from_buffer(dtype, shape, buffer).map_err(|err| {
        BackendError::failed(format!(
            "backend {} returned a malformed output: {err}",
            backend.name
        ))
    })
}

/// The engine's copy of an output the plugin did not write into lent memory, charged to
/// the call's budget before it is allocated.
fn copy_output(out: &RawTensorOut, lent: &LentScope) -> Result<AlignedBuffer, BackendError> {
    let bytes = if out.byte_len == 0 {
        &[][..]
    } else {
        // SAFETY: the plugin filled `byte_len` bytes at `data` (checked non-null), valid
        // until release.
        unsafe { std::slice::from_raw_parts(out.data.cast::<u8>(), out.byte_len) }
    };
    lent.charge_copy(bytes.len())?;
    AlignedBuffer::copy_from(bytes).map_err(|err| {
        lent.refund_copy(out.byte_len);
        BackendError::failed(format!("cannot allocate {} bytes", err.bytes))
    })
}

/// Hands a plugin output back to the plugin.
pub(super) fn release_output(backend: &Backend, out: &RawTensorOut) {
    if out.owner.is_null() {
        return;
    }
    if let Some(release) = backend.api.tensor_release {
        // SAFETY: each output owner is released exactly once.
        unsafe { release(out.owner) };
    }
}

impl Drop for PluginModel {
    fn drop(&mut self) {
        if let Some(free) = self.backend.api.model_free {
            // SAFETY: the model is freed exactly once, when its last user is gone.
            unsafe { free(self.raw) };
        }
    }
}

impl RawTensorOut {
    pub(super) fn empty() -> RawTensorOut {
        RawTensorOut {
            dtype: 0,
            device_kind: 0,
            device_id: 0,
            ndim: 0,
            shape: std::ptr::null(),
            strides: std::ptr::null(),
            data: std::ptr::null(),
            byte_len: 0,
            owner: std::ptr::null_mut(),
        }
    }
}

pub fn rai_dtype(dtype: DType) -> RaiDType {
    match dtype {
        DType::Float => RaiDType::Float,
        DType::Double => RaiDType::Double,
        DType::Int8 => RaiDType::Int8,
        DType::Int16 => RaiDType::Int16,
        DType::Int32 => RaiDType::Int32,
        DType::Int64 => RaiDType::Int64,
        DType::Uint8 => RaiDType::Uint8,
        DType::Uint16 => RaiDType::Uint16,
        DType::Bool => RaiDType::Bool,
        DType::String => RaiDType::String,
    }
}

pub fn rai_device(device: Device) -> RaiDevice {
    RaiDevice {
        kind: match device.kind {
            DeviceKind::Cpu => RaiDeviceKind::Cpu,
            DeviceKind::Gpu => RaiDeviceKind::Gpu,
        },
        id: i32::try_from(device.ordinal()).unwrap_or(i32::MAX),
    }
}

/// A borrowed view of `tensor` for a plugin (valid while `tensor` lives).
pub fn tensor_view(tensor: &Tensor) -> RaiTensorView {
    RaiTensorView {
        dtype: rai_dtype(tensor.dtype()),
        device: rai_device(Device::CPU),
        ndim: tensor.shape().len(),
        shape: tensor.shape().as_ptr(),
        strides: std::ptr::null(),
        data: tensor.data().as_ptr().cast(),
        byte_len: tensor.data().len(),
    }
}
