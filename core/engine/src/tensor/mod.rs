//! Tensors: element type, shape and one contiguous row-major buffer. No Redis here.

mod batch;
mod buffer;
mod dtype;
mod error;
pub mod parse;

pub use buffer::{AlignedBuffer, AllocError};
pub use dtype::DType;
pub use error::TensorError;

/// The largest tensor data this module creates, in bytes (4 GiB).
pub const MAX_TENSOR_BYTES: u64 = 4 << 30;

/// Bytes owned elsewhere that a tensor can hold without copying them (for example a
/// command argument that Redis keeps alive for us).
pub trait ByteSource: Send + Sync {
    fn bytes(&self) -> &[u8];
}

impl ByteSource for AlignedBuffer {
    fn bytes(&self) -> &[u8] {
        self.as_slice()
    }
}

/// A dense tensor. Numeric data is little-endian and row-major; STRING data is the
/// concatenation of NUL-terminated elements. The data is one contiguous buffer, either
/// allocated here (64-byte aligned) or borrowed from a [`ByteSource`].
pub struct Tensor {
    dtype: DType,
    shape: Vec<i64>,
    data: Box<dyn ByteSource>,
}

impl Clone for Tensor {
    /// A deep copy into an aligned buffer of our own.
    fn clone(&self) -> Self {
        Tensor {
            dtype: self.dtype,
            shape: self.shape.clone(),
            data: Box::new(AlignedBuffer::copy_from(self.data()).unwrap_or_else(|err| {
                std::alloc::handle_alloc_error(
                    std::alloc::Layout::from_size_align(err.bytes, 64)
                        .unwrap_or(std::alloc::Layout::new::<u8>()),
                )
            })),
        }
    }
}

impl PartialEq for Tensor {
    fn eq(&self, other: &Self) -> bool {
        self.dtype == other.dtype && self.shape == other.shape && self.data() == other.data()
    }
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tensor")
            .field("dtype", &self.dtype)
            .field("shape", &self.shape)
            .field("bytes", &self.data().len())
            .finish()
    }
}

/// One element, widened for replies: floats as f64, integers and BOOL as i64.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Element<'a> {
    Float(f64),
    Int(i64),
    Str(&'a [u8]),
}

impl Tensor {
    /// A tensor whose numeric elements are zero and whose strings are empty.
    pub fn zeros(dtype: DType, shape: Vec<i64>) -> Result<Tensor, TensorError> {
        let elements = element_count(&shape, dtype)?;
        let bytes = checked_byte_size(dtype, elements)?;
        // An empty string element is a lone NUL, so a zero-filled STRING buffer of one
        // byte per element is already well formed.
        let data = AlignedBuffer::zeroed(bytes)?;
        Ok(Tensor {
            dtype,
            shape,
            data: Box::new(data),
        })
    }

    /// A tensor over a copy of `blob`, which must hold exactly the shape's elements.
    pub fn from_blob(dtype: DType, shape: Vec<i64>, blob: &[u8]) -> Result<Tensor, TensorError> {
        let elements = element_count(&shape, dtype)?;
        validate_blob(dtype, elements, blob)?;
        let data = AlignedBuffer::copy_from(blob)?;
        Ok(Tensor {
            dtype,
            shape,
            data: Box::new(data),
        })
    }

    /// A tensor over bytes held by `source`, without copying them.
    pub fn from_source(
        dtype: DType,
        shape: Vec<i64>,
        source: Box<dyn ByteSource>,
    ) -> Result<Tensor, TensorError> {
        let elements = element_count(&shape, dtype)?;
        validate_blob(dtype, elements, source.bytes())?;
        Ok(Tensor {
            dtype,
            shape,
            data: source,
        })
    }

    /// A tensor that takes ownership of an already filled buffer (RDB load, backend
    /// outputs). Shapes may contain zero dimensions here.
    pub fn from_buffer(
        dtype: DType,
        shape: Vec<i64>,
        data: AlignedBuffer,
    ) -> Result<Tensor, TensorError> {
        let elements = element_count(&shape, dtype)?;
        validate_blob(dtype, elements, data.as_slice())?;
        Ok(Tensor {
            dtype,
            shape,
            data: Box::new(data),
        })
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn shape(&self) -> &[i64] {
        &self.shape
    }

    /// Number of elements: the product of the shape (1 for a scalar).
    pub fn len(&self) -> usize {
        self.shape.iter().map(|&dim| dim as usize).product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The raw bytes, as BLOB replies and RDB encode them.
    pub fn data(&self) -> &[u8] {
        self.data.bytes()
    }

    /// Row-major strides, in elements.
    pub fn strides(&self) -> Vec<i64> {
        let mut strides = vec![1i64; self.shape.len()];
        for axis in (0..self.shape.len().saturating_sub(1)).rev() {
            strides[axis] = strides[axis + 1].saturating_mul(self.shape[axis + 1]);
        }
        strides
    }

    /// Heap bytes owned by this tensor, for MEMORY USAGE.
    pub fn memory_usage(&self) -> usize {
        let word = std::mem::size_of::<usize>();
        // The key's box of an `Arc`, the Arc's counters and the tensor, the data source
        // object, the shape and the bytes (our own buffers are 64-byte aligned).
        word + 2 * word
            + std::mem::size_of::<Tensor>()
            + std::mem::size_of_val(&*self.data)
            + self.shape.capacity() * std::mem::size_of::<i64>()
            + self.data().len().next_multiple_of(64)
    }

    /// The elements in row-major order.
    pub fn elements(&self) -> Box<dyn Iterator<Item = Element<'_>> + '_> {
        let data = self.data();
        macro_rules! numeric {
            ($ty:ty, $variant:ident, $wide:ty) => {
                Box::new(data.chunks_exact(std::mem::size_of::<$ty>()).map(|chunk| {
                    let mut raw = [0u8; std::mem::size_of::<$ty>()];
                    raw.copy_from_slice(chunk);
                    Element::$variant(<$ty>::from_le_bytes(raw) as $wide)
                }))
            };
        }
        match self.dtype {
            DType::Float => numeric!(f32, Float, f64),
            DType::Double => numeric!(f64, Float, f64),
            DType::Int8 => numeric!(i8, Int, i64),
            DType::Int16 => numeric!(i16, Int, i64),
            DType::Int32 => numeric!(i32, Int, i64),
            DType::Int64 => numeric!(i64, Int, i64),
            DType::Uint8 | DType::Bool => numeric!(u8, Int, i64),
            DType::Uint16 => numeric!(u16, Int, i64),
            DType::String => Box::new(string_elements(data).map(Element::Str)),
        }
    }
}

/// The NUL-terminated elements of a STRING buffer, without their terminators.
fn string_elements(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = data.strip_suffix(b"\0").unwrap_or(data);
    let empty = data.is_empty();
    body.split(|&byte| byte == 0).filter(move |_| !empty)
}

/// Product of the dimensions; a negative one is refused. Zero-length dimensions are
/// valid tensors (backends output them); RedisAI's rule that a client's TENSORSET names
/// positive ones is the parser's (`parse::ShapeRule`).
pub fn element_count(shape: &[i64], dtype: DType) -> Result<u64, TensorError> {
    if shape.iter().any(|&dim| dim < 0) {
        return Err(TensorError::InvalidShape);
    }
    shape
        .iter()
        .try_fold(1u64, |acc, &dim| acc.checked_mul(dim as u64))
        .ok_or(TensorError::ShapeTooLarge {
            dtype,
            elements: None,
        })
}

/// Bytes needed for `elements` fixed-size elements (one NUL per STRING element),
/// refusing sizes over [`MAX_TENSOR_BYTES`].
fn checked_byte_size(dtype: DType, elements: u64) -> Result<usize, TensorError> {
    let size = dtype.element_size().unwrap_or(1) as u64;
    elements
        .checked_mul(size)
        .filter(|&bytes| bytes <= MAX_TENSOR_BYTES)
        .and_then(|bytes| usize::try_from(bytes).ok())
        .ok_or(TensorError::ShapeTooLarge {
            dtype,
            elements: Some(elements),
        })
}

fn validate_blob(dtype: DType, elements: u64, blob: &[u8]) -> Result<(), TensorError> {
    match dtype.element_size() {
        Some(size) => {
            let matches = elements
                .checked_mul(size as u64)
                .is_some_and(|expected| expected == blob.len() as u64);
            if !matches {
                return Err(TensorError::BlobLengthMismatch {
                    expected: elements.saturating_mul(size as u64),
                    actual: blob.len(),
                });
            }
            if dtype == DType::Bool && blob.iter().any(|&b| b > 1) {
                return Err(TensorError::BoolValue);
            }
            Ok(())
        }
        None => {
            let terminated = blob.last() == Some(&0);
            let nul_count = blob.iter().filter(|&&b| b == 0).count() as u64;
            if (elements == 0 && blob.is_empty()) || (terminated && nul_count == elements) {
                Ok(())
            } else {
                Err(TensorError::StringBlobLayout)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeros_for_every_dtype() {
        for dtype in DType::ALL {
            let tensor = Tensor::zeros(dtype, vec![2, 3]).expect("zeros");
            assert_eq!(tensor.len(), 6);
            assert_eq!(tensor.elements().count(), 6, "{dtype}");
            assert!(tensor.data().iter().all(|&b| b == 0));
        }
        let strings = Tensor::zeros(DType::String, vec![3]).expect("zeros");
        let elements: Vec<_> = strings.elements().collect();
        assert_eq!(elements, vec![Element::Str(b""); 3]);
    }

    #[test]
    fn blob_length_must_match() {
        let err = Tensor::from_blob(DType::Float, vec![2], &[0u8; 7]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ERR data length does not match tensor shape and type"
        );
        assert!(Tensor::from_blob(DType::Float, vec![2], &[0u8; 8]).is_ok());
    }

    #[test]
    fn huge_blob_against_tiny_shape_is_rejected() {
        let blob = vec![0u8; 1 << 20];
        let err = Tensor::from_blob(DType::Float, vec![1], &blob).unwrap_err();
        assert!(matches!(
            err,
            TensorError::BlobLengthMismatch { expected: 4, .. }
        ));
    }

    #[test]
    fn overflowing_shape_is_rejected_without_allocating() {
        let shape = vec![i64::MAX, i64::MAX, 2];
        let err = Tensor::zeros(DType::Double, shape.clone()).unwrap_err();
        assert!(matches!(
            err,
            TensorError::ShapeTooLarge { elements: None, .. }
        ));
        let err = Tensor::from_blob(DType::Double, shape, b"").unwrap_err();
        assert!(matches!(err, TensorError::ShapeTooLarge { .. }));
        let err = Tensor::zeros(DType::Float, vec![1 << 20, 1 << 20]).unwrap_err();
        assert!(matches!(
            err,
            TensorError::ShapeTooLarge {
                elements: Some(_),
                ..
            }
        ));
    }

    #[test]
    fn negative_dims_are_rejected_and_zero_length_ones_are_empty() {
        for shape in [vec![-1], vec![2, -1]] {
            let err = Tensor::zeros(DType::Int8, shape).unwrap_err();
            assert_eq!(err, TensorError::InvalidShape);
        }
        let empty = Tensor::zeros(DType::Float, vec![0, 3]).expect("zero-length dimension");
        assert!(empty.data().is_empty());
        let scalar = Tensor::zeros(DType::Double, Vec::new()).expect("rank 0");
        assert_eq!(scalar.data().len(), 8);
    }

    #[test]
    fn string_blob_layout() {
        let ok = Tensor::from_blob(DType::String, vec![2], b"ab\0\0").expect("valid");
        let elements: Vec<_> = ok.elements().collect();
        assert_eq!(elements, vec![Element::Str(b"ab"), Element::Str(b"")]);
        for bad in [&b"ab\0"[..], b"ab\0c", b"", b"a\0b\0c\0"] {
            let err = Tensor::from_blob(DType::String, vec![2], bad).unwrap_err();
            assert_eq!(err, TensorError::StringBlobLayout, "{bad:?}");
        }
    }

    #[test]
    fn bool_blob_must_hold_zero_or_one() {
        assert!(Tensor::from_blob(DType::Bool, vec![2], &[0, 1]).is_ok());
        let err = Tensor::from_blob(DType::Bool, vec![2], &[0, 2]).unwrap_err();
        assert_eq!(err.to_string(), "ERR BOOL tensor elements must be 0 or 1");
    }

    #[test]
    fn elements_decode_little_endian() {
        let mut blob = Vec::new();
        blob.extend_from_slice(&(-2i16).to_le_bytes());
        blob.extend_from_slice(&300i16.to_le_bytes());
        let tensor = Tensor::from_blob(DType::Int16, vec![2], &blob).expect("valid");
        let elements: Vec<_> = tensor.elements().collect();
        assert_eq!(elements, vec![Element::Int(-2), Element::Int(300)]);

        let tensor = Tensor::from_blob(DType::Float, vec![1], &1.5f32.to_le_bytes()).expect("ok");
        assert_eq!(tensor.elements().next(), Some(Element::Float(1.5)));
    }

    #[test]
    fn strides_are_row_major() {
        let tensor = Tensor::zeros(DType::Float, vec![2, 3, 4]).expect("zeros");
        assert_eq!(tensor.strides(), vec![12, 4, 1]);
    }

    #[test]
    fn from_buffer_validates() {
        let data = AlignedBuffer::copy_from(&[1, 2, 3]).expect("alloc");
        assert!(Tensor::from_buffer(DType::Int16, vec![2], data).is_err());
        let data = AlignedBuffer::zeroed(0).expect("alloc");
        let empty = Tensor::from_buffer(DType::Float, vec![0, 3], data).expect("empty ok");
        assert!(empty.is_empty());
    }
}
