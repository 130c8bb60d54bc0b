//! A small protobuf writer for the model files the tests build by hand (ONNX ModelProto,
//! TensorFlow GraphDef).

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
