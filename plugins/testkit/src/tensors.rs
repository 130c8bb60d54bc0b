//! Input tensors with their own storage, and plain numbers as little-endian bytes.

use std::ffi::c_void;
use std::ptr;

use redisai_plugin_api::abi::{RaiDevice, RaiDeviceKind, RaiTensorView};
use redisai_plugin_api::sdk::{DType, Device, DeviceKind, OwnedTensor, TensorRef};

/// A tensor with its own storage, on the CPU: an input, or an output copied out.
#[derive(Clone, Debug, PartialEq)]
pub struct Input {
    pub dtype: DType,
    pub shape: Vec<i64>,
    pub data: Vec<u8>,
}

impl Input {
    pub fn new(dtype: DType, shape: &[i64], data: Vec<u8>) -> Input {
        Input {
            dtype,
            shape: shape.to_vec(),
            data,
        }
    }

    pub fn f32(shape: &[i64], values: &[f32]) -> Input {
        Input::new(DType::Float, shape, le_bytes(values))
    }

    pub fn i64(shape: &[i64], values: &[i64]) -> Input {
        Input::new(DType::Int64, shape, le_bytes(values))
    }

    /// The values of a FLOAT tensor; panics for another dtype.
    pub fn to_f32(&self) -> Vec<f32> {
        assert_eq!(self.dtype, DType::Float, "not a FLOAT tensor");
        f32s(&self.data)
    }

    /// A STRING tensor: each element NUL-terminated, one after the other (as many as
    /// given, whatever the shape says).
    pub fn strings(shape: &[i64], elements: &[&[u8]]) -> Input {
        let tensor = OwnedTensor::from_strings(shape.to_vec(), elements);
        Input::new(DType::String, shape, tensor.data.into_vec())
    }

    /// The SDK's view, as a backend's `run` takes it.
    pub fn view(&self) -> TensorRef<'_> {
        TensorRef {
            dtype: self.dtype,
            device: Device {
                kind: DeviceKind::Cpu,
                id: 0,
            },
            shape: &self.shape,
            data: &self.data,
        }
    }

    /// The C ABI's view, as a plugin's `model_run` takes it; valid while `self` is.
    pub fn abi_view(&self) -> RaiTensorView {
        RaiTensorView {
            dtype: self.dtype,
            device: RaiDevice {
                kind: RaiDeviceKind::Cpu,
                id: 0,
            },
            ndim: self.shape.len(),
            shape: self.shape.as_ptr(),
            strides: ptr::null(),
            data: self.data.as_ptr().cast::<c_void>(),
            byte_len: self.data.len(),
        }
    }
}

/// The SDK's views of `inputs`.
pub fn views(inputs: &[Input]) -> Vec<TensorRef<'_>> {
    inputs.iter().map(Input::view).collect()
}

/// Plain numbers and their little-endian bytes.
pub trait Plain: Copy + Sized {
    const SIZE: usize;
    fn put(self, out: &mut Vec<u8>);
    fn take(bytes: &[u8]) -> Self;
}

macro_rules! plain {
    ($($t:ty),*) => {$(
        impl Plain for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn take(bytes: &[u8]) -> Self {
                let mut b = [0u8; std::mem::size_of::<$t>()];
                b.copy_from_slice(bytes);
                <$t>::from_le_bytes(b)
            }
        }
    )*};
}
plain!(f32, f64, i8, i16, i32, i64, u8, u16);

/// The little-endian bytes of `values`.
pub fn le_bytes<T: Plain>(values: &[T]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * T::SIZE);
    for &v in values {
        v.put(&mut out);
    }
    out
}

/// The numbers in little-endian `data` (a trailing partial number is ignored).
pub fn values<T: Plain>(data: &[u8]) -> Vec<T> {
    data.chunks_exact(T::SIZE).map(T::take).collect()
}

pub fn f32s(data: &[u8]) -> Vec<f32> {
    values(data)
}

pub fn i64s(data: &[u8]) -> Vec<i64> {
    values(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_through_little_endian_bytes() {
        assert_eq!(le_bytes(&[1i16, -2]), [1, 0, 0xfe, 0xff]);
        assert_eq!(values::<i16>(&le_bytes(&[1i16, -2])), [1, -2]);
        assert_eq!(f32s(&le_bytes(&[1.5f32, -0.25])), [1.5, -0.25]);
        assert_eq!(i64s(&le_bytes(&[i64::MIN, 7])), [i64::MIN, 7]);
    }

    #[test]
    fn inputs_and_their_views() {
        let input = Input::strings(&[2], &[b"ab", b""]);
        assert_eq!(input.dtype, DType::String);
        assert_eq!(input.data, b"ab\0\0");
        let view = input.abi_view();
        assert_eq!((view.ndim, view.byte_len), (1, 4));
        let f = Input::f32(&[1, 2], &[1.0, 2.0]);
        let views = views(std::slice::from_ref(&f));
        assert_eq!(views[0].shape, [1, 2]);
        assert_eq!(views[0].data.len(), 8);
    }
}
