//! Names, dtypes and tensors between RedisAI and TensorFlow.

use std::ffi::{c_int, CString};

use redisai_plugin_api::sdk::{DType, Error, OutputBuffer, OwnedTensor, Result, TensorRef};

use crate::ffi::{self, Runtime, Tensor};

/// A graph input or output as named at MODELSTORE: `op` or `op:index`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorName {
    pub op: String,
    pub index: usize,
}

/// Parses `op` or `op:index` (TensorFlow's tensor names; op names never contain ':').
pub fn parse_name(name: &str) -> Result<TensorName> {
    let bad = |why: &str| Error::new(format!("'{name}' is not a TensorFlow tensor name: {why}"));
    if name.is_empty() {
        return Err(bad("it is empty"));
    }
    if name.starts_with('^') {
        return Err(bad("'^' marks a control input, which has no value"));
    }
    match name.rsplit_once(':') {
        None => Ok(TensorName {
            op: name.to_owned(),
            index: 0,
        }),
        Some((op, index)) => {
            if op.is_empty() || op.contains(':') {
                return Err(bad("expected 'op' or 'op:index'"));
            }
            if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("the part after ':' must be an output index"));
            }
            let index = index
                .parse::<usize>()
                .map_err(|_| bad("the output index is too large"))?;
            Ok(TensorName {
                op: op.to_owned(),
                index,
            })
        }
    }
}

impl TensorName {
    pub fn c_op(&self) -> Result<CString> {
        CString::new(self.op.as_bytes())
            .map_err(|_| Error::new(format!("the name '{}' contains a NUL byte", self.op)))
    }
}

/// RedisAI's dtype of a `TF_DataType`, for the ones the backend takes.
pub fn dtype_of(tf_type: c_int) -> Option<DType> {
    Some(match tf_type {
        ffi::TF_FLOAT => DType::Float,
        ffi::TF_DOUBLE => DType::Double,
        ffi::TF_INT8 => DType::Int8,
        ffi::TF_INT16 => DType::Int16,
        ffi::TF_INT32 => DType::Int32,
        ffi::TF_INT64 => DType::Int64,
        ffi::TF_UINT8 => DType::Uint8,
        ffi::TF_UINT16 => DType::Uint16,
        ffi::TF_BOOL => DType::Bool,
        ffi::TF_STRING => DType::String,
        _ => return None,
    })
}

/// The `TF_DataType` of a RedisAI dtype.
pub fn tf_type_of(dtype: DType) -> c_int {
    match dtype {
        DType::Float => ffi::TF_FLOAT,
        DType::Double => ffi::TF_DOUBLE,
        DType::Int8 => ffi::TF_INT8,
        DType::Int16 => ffi::TF_INT16,
        DType::Int32 => ffi::TF_INT32,
        DType::Int64 => ffi::TF_INT64,
        DType::Uint8 => ffi::TF_UINT8,
        DType::Uint16 => ffi::TF_UINT16,
        DType::Bool => ffi::TF_BOOL,
        DType::String => ffi::TF_STRING,
    }
}

/// TensorFlow's name of a `TF_DataType` (`DT_...` without the prefix).
pub fn tf_type_name(tf_type: c_int) -> String {
    let name = match tf_type {
        8 => "COMPLEX64",
        11 => "QINT8",
        12 => "QUINT8",
        13 => "QINT32",
        14 => "BFLOAT16",
        15 => "QINT16",
        16 => "QUINT16",
        18 => "COMPLEX128",
        19 => "HALF",
        20 => "RESOURCE",
        21 => "VARIANT",
        22 => "UINT32",
        23 => "UINT64",
        t if t > 100 => return format!("{}_REF", tf_type_name(t - 100)),
        t => match dtype_of(t) {
            Some(dtype) => dtype.name(),
            None => return format!("type {t}"),
        },
    };
    name.to_owned()
}

/// The number of elements of `shape`, if no dimension is negative and it fits.
pub fn element_count(shape: &[i64]) -> Option<usize> {
    shape.iter().try_fold(1usize, |count, &dim| {
        count.checked_mul(usize::try_from(dim).ok()?)
    })
}

/// A TensorFlow tensor with a copy of `tensor`.
pub fn to_tf(runtime: &'static Runtime, tensor: &TensorRef<'_>) -> Result<Tensor> {
    let count = element_count(tensor.shape)
        .ok_or_else(|| Error::new(format!("invalid shape {:?}", tensor.shape)))?;
    if tensor.dtype == DType::String {
        let elements = tensor.string_elements();
        if elements.len() != count {
            return Err(Error::new(format!(
                "a STRING tensor of shape {:?} has {} elements, {count} were expected",
                tensor.shape,
                elements.len()
            )));
        }
        return Tensor::from_strings(runtime, tensor.shape, &elements)
            .map_err(|f| Error::new(f.to_string()));
    }
    // STRING returned above: every other dtype has an element size.
    let expected = count
        .checked_mul(tensor.dtype.element_size().unwrap_or(0))
        .ok_or_else(|| Error::new("the tensor is too large"))?;
    if tensor.data.len() != expected {
        return Err(Error::new(format!(
            "a {} tensor of shape {:?} has {} bytes of data, {expected} were expected",
            tensor.dtype.name(),
            tensor.shape,
            tensor.data.len()
        )));
    }
    Tensor::from_bytes(runtime, tf_type_of(tensor.dtype), tensor.shape, tensor.data)
        .map_err(|f| Error::new(f.to_string()))
}

/// A copy of a TensorFlow tensor, which must have `dtype`.
pub fn from_tf(tensor: &Tensor, dtype: DType) -> Result<OwnedTensor> {
    let actual = tensor.dtype();
    if actual != tf_type_of(dtype) {
        return Err(Error::new(format!(
            "it has dtype {}, the graph declares {}",
            tf_type_name(actual),
            dtype.name()
        )));
    }
    let shape = tensor.dims();
    let count = element_count(&shape)
        .ok_or_else(|| Error::new(format!("TensorFlow returned the shape {shape:?}")))?;
    if dtype == DType::String {
        let elements = tensor
            .strings(count)
            .map_err(|f| Error::new(f.to_string()))?;
        if elements.iter().any(|e| e.contains(&0)) {
            return Err(Error::new(
                "a STRING element contains a NUL byte, which RedisAI's STRING tensors cannot hold",
            ));
        }
        return Ok(OwnedTensor::from_strings(shape, &elements));
    }
    let data = tensor.bytes();
    let expected = count.checked_mul(dtype.element_size().unwrap_or(0));
    if expected != Some(data.len()) {
        return Err(Error::new(format!(
            "TensorFlow returned {} bytes for shape {shape:?}",
            data.len()
        )));
    }
    Ok(OwnedTensor {
        dtype,
        shape,
        data: OutputBuffer::try_copy_from(data)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        let name = |op: &str, index| TensorName {
            op: op.to_owned(),
            index,
        };
        assert_eq!(parse_name("mul").unwrap(), name("mul", 0));
        assert_eq!(parse_name("split:1").unwrap(), name("split", 1));
        assert_eq!(parse_name("scope/op:0").unwrap(), name("scope/op", 0));
        for bad in [
            "",
            "^a",
            "a:",
            ":1",
            "a:b",
            "a:1:2",
            "a:-1",
            "a:99999999999999999999999",
        ] {
            assert!(parse_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dtypes_round_trip() {
        for &dtype in DType::ALL {
            assert_eq!(dtype_of(tf_type_of(dtype)), Some(dtype));
        }
        assert_eq!(dtype_of(19), None);
        assert_eq!(tf_type_name(19), "HALF");
        assert_eq!(tf_type_name(101), "FLOAT_REF");
        assert_eq!(tf_type_name(99), "type 99");
    }

    #[test]
    fn counts() {
        assert_eq!(element_count(&[]), Some(1));
        assert_eq!(element_count(&[2, 0, 3]), Some(0));
        assert_eq!(element_count(&[2, -1]), None);
        assert_eq!(element_count(&[i64::MAX, 4]), None);
    }
}
