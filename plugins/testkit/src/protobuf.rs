//! The one protobuf writer of the tests: the model files they build by hand (ONNX
//! ModelProto, TensorFlow GraphDef), in the plugins' tests and the end-to-end tests.

/// A protobuf message under construction (fields in the order written).
#[derive(Debug, Default, Clone)]
pub struct Pb(pub Vec<u8>);

impl Pb {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn key(&mut self, field: u32, wire: u64) {
        self.varint((u64::from(field) << 3) | wire);
    }

    /// A varint field (int32/int64/bool/enum; negative values as 10-byte varints).
    pub fn int(mut self, field: u32, v: i64) -> Pb {
        self.key(field, 0);
        self.varint(v as u64);
        self
    }

    /// A `float` field (wire type 5).
    pub fn float(mut self, field: u32, v: f32) -> Pb {
        self.key(field, 5);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// A length-delimited field (bytes, string, embedded message).
    pub fn bytes(mut self, field: u32, data: &[u8]) -> Pb {
        self.key(field, 2);
        self.varint(data.len() as u64);
        self.0.extend_from_slice(data);
        self
    }

    pub fn str(self, field: u32, s: &str) -> Pb {
        self.bytes(field, s.as_bytes())
    }

    pub fn msg(self, field: u32, m: Pb) -> Pb {
        self.bytes(field, &m.0)
    }

    /// A packed repeated varint field.
    pub fn packed_ints(self, field: u32, values: &[i64]) -> Pb {
        let mut inner = Pb::default();
        for &v in values {
            inner.varint(v as u64);
        }
        self.bytes(field, &inner.0)
    }

    /// A packed repeated float field.
    pub fn packed_floats(self, field: u32, values: &[f32]) -> Pb {
        let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.bytes(field, &data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_written_in_the_wire_format() {
        assert_eq!(Pb::default().int(1, 150).0, [0x08, 0x96, 0x01]);
        assert_eq!(Pb::default().int(2, -1).0.len(), 11, "10-byte varint");
        assert_eq!(Pb::default().str(2, "ab").0, [0x12, 2, b'a', b'b']);
        assert_eq!(Pb::default().float(3, 1.0).0, [0x1d, 0, 0, 0x80, 0x3f]);
        let inner = Pb::default().int(1, 1);
        assert_eq!(Pb::default().msg(4, inner).0, [0x22, 2, 0x08, 1]);
        assert_eq!(
            Pb::default().packed_ints(5, &[1, 300]).0,
            [0x2a, 3, 1, 0xac, 0x02]
        );
        assert_eq!(
            Pb::default().packed_floats(6, &[0.0]).0,
            [0x32, 4, 0, 0, 0, 0]
        );
    }
}
