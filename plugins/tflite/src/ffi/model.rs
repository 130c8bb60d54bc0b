//! A parsed model (`LiteRtModel`): its main subgraph's inputs and outputs.

use std::ffi::{c_int, c_void, CStr};
use std::ptr;

use redisai_plugin_api::sdk::{Error, Result};

use super::{get, guarded, Api, Handle, Layout, RankedTensorType, Runtime};

/// `kLiteRtRankedTensorType` (the other `LiteRtTensorTypeId` is unranked).
const RANKED_TENSOR_TYPE: c_int = 0;

/// The model's bytes, 64-byte aligned (LiteRT's host memory alignment): LiteRT reads the
/// flatbuffer in place, and its weights are used without copying.
struct AlignedBytes {
    chunks: Vec<Chunk>,
    len: usize,
}

#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Chunk([u8; 64]);

impl AlignedBytes {
    fn copy_of(bytes: &[u8]) -> AlignedBytes {
        let mut chunks = vec![Chunk([0; 64]); bytes.len().div_ceil(64)];
        for (chunk, part) in chunks.iter_mut().zip(bytes.chunks(64)) {
            chunk.0[..part.len()].copy_from_slice(part);
        }
        AlignedBytes {
            chunks,
            len: bytes.len(),
        }
    }

    fn as_ptr(&self) -> *const c_void {
        self.chunks.as_ptr().cast()
    }
}

/// A parsed model and the bytes it reads from.
pub struct Model {
    pub(super) runtime: &'static Runtime,
    pub(super) raw: Handle,
    /// Must outlive `raw` (LiteRtCreateModelFromBuffer does not copy).
    _bytes: AlignedBytes,
}

// SAFETY: a LiteRtModel is not tied to a thread; the backend uses it from one thread at a
// time (it sits behind the model's mutex once compiled).
unsafe impl Send for Model {}

/// One input or output of a model's main subgraph.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    pub name: String,
    /// A `LiteRtElementType`.
    pub element_type: c_int,
    /// Its index in the signature, which is the order LiteRT's run takes buffers in.
    pub signature_index: usize,
}

/// The main subgraph's inputs and outputs, in the subgraph's order, and the signature
/// that runs that subgraph.
#[derive(Debug, Clone)]
pub struct ModelIo {
    pub signature: usize,
    pub inputs: Vec<TensorInfo>,
    pub outputs: Vec<TensorInfo>,
}

/// Inputs or outputs.
#[derive(Clone, Copy)]
enum Side {
    Inputs,
    Outputs,
}

impl Model {
    /// Parses a .tflite flatbuffer (copied into memory the model owns). LiteRT verifies
    /// the flatbuffer's structure.
    pub fn from_bytes(runtime: &'static Runtime, bytes: &[u8]) -> Result<Model> {
        let bytes = AlignedBytes::copy_of(bytes);
        let api = &runtime.api;
        let raw = get("LiteRtCreateModelFromBuffer", ptr::null_mut(), |out| {
            // SAFETY: the environment is live; the buffer holds `len` bytes and lives as
            // long as the model (it is moved into it below); `out` is a valid out-pointer.
            unsafe {
                (api.create_model_from_buffer)(runtime.environment, bytes.as_ptr(), bytes.len, out)
            }
        })?;
        if raw.is_null() {
            return Err(Error::new("LiteRtCreateModelFromBuffer returned no model"));
        }
        Ok(Model {
            runtime,
            raw,
            _bytes: bytes,
        })
    }

    fn api(&self) -> &Api {
        &self.runtime.api
    }

    /// The inputs and outputs of the main subgraph and the signature that runs it.
    pub fn io(&self) -> Result<ModelIo> {
        let api = self.api();
        let model = self.raw;
        let main = get("LiteRtGetMainModelSubgraphIndex", 0usize, |out| {
            // SAFETY: `model` is a live model; `out` is a valid out-pointer.
            unsafe { (api.get_main_model_subgraph_index)(model, out) }
        })?;
        let subgraph = get("LiteRtGetModelSubgraph", ptr::null_mut(), |out| {
            // SAFETY: as above. The subgraph is owned by the model.
            unsafe { (api.get_model_subgraph)(model, main, out) }
        })?;
        let n_signatures = get("LiteRtGetNumModelSignatures", 0usize, |out| {
            // SAFETY: as above.
            unsafe { (api.get_num_model_signatures)(model, out) }
        })?;
        let mut found = None;
        for index in 0..n_signatures {
            let signature = get("LiteRtGetModelSignature", ptr::null_mut(), |out| {
                // SAFETY: as above; `index` is below the count. The signature is owned by
                // the model.
                unsafe { (api.get_model_signature)(model, index, out) }
            })?;
            let runs = get("LiteRtGetSignatureSubgraph", ptr::null_mut(), |out| {
                // SAFETY: `signature` belongs to the live model; `out` is valid.
                unsafe { (api.get_signature_subgraph)(signature, out) }
            })?;
            if runs == subgraph {
                found = Some((index, signature));
                break;
            }
        }
        let (index, signature) = found.ok_or_else(|| {
            Error::new(format!(
                "no signature of the model runs its main subgraph ({main}): LiteRT cannot run it"
            ))
        })?;
        Ok(ModelIo {
            signature: index,
            inputs: self.side(Side::Inputs, subgraph, signature)?,
            outputs: self.side(Side::Outputs, subgraph, signature)?,
        })
    }

    /// The inputs or outputs of `subgraph`, each with its position in `signature` (both
    /// handles of this model).
    fn side(&self, side: Side, subgraph: Handle, signature: Handle) -> Result<Vec<TensorInfo>> {
        let api = self.api();
        let inputs = matches!(side, Side::Inputs);
        let what = if inputs { "input" } else { "output" };
        let count = get("LiteRtGetNumSubgraphInputs/Outputs", 0usize, |out| {
            // SAFETY: `subgraph` belongs to this live model; `out` is a valid out-pointer.
            unsafe {
                if inputs {
                    (api.get_num_subgraph_inputs)(subgraph, out)
                } else {
                    (api.get_num_subgraph_outputs)(subgraph, out)
                }
            }
        })?;
        let in_signature = get("LiteRtGetNumSignatureInputs/Outputs", 0usize, |out| {
            // SAFETY: `signature` belongs to this live model; `out` is a valid out-pointer.
            unsafe {
                if inputs {
                    (api.get_num_signature_inputs)(signature, out)
                } else {
                    (api.get_num_signature_outputs)(signature, out)
                }
            }
        })?;
        if in_signature != count {
            return Err(Error::new(format!(
                "the model's main subgraph has {count} {what}s, its signature {in_signature}"
            )));
        }
        let mut signature_tensors = Vec::with_capacity(count);
        for k in 0..count {
            signature_tensors.push(get(
                "LiteRtGetSignatureInput/OutputTensorByIndex",
                ptr::null_mut(),
                |out| {
                    // SAFETY: as above; `k` is below the count. The tensor is owned by the
                    // model.
                    unsafe {
                        if inputs {
                            (api.get_signature_input_tensor_by_index)(signature, k, out)
                        } else {
                            (api.get_signature_output_tensor_by_index)(signature, k, out)
                        }
                    }
                },
            )?);
        }
        let mut infos = Vec::with_capacity(count);
        for i in 0..count {
            let tensor = get("LiteRtGetSubgraphInput/Output", ptr::null_mut(), |out| {
                // SAFETY: `subgraph` belongs to this live model; `i` is below the count;
                // `out` is a valid out-pointer. The tensor is owned by the model.
                unsafe {
                    if inputs {
                        (api.get_subgraph_input)(subgraph, i, out)
                    } else {
                        (api.get_subgraph_output)(subgraph, i, out)
                    }
                }
            })?;
            let signature_index = signature_tensors
                .iter()
                .position(|&t| t == tensor)
                .ok_or_else(|| {
                    Error::new(format!(
                        "{what} {i} of the main subgraph is not in its signature"
                    ))
                })?;
            infos.push(self.tensor_info(tensor, signature_index)?);
        }
        Ok(infos)
    }

    /// Name and element type of `tensor` (a tensor of this model).
    fn tensor_info(&self, tensor: Handle, signature_index: usize) -> Result<TensorInfo> {
        let api = self.api();
        let name = get("LiteRtGetTensorName", ptr::null(), |out| {
            // SAFETY: `tensor` belongs to this live model; `out` is a valid out-pointer.
            unsafe { (api.get_tensor_name)(tensor, out) }
        })?;
        let name = if name.is_null() {
            String::new()
        } else {
            // SAFETY: LiteRT returns a NUL-terminated string owned by the model, which is
            // alive; it is copied at once.
            unsafe { CStr::from_ptr(name) }
                .to_string_lossy()
                .into_owned()
        };
        let type_id = get("LiteRtGetTensorTypeId", 0, |out| {
            // SAFETY: as for the name.
            unsafe { (api.get_tensor_type_id)(tensor, out) }
        })?;
        let element_type = if type_id == RANKED_TENSOR_TYPE {
            let unknown = RankedTensorType {
                element_type: 0,
                layout: Layout::default(),
            };
            let ranked = get("LiteRtGetRankedTensorType", unknown, |out| {
                // SAFETY: as for the name; `out` points to a LiteRtRankedTensorType.
                unsafe { (api.get_ranked_tensor_type)(tensor, out) }
            })?;
            ranked.element_type
        } else {
            get("LiteRtGetUnrankedTensorType", 0, |out| {
                // SAFETY: as for the name; `out` points to a LiteRtUnrankedTensorType (one
                // enum).
                unsafe { (api.get_unranked_tensor_type)(tensor, out) }
            })?
        };
        Ok(TensorInfo {
            name,
            element_type,
            signature_index,
        })
    }
}

impl Drop for Model {
    fn drop(&mut self) {
        let (api, raw) = (self.api(), self.raw);
        let _ = guarded("LiteRtDestroyModel", || {
            // SAFETY: `raw` is a live model, destroyed once; nothing uses it afterwards (a
            // compiled model that uses it is destroyed first, see CompiledModel's fields).
            unsafe { (api.destroy_model)(raw) }
        });
    }
}
