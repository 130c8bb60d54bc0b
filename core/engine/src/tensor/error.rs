//! Errors of tensor construction, with RedisAI's reply texts.

use std::fmt;

use super::DType;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TensorError {
    InvalidDType,
    InvalidShape,
    /// The element count or byte size does not fit the limits.
    ShapeTooLarge {
        dtype: DType,
        elements: Option<u64>,
    },
    BlobLengthMismatch {
        expected: u64,
        actual: usize,
    },
    BlobArity,
    StringBlobLayout,
    WrongValueCount {
        expected: u64,
        actual: usize,
    },
    InvalidValue {
        index: usize,
    },
    ValueOutOfRange {
        index: usize,
        value: i64,
        dtype: DType,
    },
    BoolValue,
    StringValueHasNul {
        index: usize,
    },
    OutOfMemory {
        bytes: usize,
    },
    UnsupportedFormat,
    BlobAndValues,
}

impl fmt::Display for TensorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TensorError::InvalidDType => f.write_str("ERR invalid data type"),
            TensorError::InvalidShape => {
                f.write_str("ERR invalid or negative value found in tensor shape")
            }
            TensorError::ShapeTooLarge { dtype, elements } => match elements {
                Some(n) => write!(
                    f,
                    "ERR tensor too large: {n} elements of {dtype} exceed the limit of {} bytes",
                    super::MAX_TENSOR_BYTES
                ),
                None => write!(f, "ERR tensor too large: the element count of the shape overflows"),
            },
            TensorError::BlobLengthMismatch { .. } => {
                f.write_str("ERR data length does not match tensor shape and type")
            }
            TensorError::BlobArity => f.write_str(
                "ERR a single binary string should come after the BLOB argument in 'AI.TENSORSET' command",
            ),
            TensorError::StringBlobLayout => f.write_str(
                "ERR Number of string elements in data blob does not match tensor length",
            ),
            TensorError::WrongValueCount { .. } => {
                f.write_str("ERR wrong number of values was given in 'AI.TENSORSET' command")
            }
            TensorError::InvalidValue { .. } => f.write_str("ERR invalid value"),
            TensorError::ValueOutOfRange { .. } => f.write_str("ERR invalid value"),
            TensorError::BoolValue => f.write_str("ERR BOOL tensor elements must be 0 or 1"),
            TensorError::StringValueHasNul { .. } => {
                f.write_str("ERR C-string value contains null character")
            }
            TensorError::OutOfMemory { bytes } => {
                write!(f, "ERR could not allocate {bytes} bytes for the tensor")
            }
            TensorError::UnsupportedFormat => f.write_str("ERR unsupported data format"),
            TensorError::BlobAndValues => f.write_str("ERR both BLOB and VALUES specified"),
        }
    }
}

impl std::error::Error for TensorError {}

impl From<super::buffer::AllocError> for TensorError {
    fn from(err: super::buffer::AllocError) -> Self {
        TensorError::OutOfMemory { bytes: err.bytes }
    }
}
