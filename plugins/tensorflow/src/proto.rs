//! The two small protocol buffers the C API takes as bytes, written by hand (varint fields
//! only; field numbers from tensorflow/core/protobuf/config.proto):
//! - `ConfigProto`: `intra_op_parallelism_threads = 2`, `inter_op_parallelism_threads = 5`.
//! - `RunOptions`: `timeout_in_ms = 2`.

/// Appends a varint field (wire type 0).
fn put_varint_field(out: &mut Vec<u8>, field: u32, value: u64) {
    put_varint(out, u64::from(field) << 3);
    put_varint(out, value);
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A `ConfigProto` with the thread pool sizes given (None: TensorFlow's default, one
/// thread per core).
pub fn config_proto(intra_op_threads: Option<u32>, inter_op_threads: Option<u32>) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(n) = intra_op_threads {
        put_varint_field(&mut out, 2, u64::from(n));
    }
    if let Some(n) = inter_op_threads {
        put_varint_field(&mut out, 5, u64::from(n));
    }
    out
}

/// A `RunOptions` with `timeout_in_ms` when there is a timeout (empty otherwise).
pub fn run_options(timeout_ms: Option<u64>) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(ms) = timeout_ms {
        // An int64 field: larger values would read as negative (no timeout).
        put_varint_field(&mut out, 2, ms.min(i64::MAX as u64));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_fields() {
        assert_eq!(config_proto(None, None), b"");
        // intra 2 (field 2), inter 5 (field 5).
        assert_eq!(config_proto(Some(2), Some(5)), [0x10, 2, 0x28, 5]);
        assert_eq!(config_proto(None, Some(300)), [0x28, 0xac, 0x02]);
    }

    #[test]
    fn run_options_fields() {
        assert_eq!(run_options(None), b"");
        assert_eq!(run_options(Some(150)), [0x10, 0x96, 0x01]);
        let max = run_options(Some(u64::MAX));
        assert_eq!(
            max.len(),
            10,
            "i64::MAX takes nine varint bytes after the tag"
        );
    }
}
