//! Parsing of the AI.TENSORSET and AI.TENSORGET arguments into tensors and formats.

use super::{element_count, AlignedBuffer, DType, Tensor, TensorError};

/// The parsed form of `type shape... [BLOB data | VALUES v...]`.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorArgs<'a> {
    pub dtype: DType,
    pub shape: Vec<i64>,
    pub data: DataArg<'a>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DataArg<'a> {
    /// No data: a zero-filled tensor.
    Zeros,
    /// The BLOB argument, with its position in the parsed argument list.
    Blob {
        position: usize,
        bytes: &'a [u8],
    },
    Values(&'a [&'a [u8]]),
}

/// Which shapes AI.TENSORSET accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShapeRule {
    /// RedisAI's rule for clients: at least one dimension, each at least 1.
    Client,
    /// Every shape a tensor in the keyspace can have (a model or script may output a
    /// rank-0 tensor or a dimension of 0): for the commands this module writes itself
    /// into the AOF and the replication stream, so that they replay what was stored.
    Restoring,
}

impl<'a> TensorArgs<'a> {
    /// Parses everything after the key with RedisAI's shape rule ([`ShapeRule::Client`]).
    pub fn parse(args: &'a [&'a [u8]]) -> Result<TensorArgs<'a>, TensorError> {
        TensorArgs::parse_with(args, ShapeRule::Client)
    }

    /// Parses everything after the key.
    pub fn parse_with(
        args: &'a [&'a [u8]],
        rule: ShapeRule,
    ) -> Result<TensorArgs<'a>, TensorError> {
        let scalar_allowed = rule == ShapeRule::Restoring;
        let (type_arg, rest) = args.split_first().ok_or(TensorError::InvalidDType)?;
        let dtype = DType::parse(type_arg).ok_or(TensorError::InvalidDType)?;

        let mut shape = Vec::new();
        for (index, arg) in rest.iter().enumerate() {
            let data = if arg.eq_ignore_ascii_case(b"BLOB") {
                match &rest[index + 1..] {
                    [bytes] => DataArg::Blob {
                        position: index + 2,
                        bytes,
                    },
                    _ => return Err(TensorError::BlobArity),
                }
            } else if arg.eq_ignore_ascii_case(b"VALUES") {
                DataArg::Values(&rest[index + 1..])
            } else {
                shape.push(parse_dimension(arg, rule)?);
                continue;
            };
            if shape.is_empty() && !scalar_allowed {
                return Err(TensorError::InvalidShape);
            }
            return Ok(TensorArgs { dtype, shape, data });
        }
        if shape.is_empty() {
            return Err(TensorError::InvalidShape);
        }
        Ok(TensorArgs {
            dtype,
            shape,
            data: DataArg::Zeros,
        })
    }

    /// Builds the tensor, copying a BLOB into a buffer of its own.
    pub fn build(self) -> Result<Tensor, TensorError> {
        match self.data {
            DataArg::Zeros => Tensor::zeros(self.dtype, self.shape),
            DataArg::Blob { bytes, .. } => Tensor::from_blob(self.dtype, self.shape, bytes),
            DataArg::Values(values) => tensor_from_values(self.dtype, self.shape, values),
        }
    }
}

/// Builds a tensor from `type shape... [BLOB data | VALUES v...]` (everything after the key).
pub fn tensor_from_args(args: &[&[u8]]) -> Result<Tensor, TensorError> {
    TensorArgs::parse(args)?.build()
}

fn parse_dimension(arg: &[u8], rule: ShapeRule) -> Result<i64, TensorError> {
    let smallest = match rule {
        ShapeRule::Client => 1,
        ShapeRule::Restoring => 0,
    };
    parse_i64(arg)
        .filter(|&dim| dim >= smallest)
        .ok_or(TensorError::InvalidShape)
}

/// Parses a decimal integer the way Redis does (no spaces, no leading '+').
pub fn parse_i64(arg: &[u8]) -> Option<i64> {
    if arg.first() == Some(&b'+') {
        return None;
    }
    std::str::from_utf8(arg).ok()?.parse().ok()
}

fn parse_f64(arg: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(arg).ok()?;
    if text.trim() != text {
        return None;
    }
    text.parse::<f64>().ok().filter(|value| !value.is_nan())
}

/// Builds a tensor from one argument per element.
pub fn tensor_from_values(
    dtype: DType,
    shape: Vec<i64>,
    values: &[&[u8]],
) -> Result<Tensor, TensorError> {
    let elements = element_count(&shape, dtype)?;
    if elements != values.len() as u64 {
        return Err(TensorError::WrongValueCount {
            expected: elements,
            actual: values.len(),
        });
    }
    let data = match dtype {
        DType::String => encode_strings(values)?,
        DType::Float => encode_each(values, 4, |index, arg, out| {
            let value = parse_f64(arg).ok_or(TensorError::InvalidValue { index })?;
            out.copy_from_slice(&(value as f32).to_le_bytes());
            Ok(())
        })?,
        DType::Double => encode_each(values, 8, |index, arg, out| {
            let value = parse_f64(arg).ok_or(TensorError::InvalidValue { index })?;
            out.copy_from_slice(&value.to_le_bytes());
            Ok(())
        })?,
        integer => {
            let size = integer.element_size().unwrap_or(1);
            let (min, max) = integer.integer_range().unwrap_or((i64::MIN, i64::MAX));
            encode_each(values, size, |index, arg, out| {
                let value = parse_i64(arg).ok_or(TensorError::InvalidValue { index })?;
                if value < min || value > max {
                    return Err(TensorError::ValueOutOfRange {
                        index,
                        value,
                        dtype: integer,
                    });
                }
                out.copy_from_slice(&value.to_le_bytes()[..size]);
                Ok(())
            })?
        }
    };
    Tensor::from_buffer(dtype, shape, data)
}

/// Encodes fixed-size elements: `encode` writes element `index` into its `size` bytes.
fn encode_each(
    values: &[&[u8]],
    size: usize,
    mut encode: impl FnMut(usize, &[u8], &mut [u8]) -> Result<(), TensorError>,
) -> Result<AlignedBuffer, TensorError> {
    let mut data = AlignedBuffer::zeroed(values.len() * size)?;
    for (index, (arg, out)) in values
        .iter()
        .zip(data.as_mut_slice().chunks_exact_mut(size))
        .enumerate()
    {
        encode(index, arg, out)?;
    }
    Ok(data)
}

/// Concatenates NUL-terminated string elements. A value may carry its own trailing NUL
/// (RedisAI's clients send one) but no NUL elsewhere.
fn encode_strings(values: &[&[u8]]) -> Result<AlignedBuffer, TensorError> {
    let mut joined = Vec::with_capacity(values.iter().map(|v| v.len() + 1).sum());
    for (index, value) in values.iter().enumerate() {
        let body = value.strip_suffix(b"\0").unwrap_or(value);
        if body.contains(&0) {
            return Err(TensorError::StringValueHasNul { index });
        }
        joined.extend_from_slice(body);
        joined.push(0);
    }
    Ok(AlignedBuffer::copy_from(&joined)?)
}

/// What AI.TENSORGET replies with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GetFormat {
    pub meta: bool,
    pub data: Option<DataFormat>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataFormat {
    Blob,
    Values,
}

impl GetFormat {
    /// Parses the arguments after the key (at most two). No argument means META and BLOB.
    pub fn parse(args: &[&[u8]]) -> Result<GetFormat, TensorError> {
        if args.is_empty() {
            return Ok(GetFormat {
                meta: true,
                data: Some(DataFormat::Blob),
            });
        }
        let mut format = GetFormat {
            meta: false,
            data: None,
        };
        for arg in args {
            let requested = if arg.eq_ignore_ascii_case(b"META") {
                format.meta = true;
                continue;
            } else if arg.eq_ignore_ascii_case(b"BLOB") {
                DataFormat::Blob
            } else if arg.eq_ignore_ascii_case(b"VALUES") {
                DataFormat::Values
            } else {
                return Err(TensorError::UnsupportedFormat);
            };
            match format.data {
                Some(existing) if existing != requested => return Err(TensorError::BlobAndValues),
                _ => format.data = Some(requested),
            }
        }
        Ok(format)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::Element;

    fn args(text: &str) -> Vec<&[u8]> {
        text.split(' ').map(str::as_bytes).collect()
    }

    #[test]
    fn values_for_every_numeric_dtype() {
        let tensor = tensor_from_args(&args("FLOAT 2 2 VALUES 1 2 3 4.5")).expect("parse");
        assert_eq!(tensor.shape(), &[2, 2]);
        let values: Vec<_> = tensor.elements().collect();
        assert_eq!(values[3], Element::Float(4.5));

        for (dtype, value) in [
            ("INT8", -128i64),
            ("INT16", -32768),
            ("INT32", -2147483648),
            ("INT64", i64::MIN),
            ("UINT8", 255),
            ("UINT16", 65535),
            ("BOOL", 1),
        ] {
            let text = format!("{dtype} 1 VALUES {value}");
            let tensor = tensor_from_args(&args(&text)).expect("parse");
            assert_eq!(
                tensor.elements().next(),
                Some(Element::Int(value)),
                "{dtype}"
            );
        }
    }

    #[test]
    fn integer_values_out_of_range_are_errors() {
        for text in [
            "INT8 1 VALUES 128",
            "UINT8 1 VALUES 256",
            "UINT8 1 VALUES -1",
            "UINT16 1 VALUES 65536",
            "INT32 1 VALUES 2147483648",
        ] {
            let err = tensor_from_args(&args(text)).unwrap_err();
            assert!(
                matches!(err, TensorError::ValueOutOfRange { .. }),
                "{text}: {err}"
            );
            assert!(err.to_string().starts_with("ERR invalid value"));
        }
        let err = tensor_from_args(&args("BOOL 2 VALUES 1 2")).unwrap_err();
        assert_eq!(err.to_string(), "ERR invalid value");
        let err = tensor_from_args(&args("INT64 1 VALUES 9223372036854775808")).unwrap_err();
        assert_eq!(err.to_string(), "ERR invalid value");
    }

    #[test]
    fn invalid_values() {
        for text in [
            "FLOAT 1 VALUES abc",
            "FLOAT 1 VALUES nan",
            "INT32 1 VALUES 1.5",
        ] {
            let err = tensor_from_args(&args(text)).unwrap_err();
            assert_eq!(err.to_string(), "ERR invalid value", "{text}");
        }
    }

    #[test]
    fn value_count_must_match_shape() {
        let err = tensor_from_args(&args("FLOAT 2 2 VALUES 1 2 3")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "ERR wrong number of values was given in 'AI.TENSORSET' command"
        );
        let err = tensor_from_args(&args("FLOAT 1 VALUES")).unwrap_err();
        assert!(matches!(err, TensorError::WrongValueCount { .. }));
    }

    #[test]
    fn shape_errors() {
        for text in [
            "FLOAT 0",
            "FLOAT -1",
            "FLOAT x",
            "FLOAT 2 +3",
            "FLOAT BLOB x",
        ] {
            let err = tensor_from_args(&args(text)).unwrap_err();
            assert_eq!(
                err.to_string(),
                "ERR invalid or negative value found in tensor shape",
                "{text}"
            );
        }
        let err = tensor_from_args(&args("FLOAT32 1")).unwrap_err();
        assert_eq!(err.to_string(), "ERR invalid data type");
    }

    #[test]
    fn restoring_accepts_every_stored_shape() {
        let scalar = args("FLOAT BLOB abcd");
        assert_eq!(
            TensorArgs::parse(&scalar).unwrap_err().to_string(),
            "ERR invalid or negative value found in tensor shape"
        );
        let parsed = TensorArgs::parse_with(&scalar, ShapeRule::Restoring).expect("rank 0");
        let tensor = parsed.build().expect("build");
        assert!(tensor.shape().is_empty());
        assert_eq!(tensor.data(), b"abcd");

        let empty: Vec<&[u8]> = vec![b"INT64", b"0", b"3", b"BLOB", b""];
        assert!(TensorArgs::parse(&empty).is_err());
        let tensor = TensorArgs::parse_with(&empty, ShapeRule::Restoring)
            .and_then(TensorArgs::build)
            .expect("zero-length dimension");
        assert_eq!(tensor.shape(), &[0, 3]);
        assert!(tensor.data().is_empty());

        for bad in ["FLOAT -1 BLOB x", "FLOAT", "FLOAT 2 BLOB abc"] {
            let words = args(bad);
            let parsed = TensorArgs::parse_with(&words, ShapeRule::Restoring);
            assert!(parsed.and_then(TensorArgs::build).is_err(), "{bad}");
        }
    }

    #[test]
    fn blob_arity() {
        for text in ["FLOAT 1 BLOB", "FLOAT 1 BLOB a b"] {
            let err = tensor_from_args(&args(text)).unwrap_err();
            assert_eq!(err, TensorError::BlobArity, "{text}");
        }
    }

    #[test]
    fn keywords_are_case_insensitive() {
        let tensor = tensor_from_args(&[b"uint8", b"2", b"blob", b"\x01\x02"]).expect("parse");
        assert_eq!(tensor.data(), b"\x01\x02");
        assert!(tensor_from_args(&args("int8 1 values 3")).is_ok());
    }

    #[test]
    fn blob_position_is_reported() {
        let args = args("UINT8 1 2 BLOB xy");
        let parsed = TensorArgs::parse(&args).expect("parse");
        assert_eq!(
            parsed.data,
            DataArg::Blob {
                position: 4,
                bytes: b"xy"
            }
        );
    }

    #[test]
    fn no_data_means_zeros() {
        let tensor = tensor_from_args(&args("DOUBLE 3")).expect("parse");
        assert_eq!(tensor.data(), &[0u8; 24]);
    }

    #[test]
    fn string_values() {
        let tensor =
            tensor_from_args(&[b"STRING", b"2", b"VALUES", b"hi\0", b"there"]).expect("parse");
        assert_eq!(tensor.data(), b"hi\0there\0");
        let err = tensor_from_args(&[b"STRING", b"1", b"VALUES", b"a\0b"]).unwrap_err();
        assert!(matches!(err, TensorError::StringValueHasNul { index: 0 }));
    }

    #[test]
    fn get_formats() {
        let default = GetFormat::parse(&[]).expect("parse");
        assert_eq!(
            default,
            GetFormat {
                meta: true,
                data: Some(DataFormat::Blob)
            }
        );
        let meta = GetFormat::parse(&args("meta")).expect("parse");
        assert_eq!(
            meta,
            GetFormat {
                meta: true,
                data: None
            }
        );
        let values = GetFormat::parse(&args("VALUES META")).expect("parse");
        assert_eq!(
            values,
            GetFormat {
                meta: true,
                data: Some(DataFormat::Values)
            }
        );
        assert_eq!(
            GetFormat::parse(&args("BLOB VALUES"))
                .unwrap_err()
                .to_string(),
            "ERR both BLOB and VALUES specified"
        );
        assert_eq!(
            GetFormat::parse(&args("JSON")).unwrap_err().to_string(),
            "ERR unsupported data format"
        );
    }
}
