//! Between RedisAI dtypes and LiteRT element types, and the checks of input tensors.

use std::ffi::c_int;

use redisai_plugin_api::sdk::{DType, Error, Result, TensorRef};

use crate::ffi::MAX_RANK;

/// `LiteRtElementType` values (the same numbers as TfLiteType).
pub mod element {
    use std::ffi::c_int;
    pub const NONE: c_int = 0;
    pub const FLOAT32: c_int = 1;
    pub const INT32: c_int = 2;
    pub const UINT8: c_int = 3;
    pub const INT64: c_int = 4;
    pub const STRING: c_int = 5;
    pub const BOOL: c_int = 6;
    pub const INT16: c_int = 7;
    pub const COMPLEX64: c_int = 8;
    pub const INT8: c_int = 9;
    pub const FLOAT16: c_int = 10;
    pub const FLOAT64: c_int = 11;
    pub const COMPLEX128: c_int = 12;
    pub const UINT64: c_int = 13;
    pub const RESOURCE: c_int = 14;
    pub const VARIANT: c_int = 15;
    pub const UINT32: c_int = 16;
    pub const UINT16: c_int = 17;
    pub const INT4: c_int = 18;
    pub const BFLOAT16: c_int = 19;
    pub const INT2: c_int = 20;
}

/// The RedisAI dtype of a LiteRT element type, if the backend can serve it.
pub fn dtype_of(element_type: c_int) -> Option<DType> {
    Some(match element_type {
        element::FLOAT32 => DType::Float,
        element::FLOAT64 => DType::Double,
        element::INT8 => DType::Int8,
        element::INT16 => DType::Int16,
        element::INT32 => DType::Int32,
        element::INT64 => DType::Int64,
        element::UINT8 => DType::Uint8,
        element::UINT16 => DType::Uint16,
        element::BOOL => DType::Bool,
        _ => return None,
    })
}

/// TFLite's name of an element type, for messages.
pub fn element_name(element_type: c_int) -> String {
    match element_type {
        element::NONE => "NOTYPE".to_owned(),
        element::STRING => "STRING".to_owned(),
        element::COMPLEX64 => "COMPLEX64".to_owned(),
        element::FLOAT16 => "FLOAT16".to_owned(),
        element::COMPLEX128 => "COMPLEX128".to_owned(),
        element::UINT64 => "UINT64".to_owned(),
        element::RESOURCE => "RESOURCE".to_owned(),
        element::VARIANT => "VARIANT".to_owned(),
        element::UINT32 => "UINT32".to_owned(),
        element::INT4 => "INT4".to_owned(),
        element::BFLOAT16 => "BFLOAT16".to_owned(),
        element::INT2 => "INT2".to_owned(),
        other => match dtype_of(other) {
            Some(dtype) => dtype.name().to_owned(),
            None => format!("element type {other}"),
        },
    }
}

/// A model input or output as the backend sees it.
#[derive(Debug, Clone)]
pub struct Port {
    pub name: String,
    pub dtype: DType,
    pub element_type: c_int,
    /// Its position in the signature LiteRT runs (the order of its buffers).
    pub signature_index: usize,
}

/// Bytes of one element of a port's dtype. Ports are never STRING ([`dtype_of`] maps no
/// LiteRT type to it), so every dtype here has a size.
pub fn element_size(dtype: DType) -> usize {
    dtype.element_size().unwrap_or(1)
}

/// Checks input `index` against the model's port and returns its shape as LiteRT dims.
pub fn input_dims(index: usize, port: &Port, tensor: &TensorRef<'_>) -> Result<Vec<i32>> {
    let name = &port.name;
    tensor.check_input(index, name, port.dtype)?;
    if tensor.shape.len() > MAX_RANK {
        return Err(Error::invalid_input(format!(
            "input {index} ('{name}') has {} dimensions, TFLite takes at most {MAX_RANK}",
            tensor.shape.len()
        )));
    }
    let mut count: usize = 1;
    let mut dims = Vec::with_capacity(tensor.shape.len());
    for &dim in tensor.shape {
        let dim32 = i32::try_from(dim).ok().filter(|d| *d >= 0).ok_or_else(|| {
            Error::invalid_input(format!(
                "input {index} ('{name}') has a dimension out of range in its shape {:?}",
                tensor.shape
            ))
        })?;
        count = count.checked_mul(dim32 as usize).ok_or_else(|| {
            Error::invalid_input(format!(
                "input {index} ('{name}') has too many elements (shape {:?})",
                tensor.shape
            ))
        })?;
        dims.push(dim32);
    }
    let size = element_size(port.dtype);
    if count.checked_mul(size) != Some(tensor.data.len()) {
        return Err(Error::invalid_input(format!(
            "input {index} ('{name}') has {} bytes of data, its shape {:?} of {} needs {}",
            tensor.data.len(),
            tensor.shape,
            port.dtype.name(),
            count.saturating_mul(size)
        )));
    }
    if port.dtype == DType::Bool && tensor.data.iter().any(|&b| b > 1) {
        return Err(Error::invalid_input(format!(
            "input {index} ('{name}') is BOOL but has bytes other than 0 and 1"
        )));
    }
    Ok(dims)
}

/// Number of elements of a shape LiteRT reports (None if a dimension is negative).
pub fn element_count(dims: &[i32]) -> Option<usize> {
    dims.iter().try_fold(1usize, |count, &dim| {
        count.checked_mul(usize::try_from(dim).ok()?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use redisai_plugin_api::sdk::{Device, DeviceKind, ErrorCode};

    /// The LiteRT element type of a dtype the backend serves.
    pub fn element_of(dtype: DType) -> Option<c_int> {
        Some(match dtype {
            DType::Float => element::FLOAT32,
            DType::Double => element::FLOAT64,
            DType::Int8 => element::INT8,
            DType::Int16 => element::INT16,
            DType::Int32 => element::INT32,
            DType::Int64 => element::INT64,
            DType::Uint8 => element::UINT8,
            DType::Uint16 => element::UINT16,
            DType::Bool => element::BOOL,
            DType::String => return None,
        })
    }

    #[test]
    fn dtypes_round_trip() {
        for &dtype in DType::ALL {
            match element_of(dtype) {
                Some(element) => assert_eq!(dtype_of(element), Some(dtype)),
                None => assert_eq!(dtype, DType::String),
            }
        }
        assert_eq!(dtype_of(element::STRING), None);
        assert_eq!(dtype_of(element::FLOAT16), None);
        assert_eq!(element_name(element::FLOAT16), "FLOAT16");
        assert_eq!(element_name(element::FLOAT64), "DOUBLE");
        assert_eq!(element_name(99), "element type 99");
    }

    fn port(dtype: DType) -> Port {
        Port {
            name: "x".to_owned(),
            dtype,
            element_type: element_of(dtype).unwrap_or(element::NONE),
            signature_index: 0,
        }
    }

    fn tensor<'a>(dtype: DType, shape: &'a [i64], data: &'a [u8]) -> TensorRef<'a> {
        TensorRef {
            dtype,
            device: Device {
                kind: DeviceKind::Cpu,
                id: 0,
            },
            shape,
            data,
        }
    }

    #[test]
    fn inputs_are_checked() {
        let p = port(DType::Float);
        let data = [0u8; 8];
        assert_eq!(
            input_dims(0, &p, &tensor(DType::Float, &[2], &data)).map_err(Error::into_message),
            Ok(vec![2])
        );
        let err =
            input_dims(1, &p, &tensor(DType::Int32, &[2], &data)).map_err(Error::into_message);
        assert_eq!(
            err,
            Err("input 1 ('x') has dtype INT32, the model expects FLOAT".to_owned())
        );
        let err =
            input_dims(0, &p, &tensor(DType::Float, &[3], &data)).map_err(Error::into_message);
        assert!(err.is_err_and(|e| e.contains("needs 12")));
        let err = input_dims(0, &p, &tensor(DType::Float, &[1 << 40], &data))
            .map_err(Error::into_message);
        assert!(err.is_err_and(|e| e.contains("out of range")));
        let err =
            input_dims(0, &p, &tensor(DType::Float, &[1; 9], &data)).map_err(Error::into_message);
        assert!(err.is_err_and(|e| e.contains("at most 8")));
        let code = input_dims(0, &p, &tensor(DType::Float, &[3], &data)).map_err(|e| e.code());
        assert_eq!(code, Err(ErrorCode::InvalidInput));
        let b = port(DType::Bool);
        let err =
            input_dims(0, &b, &tensor(DType::Bool, &[2], &[1, 2])).map_err(Error::into_message);
        assert!(err.is_err_and(|e| e.contains("other than 0 and 1")));
        assert_eq!(
            input_dims(0, &p, &tensor(DType::Float, &[], &data[..4])).map_err(Error::into_message),
            Ok(vec![])
        );
    }

    #[test]
    fn counts() {
        assert_eq!(element_count(&[]), Some(1));
        assert_eq!(element_count(&[2, 3]), Some(6));
        assert_eq!(element_count(&[2, -1]), None);
    }
}
