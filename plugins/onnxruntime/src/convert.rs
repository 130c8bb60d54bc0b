//! Between the plugin ABI's tensors (dtype, shape, little-endian bytes) and ort values.
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
use std::fmt::Debug;
use std::ptr::{self, NonNull};

use bytemuck::Pod;
use ort::memory::Allocator;
use ort::session::SessionInputValue;
use ort::sys::{ONNXType, OrtValue};
use ort::value::{
    DynValue, PrimitiveTensorElementType, Tensor, TensorElementType, TensorRef as OrtTensorRef,
    ValueType,
};
use ort::AsPointer;
use redisai_plugin_api::sdk::{
    DType, DeviceKind, Error, OutputBuffer, OwnedTensor, Result, TensorRef,
};

/// A model input or output: its name, element type and what the model produces there.
#[derive(Debug, Clone)]
pub struct Port {
    pub name: String,
    /// The dtype of the tensor the plugin takes or returns.
    pub dtype: DType,
    pub form: Form,
    /// A tensor's declared shape as ONNX Runtime reports it (-1: a symbolic or unknown
    /// dimension). [`crate::policy`] makes every model input declare one, so for an
    /// input its length is the rank the model takes; empty for other outputs.
    pub dims: Vec<i64>,
    /// An input whose model declares no shape ([`crate::policy::any_rank_inputs`]): any
    /// rank goes, the run's session declares it.
    pub any_rank: bool,
}

/// What an output is in the model, and so how it becomes a tensor (inputs are tensors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// A tensor, returned as it is.
    Tensor,
    /// A sequence of tensors of one shape `S`, returned stacked as `[N, S...]`.
    TensorSequence,
    /// A sequence of maps from labels to FLOAT or DOUBLE (ONNX-ML's ZipMap), returned as
    /// `[N, keys]` in the maps' key order.
    MapSequence(MapKey),
}

/// The key type of the maps of a [`Form::MapSequence`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapKey {
    Int64,
    String,
}

/// RedisAI's name of a dtype.
pub fn dtype_name(dtype: DType) -> &'static str {
    match dtype {
        DType::Float => "FLOAT",
        DType::Double => "DOUBLE",
        DType::Int8 => "INT8",
        DType::Int16 => "INT16",
        DType::Int32 => "INT32",
        DType::Int64 => "INT64",
        DType::Uint8 => "UINT8",
        DType::Uint16 => "UINT16",
        DType::Bool => "BOOL",
        DType::String => "STRING",
    }
}

/// The RedisAI dtype of an ONNX element type, if it has one.
pub fn dtype_of(ty: TensorElementType) -> Option<DType> {
    Some(match ty {
        TensorElementType::Float32 => DType::Float,
        TensorElementType::Float64 => DType::Double,
        TensorElementType::Int8 => DType::Int8,
        TensorElementType::Int16 => DType::Int16,
        TensorElementType::Int32 => DType::Int32,
        TensorElementType::Int64 => DType::Int64,
        TensorElementType::Uint8 => DType::Uint8,
        TensorElementType::Uint16 => DType::Uint16,
        TensorElementType::Bool => DType::Bool,
        TensorElementType::String => DType::String,
        _ => return None,
    })
}

/// ONNX's name of an element type, for messages.
pub fn onnx_type_name(ty: TensorElementType) -> String {
    match ty {
        TensorElementType::Float16 => "FLOAT16".to_owned(),
        TensorElementType::Bfloat16 => "BFLOAT16".to_owned(),
        TensorElementType::Uint32 => "UINT32".to_owned(),
        TensorElementType::Uint64 => "UINT64".to_owned(),
        TensorElementType::Complex64 => "COMPLEX64".to_owned(),
        TensorElementType::Complex128 => "COMPLEX128".to_owned(),
        other => match dtype_of(other) {
            Some(dtype) => dtype_name(dtype).to_owned(),
            None => other.to_string().to_uppercase(),
        },
    }
}

/// What a non-tensor value type is, for messages.
pub fn value_kind(ty: &ValueType) -> &'static str {
    match ty {
        ValueType::Tensor { .. } => "tensor",
        ValueType::Sequence(_) => "sequence",
        ValueType::Map { .. } => "map",
        ValueType::Optional(_) => "optional value",
    }
}

/// ONNX's notation of a value type, for messages: `tensor(FLOAT)`, `seq(map(INT64,FLOAT))`.
pub fn type_text(ty: &ValueType) -> String {
    match ty {
        ValueType::Tensor { ty, .. } => format!("tensor({})", onnx_type_name(*ty)),
        ValueType::Sequence(inner) => format!("seq({})", type_text(inner)),
        ValueType::Map { key, value } => {
            format!("map({},{})", onnx_type_name(*key), onnx_type_name(*value))
        }
        ValueType::Optional(inner) => format!("optional({})", type_text(inner)),
    }
}

/// The dtype of tensor `index` of a model's inputs (`direction` "input") or outputs, or
/// why the plugin cannot serve it.
pub fn port_of(direction: &str, index: usize, name: &str, ty: &ValueType) -> Result<Port> {
    match ty {
        ValueType::Tensor { ty, shape, .. } => match dtype_of(*ty) {
            Some(dtype) => Ok(Port {
                name: name.to_owned(),
                dtype,
                form: Form::Tensor,
                dims: shape.iter().copied().collect(),
                any_rank: false,
            }),
            None => Err(Error::new(format!(
                "model {direction} {index} ('{name}') has element type {}, which RedisAI tensors cannot hold",
                onnx_type_name(*ty)
            ))),
        },
        other => Err(Error::new(format!(
            "model {direction} {index} ('{name}') is a {} ({}), not a tensor: the ONNX backend only takes tensors as inputs",
            value_kind(other),
            type_text(other)
        ))),
    }
}

/// How model output `index` becomes a tensor (see the module docs), or why it cannot.
pub fn output_port(index: usize, name: &str, ty: &ValueType) -> Result<Port> {
    let port = |dtype, form| {
        Ok(Port {
            name: name.to_owned(),
            dtype,
            form,
            dims: Vec::new(),
            any_rank: false,
        })
    };
    let refuse = |why: &str| {
        Err(Error::new(format!(
            "model output {index} ('{name}') is of type {}, {why}: the ONNX backend returns tensors, sequences of numeric tensors (stacked) and sequences of maps to FLOAT or DOUBLE (ONNX-ML ZipMap, as [N, classes])",
            type_text(ty)
        )))
    };
    match ty {
        ValueType::Tensor { .. } => port_of("output", index, name, ty),
        ValueType::Sequence(element) => match &**element {
            ValueType::Tensor { ty: element, .. } => match dtype_of(*element) {
                Some(DType::String) => refuse("a sequence of STRING tensors"),
                Some(dtype) => port(dtype, Form::TensorSequence),
                None => refuse("whose element type RedisAI tensors cannot hold"),
            },
            ValueType::Map { key, value } => {
                let key = match key {
                    TensorElementType::Int64 => MapKey::Int64,
                    TensorElementType::String => MapKey::String,
                    _ => {
                        return refuse("a sequence of maps whose keys are neither INT64 nor STRING")
                    }
                };
                match value {
                    TensorElementType::Float32 => port(DType::Float, Form::MapSequence(key)),
                    TensorElementType::Float64 => port(DType::Double, Form::MapSequence(key)),
                    _ => refuse("a sequence of maps whose values are neither FLOAT nor DOUBLE"),
                }
            }
            _ => refuse("a sequence of neither tensors nor maps"),
        },
        ValueType::Map { .. } => refuse("a map that is not in a sequence"),
        ValueType::Optional(_) => refuse("an optional value"),
    }
}

/// Size in bytes of one element of a numeric dtype (None for STRING).
fn element_size(dtype: DType) -> Option<usize> {
    Some(match dtype {
        DType::Int8 | DType::Uint8 | DType::Bool => 1,
        DType::Int16 | DType::Uint16 => 2,
        DType::Float | DType::Int32 => 4,
        DType::Double | DType::Int64 => 8,
        DType::String => return None,
    })
}

/// Builds the ort value for input `index` of a run. Numeric data is borrowed when it is
/// aligned for its type (the host's tensors are), copied otherwise.
pub fn input_value<'a>(
    index: usize,
    port: &Port,
    tensor: &TensorRef<'a>,
) -> Result<SessionInputValue<'a>> {
    let name = &port.name;
    if tensor.dtype != port.dtype {
        return Err(Error::invalid_input(format!(
            "input {index} ('{name}') has dtype {}, the model expects {}",
            dtype_name(tensor.dtype),
            dtype_name(port.dtype)
        )));
    }
    if tensor.device.kind != DeviceKind::Cpu {
        return Err(Error::invalid_input(format!(
            "input {index} ('{name}') is not in CPU memory"
        )));
    }
    let mut count: usize = 1;
    for &dim in tensor.shape {
        let dim = usize::try_from(dim).map_err(|_| {
            Error::invalid_input(format!(
                "input {index} ('{name}') has a negative dimension in its shape {:?}",
                tensor.shape
            ))
        })?;
        count = count.checked_mul(dim).ok_or_else(|| {
            Error::invalid_input(format!(
                "input {index} ('{name}') has too many elements (shape {:?})",
                tensor.shape
            ))
        })?;
    }
    // ONNX Runtime checks this too, before any kernel runs (in its words, which clients
    // match); checked here as well, so a run never reaches ONNX Runtime with a rank the
    // model does not declare.
    if port.any_rank {
        // The run's session declares the rank the run gives.
    } else if tensor.shape.len() != port.dims.len() {
        return Err(Error::invalid_input(format!(
            "Invalid rank for input: {name} Got: {} Expected: {} Please fix either the inputs/outputs or the model.",
            tensor.shape.len(),
            port.dims.len()
        )));
    }
    let declared: &[i64] = if port.any_rank { &[] } else { &port.dims };
    let wrong: Vec<String> = tensor
        .shape
        .iter()
        .zip(declared)
        .enumerate()
        .filter(|(_, (&given, &declared))| declared >= 0 && given != declared)
        .map(|(i, (given, declared))| format!("index: {i} Got: {given} Expected: {declared}"))
        .collect();
    if !wrong.is_empty() {
        return Err(Error::invalid_input(format!(
            "Got invalid dimensions for input: {name} for the following indices {} Please fix either the inputs or the model.",
            wrong.join(" ")
        )));
    }
    let shape = tensor.shape.to_vec();
    let data = tensor.data;
    let wrap = |err: ort::Error| Error::invalid_input(format!("input {index} ('{name}'): {err}"));

    if let Some(size) = element_size(tensor.dtype) {
        if count.checked_mul(size) != Some(data.len()) {
            return Err(Error::invalid_input(format!(
                "input {index} ('{name}') has {} bytes of data, its shape {:?} of {} needs {}",
                data.len(),
                tensor.shape,
                dtype_name(tensor.dtype),
                count.saturating_mul(size)
            )));
        }
    }
    let value = match tensor.dtype {
        DType::Float => numeric::<f32>(shape, data),
        DType::Double => numeric::<f64>(shape, data),
        DType::Int8 => numeric::<i8>(shape, data),
        DType::Int16 => numeric::<i16>(shape, data),
        DType::Int32 => numeric::<i32>(shape, data),
        DType::Int64 => numeric::<i64>(shape, data),
        DType::Uint8 => numeric::<u8>(shape, data),
        DType::Uint16 => numeric::<u16>(shape, data),
        DType::Bool => match bytemuck::checked::try_cast_slice::<u8, bool>(data) {
            Ok(elements) => OrtTensorRef::from_array_view((shape, elements)).map(Into::into),
            Err(_) => {
                return Err(Error::invalid_input(format!(
                    "input {index} ('{name}') is BOOL but has bytes other than 0 and 1"
                )))
            }
        },
        DType::String => string_input(index, name, shape, count, tensor),
    };
    value.map_err(wrap)
}

fn numeric<'a, T>(shape: Vec<i64>, data: &'a [u8]) -> ort::Result<SessionInputValue<'a>>
where
    T: PrimitiveTensorElementType + Pod + Debug + Clone + 'static,
{
    match bytemuck::try_cast_slice::<u8, T>(data) {
        Ok(elements) => Ok(OrtTensorRef::from_array_view((shape, elements))?.into()),
        Err(_) => {
            Ok(Tensor::from_array((shape, bytemuck::pod_collect_to_vec::<u8, T>(data)))?.into())
        }
    }
}

fn string_input(
    index: usize,
    name: &str,
    shape: Vec<i64>,
    count: usize,
    tensor: &TensorRef<'_>,
) -> ort::Result<SessionInputValue<'static>> {
    let elements = tensor.string_elements();
    if elements.len() != count {
        return Err(ort::Error::new(format!(
            "the STRING tensor has {} elements, its shape {:?} needs {count}",
            elements.len(),
            tensor.shape
        )));
    }
    let strings = elements
        .iter()
        .enumerate()
        .map(|(at, bytes)| {
            // ort needs owned ('static) strings; it copies them again into the tensor.
            String::from_utf8(bytes.to_vec()).map_err(|_| {
                ort::Error::new(format!(
                    "element {at} is not valid UTF-8 (the ONNX backend takes UTF-8 strings only; input {index} ('{name}'))"
                ))
            })
        })
        .collect::<ort::Result<Vec<String>>>()?;
    Ok(Tensor::from_string_array((shape, strings.as_slice()))?.into())
}

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
        DType::Bool => value.try_extract_tensor::<bool>().map(|(_, elements)| {
            OutputBuffer::from(elements.iter().map(|&b| u8::from(b)).collect::<Vec<u8>>())
        }),
        DType::String => {
            let (_, strings) = value.try_extract_strings().map_err(wrap)?;
            return Ok(OwnedTensor::from_strings(shape, &strings));
        }
    }
    .map_err(wrap)?;
    Ok(OwnedTensor { dtype, shape, data })
}

fn pod_bytes<T: PrimitiveTensorElementType + Pod>(value: &DynValue) -> ort::Result<OutputBuffer> {
    let (_, elements) = value.try_extract_tensor::<T>()?;
    Ok(OutputBuffer::copy_from(bytemuck::cast_slice::<T, u8>(
        elements,
    )))
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
                dtype_name(tensor.dtype),
                dtype_name(dtype)
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
                dtype_name(values.dtype),
                values.shape,
                dtype_name(dtype),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(ty: TensorElementType) -> ValueType {
        ValueType::Tensor {
            ty,
            shape: Default::default(),
            dimension_symbols: ort::value::SymbolicDimensions::new([]),
        }
    }

    fn seq(inner: ValueType) -> ValueType {
        ValueType::Sequence(Box::new(inner))
    }

    fn map(key: TensorElementType, value: TensorElementType) -> ValueType {
        ValueType::Map { key, value }
    }

    fn form(ty: &ValueType) -> (DType, Form) {
        let port = output_port(1, "o", ty).expect("served");
        (port.dtype, port.form)
    }

    fn refusal(ty: &ValueType) -> String {
        output_port(1, "o", ty).expect_err("refused").into_message()
    }

    #[test]
    fn output_forms() {
        use TensorElementType::*;
        assert_eq!(form(&tensor(Int64)), (DType::Int64, Form::Tensor));
        assert_eq!(
            form(&seq(tensor(Int64))),
            (DType::Int64, Form::TensorSequence)
        );
        assert_eq!(
            form(&seq(map(Int64, Float32))),
            (DType::Float, Form::MapSequence(MapKey::Int64))
        );
        assert_eq!(
            form(&seq(map(String, Float64))),
            (DType::Double, Form::MapSequence(MapKey::String))
        );
    }

    #[test]
    fn refused_outputs_say_their_name_and_type() {
        use TensorElementType::*;
        let tail = ": the ONNX backend returns tensors, sequences of numeric tensors (stacked) and sequences of maps to FLOAT or DOUBLE (ONNX-ML ZipMap, as [N, classes])";
        assert_eq!(
            refusal(&map(Int64, Float32)),
            format!("model output 1 ('o') is of type map(INT64,FLOAT), a map that is not in a sequence{tail}")
        );
        assert_eq!(
            refusal(&seq(map(String, String))),
            format!("model output 1 ('o') is of type seq(map(STRING,STRING)), a sequence of maps whose values are neither FLOAT nor DOUBLE{tail}")
        );
        assert_eq!(
            refusal(&seq(map(Float32, Float32))),
            format!("model output 1 ('o') is of type seq(map(FLOAT,FLOAT)), a sequence of maps whose keys are neither INT64 nor STRING{tail}")
        );
        assert_eq!(
            refusal(&seq(tensor(Float16))),
            format!("model output 1 ('o') is of type seq(tensor(FLOAT16)), whose element type RedisAI tensors cannot hold{tail}")
        );
        assert_eq!(
            refusal(&ValueType::Optional(Box::new(tensor(Float32)))),
            format!(
                "model output 1 ('o') is of type optional(tensor(FLOAT)), an optional value{tail}"
            )
        );
        assert_eq!(
            refusal(&tensor(Float16)),
            "model output 1 ('o') has element type FLOAT16, which RedisAI tensors cannot hold"
        );
    }
}
