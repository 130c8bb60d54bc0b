//! Small ONNX models written field by field (no onnx package needed), for the tests that
//! need an output of a chosen size: one node, its inputs, initializers and output `y`.

use std::path::PathBuf;

use redisai_plugin_testkit::Pb;
use redisai_tests::redis::{Connection, Value};

use super::call;

/// ONNX element types.
pub const FLOAT: i64 = 1;
pub const INT64: i64 = 7;

/// The ONNX plugin the module loads.
pub fn onnx_plugin() -> PathBuf {
    redisai_tests::workspace_root().join("dist/backends/redisai_onnxruntime/redisai_onnxruntime.so")
}

/// ValueInfoProto: a tensor of `elem` with one dimension, `dim`.
pub fn value(name: &str, elem: i64, dim: Pb) -> Pb {
    let tensor = Pb::default().int(1, elem).msg(2, Pb::default().msg(1, dim));
    Pb::default()
        .str(1, name)
        .msg(2, Pb::default().msg(1, tensor))
}

/// A dimension of a fixed size.
pub fn fixed(size: i64) -> Pb {
    Pb::default().int(1, size)
}

/// A dimension named `symbol`: its size is known before the run when an input has a
/// dimension of that name, only after it otherwise.
pub fn named(symbol: &str) -> Pb {
    Pb::default().str(2, symbol)
}

/// An INT64 [1] initializer holding `n`.
pub fn int64_initializer(name: &str, n: i64) -> Pb {
    Pb::default()
        .int(1, 1)
        .int(2, INT64)
        .str(8, name)
        .bytes(9, &n.to_le_bytes())
}

/// A model of one node `op` on `inputs` (graph inputs with their declarations, then
/// `initializers`) whose output `y` is declared as `y`.
pub fn onnx_model(op: &str, inputs: &[(&str, Pb)], initializers: &[(&str, Pb)], y: Pb) -> Vec<u8> {
    let node = inputs
        .iter()
        .chain(initializers)
        .fold(Pb::default(), |node, (name, _)| node.str(1, name))
        .str(2, "y")
        .str(3, "n0")
        .str(4, op);
    let mut graph = Pb::default().msg(1, node).str(2, "g");
    for (_, initializer) in initializers {
        graph = graph.msg(5, initializer.clone());
    }
    for (_, input) in inputs {
        graph = graph.msg(11, input.clone());
    }
    let opset = Pb::default().str(1, "").int(2, 17);
    Pb::default()
        .int(1, 8)
        .msg(7, graph.msg(12, y))
        .msg(8, opset)
        .0
}

/// `AI.MODELSTORE key ONNX CPU BLOB blob`, which must answer OK.
pub fn store_onnx(c: &mut Connection, key: &str, blob: &[u8]) {
    let reply = call(
        c,
        &[
            b"AI.MODELSTORE",
            key.as_bytes(),
            b"ONNX",
            b"CPU",
            b"BLOB",
            blob,
        ],
    );
    assert_eq!(reply.expect("MODELSTORE"), Value::Okay, "{key}");
}
