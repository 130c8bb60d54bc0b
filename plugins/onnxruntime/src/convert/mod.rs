//! Between the plugin ABI's tensors (dtype, shape, little-endian bytes) and ort values.
//!
//! Inputs and the model's ports are here; outputs, which need not be tensors, in
//! [`outputs`].

mod outputs;

use std::fmt::Debug;

use bytemuck::Pod;
use ort::session::SessionInputValue;
use ort::value::{
    PrimitiveTensorElementType, Tensor, TensorElementType, TensorRef as OrtTensorRef, ValueType,
};
use redisai_plugin_api::sdk::{DType, Error, Result, TensorRef};

pub use outputs::output_tensor;

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
            Some(dtype) => dtype.name().to_owned(),
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

/// Builds the ort value for input `index` of a run. Numeric data is borrowed when it is
/// aligned for its type (the host's tensors are), copied otherwise.
pub fn input_value<'a>(
    index: usize,
    port: &Port,
    tensor: &TensorRef<'a>,
) -> Result<SessionInputValue<'a>> {
    let name = &port.name;
    tensor.check_input(index, name, port.dtype)?;
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

    if let Some(size) = tensor.dtype.element_size() {
        if count.checked_mul(size) != Some(data.len()) {
            return Err(Error::invalid_input(format!(
                "input {index} ('{name}') has {} bytes of data, its shape {:?} of {} needs {}",
                data.len(),
                tensor.shape,
                tensor.dtype.name(),
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
    #[test]
    fn inputs_that_do_not_fit_are_invalid_input() {
        use redisai_plugin_api::sdk::{Device, DeviceKind, ErrorCode};
        let port = Port {
            name: "x".to_owned(),
            dtype: DType::Float,
            form: Form::Tensor,
            dims: vec![2],
            any_rank: false,
        };
        let data = [0u8; 8];
        let input = |dtype, shape: &'static [i64]| TensorRef {
            dtype,
            device: Device {
                kind: DeviceKind::Cpu,
                id: 0,
            },
            shape,
            data: &data,
        };
        let refused = |tensor| match input_value(0, &port, &tensor) {
            Ok(_) => panic!("the input was taken"),
            Err(err) => (err.code(), err.into_message()),
        };
        assert_eq!(
            refused(input(DType::Int32, &[2])),
            (
                ErrorCode::InvalidInput,
                "input 0 ('x') has dtype INT32, the model expects FLOAT".to_owned()
            )
        );
        assert_eq!(
            refused(input(DType::Float, &[2, 1])).0,
            ErrorCode::InvalidInput
        );
        assert_eq!(
            refused(input(DType::Float, &[3])).0,
            ErrorCode::InvalidInput
        );
    }
}
