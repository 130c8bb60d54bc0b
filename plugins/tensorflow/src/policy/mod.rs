//! The load policy: a stored model is hostile input, so a GraphDef may use only operations
//! of pure computation. [`check`] walks the serialized GraphDef before TensorFlow sees it and
//! refuses the first operation that is not on [`ALLOWED`] with
//! `model uses a forbidden operation: <OpType> (<rule>)`, the rule saying why (`file
//! access`, `datasets, queues and iterators`, `summaries`, `Python functions`, `network`,
//! `debugging output`, `process control`, or `not on the allow-list` for anything else,
//! unknown ops included).
//!
//! What is checked, so that no way of naming an operation escapes:
//! - every `NodeDef.op` of the graph (`GraphDef.node`), and of every function of the
//!   graph's library (`GraphDef.library.function[].node_def`): an op type is either on the
//!   allow-list or the name of a function of the library (a function called as an op; its
//!   body is checked with the others);
//! - every function named in an attribute (`AttrValue.func`, and `AttrValue.list.func`,
//!   with the attributes nested in them): `PartitionedCall`, `While`, `If` and the like call
//!   those, and TensorFlow runs a *primitive op* of that name when no function has it, so
//!   such a name must be a library function or an allowed op too.
//!
//! The walk follows protobuf's rules as TensorFlow's parser applies them: a repeated or
//! merged message (`node`, `library`, `function`) counts every occurrence, a singular string
//! (`op`) its last one; unknown fields are skipped. A blob this parser cannot read (bad
//! varint, a length past the end, a group, a known field with the wrong wire type) is
//! refused: nothing unchecked reaches TensorFlow.
//!
//! The allow-list (about 480 op types) is math, neural network, array, control flow (TF1
//! `Switch`/`Merge`/`Enter`/`Exit`/`NextIteration`/`LoopCond` and TF2 `While`/`If`/`Case`/
//! `PartitionedCall`), image decoding and encoding, string, parsing, random and in-memory
//! lookup table ops: what frozen inference graphs use. Nothing that opens, lists or writes
//! files, reads datasets, uses queues or iterators, writes summaries or debug output, runs
//! Python, talks to other processes or hosts, loads libraries, or starts threads of its own.

mod allowed;
mod graph_def;

use std::collections::HashSet;

pub use allowed::ALLOWED;
use graph_def::parse_graph;

/// Why a blob is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// An operation that is not allowed: its type and the rule.
    Forbidden { op: String, rule: &'static str },
    /// The blob does not parse as a GraphDef (the detail says where).
    Malformed(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Forbidden { op, rule } => {
                write!(f, "model uses a forbidden operation: {op} ({rule})")
            }
            Refusal::Malformed(detail) => write!(f, "the GraphDef could not be checked: {detail}"),
        }
    }
}

/// Checks a serialized GraphDef against the policy.
pub fn check(graph_def: &[u8]) -> Result<(), Refusal> {
    let graph = parse_graph(graph_def).map_err(Refusal::Malformed)?;
    let functions: HashSet<&[u8]> = graph.functions.iter().map(|f| f.name).collect();
    let allowed = |name: &[u8]| is_allowed(name) || functions.contains(name);
    let refuse = |name: &[u8]| Refusal::Forbidden {
        op: String::from_utf8_lossy(name).into_owned(),
        rule: rule(name),
    };
    let nodes = graph
        .nodes
        .iter()
        .chain(graph.functions.iter().flat_map(|f| f.nodes.iter()));
    for node in nodes {
        if !allowed(node.op) {
            return Err(refuse(node.op));
        }
        for name in &node.called {
            if !allowed(name) {
                return Err(refuse(name));
            }
        }
    }
    Ok(())
}

fn is_allowed(op: &[u8]) -> bool {
    std::str::from_utf8(op).is_ok_and(|op| ALLOWED.binary_search(&op).is_ok())
}

/// The rule a forbidden op breaks (for the message only: everything not on the allow-list
/// is refused).
fn rule(op: &[u8]) -> &'static str {
    let op = String::from_utf8_lossy(op);
    let op = op.as_ref();
    let has = |part: &str| op.contains(part);
    const FILES: &[&str] = &[
        "ReadFile",
        "WriteFile",
        "MatchingFiles",
        "ImmutableConst",
        "LoadAndRemapMatrix",
        "GenerateVocabRemapping",
        "PrintV2",
        "DecodeProtoV2",
    ];
    if FILES.contains(&op)
        || has("Reader")
        || has("File")
        || has("Checkpoint")
        || op.starts_with("Save")
        || op.starts_with("Restore")
    {
        "file access"
    } else if has("Dataset") || has("Iterator") || has("Queue") || has("Barrier") {
        "datasets, queues and iterators"
    } else if has("Summary") || op.starts_with("Write") || has("SummaryWriter") {
        "summaries"
    } else if has("PyFunc") {
        "Python functions"
    } else if has("Rpc")
        || has("Send")
        || has("Recv")
        || op.starts_with("Collective")
        || op.starts_with("Nccl")
    {
        "network"
    } else if op.starts_with("Debug") || op == "Print" {
        "debugging output"
    } else if op == "Abort" {
        "process control"
    } else {
        "not on the allow-list"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(number: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut put = |mut n: u64| {
            while n >= 0x80 {
                out.push((n as u8 & 0x7f) | 0x80);
                n >>= 7;
            }
            out.push(n as u8);
        };
        put(number << 3 | 2);
        put(bytes.len() as u64);
        out.extend_from_slice(bytes);
        out
    }

    fn node(op: &str) -> Vec<u8> {
        [field(1, b"n"), field(2, op.as_bytes())].concat()
    }

    fn forbidden(op: &str, rule: &'static str) -> Result<(), Refusal> {
        Err(Refusal::Forbidden {
            op: op.to_owned(),
            rule,
        })
    }

    #[test]
    fn the_allow_list_is_sorted_and_unique() {
        assert!(ALLOWED.windows(2).all(|w| w[0] < w[1]));
        for op in ALLOWED {
            assert_eq!(rule(op.as_bytes()), "not on the allow-list", "{op}");
        }
    }

    #[test]
    fn nodes_are_checked() {
        assert_eq!(check(b""), Ok(()));
        assert_eq!(check(&field(1, &node("MatMul"))), Ok(()));
        assert_eq!(
            check(&[field(1, &node("Const")), field(1, &node("ReadFile"))].concat()),
            forbidden("ReadFile", "file access")
        );
        assert_eq!(
            check(&field(1, &node("MatchingFiles"))),
            forbidden("MatchingFiles", "file access")
        );
        assert_eq!(
            check(&field(1, &node("TFRecordDataset"))),
            forbidden("TFRecordDataset", "datasets, queues and iterators")
        );
        assert_eq!(
            check(&field(1, &node("EagerPyFunc"))),
            forbidden("EagerPyFunc", "Python functions")
        );
        assert_eq!(
            check(&field(1, &node("Nope"))),
            forbidden("Nope", "not on the allow-list")
        );
        // The last `op` of a node is the one TensorFlow reads.
        let twice = [field(2, b"Identity"), field(2, b"WriteFile")].concat();
        assert_eq!(
            check(&field(1, &twice)),
            forbidden("WriteFile", "file access")
        );
    }

    #[test]
    fn functions_and_function_attributes_are_checked() {
        // library { function { signature { name: "f" } node_def { op: "ReadFile" } } }
        let function = [field(1, &field(1, b"f")), field(3, &node("ReadFile"))].concat();
        let library = field(2, &field(1, &function));
        assert_eq!(check(&library), forbidden("ReadFile", "file access"));
        // A function called as an op is allowed (its body is checked).
        let function = [field(1, &field(1, b"f")), field(3, &node("Relu"))].concat();
        let graph = [field(1, &node("f")), field(2, &field(1, &function))].concat();
        assert_eq!(check(&graph), Ok(()));
        // A `func` attribute naming a primitive op: TensorFlow would run that op.
        let attr = |name: &str| {
            let func = field(10, &field(1, name.as_bytes()));
            field(5, &[field(1, b"f"), field(2, &func)].concat())
        };
        let call = [node("PartitionedCall"), attr("ReadFile")].concat();
        assert_eq!(
            check(&field(1, &call)),
            forbidden("ReadFile", "file access")
        );
        let call = [node("PartitionedCall"), attr("f")].concat();
        let graph = [field(1, &call), field(2, &field(1, &function))].concat();
        assert_eq!(check(&graph), Ok(()));
        // In a list of functions too.
        let list = field(1, &field(9, &field(1, b"WriteFile")));
        let call = [
            node("Case"),
            field(5, &[field(1, b"branches"), field(2, &list)].concat()),
        ]
        .concat();
        assert_eq!(
            check(&field(1, &call)),
            forbidden("WriteFile", "file access")
        );
    }

    #[test]
    fn what_does_not_parse_is_refused() {
        for blob in [
            &b"\x0a\x05ab"[..], // a length past the end
            &b"\x0a\xff"[..],   // a varint past the end
            &b"\x0b\x0c"[..],   // a group
            &b"\x08\x01"[..],   // `node` as a varint
            &b"\x00\x01"[..],   // field 0
        ] {
            assert!(
                matches!(check(blob), Err(Refusal::Malformed(_))),
                "{blob:?}: {:?}",
                check(blob)
            );
        }
        // Unknown fields are skipped, as protobuf does.
        assert_eq!(
            check(b"\x20\x05\x39\x01\x02\x03\x04\x05\x06\x07\x08"),
            Ok(())
        );
    }
}
