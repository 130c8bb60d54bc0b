//! Element types of tensors and their RedisAI names.

use std::fmt;

/// The element type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    Float,
    Double,
    Int8,
    Int16,
    Int32,
    Int64,
    Uint8,
    Uint16,
    /// One byte per element, 0 or 1.
    Bool,
    /// NUL-terminated UTF-8/bytes elements, concatenated in the buffer.
    String,
}

impl DType {
    pub const ALL: [DType; 10] = [
        DType::Float,
        DType::Double,
        DType::Int8,
        DType::Int16,
        DType::Int32,
        DType::Int64,
        DType::Uint8,
        DType::Uint16,
        DType::Bool,
        DType::String,
    ];

    /// Parses a RedisAI type name, case-insensitively.
    pub fn parse(name: &[u8]) -> Option<DType> {
        DType::ALL
            .into_iter()
            .find(|dtype| dtype.name().as_bytes().eq_ignore_ascii_case(name))
    }

    pub const fn name(self) -> &'static str {
        match self {
            DType::Float => "FLOAT",
            DType::Double => "DOUBLE",
            DType::Int8 => "INT8",
            DType::Int16 => "INT16",
            DType::Int32 => "INT32",
            DType::Int64 => "INT64",
            DType::Uint8 => "UINT8",
            DType::Uint16 => "UINT16",
            DType::Bool => "BOOL",
            DType::String => "STRING",
        }
    }

    /// Bytes per element, or `None` for STRING whose elements vary in length.
    pub const fn element_size(self) -> Option<usize> {
        match self {
            DType::Int8 | DType::Uint8 | DType::Bool => Some(1),
            DType::Int16 | DType::Uint16 => Some(2),
            DType::Float | DType::Int32 => Some(4),
            DType::Double | DType::Int64 => Some(8),
            DType::String => None,
        }
    }

    /// Stable numeric code, used by the RDB encoding and the plugin ABI.
    pub const fn code(self) -> u32 {
        match self {
            DType::Float => 0,
            DType::Double => 1,
            DType::Int8 => 2,
            DType::Int16 => 3,
            DType::Int32 => 4,
            DType::Int64 => 5,
            DType::Uint8 => 6,
            DType::Uint16 => 7,
            DType::Bool => 8,
            DType::String => 9,
        }
    }

    pub fn from_code(code: u64) -> Option<DType> {
        DType::ALL
            .into_iter()
            .find(|dtype| u64::from(dtype.code()) == code)
    }

    /// The inclusive range of integer values this type holds, for integer-like types.
    pub const fn integer_range(self) -> Option<(i64, i64)> {
        match self {
            DType::Int8 => Some((i8::MIN as i64, i8::MAX as i64)),
            DType::Int16 => Some((i16::MIN as i64, i16::MAX as i64)),
            DType::Int32 => Some((i32::MIN as i64, i32::MAX as i64)),
            DType::Int64 => Some((i64::MIN, i64::MAX)),
            DType::Uint8 => Some((0, u8::MAX as i64)),
            DType::Uint16 => Some((0, u16::MAX as i64)),
            DType::Bool => Some((0, 1)),
            DType::Float | DType::Double | DType::String => None,
        }
    }

    pub const fn is_float(self) -> bool {
        matches!(self, DType::Float | DType::Double)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_case_insensitively() {
        assert_eq!(DType::parse(b"float"), Some(DType::Float));
        assert_eq!(DType::parse(b"UInt16"), Some(DType::Uint16));
        assert_eq!(DType::parse(b"string"), Some(DType::String));
        assert_eq!(DType::parse(b"FLOAT32"), None);
        assert_eq!(DType::parse(b"INT"), None);
        assert_eq!(DType::parse(b""), None);
    }

    #[test]
    fn codes_round_trip() {
        for dtype in DType::ALL {
            assert_eq!(DType::from_code(u64::from(dtype.code())), Some(dtype));
            assert_eq!(DType::parse(dtype.name().as_bytes()), Some(dtype));
        }
        assert_eq!(DType::from_code(10), None);
    }

    #[test]
    fn integer_ranges() {
        assert_eq!(DType::Uint8.integer_range(), Some((0, 255)));
        assert_eq!(DType::Int8.integer_range(), Some((-128, 127)));
        assert_eq!(DType::Bool.integer_range(), Some((0, 1)));
        assert_eq!(DType::Float.integer_range(), None);
    }
}
