//! Outputs ONNX Runtime writes straight into the memory the host lends (ABI minor 5), so
//! that they reach the keyspace with no copy at all.
//!
//! ONNX Runtime fills an output the caller pre-allocated when its shape is the one the run
//! computes. An output's shape is known before the run when the model declares every
//! dimension of it, each either fixed or named by a symbol that also names a dimension of
//! an input (ONNX requires dimensions with the same name to be equal), as an image model
//! declaring `[N, 3, 512, 512]` for both its input and its output does. Such outputs are
//! planned when the model is loaded ([`OutputPlan::of`]) and given lent buffers before each
//! run ([`OutputPlan::lend`]); the others are copied once, into lent memory, after it.
//!
//! A model whose declared shapes do not hold makes ONNX Runtime refuse the buffer ("Shape
//! mismatch attempting to re-use buffer"): the run is made again without pre-allocated
//! outputs and the model stops pre-allocating ([`OutputPlan::mismatched`]).

use std::ffi::c_void;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, Ordering};

use ort::memory::{Allocator, MemoryInfo};
use ort::session::OutputSelector;
use ort::sys::OrtValue;
use ort::value::{DynValue, Outlet, TensorElementType, ValueType};
use ort::AsPointer;
use redisai_plugin_api::sdk::{DType, Error, ErrorCode, OutputBuffer, Result, TensorRef};

use crate::convert::{dtype_of, Form, Port};

/// ONNX Runtime's error when a pre-allocated output does not have the run's shape.
const SHAPE_MISMATCH: &str = "re-use buffer";

/// Below this many bytes of planned outputs a run does not pre-allocate: copying them
/// once costs less than handing ONNX Runtime the buffers (run options, values).
const MIN_BYTES: usize = 64 << 10;

/// Above this many bytes of planned outputs a run does not pre-allocate either: the plan
/// comes from shapes a (hostile) model declares, and lent memory is taken from Redis's
/// allocator before ONNX Runtime has checked anything, where a failed allocation aborts
/// the server. Bigger outputs are allocated by ONNX Runtime and copied once, as before.
const MAX_BYTES: usize = 256 << 20;

/// Where one dimension of a planned output comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dim {
    Fixed(i64),
    /// Dimension `axis` of input `input` of the run.
    Input {
        input: usize,
        axis: usize,
    },
}

/// The outputs of a model whose shapes are known before a run.
#[derive(Debug)]
pub struct OutputPlan {
    /// Per output: its name, element type and dimensions, or `None` when not planned.
    outputs: Vec<Option<(String, TensorElementType, Vec<Dim>)>>,
    /// Cleared once ONNX Runtime refused a planned shape.
    enabled: AtomicBool,
}

/// The lent buffers of one run: the selector that hands them to ONNX Runtime, and the
/// buffers with their shapes, by output index.
pub struct Lent {
    pub selector: OutputSelector,
    buffers: Vec<Option<(Vec<i64>, OutputBuffer)>>,
}

impl Lent {
    /// The shape and buffer of output `index`, when it was pre-allocated.
    pub fn take(&mut self, index: usize) -> Option<(Vec<i64>, OutputBuffer)> {
        self.buffers.get_mut(index).and_then(Option::take)
    }
}

impl OutputPlan {
    /// The plan for a model's outputs (`outlets` and `ports` in the model's order), or
    /// `None` when no output's shape is known before a run.
    pub fn of(inputs: &[Outlet], outlets: &[Outlet], ports: &[Port]) -> Option<OutputPlan> {
        let outputs: Vec<_> = outlets
            .iter()
            .zip(ports)
            .map(|(outlet, port)| planned(inputs, outlet, port))
            .collect();
        outputs.iter().any(Option::is_some).then(|| OutputPlan {
            outputs,
            enabled: AtomicBool::new(true),
        })
    }

    /// Lent buffers for the planned outputs of a run on `inputs`; `None` when the plan
    /// was given up or this run's planned outputs are none or small ([`MIN_BYTES`]).
    pub fn lend(&self, inputs: &[TensorRef<'_>]) -> Result<Option<Lent>> {
        if !self.enabled.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let sized: Vec<_> = self
            .outputs
            .iter()
            .map(|planned| {
                let (name, ty, dims) = planned.as_ref()?;
                let shape = shape_of(dims, inputs)?;
                let len = byte_len(*ty, &shape)?;
                Some((name, *ty, shape, len))
            })
            .collect();
        let planned_bytes = sized
            .iter()
            .flatten()
            .fold(0usize, |sum, (.., len)| sum.saturating_add(*len));
        if !(MIN_BYTES..=MAX_BYTES).contains(&planned_bytes) {
            return Ok(None);
        }
        let mut selector = OutputSelector::default();
        let mut buffers = Vec::with_capacity(sized.len());
        for output in sized {
            buffers.push(match output {
                Some((name, ty, shape, len)) => {
                    let (buffer, value) = match lend_one(ty, &shape, len) {
                        Ok(lent) => lent,
                        // The host will not lend this much: ONNX Runtime allocates the
                        // outputs, and their copy meets the same refusal if they really
                        // are that large (a declared shape may be wrong).
                        Err(err) if err.code() == ErrorCode::OutOfMemory => return Ok(None),
                        Err(err) => return Err(err),
                    };
                    selector = selector.preallocate(name, value);
                    Some((shape, buffer))
                }
                None => None,
            });
        }
        Ok(Some(Lent { selector, buffers }))
    }

    /// Whether `err` is ONNX Runtime refusing a planned shape; if so the model stops
    /// pre-allocating, and the caller runs it again without.
    pub fn mismatched(&self, err: &ort::Error) -> bool {
        let mismatch = err.to_string().contains(SHAPE_MISMATCH);
        if mismatch {
            self.enabled.store(false, Ordering::Relaxed);
        }
        mismatch
    }
}

/// The plan of one output: a numeric tensor whose every dimension is fixed or named
/// like a dimension of an input.
fn planned(
    inputs: &[Outlet],
    outlet: &Outlet,
    port: &Port,
) -> Option<(String, TensorElementType, Vec<Dim>)> {
    let ValueType::Tensor {
        ty,
        shape,
        dimension_symbols,
    } = outlet.dtype()
    else {
        return None;
    };
    if port.form != Form::Tensor || matches!(dtype_of(*ty), None | Some(DType::String)) {
        return None;
    }
    let dims = shape
        .iter()
        .zip(dimension_symbols.iter())
        .map(|(&size, symbol)| match size {
            0.. => Some(Dim::Fixed(size)),
            _ if symbol.is_empty() => None,
            _ => input_dim(inputs, symbol),
        })
        .collect::<Option<Vec<Dim>>>()?;
    Some((outlet.name().to_owned(), *ty, dims))
}

/// The first input dimension named `symbol`.
fn input_dim(inputs: &[Outlet], symbol: &str) -> Option<Dim> {
    inputs.iter().enumerate().find_map(|(input, outlet)| {
        let ValueType::Tensor {
            dimension_symbols, ..
        } = outlet.dtype()
        else {
            return None;
        };
        dimension_symbols
            .iter()
            .position(|s| s == symbol)
            .map(|axis| Dim::Input { input, axis })
    })
}

/// The shape `dims` give for a run on `inputs`; `None` when an input lacks the dimension.
fn shape_of(dims: &[Dim], inputs: &[TensorRef<'_>]) -> Option<Vec<i64>> {
    dims.iter()
        .map(|dim| match *dim {
            Dim::Fixed(size) => Some(size),
            Dim::Input { input, axis } => inputs.get(input)?.shape.get(axis).copied(),
        })
        .collect()
}

/// Bytes of an output of `ty` (a numeric type) and `shape`; `None` when empty (ONNX
/// Runtime makes those itself) or past `usize`.
fn byte_len(ty: TensorElementType, shape: &[i64]) -> Option<usize> {
    let element = match ty {
        TensorElementType::Bool | TensorElementType::Int8 | TensorElementType::Uint8 => 1,
        TensorElementType::Int16 | TensorElementType::Uint16 => 2,
        TensorElementType::Float32 | TensorElementType::Int32 => 4,
        _ => 8,
    };
    shape
        .iter()
        .try_fold(element, |len: usize, &dim| {
            usize::try_from(dim)
                .ok()
                .and_then(|dim| len.checked_mul(dim))
        })
        .filter(|&len| len > 0)
}

/// A lent buffer of `len` bytes for an output of `ty` and `shape`, with the ONNX Runtime
/// value over it.
fn lend_one(ty: TensorElementType, shape: &[i64], len: usize) -> Result<(OutputBuffer, DynValue)> {
    // SAFETY: ONNX Runtime writes every element of a pre-allocated output when the run
    // succeeds; when it fails the buffer is dropped unread.
    let mut buffer = unsafe { OutputBuffer::try_uninit(len) }?;
    let memory = MemoryInfo::default();
    let mut raw: *mut OrtValue = ptr::null_mut();
    // SAFETY: `buffer` holds `len` bytes, the size of `shape` of `ty`, and outlives the
    // value: the value is dropped with the run's options, before the buffer is returned;
    // `memory` and `shape` are valid for the call; `raw` is a valid out-pointer.
    let status = unsafe {
        (ort::api().CreateTensorWithDataAsOrtValue)(
            memory.ptr(),
            buffer.as_mut_ptr().cast::<c_void>(),
            len,
            shape.as_ptr(),
            shape.len(),
            ty.into(),
            &mut raw,
        )
    };
    // SAFETY: `status` was just returned by ONNX Runtime; the ort error takes it over.
    unsafe { ort::Error::result_from_status(status) }
        .map_err(|err| Error::new(format!("cannot pre-allocate an output: {err}")))?;
    let raw = NonNull::new(raw)
        .ok_or_else(|| Error::new("ONNX Runtime made no value for a pre-allocated output"))?;
    // SAFETY: `raw` is a new tensor value this call owns; releasing it (on drop) leaves
    // the data, which it does not own, alone.
    let value = unsafe { DynValue::from_ptr(raw, Some(&Allocator::default())) };
    Ok((buffer, value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use redisai_plugin_api::sdk::{Device, DeviceKind};

    fn input(shape: &[i64]) -> TensorRef<'_> {
        TensorRef {
            dtype: DType::Float,
            device: Device {
                kind: DeviceKind::Cpu,
                id: 0,
            },
            shape,
            data: &[],
        }
    }

    #[test]
    fn byte_lengths() {
        assert_eq!(byte_len(TensorElementType::Float32, &[2, 3]), Some(24));
        assert_eq!(byte_len(TensorElementType::Int64, &[]), Some(8));
        assert_eq!(byte_len(TensorElementType::Uint8, &[4, 0]), None);
        assert_eq!(byte_len(TensorElementType::Float64, &[1 << 62, 4]), None);
    }

    #[test]
    fn shapes_come_from_fixed_dimensions_and_the_inputs() {
        let dims = [
            Dim::Input { input: 1, axis: 0 },
            Dim::Fixed(3),
            Dim::Input { input: 0, axis: 1 },
        ];
        let (a, b) = ([2, 5], [7]);
        assert_eq!(
            shape_of(&dims, &[input(&a), input(&b)]),
            Some(vec![7, 3, 5])
        );
        assert_eq!(shape_of(&dims, &[input(&a)]), None, "input 1 missing");
        assert_eq!(
            shape_of(&dims, &[input(&[2]), input(&b)]),
            None,
            "axis 1 missing"
        );
    }
}
