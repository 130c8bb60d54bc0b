//! The two small protocol buffers the C API takes as bytes, written by hand (varint fields
//! only; field numbers from tensorflow/core/protobuf/config.proto):
//! - `ConfigProto`: `intra_op_parallelism_threads = 2`, `inter_op_parallelism_threads = 5`,
//!   `graph_options = 10` (a `GraphOptions`: `optimizer_options = 3`, an `OptimizerOptions`
//!   with `opt_level = 3` set to `L0` (-1); `rewrite_options = 10`, a `RewriterConfig` with
//!   `disable_meta_optimizer = 19` true).
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

/// Appends a length-delimited field (wire type 2).
fn put_bytes_field(out: &mut Vec<u8>, field: u32, value: &[u8]) {
    put_varint(out, (u64::from(field) << 3) | 2);
    put_varint(out, value.len() as u64);
    out.extend_from_slice(value);
}

/// The `GraphOptions` of every session: no graph optimisation before a run.
///
/// TensorFlow optimises a graph when a session first runs it: grappler (the "meta
/// optimizer": constant folding, arithmetic and layout rewrites, ...) and then the classic
/// graph optimizer (constant folding and common subexpression elimination at `L1`, the
/// default). Both evaluate and rewrite the stored graph with code that trusts it more than
/// the kernels do: grappler aborts the process on a `Transpose` whose `perm` is a scalar
/// (a `CHECK`) and divides by zero on a `ReverseV2` of an input of unknown shape (SIGFPE),
/// where the kernels themselves fail the run with an error. A stored model is hostile
/// input, so neither runs: `RewriterConfig.disable_meta_optimizer` turns grappler off
/// and `OptimizerOptions.opt_level = L0` the classic passes (constant folding and CSE).
/// Frozen inference graphs lose little by it (measured in the crate docs).
fn graph_options() -> Vec<u8> {
    let mut optimizer = Vec::new();
    // opt_level = L0 (-1): an enum, written as a sign-extended 64-bit varint.
    put_varint_field(&mut optimizer, 3, u64::MAX);
    let mut rewrite = Vec::new();
    put_varint_field(&mut rewrite, 19, 1);
    let mut graph = Vec::new();
    put_bytes_field(&mut graph, 3, &optimizer);
    put_bytes_field(&mut graph, 10, &rewrite);
    graph
}

/// A `ConfigProto` with the thread pool sizes given (None: TensorFlow's default, one
/// thread per core) and graph optimisation off (see [`graph_options`]).
pub fn config_proto(intra_op_threads: Option<u32>, inter_op_threads: Option<u32>) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(n) = intra_op_threads {
        put_varint_field(&mut out, 2, u64::from(n));
    }
    if let Some(n) = inter_op_threads {
        put_varint_field(&mut out, 5, u64::from(n));
    }
    put_bytes_field(&mut out, 10, &graph_options());
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
        // graph_options (field 10, 18 bytes): optimizer_options (field 3, 11 bytes:
        // opt_level -1 in ten varint bytes), rewrite_options (field 10: field 19 = 1).
        let graph: &[u8] = &[
            0x52, 18, 0x1a, 11, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            0x52, 3, 0x98, 0x01, 1,
        ];
        assert_eq!(config_proto(None, None), graph);
        // intra 2 (field 2), inter 5 (field 5).
        assert_eq!(
            config_proto(Some(2), Some(5)),
            [&[0x10, 2, 0x28, 5][..], graph].concat()
        );
        assert_eq!(
            config_proto(None, Some(300)),
            [&[0x28, 0xac, 0x02][..], graph].concat()
        );
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
