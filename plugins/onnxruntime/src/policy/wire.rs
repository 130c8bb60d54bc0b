//! A small protobuf reader over a message's bytes: no allocation, a refusal (never a
//! panic) on malformed input, and the field numbers of onnx.proto3 the checks use.

use super::{Checked, Refusal};

/// Calls `each` with every field of the message: its number, its bytes as written, and
/// its value.
pub(super) fn each_raw<'a>(
    message: &'a [u8],
    mut each: impl FnMut(u32, &'a [u8], Value<'a>) -> Checked,
) -> Checked {
    let mut fields = Fields::of(message);
    loop {
        let before = fields.rest;
        let Some((number, value)) = fields.next_field()? else {
            return Ok(());
        };
        let raw = &before[..before.len() - fields.rest.len()];
        each(number, raw, value)?;
    }
}

/// One field's value, by wire type.
pub(super) enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    /// Fixed32 and fixed64: nothing the checks need.
    Fixed,
}

/// Reads the fields of one message, one at a time.
pub(super) struct Fields<'a> {
    pub(super) rest: &'a [u8],
}

impl<'a> Fields<'a> {
    pub(super) fn of(bytes: &'a [u8]) -> Fields<'a> {
        Fields { rest: bytes }
    }

    pub(super) fn varint(&mut self) -> Checked<u64> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let Some((&byte, rest)) = self.rest.split_first() else {
                return Err(Refusal::Malformed("truncated varint"));
            };
            self.rest = rest;
            if i == 9 && byte > 1 {
                return Err(Refusal::Malformed("varint longer than 64 bits"));
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Refusal::Malformed("varint longer than 10 bytes"))
    }

    fn take(&mut self, n: u64) -> Checked<&'a [u8]> {
        let n = usize::try_from(n).map_err(|_| Refusal::Malformed("length past the end"))?;
        if n > self.rest.len() {
            return Err(Refusal::Malformed("length past the end"));
        }
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(taken)
    }

    /// The next field: its number and value; None at the end of the message.
    pub(super) fn next_field(&mut self) -> Checked<Option<(u32, Value<'a>)>> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let tag = self.varint()?;
        let tag = u32::try_from(tag).map_err(|_| Refusal::Malformed("tag past 32 bits"))?;
        let number = tag >> 3;
        if number == 0 {
            return Err(Refusal::Malformed("field number 0"));
        }
        let value = match tag & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Value::Fixed
            }
            2 => {
                let len = self.varint()?;
                Value::Bytes(self.take(len)?)
            }
            5 => {
                self.take(4)?;
                Value::Fixed
            }
            // ONNX has no groups; a model that has them is not one this checks.
            3 | 4 => return Err(Refusal::Malformed("protobuf groups")),
            _ => return Err(Refusal::Malformed("invalid wire type")),
        };
        Ok(Some((number, value)))
    }
}

/// Calls `each` with every length-delimited occurrence of the message's fields, after
/// checking that the whole message is well formed.
pub(super) fn each_bytes<'a>(
    message: &'a [u8],
    mut each: impl FnMut(u32, &'a [u8]) -> Checked,
) -> Checked {
    let mut fields = Fields::of(message);
    while let Some((number, value)) = fields.next_field()? {
        if let Value::Bytes(bytes) = value {
            each(number, bytes)?;
        }
    }
    Ok(())
}

/// The last length-delimited value of field `field` in `message` (`""` when none).
pub(super) fn last_bytes(message: &[u8], field: u32) -> Checked<&[u8]> {
    let mut last: &[u8] = b"";
    each_bytes(message, |number, bytes| {
        if number == field {
            last = bytes;
        }
        Ok(())
    })?;
    Ok(last)
}

/// Field numbers, from onnx.proto3.
pub(super) mod model {
    pub const GRAPH: u32 = 7;
    pub const TRAINING_INFO: u32 = 20;
    pub const FUNCTIONS: u32 = 25;
}
pub(super) mod graph {
    pub const NODE: u32 = 1;
    pub const INITIALIZER: u32 = 5;
    pub const INPUT: u32 = 11;
    pub const SPARSE_INITIALIZER: u32 = 15;
}
pub(super) mod value_info {
    pub const NAME: u32 = 1;
    pub const TYPE: u32 = 2;
}
/// TypeProto: a oneof of these (and others: sequence 4, map 5, optional 9, ...).
pub(super) mod type_proto {
    pub const TENSOR_TYPE: u32 = 1;
    pub const SPARSE_TENSOR_TYPE: u32 = 8;
    /// TypeProto.Tensor (and SparseTensor).
    pub const ELEM_TYPE: u32 = 1;
    pub const SHAPE: u32 = 2;
}
pub(super) mod node {
    pub const INPUT: u32 = 1;
    pub const OP_TYPE: u32 = 4;
    pub const ATTRIBUTE: u32 = 5;
    pub const DOMAIN: u32 = 7;
}
pub(super) mod attribute {
    pub const T: u32 = 5;
    pub const G: u32 = 6;
    pub const TENSORS: u32 = 10;
    pub const GRAPHS: u32 = 11;
    pub const SPARSE_TENSOR: u32 = 22;
    pub const SPARSE_TENSORS: u32 = 23;
}
pub(super) mod tensor {
    pub const NAME: u32 = 8;
    pub const EXTERNAL_DATA: u32 = 13;
    pub const DATA_LOCATION: u32 = 14;
}
pub(super) mod sparse_tensor {
    pub const VALUES: u32 = 1;
    pub const INDICES: u32 = 2;
}
pub(super) mod function {
    pub const NODE: u32 = 7;
    pub const DOMAIN: u32 = 10;
    pub const ATTRIBUTE_PROTO: u32 = 11;
}
pub(super) mod training_info {
    pub const INITIALIZATION: u32 = 1;
    pub const ALGORITHM: u32 = 2;
}
