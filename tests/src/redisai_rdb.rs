//! Builds, byte by byte, what RedisAI 1.0-1.2 wrote for its data types (encoding
//! versions 0 to 4): module values in Redis's RDB framing, `DUMP` payloads and whole
//! RDB files. Independent of the module's own reader and writer, so the tests in
//! `tests/tests/redisai_migration/` check the reader against the format itself.
//!
//! Redis's framing (src/rdb.c, src/cluster.c of Redis 7.0):
//! * a length is 1 byte `00xxxxxx` (< 64), 2 bytes `01xxxxxx xxxxxxxx` (< 16384),
//!   `0x80` + 4 bytes big-endian or `0x81` + 8 bytes big-endian;
//! * a module value (`RDB_TYPE_MODULE_2` = 7) is the 64-bit module id as a length (nine
//!   6-bit characters of the type name, then the encoding version in the low 10 bits),
//!   then each field as an opcode length (2 unsigned, also used for signed numbers as
//!   their two's complement; 4 double; 5 string) and its value (numbers as lengths, strings as length + bytes, doubles as 8 bytes
//!   little-endian), then the EOF opcode 0;
//! * a `DUMP` payload is the type byte, the value, the RDB version (2 bytes LE) and the
//!   CRC64 of all that (8 bytes LE);
//! * an RDB file is `REDIS` + 4-digit version, `SELECTDB` (0xFE) + db, per key the type
//!   byte, the key as a string and the value, `EOF` (0xFF), then the CRC64 (8 bytes LE).

/// `RDB_TYPE_STRING`.
pub const TYPE_STRING: u8 = 0;
/// `RDB_TYPE_MODULE_2`.
pub const TYPE_MODULE_2: u8 = 7;
/// The RDB version of Redis 7.0.
pub const RDB_VERSION: u16 = 10;

/// Redis's CRC64: Jones polynomial, reflected, initial value 0, no final xor.
pub fn crc64(data: &[u8]) -> u64 {
    const POLY: u64 = 0x95ac_9329_ac4b_c9b5; // 0xad93d23594c935a9 reflected
    let mut crc = 0u64;
    for &byte in data {
        crc ^= u64::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
        }
    }
    crc
}

/// Appends a length in Redis's RDB length encoding.
pub fn push_len(out: &mut Vec<u8>, len: u64) {
    if len < 1 << 6 {
        out.push(len as u8);
    } else if len < 1 << 14 {
        out.push(0x40 | (len >> 8) as u8);
        out.push(len as u8);
    } else if len <= u64::from(u32::MAX) {
        out.push(0x80);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

/// Appends a string (length + bytes, never compressed).
pub fn push_string(out: &mut Vec<u8>, bytes: &[u8]) {
    push_len(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// The module id Redis writes for a nine-character type name and an encoding version.
pub fn module_id(type_name: &str, encver: u64) -> u64 {
    const CHARSET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    assert_eq!(type_name.len(), 9, "module type names have nine characters");
    let mut id = 0u64;
    for c in type_name.bytes() {
        let pos = CHARSET
            .iter()
            .position(|&x| x == c)
            .expect("type name character in Redis's charset");
        id = (id << 6) | pos as u64;
    }
    (id << 10) | (encver & 1023)
}

/// One field of a module value.
#[derive(Debug, Clone)]
pub enum Field {
    Unsigned(u64),
    Signed(i64),
    Str(Vec<u8>),
    Double(f64),
}

/// A C string field, as RedisAI saved names and devices (`strlen + 1` bytes).
pub fn c_str(text: &str) -> Field {
    let mut bytes = text.as_bytes().to_vec();
    bytes.push(0);
    Field::Str(bytes)
}

pub fn bytes(b: &[u8]) -> Field {
    Field::Str(b.to_vec())
}

/// The value of a module type (after the type byte): id, fields, EOF opcode.
pub fn module_value(type_name: &str, encver: u64, fields: &[Field]) -> Vec<u8> {
    let mut out = Vec::new();
    push_len(&mut out, module_id(type_name, encver));
    for field in fields {
        match field {
            // RedisModule_SaveSigned stores the two's complement through SaveUnsigned:
            // opcode 2, like an unsigned (opcode 1 is never written).
            Field::Signed(v) => {
                push_len(&mut out, 2);
                push_len(&mut out, *v as u64);
            }
            Field::Unsigned(v) => {
                push_len(&mut out, 2);
                push_len(&mut out, *v);
            }
            Field::Double(v) => {
                push_len(&mut out, 4);
                out.extend_from_slice(&v.to_le_bytes());
            }
            Field::Str(b) => {
                push_len(&mut out, 5);
                push_string(&mut out, b);
            }
        }
    }
    push_len(&mut out, 0);
    out
}

/// A `DUMP` payload for a value of RDB type `rdb_type`.
pub fn dump_payload(rdb_type: u8, value: &[u8]) -> Vec<u8> {
    dump_payload_of_version(rdb_type, value, RDB_VERSION)
}

/// A `DUMP` payload whose trailer names RDB version `rdb_version` (Valkey 8 writes 11;
/// it restores payloads of older versions).
pub fn dump_payload_of_version(rdb_type: u8, value: &[u8], rdb_version: u16) -> Vec<u8> {
    let mut out = vec![rdb_type];
    out.extend_from_slice(value);
    out.extend_from_slice(&rdb_version.to_le_bytes());
    let crc = crc64(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// A `DUMP` payload of a module value.
pub fn module_dump(type_name: &str, encver: u64, fields: &[Field]) -> Vec<u8> {
    dump_payload(TYPE_MODULE_2, &module_value(type_name, encver, fields))
}

/// A whole RDB file (database 0) holding module values: `(key, type name, encver,
/// fields)`.
pub fn rdb_file(entries: &[(&str, &str, u64, Vec<Field>)]) -> Vec<u8> {
    let mut out = format!("REDIS{RDB_VERSION:04}").into_bytes();
    out.push(0xFE);
    push_len(&mut out, 0);
    for (key, type_name, encver, fields) in entries {
        out.push(TYPE_MODULE_2);
        push_string(&mut out, key.as_bytes());
        out.extend_from_slice(&module_value(type_name, *encver, fields));
    }
    out.push(0xFF);
    let crc = crc64(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

pub const TENSOR: &str = "AI_TENSOR";
pub const MODEL: &str = "AI__MODEL";
pub const SCRIPT: &str = "AI_SCRIPT";

/// DLPack (code, bits) of a RedisAI dtype name (bool and string: RedisAI's DLPack fork).
pub fn dlpack_dtype(name: &str) -> (u64, u64) {
    match name {
        "INT8" => (0, 8),
        "INT16" => (0, 16),
        "INT32" => (0, 32),
        "INT64" => (0, 64),
        "UINT8" => (1, 8),
        "UINT16" => (1, 16),
        "FLOAT" => (2, 32),
        "DOUBLE" => (2, 64),
        "BOOL" => (6, 8),
        "STRING" => (7, 8),
        other => panic!("no DLPack code for {other}"),
    }
}

/// A tensor's fields in RedisAI encoding `encver`. `string_lengths` (encoding 4, STRING
/// only) are the per-element lengths RedisAI appended.
pub fn tensor_fields(
    encver: u64,
    dtype: &str,
    shape: &[i64],
    data: &[u8],
    string_lengths: &[u64],
) -> Vec<Field> {
    let (code, bits) = dlpack_dtype(dtype);
    let mut fields = Vec::new();
    if encver >= 4 {
        fields.push(Field::Unsigned(code));
        fields.push(Field::Unsigned(bits));
        fields.push(Field::Signed(shape.len() as i64));
        fields.extend(shape.iter().map(|&d| Field::Signed(d)));
        fields.push(bytes(data));
        fields.extend(string_lengths.iter().map(|&l| Field::Unsigned(l)));
        return fields;
    }
    // kDLCPU; the device id was 0 before encoding 2 and -1 (saved unsigned) after.
    fields.push(Field::Unsigned(1));
    fields.push(Field::Unsigned(if encver >= 2 { u64::MAX } else { 0 }));
    fields.push(Field::Unsigned(bits));
    fields.push(Field::Unsigned(code));
    fields.push(Field::Unsigned(1));
    fields.push(Field::Unsigned(shape.len() as u64));
    fields.extend(shape.iter().map(|&d| Field::Unsigned(d as u64)));
    // Contiguous strides, in elements.
    let mut strides = vec![1i64; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1];
    }
    fields.extend(strides.iter().map(|&s| Field::Unsigned(s as u64)));
    fields.push(Field::Unsigned(0));
    fields.push(bytes(data));
    fields
}

/// RedisAI's `RAI_Backend` numbers.
pub fn backend_number(name: &str) -> u64 {
    match name {
        "TF" => 0,
        "TFLITE" => 1,
        "TORCH" => 2,
        "ONNX" => 3,
        other => panic!("no RedisAI backend {other}"),
    }
}

/// What a RedisAI model held.
#[derive(Debug, Clone)]
pub struct RaiModel<'a> {
    pub backend: &'a str,
    pub device: &'a str,
    pub tag: &'a [u8],
    pub batchsize: u64,
    pub minbatchsize: u64,
    pub minbatchtimeout: u64,
    pub inputs: &'a [&'a str],
    pub outputs: &'a [&'a str],
    pub blob: &'a [u8],
    /// RedisAI's MODEL_CHUNK_SIZE at save time (encodings 1 and up).
    pub chunk_size: usize,
}

/// A model's fields in RedisAI encoding `encver`.
pub fn model_fields(encver: u64, m: &RaiModel) -> Vec<Field> {
    let mut fields = vec![Field::Unsigned(backend_number(m.backend)), c_str(m.device)];
    if encver == 0 {
        let mut tag = m.tag.to_vec();
        tag.push(0);
        fields.push(Field::Str(tag));
    } else {
        fields.push(bytes(m.tag));
    }
    fields.push(Field::Unsigned(m.batchsize));
    fields.push(Field::Unsigned(m.minbatchsize));
    if encver >= 2 {
        fields.push(Field::Unsigned(m.minbatchtimeout));
    }
    for names in [m.inputs, m.outputs] {
        fields.push(Field::Unsigned(names.len() as u64));
        fields.extend(names.iter().map(|n| c_str(n)));
    }
    if encver == 0 {
        fields.push(bytes(m.blob));
    } else {
        // As RedisAI: len / chunk + 1 chunks, the last one len % chunk bytes (so empty
        // when the length is a multiple of the chunk size).
        let chunk = m.chunk_size.max(1);
        let count = m.blob.len() / chunk + 1;
        fields.push(Field::Unsigned(m.blob.len() as u64));
        fields.push(Field::Unsigned(count as u64));
        for i in 0..count {
            let start = i * chunk;
            let end = if i + 1 < count {
                start + chunk
            } else {
                start + m.blob.len() % chunk
            };
            fields.push(bytes(&m.blob[start..end]));
        }
    }
    fields
}

/// A script's fields in RedisAI encoding `encver` (entry points from encoding 3).
pub fn script_fields(
    encver: u64,
    device: &str,
    tag: &[u8],
    source: &str,
    entry_points: &[&str],
) -> Vec<Field> {
    let mut fields = vec![c_str(device)];
    if encver == 0 {
        let mut t = tag.to_vec();
        t.push(0);
        fields.push(Field::Str(t));
    } else {
        fields.push(bytes(tag));
    }
    fields.push(c_str(source));
    if encver >= 3 {
        fields.push(Field::Unsigned(entry_points.len() as u64));
        fields.extend(entry_points.iter().map(|n| c_str(n)));
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc64_check_value() {
        // The CRC-64/Jones check value Redis's own crc64 test uses.
        assert_eq!(crc64(b"123456789"), 0xe9c6_d914_c4b8_d9ca);
    }

    #[test]
    fn lengths() {
        let mut out = Vec::new();
        push_len(&mut out, 63);
        push_len(&mut out, 64);
        push_len(&mut out, 16384);
        push_len(&mut out, 1 << 33);
        assert_eq!(
            out,
            [0x3f, 0x40, 0x40, 0x80, 0, 0, 0x40, 0, 0x81, 0, 0, 0, 2, 0, 0, 0, 0]
        );
    }
}
