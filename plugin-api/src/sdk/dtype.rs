//! What every backend needs to know about an element type: its name in RedisAI's
//! messages and the size of one element.

use super::DType;

impl DType {
    /// Every element type, in the ABI's order.
    pub const ALL: &'static [DType] = &[
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
    /// Every element type but STRING (the last of [`DType::ALL`]).
    pub const NUMERIC: &'static [DType] = DType::ALL.split_last().expect("ALL is not empty").1;

    /// The name clients use (`AI.TENSORSET key FLOAT ...`), as in RedisAI's messages.
    pub fn name(self) -> &'static str {
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

    /// Bytes of one element; `None` for STRING, whose elements vary in length.
    pub fn element_size(self) -> Option<usize> {
        match self {
            DType::Int8 | DType::Uint8 | DType::Bool => Some(1),
            DType::Int16 | DType::Uint16 => Some(2),
            DType::Float | DType::Int32 => Some(4),
            DType::Double | DType::Int64 => Some(8),
            DType::String => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_abi_order_and_numeric_leaves_out_string() {
        for (index, dtype) in DType::ALL.iter().enumerate() {
            assert_eq!(*dtype as usize, index);
        }
        assert_eq!(DType::NUMERIC.len(), DType::ALL.len() - 1);
        assert!(!DType::NUMERIC.contains(&DType::String));
    }

    #[test]
    fn names_and_sizes() {
        let expected = [
            ("FLOAT", Some(4)),
            ("DOUBLE", Some(8)),
            ("INT8", Some(1)),
            ("INT16", Some(2)),
            ("INT32", Some(4)),
            ("INT64", Some(8)),
            ("UINT8", Some(1)),
            ("UINT16", Some(2)),
            ("BOOL", Some(1)),
            ("STRING", None),
        ];
        let found: Vec<_> = DType::ALL
            .iter()
            .map(|dtype| (dtype.name(), dtype.element_size()))
            .collect();
        assert_eq!(found, expected);
    }
}
