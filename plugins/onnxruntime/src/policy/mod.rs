//! What a stored model may not do, checked on its bytes before ONNX Runtime sees them.
//!
//! A stored model is hostile input: whoever may write a key may store one, and it is loaded
//! again from RDB/AOF and on replicas. ONNX Runtime reads a tensor's *external data* from a
//! file named in the model (it refuses absolute paths but resolves relative ones, `..`
//! included, against the server's working directory), so a model could copy the server's
//! files into its weights and hand them back as outputs. And a node whose operator domain
//! ONNX Runtime does not provide could only run through a custom-op library.
//!
//! [`check`] parses the serialised `ModelProto` itself (a small protobuf reader: no
//! allocation beyond the set of its local functions' domains (at most [`MAX_FUNCTION_DOMAINS`]),
//! a bound on nesting, never a
//! panic on any input) and refuses:
//! - external data of any kind: a `TensorProto` with `data_location` other than DEFAULT
//!   (field 14) or any `external_data` entry (field 13), wherever a tensor can be: graph
//!   initializers and sparse initializers, the tensor, tensors, sparse tensor and sparse
//!   tensors of every node attribute (Constant's included), in every subgraph (attributes
//!   `g` and `graphs`: If, Loop, Scan), in the model's local functions (their nodes and
//!   their attributes' default values) and in the training-info graphs. Text:
//!   [`EXTERNAL_DATA`], RedisAI's.
//! - a node whose domain is not `""`/`ai.onnx`, `ai.onnx.ml`, `com.microsoft` (ONNX
//!   Runtime's own contrib operators) or the domain of one of the model's local functions,
//!   and the few `com.microsoft` operators that reach outside the model (see
//!   [`DENIED_OPS`]): `model uses a forbidden operation: <domain>.<op_type> (<why>)`.
//! - an empty input name (an omitted optional input) where an operator's variadic inputs
//!   are ([`VARIADIC_OPS`]): `model uses a forbidden operation: Mean (an empty input name
//!   in a variadic position: only an optional input may be omitted)`.
//! - a model input (not an initializer) without a type, without an element type, or a
//!   sparse tensor without a shape: `model input 'x' has no declared type: <why>`. Dense
//!   tensor inputs without a shape are listed by [`any_rank_inputs`] for the backend.
//! - ONNX Runtime's own flatbuffer format (bytes 4..8 `ORTM`), which this reader cannot
//!   check, and bytes that are not a well-formed protobuf message (ONNX Runtime would
//!   refuse those too; the text keeps its "protobuf parsing failed").
//!
//! Field numbers are onnx.proto3's (onnx 1.17). Protobuf's own rules are followed where
//! they matter: a singular field given twice counts once, last value winning (the checks
//! look at every occurrence, which is stricter), an enum is a varint truncated to 32 bits,
//! and a field with an unexpected wire type is an unknown field that the parser skips.

mod rewrite;
#[cfg(test)]
mod tests;
mod walk;
mod wire;

use std::collections::HashSet;

pub use rewrite::{declare_ranks, drop_trailing_empty_inputs};
use walk::Walk;
use wire::{
    each_bytes, function, graph, last_bytes, model, sparse_tensor, tensor, type_proto, value_info,
    Fields, Value,
};

/// RedisAI's reply to a model with external data (the client sees it after `ERR `).
pub const EXTERNAL_DATA: &str = "Initializer tensors with external data is not allowed.";

/// Operator domains that ONNX Runtime provides (besides the model's local functions').
pub const ALLOWED_DOMAINS: &[&str] = &["", "ai.onnx", "ai.onnx.ml", "com.microsoft"];

/// `com.microsoft` operators refused by name, and why. ONNX Runtime's other contrib
/// operators compute on their inputs and attributes only.
pub const DENIED_OPS: &[(&str, &str, &str)] = &[
    (
        "com.microsoft",
        "EPContext",
        "loads a precompiled execution-provider context, which may name a file",
    ),
    (
        "com.microsoft",
        "PythonOp",
        "runs Python code (training builds)",
    ),
    (
        "com.microsoft",
        "PythonOpGrad",
        "runs Python code (training builds)",
    ),
    ("com.microsoft", "ATen", "calls into PyTorch's ATen library"),
];

/// Operators with variadic inputs, and the position where those start. ONNX writes an
/// omitted optional input as the name `""`; ONNX's checker refuses it for a required
/// single input, not in a variadic list, where ONNX Runtime's kernels take every input as
/// present (`Mean(x, "")` crashes the server in the run). An empty name from that position
/// on is refused. Domain `""` stands for `ai.onnx` too. Scan's first input is optional
/// in opset 8 (`sequence_lens`), Loop's first two (`M`, `cond`) in every opset.
pub const VARIADIC_OPS: &[(&str, &str, usize)] = &[
    ("", "Concat", 0),
    ("", "Einsum", 0),
    ("", "Max", 0),
    ("", "Mean", 0),
    ("", "Min", 0),
    ("", "Sum", 0),
    ("", "SequenceConstruct", 0),
    ("", "Loop", 2),
    ("", "Scan", 1),
    ("ai.onnx.ml", "FeatureVectorizer", 0),
];

/// Whether `domain` (from the model) is `listed` (`""` stands for `ai.onnx` too).
fn domain_is(listed: &str, domain: &[u8]) -> bool {
    listed.as_bytes() == domain || (listed.is_empty() && domain == b"ai.onnx")
}

/// How deep messages may nest (protobuf's own default recursion limit, which ONNX Runtime's
/// parser keeps, is 100, so no model it loads is refused for this).
pub const MAX_DEPTH: usize = 100;

/// How many distinct domains a model's local functions may have.
pub const MAX_FUNCTION_DOMAINS: usize = 1024;

/// Checks a serialised ONNX model against the policy; the error is the reply text.
pub fn check(blob: &[u8]) -> Result<(), String> {
    if blob.len() >= 8 && &blob[4..8] == b"ORTM" {
        return Err(
            "ONNX Runtime format (.ort) models are not accepted: store the ONNX protobuf (.onnx)"
                .to_owned(),
        );
    }
    let domains = function_domains(blob).map_err(Refusal::text)?;
    Walk { domains: &domains }
        .model(blob)
        .map_err(Refusal::text)?;
    declared_inputs(blob).map_err(Refusal::text)?;
    Ok(())
}

/// The model's inputs (not initializers) whose tensor type declares no shape, in graph
/// order (call after [`check`]). ONNX Runtime loads such a model, but it cannot check the
/// rank a run gives them, and some kernels given a rank they do not take call
/// `std::terminate` (see the crate docs, "Input ranks"). The backend runs such a model with a session
/// for the ranks of the run's inputs, loaded from [`declare_ranks`]'s copy of the model, so
/// ONNX Runtime's shape inference checks every operator against those ranks first.
pub fn any_rank_inputs(blob: &[u8]) -> Result<Vec<String>, String> {
    declared_inputs(blob)
        .map(|names| {
            names
                .into_iter()
                .map(|n| String::from_utf8_lossy(n).into_owned())
                .collect()
        })
        .map_err(Refusal::text)
}

/// Why a model is refused.
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    Malformed(&'static str),
    TooDeep,
    ExternalData,
    ForbiddenOp {
        domain: String,
        op: String,
        why: &'static str,
    },
    /// A graph input (not an initializer) without an element type and a rank.
    Undeclared {
        input: String,
        why: &'static str,
    },
}

impl Refusal {
    fn text(self) -> String {
        match self {
            Refusal::Malformed(what) => {
                format!("the ONNX model is malformed: protobuf parsing failed ({what})")
            }
            Refusal::TooDeep => format!(
                "the ONNX model is malformed: protobuf parsing failed (messages nested more than {MAX_DEPTH} deep)"
            ),
            Refusal::ExternalData => EXTERNAL_DATA.to_owned(),
            Refusal::ForbiddenOp { domain, op, why } if domain.is_empty() => {
                format!("model uses a forbidden operation: {op} ({why})")
            }
            Refusal::ForbiddenOp { domain, op, why } => {
                format!("model uses a forbidden operation: {domain}.{op} ({why})")
            }
            Refusal::Undeclared { input, why } => format!(
                "model input '{input}' has no declared type: {why}"
            ),
        }
    }
}

type Checked<T = ()> = Result<T, Refusal>;

/// The domains of the model's local functions (ModelProto.functions = 25,
/// FunctionProto.domain = 10, the last one given).
fn function_domains(model: &[u8]) -> Checked<HashSet<&[u8]>> {
    let mut domains = HashSet::new();
    each_bytes(model, |number, function| {
        if number == model::FUNCTIONS {
            let mut domain: &[u8] = b"";
            each_bytes(function, |number, bytes| {
                if number == function::DOMAIN {
                    domain = bytes;
                }
                Ok(())
            })?;
            domains.insert(domain);
            if domains.len() > MAX_FUNCTION_DOMAINS {
                return Err(Refusal::Malformed("too many local function domains"));
            }
        }
        Ok(())
    })?;
    Ok(domains)
}

/// Every input of the main graph that is not an initializer must have a type; a tensor
/// type, an element type. Returns the (dense) tensor inputs without a shape: the backend
/// runs those with the run's ranks declared ([`any_rank_inputs`]). With the rank declared,
/// ONNX Runtime's shape inference checks each operator's rank rules when the model is
/// loaded, and each run's inputs are checked against the declared rank and fixed
/// dimensions before any kernel runs. Without it a kernel may index past an input's
/// dimensions, which ONNX Runtime (built with GSL contract checks) answers with
/// `std::terminate`: the server aborts. A sparse tensor input must declare its shape.
///
/// Protobuf's merging is followed: the graph may be given more than once (its inputs and
/// initializers add up), a `ValueInfoProto`'s last name counts, and its type occurrences
/// merge (a later member of TypeProto's oneof clears an earlier one).
fn declared_inputs(model: &[u8]) -> Checked<Vec<&[u8]>> {
    let mut graphs = Vec::new();
    each_bytes(model, |number, graph| {
        if number == model::GRAPH {
            graphs.push(graph);
        }
        Ok(())
    })?;
    let mut initializers: HashSet<&[u8]> = HashSet::new();
    let mut inputs: Vec<&[u8]> = Vec::new();
    for graph in &graphs {
        each_bytes(graph, |number, inner| {
            match number {
                graph::INITIALIZER => {
                    initializers.insert(last_bytes(inner, tensor::NAME)?);
                }
                graph::SPARSE_INITIALIZER => {
                    let values = last_bytes(inner, sparse_tensor::VALUES)?;
                    initializers.insert(last_bytes(values, tensor::NAME)?);
                }
                graph::INPUT => inputs.push(inner),
                _ => {}
            }
            Ok(())
        })?;
    }
    let mut any_rank = Vec::new();
    for input in inputs {
        let name = last_bytes(input, value_info::NAME)?;
        if initializers.contains(name) {
            continue;
        }
        // The merged TypeProto: which member of the oneof, and whether it has a shape and
        // an element type (tensor or sparse tensor).
        #[derive(Clone, Copy, PartialEq)]
        enum Kind {
            None,
            Tensor,
            Other,
        }
        let mut kind = Kind::None;
        let mut shape = false;
        let mut elem = false;
        let mut member = 0u32;
        let mut fields = Fields::of(input);
        while let Some((number, value)) = fields.next_field()? {
            let (value_info::TYPE, Value::Bytes(type_proto)) = (number, value) else {
                continue;
            };
            let mut type_fields = Fields::of(type_proto);
            while let Some((number, value)) = type_fields.next_field()? {
                let Value::Bytes(tensor_type) = value else {
                    // A varint in TypeProto is `denotation`'s wrong wire type: skipped.
                    continue;
                };
                match number {
                    type_proto::TENSOR_TYPE | type_proto::SPARSE_TENSOR_TYPE => {
                        if member != number {
                            // Switching members clears the other one.
                            shape = false;
                            elem = false;
                        }
                        member = number;
                        kind = Kind::Tensor;
                        let mut t = Fields::of(tensor_type);
                        while let Some((number, value)) = t.next_field()? {
                            match (number, value) {
                                (type_proto::ELEM_TYPE, Value::Varint(e)) => elem = e as u32 != 0,
                                (type_proto::SHAPE, Value::Bytes(_)) => shape = true,
                                _ => {}
                            }
                        }
                    }
                    // TypeProto.denotation (6) is a string, not a member of the oneof.
                    6 => {}
                    _ => {
                        member = number;
                        kind = Kind::Other;
                        shape = false;
                        elem = false;
                    }
                }
            }
        }
        let why = match kind {
            Kind::None => "it has no type",
            Kind::Tensor if !elem => "its tensor type has no element type",
            Kind::Tensor if !shape && member == type_proto::TENSOR_TYPE => {
                any_rank.push(name);
                continue;
            }
            Kind::Tensor if !shape => "its sparse tensor type has no shape (rank)",
            _ => continue,
        };
        return Err(Refusal::Undeclared {
            input: printable(name),
            why,
        });
    }
    Ok(any_rank)
}

/// A name from the model, fit for a one-line error reply: at most 64 characters, control
/// characters as `?`.
fn printable(name: &[u8]) -> String {
    let text = String::from_utf8_lossy(name);
    let mut out: String = text
        .chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if text.chars().count() > 64 {
        out.push_str("...");
    }
    out
}
