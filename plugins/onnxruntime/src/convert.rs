//! Between the plugin ABI's tensors (dtype, shape, little-endian bytes) and ort values.

use std::fmt::Debug;

use bytemuck::Pod;
use ort::session::SessionInputValue;
use ort::value::{
    DynValue, PrimitiveTensorElementType, Tensor, TensorElementType, TensorRef as OrtTensorRef,
    ValueType,
};
use redisai_plugin_api::sdk::{DType, DeviceKind, Error, OwnedTensor, Result, TensorRef};

/// A model input or output: its name and element type.
#[derive(Debug, Clone)]
pub struct Port {
    pub name: String,
    pub dtype: DType,
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

/// The dtype of model input or output `index`, or why the plugin cannot serve it.
pub fn port_of(direction: &str, index: usize, name: &str, ty: &ValueType) -> Result<Port> {
    match ty {
        ValueType::Tensor { ty, .. } => match dtype_of(*ty) {
            Some(dtype) => Ok(Port {
                name: name.to_owned(),
                dtype,
            }),
            None => Err(Error::new(format!(
                "model {direction} {index} ('{name}') has element type {}, which RedisAI tensors cannot hold",
                onnx_type_name(*ty)
            ))),
        },
        other => Err(Error::new(format!(
            "model {direction} {index} ('{name}') is a {}, not a tensor: the ONNX backend only runs models whose inputs and outputs are all tensors",
            value_kind(other)
        ))),
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
        return Err(Error::new(format!(
            "input {index} ('{name}') has dtype {}, the model expects {}",
            dtype_name(tensor.dtype),
            dtype_name(port.dtype)
        )));
    }
    if tensor.device.kind != DeviceKind::Cpu {
        return Err(Error::new(format!(
            "input {index} ('{name}') is not in CPU memory"
        )));
    }
    let mut count: usize = 1;
    for &dim in tensor.shape {
        let dim = usize::try_from(dim).map_err(|_| {
            Error::new(format!(
                "input {index} ('{name}') has a negative dimension in its shape {:?}",
                tensor.shape
            ))
        })?;
        count = count.checked_mul(dim).ok_or_else(|| {
            Error::new(format!(
                "input {index} ('{name}') has too many elements (shape {:?})",
                tensor.shape
            ))
        })?;
    }
    let shape = tensor.shape.to_vec();
    let data = tensor.data;
    let wrap = |err: ort::Error| Error::new(format!("input {index} ('{name}'): {err}"));

    if let Some(size) = element_size(tensor.dtype) {
        if count.checked_mul(size) != Some(data.len()) {
            return Err(Error::new(format!(
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
                return Err(Error::new(format!(
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
    let ValueType::Tensor { ty, shape, .. } = value.dtype() else {
        return Err(Error::new(format!(
            "output {index} ('{name}') is a {}, not a tensor",
            value_kind(value.dtype())
        )));
    };
    let dtype = dtype_of(*ty).ok_or_else(|| {
        Error::new(format!(
            "output {index} ('{name}') has element type {}, which RedisAI tensors cannot hold",
            onnx_type_name(*ty)
        ))
    })?;
    let shape: Vec<i64> = shape.to_vec();
    let wrap = |err: ort::Error| Error::new(format!("output {index} ('{name}'): {err}"));
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
            .map(|(_, elements)| elements.iter().map(|&b| u8::from(b)).collect()),
        DType::String => {
            let (_, strings) = value.try_extract_strings().map_err(wrap)?;
            return Ok(OwnedTensor::from_strings(shape, &strings));
        }
    }
    .map_err(wrap)?;
    Ok(OwnedTensor { dtype, shape, data })
}

fn pod_bytes<T: PrimitiveTensorElementType + Pod>(value: &DynValue) -> ort::Result<Vec<u8>> {
    let (_, elements) = value.try_extract_tensor::<T>()?;
    Ok(bytemuck::cast_slice::<T, u8>(elements).to_vec())
}
