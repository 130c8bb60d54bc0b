//! Tensors TensorFlow allocates: made from the host's bytes or strings, read back after a
//! run.

use std::ffi::c_int;
use std::ptr;

use super::{check_thread, Failure, Object, Runtime, TString, TF_STRING};

/// A tensor allocated by TensorFlow.
pub struct Tensor {
    pub(super) runtime: &'static Runtime,
    pub(super) raw: Object,
    /// A STRING tensor whose elements this crate initialised: they are deallocated before
    /// the tensor is deleted (TensorFlow does not do it for memory from TF_AllocateTensor).
    pub(super) owns_strings: bool,
}

// SAFETY: a TF_Tensor is a plain buffer with a reference count that TensorFlow updates
// atomically; this crate never shares one between threads while writing it.
unsafe impl Send for Tensor {}

impl Tensor {
    fn allocate(
        runtime: &'static Runtime,
        dtype: c_int,
        dims: &[i64],
        len: usize,
        owns_strings: bool,
    ) -> Result<Tensor, Failure> {
        check_thread();
        let ndims = c_int::try_from(dims.len()).map_err(|_| Failure::new("too many dimensions"))?;
        // SAFETY: `dims` holds `ndims` values, read during the call.
        let raw = unsafe { (runtime.api.allocate_tensor)(dtype, dims.as_ptr(), ndims, len) };
        if raw.is_null() {
            return Err(Failure::new(format!(
                "TF_AllocateTensor could not allocate {len} bytes"
            )));
        }
        Ok(Tensor {
            runtime,
            raw,
            owns_strings,
        })
    }

    /// A tensor of a fixed-size type holding a copy of `data` (little-endian elements,
    /// `data.len()` = element count * element size, checked by the caller).
    pub fn from_bytes(
        runtime: &'static Runtime,
        dtype: c_int,
        dims: &[i64],
        data: &[u8],
    ) -> Result<Tensor, Failure> {
        let tensor = Tensor::allocate(runtime, dtype, dims, data.len(), false)?;
        if !data.is_empty() {
            // SAFETY: TensorFlow allocated `data.len()` bytes for the tensor, which nothing
            // else references yet.
            unsafe {
                let dest = (runtime.api.tensor_data)(tensor.raw).cast::<u8>();
                if dest.is_null() {
                    return Err(Failure::new("TF_TensorData returned null"));
                }
                ptr::copy_nonoverlapping(data.as_ptr(), dest, data.len());
            }
        }
        Ok(tensor)
    }

    /// A STRING tensor with copies of `elements` (as many as `dims` asks for, checked by
    /// the caller).
    pub fn from_strings(
        runtime: &'static Runtime,
        dims: &[i64],
        elements: &[&[u8]],
    ) -> Result<Tensor, Failure> {
        let len = elements
            .len()
            .checked_mul(std::mem::size_of::<TString>())
            .ok_or_else(|| Failure::new("too many strings"))?;
        let mut tensor = Tensor::allocate(runtime, TF_STRING, dims, len, false)?;
        if elements.is_empty() {
            return Ok(tensor);
        }
        // SAFETY: TensorFlow allocated room for `elements.len()` TF_TStrings, suitably
        // aligned (its CPU allocator aligns to 64 bytes); all are initialised before any is
        // used, and deallocated in Drop (owns_strings is set once all are initialised).
        unsafe {
            let base = (runtime.api.tensor_data)(tensor.raw).cast::<TString>();
            if base.is_null() {
                return Err(Failure::new("TF_TensorData returned null"));
            }
            for i in 0..elements.len() {
                (runtime.api.string_init)(base.add(i));
            }
            tensor.owns_strings = true;
            for (i, element) in elements.iter().enumerate() {
                (runtime.api.string_copy)(base.add(i), element.as_ptr().cast(), element.len());
            }
        }
        Ok(tensor)
    }

    /// The `TF_DataType`.
    pub fn dtype(&self) -> c_int {
        // SAFETY: a live tensor.
        unsafe { (self.runtime.api.tensor_type)(self.raw) }
    }

    pub fn dims(&self) -> Vec<i64> {
        // SAFETY: a live tensor.
        let n = unsafe { (self.runtime.api.num_dims)(self.raw) };
        (0..n.max(0))
            // SAFETY: `i` is below the tensor's rank.
            .map(|i| unsafe { (self.runtime.api.dim)(self.raw, i) })
            .collect()
    }

    /// The raw bytes of a tensor of a fixed-size type.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: a live tensor; TensorFlow reports its buffer's size; the buffer lives as
        // long as the tensor, which the returned slice borrows.
        unsafe {
            let len = (self.runtime.api.tensor_byte_size)(self.raw);
            let data = (self.runtime.api.tensor_data)(self.raw);
            if len == 0 || data.is_null() {
                return &[];
            }
            std::slice::from_raw_parts(data.cast::<u8>(), len)
        }
    }

    /// The elements of a STRING tensor (`count` of them, checked against the buffer).
    pub fn strings(&self, count: usize) -> Result<Vec<Vec<u8>>, Failure> {
        if self.dtype() != TF_STRING {
            return Err(Failure::new("not a STRING tensor"));
        }
        // SAFETY: a live tensor.
        let len = unsafe { (self.runtime.api.tensor_byte_size)(self.raw) };
        if count.checked_mul(std::mem::size_of::<TString>()) != Some(len) {
            return Err(Failure::new(format!(
                "a STRING tensor of {count} elements has {len} bytes"
            )));
        }
        if count == 0 {
            return Ok(Vec::new());
        }
        // SAFETY: the buffer holds `count` initialised TF_TStrings (checked above), alive
        // while the tensor is; each element's bytes are copied out.
        unsafe {
            let base = (self.runtime.api.tensor_data)(self.raw).cast::<TString>();
            if base.is_null() {
                return Err(Failure::new("TF_TensorData returned null"));
            }
            Ok((0..count)
                .map(|i| {
                    let element = base.add(i);
                    let data = (self.runtime.api.string_data)(element);
                    let size = (self.runtime.api.string_size)(element);
                    if size == 0 || data.is_null() {
                        Vec::new()
                    } else {
                        std::slice::from_raw_parts(data.cast::<u8>(), size).to_vec()
                    }
                })
                .collect())
        }
    }
}

impl Drop for Tensor {
    fn drop(&mut self) {
        let api = &self.runtime.api;
        // SAFETY: a live tensor, deleted once. Strings this crate initialised are
        // deallocated first; nothing else references them: the session run that read them
        // has returned and the fetched tensors that could share the buffer are dropped
        // first (the backend drops outputs before inputs).
        unsafe {
            if self.owns_strings {
                let len = (api.tensor_byte_size)(self.raw);
                let base = (api.tensor_data)(self.raw).cast::<TString>();
                if !base.is_null() {
                    for i in 0..len / std::mem::size_of::<TString>() {
                        (api.string_dealloc)(base.add(i));
                    }
                }
            }
            (api.delete_tensor)(self.raw);
        }
    }
}
