//! Copying a run's outputs into tensors the host can take.
//!
//! # Outputs that are not tensors
//! ONNX-ML classifiers (scikit-learn models converted with skl2onnx, for example) end in a
//! ZipMap: their probabilities come out as a sequence of maps, one map per input row, from
//! class label (INT64 or STRING) to probability (FLOAT). Such an output is returned as a
//! FLOAT tensor `[N, classes]` (DOUBLE when the maps' values are DOUBLE): row `r` holds the
//! values of the sequence's map `r` in the map's key order, which is ONNX Runtime's (its
//! maps are ordered: INT64 labels ascending, STRING labels in byte order), the same in
//! every row (a run whose maps differ in their keys fails). For skl2onnx models that is the
//! classifier's `classes_` order. A sequence of numeric tensors of one shape `S` is returned
//! stacked, as `[N, S...]`; tensors of different shapes fail the run. Any other output type
//! (a map outside a sequence, a sequence of STRING tensors, optional values, ...) is
//! refused when the model is stored, with the output's name and type.
//!
//! The output's type is known at load time from ort's [`ValueType`] (which ort reads with
//! `SessionGetOutputTypeInfo`, `GetOnnxTypeFromTypeInfo`, `CastTypeInfoToSequenceTypeInfo`,
//! `GetSequenceElementType` and `CastTypeInfoToMapTypeInfo`); the run's values are read
//! with ONNX Runtime's C API directly (`GetValueType`, `GetValueCount`, `GetValue`), since
//! ort's own map extraction asserts on what it reads and does not keep the key order.

use std::ffi::c_int;
use std::ptr::{self, NonNull};

use bytemuck::Pod;
use ort::memory::Allocator;
use ort::sys::{ONNXType, OrtValue};
use ort::value::{DynValue, PrimitiveTensorElementType, ValueType};
use ort::AsPointer;
use redisai_plugin_api::sdk::{DType, Error, OutputBuffer, OwnedTensor, Result};

use super::{dtype_of, onnx_type_name, type_text, value_kind, Form, MapKey, Port};

/// Copies output `index` of a run into a tensor the host can take.
pub fn output_tensor(index: usize, port: &Port, value: &DynValue) -> Result<OwnedTensor> {
    let name = &port.name;
    let context = |err: Error| err.context(format_args!("output {index} ('{name}')"));
    match port.form {
        Form::Tensor => tensor_copy(value).map_err(context),
        Form::TensorSequence => stacked(port.dtype, value).map_err(context),
        Form::MapSequence(key) => map_rows(port.dtype, key, value).map_err(context),
    }
}

/// A copy of a tensor value (into memory the host lends, when it does).
fn tensor_copy(value: &DynValue) -> Result<OwnedTensor> {
    let ValueType::Tensor { ty, shape, .. } = value.dtype() else {
        return Err(Error::new(format!(
            "ONNX Runtime returned a {} ({}), not a tensor",
            value_kind(value.dtype()),
            type_text(value.dtype())
        )));
    };
    let dtype = dtype_of(*ty).ok_or_else(|| {
        Error::new(format!(
            "element type {}, which RedisAI tensors cannot hold",
            onnx_type_name(*ty)
        ))
    })?;
    let shape: Vec<i64> = shape.to_vec();
    let wrap = |err: ort::Error| Error::new(err.to_string());
    let data = match dtype {
        DType::Float => pod_bytes::<f32>(value),
        DType::Double => pod_bytes::<f64>(value),
        DType::Int8 => pod_bytes::<i8>(value),
        DType::Int16 => pod_bytes::<i16>(value),
        DType::Int32 => pod_bytes::<i32>(value),
        DType::Int64 => pod_bytes::<i64>(value),
        DType::Uint8 => pod_bytes::<u8>(value),
        DType::Uint16 => pod_bytes::<u16>(value),
        DType::Bool => value
            .try_extract_tensor::<bool>()
            .map(|(_, elements)| {
                OutputBuffer::from(elements.iter().map(|&b| u8::from(b)).collect::<Vec<u8>>())
            })
            .map_err(wrap),
        DType::String => {
            let (_, strings) = value.try_extract_strings().map_err(wrap)?;
            return Ok(OwnedTensor::from_strings(shape, &strings));
        }
    }?;
    Ok(OwnedTensor { dtype, shape, data })
}

fn pod_bytes<T: PrimitiveTensorElementType + Pod>(value: &DynValue) -> Result<OutputBuffer> {
    let (_, elements) = value
        .try_extract_tensor::<T>()
        .map_err(|err| Error::new(err.to_string()))?;
    OutputBuffer::try_copy_from(bytemuck::cast_slice::<T, u8>(elements))
}

/// A sequence of tensors of one shape and `dtype`, stacked: `[N, shape...]` (`[0]` when
/// the sequence is empty).
fn stacked(dtype: DType, value: &DynValue) -> Result<OwnedTensor> {
    let count = container_len(value, ONNXType::ONNX_TYPE_SEQUENCE, "sequence")?;
    let allocator = Allocator::default();
    let mut element_shape: Option<Vec<i64>> = None;
    let mut data = Vec::new();
    for at in 0..count {
        let element = element_of(value, at, &allocator)?;
        let tensor = tensor_copy(&element)
            .map_err(|err| err.context(format_args!("element {at} of the sequence")))?;
        if tensor.dtype != dtype {
            return Err(Error::new(format!(
                "element {at} of the sequence is a {} tensor, the model declares {}",
                tensor.dtype.name(),
                dtype.name()
            )));
        }
        match &element_shape {
            None => element_shape = Some(tensor.shape),
            Some(first) if *first == tensor.shape => {}
            Some(first) => {
                return Err(Error::new(format!(
                    "the sequence's tensors differ in shape ({first:?} at 0, {:?} at {at}): only a sequence of tensors of one shape can be returned, stacked, as a tensor",
                    tensor.shape
                )))
            }
        }
        data.extend_from_slice(&tensor.data);
    }
    let mut shape = vec![dim(count)?];
    shape.extend(element_shape.unwrap_or_default());
    Ok(OwnedTensor {
        dtype,
        shape,
        data: data.into(),
    })
}

/// A sequence of maps (ZipMap's output) as `[N, keys]` of `dtype` (FLOAT or DOUBLE), each
/// row in its map's key order; every map must have the keys of the first (`[0, 0]` when
/// the sequence is empty).
fn map_rows(dtype: DType, key: MapKey, value: &DynValue) -> Result<OwnedTensor> {
    let count = container_len(value, ONNXType::ONNX_TYPE_SEQUENCE, "sequence")?;
    let allocator = Allocator::default();
    let mut first_keys: Option<Keys> = None;
    let mut data = Vec::new();
    for at in 0..count {
        let row = |err: Error| err.context(format_args!("map {at} of the sequence"));
        let map = element_of(value, at, &allocator).map_err(row)?;
        let entries = container_len(&map, ONNXType::ONNX_TYPE_MAP, "map").map_err(row)?;
        if entries != 2 {
            return Err(row(Error::new(format!(
                "ONNX Runtime reports {entries} parts, a map has 2 (keys and values)"
            ))));
        }
        let keys = element_of(&map, 0, &allocator).map_err(row)?;
        let keys = Keys::of(key, &keys).map_err(row)?;
        let values = element_of(&map, 1, &allocator).map_err(row)?;
        let values = tensor_copy(&values).map_err(row)?;
        if values.dtype != dtype || values.shape != [dim(keys.len())?] {
            return Err(row(Error::new(format!(
                "its values are a {} tensor of shape {:?}, expected {} of shape [{}]",
                values.dtype.name(),
                values.shape,
                dtype.name(),
                keys.len()
            ))));
        }
        match &first_keys {
            None => first_keys = Some(keys),
            Some(first) if *first == keys => {}
            Some(_) => {
                return Err(row(Error::new(
                    "its keys differ from those of map 0: the maps of a sequence can be returned as one tensor only when they have the same keys",
                )))
            }
        }
        data.extend_from_slice(&values.data);
    }
    let classes = first_keys.as_ref().map_or(0, Keys::len);
    Ok(OwnedTensor {
        dtype,
        shape: vec![dim(count)?, dim(classes)?],
        data: data.into(),
    })
}

/// The keys of one map, in the map's order.
#[derive(PartialEq)]
enum Keys {
    Int64(Vec<i64>),
    String(Vec<String>),
}

impl Keys {
    fn of(key: MapKey, keys: &DynValue) -> Result<Keys> {
        let one_dim = |shape: &[i64]| {
            if shape.len() == 1 {
                Ok(())
            } else {
                Err(Error::new(format!(
                    "its keys have shape {shape:?}, not one dimension"
                )))
            }
        };
        let wrap = |err: ort::Error| Error::new(format!("its keys: {err}"));
        match key {
            MapKey::Int64 => {
                let (shape, keys) = keys.try_extract_tensor::<i64>().map_err(wrap)?;
                one_dim(shape)?;
                Ok(Keys::Int64(keys.to_vec()))
            }
            MapKey::String => {
                let (shape, keys) = keys.try_extract_strings().map_err(wrap)?;
                one_dim(shape)?;
                Ok(Keys::String(keys))
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            Keys::Int64(keys) => keys.len(),
            Keys::String(keys) => keys.len(),
        }
    }
}

fn dim(n: usize) -> Result<i64> {
    i64::try_from(n).map_err(|_| Error::new(format!("{n} elements do not fit a tensor dimension")))
}

/// Checks an ONNX Runtime status returned by a call made here.
fn status(status: ort::sys::OrtStatusPtr, what: &str) -> Result<()> {
    // SAFETY: `status` was just returned by an ONNX Runtime API call; this takes
    // ownership of it (it is released when the ort error is dropped).
    unsafe { ort::Error::result_from_status(status) }
        .map_err(|err| Error::new(format!("{what}: {err}")))
}

/// The number of elements of `value`, a sequence or a map (`kind`, ONNX Runtime's type of
/// it checked with `GetValueType`); a map has 2, its keys and its values.
fn container_len(value: &DynValue, kind: ONNXType, what: &str) -> Result<usize> {
    let api = ort::api();
    // Read as a plain integer: a value outside Rust's ONNXType enum must not become one.
    let mut raw: c_int = ONNXType::ONNX_TYPE_UNKNOWN as c_int;
    // SAFETY: `value` is a live OrtValue (borrowed for the call); `raw` is a valid
    // out-pointer to an int, the size of ONNX Runtime's ONNXType.
    let got = unsafe { (api.GetValueType)(value.ptr(), ptr::from_mut(&mut raw).cast()) };
    status(got, "ONNX Runtime could not tell the value's type")?;
    if raw != kind as c_int {
        return Err(Error::new(format!(
            "ONNX Runtime returned a value of ONNX type {raw}, not a {what} (type {})",
            kind as c_int
        )));
    }
    let mut count: usize = 0;
    // SAFETY: `value` is a live sequence or map OrtValue; `count` is a valid out-pointer.
    let got = unsafe { (api.GetValueCount)(value.ptr(), &mut count) };
    status(got, "ONNX Runtime could not count the value's elements")?;
    Ok(count)
}

/// Element `at` of a sequence, or part `at` of a map (0: its keys, 1: its values), as a
/// value of its own (ONNX Runtime makes it with `allocator`; it is released on drop).
fn element_of(container: &DynValue, at: usize, allocator: &Allocator) -> Result<DynValue> {
    let index = c_int::try_from(at)
        .map_err(|_| Error::new(format!("element {at} is past what the C API can index")))?;
    let mut out: *mut OrtValue = ptr::null_mut();
    // SAFETY: `container` is a live sequence or map OrtValue and `allocator` a live
    // allocator, both borrowed for the call; `out` is a valid out-pointer.
    let got = unsafe {
        (ort::api().GetValue)(container.ptr(), index, allocator.ptr().cast_mut(), &mut out)
    };
    status(got, "ONNX Runtime could not read an element")?;
    let out = NonNull::new(out)
        .ok_or_else(|| Error::new(format!("ONNX Runtime returned no value for element {at}")))?;
    // SAFETY: `out` is a new OrtValue that this call owns, made with `allocator`; the
    // DynValue takes it over and releases it once, when dropped.
    Ok(unsafe { DynValue::from_ptr(out, Some(allocator)) })
}
