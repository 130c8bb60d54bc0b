//! Readers for the RDB encodings RedisAI 1.0-1.2 wrote for its three data types
//! (encoding versions 0 to 4), so a RedisAI `dump.rdb`, an AOF with an RDB preamble or
//! a `DUMP` payload made by RedisAI loads here. What we save is always our own encoding
//! (100 and up), so such a value becomes ours the next time it is written.
//!
//! The byte formats, as RedisAI wrote them (every field is a module RDB field: an
//! unsigned, a signed or a string buffer; "C string" means the bytes plus a NUL):
//!
//! * tensor, versions 0-3: device type, device id, dtype bits, dtype code, dtype lanes,
//!   rank, rank dims (unsigned), rank strides (unsigned), byte offset, data.
//! * tensor, version 4: dtype code, dtype bits, rank (signed), rank dims (signed), data,
//!   then for a STRING tensor one unsigned element length per element.
//! * model, version 0: backend (0 TF, 1 TFLITE, 2 TORCH, 3 ONNX), device (C string),
//!   tag (C string), batchsize, minbatchsize, input count and names (C strings), output
//!   count and names, blob (one string).
//! * model, version 1: as 0, but the tag is a plain string (some 1.0 builds still wrote
//!   it as a C string) and the blob is its length, a chunk count and the chunks.
//! * model, versions 2-4: as 1, with minbatchtimeout after minbatchsize.
//! * script, versions 0-2: device (C string), tag (C string in 0, plain from 1), source
//!   (C string).
//! * script, versions 3-4: as 2, then an entry point count and the names (C strings).
//!
//! DLPack dtype codes: 0 signed int, 1 unsigned int, 2 float, 6 bool, 7 string (the
//! last two from RedisAI's own DLPack fork, 1.2.5 and later; both 8 bits).
//!
//! Every count is bounded before it is used, nothing is allocated from a count read
//! from the file, and any inconsistency is an error (the value is refused, Redis is
//! never brought down).

use crate::device::Device;
use crate::model::{Batching, ModelDefinition};
use crate::script::ScriptDefinition;
use crate::tensor::{AlignedBuffer, DType, Tensor};

/// RedisAI's encoding versions: 0 (RedisAI 1.0) to 4 (RedisAI 1.2.5 and later).
pub const FIRST_ENCODING: i32 = 0;
pub const LAST_ENCODING: i32 = 4;

/// Whether `encver` is one of RedisAI's encodings.
pub fn is_redisai_encoding(encver: i32) -> bool {
    (FIRST_ENCODING..=LAST_ENCODING).contains(&encver)
}

/// No real tensor has more axes.
const MAX_RANK: u64 = 1024;
/// More input or output names than any model has.
const MAX_NAMES: u64 = 1 << 16;
const MAX_ENTRY_POINTS: u64 = 1 << 16;

/// The fields of one module value, in the order they were saved.
pub trait FieldSource {
    fn unsigned(&mut self) -> Result<u64, String>;
    fn signed(&mut self) -> Result<i64, String>;
    fn string(&mut self) -> Result<Vec<u8>, String>;
}

/// A C string as RedisAI saved it (`strlen + 1` bytes): without its NUL.
fn c_string(mut bytes: Vec<u8>) -> Vec<u8> {
    if bytes.last() == Some(&0) {
        bytes.pop();
    }
    bytes
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&c_string(bytes)).into_owned()
}

fn bounded(count: u64, max: u64, what: &str) -> Result<u64, String> {
    if count > max {
        return Err(format!("{what} count {count} is more than {max}"));
    }
    Ok(count)
}

/// Our dtype for a DLPack (code, bits) pair.
fn dtype_of(code: u64, bits: u64) -> Option<DType> {
    Some(match (code, bits) {
        (0, 8) => DType::Int8,
        (0, 16) => DType::Int16,
        (0, 32) => DType::Int32,
        (0, 64) => DType::Int64,
        (1, 8) => DType::Uint8,
        (1, 16) => DType::Uint16,
        (2, 32) => DType::Float,
        (2, 64) => DType::Double,
        (6, 8) => DType::Bool,
        (7, 8) => DType::String,
        _ => return None,
    })
}

fn tensor_dtype(code: u64, bits: u64) -> Result<DType, String> {
    dtype_of(code, bits)
        .ok_or_else(|| format!("unsupported RedisAI dtype (code {code}, {bits} bits)"))
}

/// Reads a RedisAI tensor of encoding `encver` (0 to 4).
pub fn load_tensor(src: &mut impl FieldSource, encver: i32) -> Result<Tensor, String> {
    if encver >= 4 {
        return load_tensor_v4(src);
    }
    let _device_type = src.unsigned()?;
    let _device_id = src.unsigned()?;
    let bits = src.unsigned()?;
    let code = src.unsigned()?;
    let lanes = src.unsigned()?;
    if lanes != 1 {
        return Err(format!("tensors with {lanes} lanes are not supported"));
    }
    let dtype = tensor_dtype(code, bits)?;
    if dtype == DType::String {
        return Err(format!(
            "a STRING tensor in encoding {encver} (RedisAI wrote them from encoding 4 on)"
        ));
    }
    let rank = bounded(src.unsigned()?, MAX_RANK, "tensor rank")?;
    let mut shape = Vec::new();
    for _ in 0..rank {
        // Saved through an unsigned field; RedisAI's dims are int64.
        shape.push(src.unsigned()? as i64);
    }
    // Strides (always the contiguous ones) and the byte offset (always 0): RedisAI
    // saved the data from the start of its buffer regardless.
    for _ in 0..rank {
        src.unsigned()?;
    }
    src.unsigned()?;
    let data = src.string()?;
    build_tensor(dtype, shape, &data)
}

fn load_tensor_v4(src: &mut impl FieldSource) -> Result<Tensor, String> {
    let first = src.unsigned()?;
    let second = src.unsigned()?;
    // RedisAI 1.2 writes the code first; a development build of encoding 4 read (and
    // may have written) bits first. Codes are below 8 and bits 8 or more, so the order
    // is never ambiguous.
    let (code, bits) = if first >= 8 && second < 8 {
        (second, first)
    } else {
        (first, second)
    };
    let dtype = tensor_dtype(code, bits)?;
    let rank = src.signed()?;
    if !(0..=MAX_RANK as i64).contains(&rank) {
        return Err(format!(
            "tensor rank {rank} is not between 0 and {MAX_RANK}"
        ));
    }
    let mut shape = Vec::new();
    for _ in 0..rank {
        shape.push(src.signed()?);
    }
    let data = src.string()?;
    if dtype == DType::String {
        // One length per element follows; each element takes at least its NUL, so a
        // count above the data's length is corruption.
        let elements = element_count(&shape)?;
        if elements > data.len() as u64 {
            return Err(format!(
                "STRING tensor of {elements} elements in {} bytes",
                data.len()
            ));
        }
        for _ in 0..elements {
            src.unsigned()?;
        }
    }
    build_tensor(dtype, shape, &data)
}

fn element_count(shape: &[i64]) -> Result<u64, String> {
    shape.iter().try_fold(1u64, |acc, &dim| {
        u64::try_from(dim)
            .ok()
            .and_then(|dim| acc.checked_mul(dim))
            .ok_or_else(|| format!("invalid tensor shape {shape:?}"))
    })
}

fn build_tensor(dtype: DType, shape: Vec<i64>, data: &[u8]) -> Result<Tensor, String> {
    let buffer = AlignedBuffer::copy_from(data)
        .map_err(|err| format!("cannot allocate {} bytes", err.bytes))?;
    Tensor::from_buffer(dtype, shape, buffer).map_err(|err| format!("invalid tensor: {err}"))
}

/// The backend name for RedisAI's `RAI_Backend` number.
fn backend_name(number: u64) -> Result<&'static str, String> {
    Ok(match number {
        0 => "TF",
        1 => "TFLITE",
        2 => "TORCH",
        3 => "ONNX",
        _ => return Err(format!("unknown RedisAI backend number {number}")),
    })
}

fn device(bytes: Vec<u8>) -> Result<(Device, String), String> {
    let name = c_string(bytes);
    let device = Device::parse(&name)
        .ok_or_else(|| format!("invalid device '{}'", String::from_utf8_lossy(&name)))?;
    Ok((device, String::from_utf8_lossy(&name).into_owned()))
}

fn tag(bytes: Vec<u8>, encver: i32) -> Vec<u8> {
    // Written as a C string by encoding 0 and by early builds of encoding 1.
    if encver <= 1 {
        c_string(bytes)
    } else {
        bytes
    }
}

fn names(src: &mut impl FieldSource, what: &str) -> Result<Vec<String>, String> {
    let count = bounded(src.unsigned()?, MAX_NAMES, what)?;
    let mut names = Vec::new();
    for _ in 0..count {
        names.push(text(src.string()?));
    }
    Ok(names)
}

/// Reads a RedisAI model of encoding `encver` (0 to 4).
pub fn load_model(src: &mut impl FieldSource, encver: i32) -> Result<ModelDefinition, String> {
    let backend = backend_name(src.unsigned()?)?;
    let (device, device_name) = device(src.string()?)?;
    let tag = tag(src.string()?, encver);
    let size = src.unsigned()?;
    let min_size = src.unsigned()?;
    let min_timeout_ms = if encver >= 2 { src.unsigned()? } else { 0 };
    let inputs = names(src, "input name")?;
    let outputs = names(src, "output name")?;
    let blob = if encver == 0 {
        src.string()?
    } else {
        let len = src.unsigned()?;
        // Every chunk but the last is non-empty, so there are at most len + 1.
        let chunks = bounded(src.unsigned()?, len.saturating_add(1), "model blob chunk")?;
        let mut blob = Vec::new();
        for _ in 0..chunks {
            let chunk = src.string()?;
            if (blob.len() as u64).saturating_add(chunk.len() as u64) > len {
                return Err(format!("model blob chunks exceed its length {len}"));
            }
            blob.extend_from_slice(&chunk);
        }
        if blob.len() as u64 != len {
            return Err(format!(
                "model blob chunks hold {} bytes, not {len}",
                blob.len()
            ));
        }
        blob
    };
    // Only TF takes its input and output names at store time; for the other backends
    // RedisAI saved the names the backend reported, which ours reports again.
    let (inputs, outputs) = if backend == "TF" {
        (inputs, outputs)
    } else {
        (Vec::new(), Vec::new())
    };
    Ok(ModelDefinition {
        backend: backend.to_owned(),
        device,
        device_name,
        tag,
        batching: Batching {
            size,
            min_size,
            min_timeout_ms,
        },
        inputs,
        outputs,
        blob,
    })
}

/// Reads a RedisAI script of encoding `encver` (0 to 4).
pub fn load_script(src: &mut impl FieldSource, encver: i32) -> Result<ScriptDefinition, String> {
    let (device, device_name) = device(src.string()?)?;
    let tag = tag(src.string()?, encver);
    let source = c_string(src.string()?);
    let entry_points = if encver >= 3 {
        let count = bounded(src.unsigned()?, MAX_ENTRY_POINTS, "entry point")?;
        let mut names = Vec::new();
        for _ in 0..count {
            names.push(text(src.string()?));
        }
        names
    } else {
        Vec::new()
    };
    Ok(ScriptDefinition {
        device,
        device_name,
        tag,
        entry_points,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    enum Field {
        U(u64),
        S(i64),
        B(Vec<u8>),
    }

    struct Fields(VecDeque<Field>);

    impl FieldSource for Fields {
        fn unsigned(&mut self) -> Result<u64, String> {
            match self.0.pop_front() {
                Some(Field::U(v)) => Ok(v),
                _ => Err("short read".into()),
            }
        }
        fn signed(&mut self) -> Result<i64, String> {
            match self.0.pop_front() {
                Some(Field::S(v)) => Ok(v),
                _ => Err("short read".into()),
            }
        }
        fn string(&mut self) -> Result<Vec<u8>, String> {
            match self.0.pop_front() {
                Some(Field::B(v)) => Ok(v),
                _ => Err("short read".into()),
            }
        }
    }

    fn fields(list: Vec<Field>) -> Fields {
        Fields(list.into())
    }

    use Field::{B, S, U};

    #[test]
    fn tensor_v3_layout() {
        let data: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let mut src = fields(vec![
            U(1),
            U(u64::MAX),
            U(32),
            U(2),
            U(1),
            U(2),
            U(2),
            U(2),
            U(2),
            U(1),
            U(0),
            B(data.clone()),
        ]);
        let t = load_tensor(&mut src, 3).expect("tensor");
        assert_eq!(t.dtype(), DType::Float);
        assert_eq!(t.shape(), &[2, 2]);
        assert_eq!(t.data(), &data[..]);
    }

    #[test]
    fn tensor_v4_string_and_either_order() {
        let mut src = fields(vec![
            U(7),
            U(8),
            S(1),
            S(2),
            B(b"ab\0c\0".to_vec()),
            U(3),
            U(2),
        ]);
        let t = load_tensor(&mut src, 4).expect("string tensor");
        assert_eq!(t.dtype(), DType::String);
        let mut src = fields(vec![U(16), U(0), S(1), S(1), B(vec![1, 2])]);
        assert_eq!(
            load_tensor(&mut src, 4).expect("bits first").dtype(),
            DType::Int16
        );
    }

    #[test]
    fn hostile_tensors_are_refused() {
        let cases: Vec<(i32, Vec<Field>)> = vec![
            (3, vec![U(1), U(0), U(32), U(2), U(1), U(u64::MAX)]),
            (
                3,
                vec![
                    U(1),
                    U(0),
                    U(32),
                    U(2),
                    U(4),
                    U(1),
                    U(1),
                    U(1),
                    U(0),
                    B(vec![0; 4]),
                ],
            ),
            (
                3,
                vec![U(1), U(0), U(24), U(2), U(1), U(0), U(0), B(vec![0; 3])],
            ),
            (
                3,
                vec![
                    U(1),
                    U(0),
                    U(32),
                    U(2),
                    U(1),
                    U(1),
                    U(1 << 62),
                    U(1),
                    U(0),
                    B(vec![]),
                ],
            ),
            (4, vec![U(2), U(32), S(-1)]),
            (4, vec![U(7), U(8), S(1), S(1 << 40), B(vec![0; 4])]),
            (4, vec![U(2), U(32), S(1), S(2), B(vec![0; 4])]),
            (2, vec![U(1), U(0), U(32)]),
        ];
        for (encver, list) in cases {
            assert!(load_tensor(&mut fields(list), encver).is_err());
        }
    }

    #[test]
    fn model_versions() {
        let v0 = vec![
            U(0),
            B(b"CPU\0".to_vec()),
            B(b"t1\0".to_vec()),
            U(2),
            U(1),
            U(2),
            B(b"a\0".to_vec()),
            B(b"b\0".to_vec()),
            U(1),
            B(b"mul\0".to_vec()),
            B(b"graph".to_vec()),
        ];
        let m = load_model(&mut fields(v0), 0).expect("v0");
        assert_eq!(m.backend, "TF");
        assert_eq!(m.tag, b"t1");
        assert_eq!(m.inputs, ["a", "b"]);
        assert_eq!(m.outputs, ["mul"]);
        assert_eq!(m.blob, b"graph");
        let v2 = vec![
            U(3),
            B(b"GPU:1\0".to_vec()),
            B(b"t\0".to_vec()),
            U(4),
            U(2),
            U(10),
            U(1),
            B(b"x\0".to_vec()),
            U(0),
            U(6),
            U(3),
            B(b"abc".to_vec()),
            B(b"def".to_vec()),
            B(vec![]),
        ];
        let m = load_model(&mut fields(v2), 2).expect("v2");
        assert_eq!(m.backend, "ONNX");
        assert_eq!(m.device_name, "GPU:1");
        assert_eq!(m.tag, b"t\0", "from encoding 2 the tag is kept as saved");
        assert_eq!(m.batching.min_timeout_ms, 10);
        assert!(m.inputs.is_empty());
        assert_eq!(m.blob, b"abcdef");
    }

    #[test]
    fn hostile_models_are_refused() {
        let head = || {
            vec![
                U(2),
                B(b"CPU\0".to_vec()),
                B(b"".to_vec()),
                U(0),
                U(0),
                U(0),
            ]
        };
        let with = |tail: Vec<Field>| {
            let mut list = head();
            list.extend(tail);
            list
        };
        let cases = vec![
            with(vec![U(u64::MAX)]),
            with(vec![U(0), U(0), U(3), U(1 << 40)]),
            with(vec![U(0), U(0), U(3), U(1), B(b"abcd".to_vec())]),
            with(vec![U(0), U(0), U(u64::MAX), U(2), B(b"ab".to_vec())]),
            with(vec![U(0), U(0), U(3), U(2), B(b"ab".to_vec())]),
            vec![U(9)],
            vec![U(2), B(b"TPU\0".to_vec())],
        ];
        for list in cases {
            assert!(load_model(&mut fields(list), 3).is_err());
        }
    }

    #[test]
    fn script_versions() {
        let v1 = vec![
            B(b"CPU\0".to_vec()),
            B(b"tag".to_vec()),
            B(b"def f(a):\0".to_vec()),
        ];
        let s = load_script(&mut fields(v1), 1).expect("v1");
        assert_eq!(s.source, b"def f(a):");
        assert!(s.entry_points.is_empty());
        let v4 = vec![
            B(b"CPU\0".to_vec()),
            B(b"tag".to_vec()),
            B(b"src\0".to_vec()),
            U(2),
            B(b"f\0".to_vec()),
            B(b"g\0".to_vec()),
        ];
        let s = load_script(&mut fields(v4), 4).expect("v4");
        assert_eq!(s.entry_points, ["f", "g"]);
        let hostile = vec![B(b"CPU\0".to_vec()), B(vec![]), B(vec![]), U(u64::MAX)];
        assert!(load_script(&mut fields(hostile), 3).is_err());
    }
}
