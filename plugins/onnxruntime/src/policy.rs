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

use std::collections::HashSet;

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

/// A copy of the model whose inputs named in `ranks` declare a shape of that rank, every
/// dimension symbolic (its own name). Each of those inputs' `ValueInfoProto` gets one more
/// `type { tensor_type { shape } }`, which protobuf merges into the type it has: the
/// element type stays, the shape (absent before) is the new one. Every other byte of the
/// model is kept as it is.
pub fn declare_ranks(blob: &[u8], ranks: &[(&str, usize)]) -> Result<Vec<u8>, String> {
    let rewrite = || -> Checked<Vec<u8>> {
        let mut out = Vec::with_capacity(blob.len() + 64 * ranks.len());
        each_raw(blob, |number, raw, value| {
            match (number, value) {
                (model::GRAPH, Value::Bytes(graph)) => {
                    let mut g = Vec::with_capacity(graph.len() + 64 * ranks.len());
                    each_raw(graph, |number, raw, value| {
                        match (number, value) {
                            (graph::INPUT, Value::Bytes(input)) => {
                                let name = last_bytes(input, value_info::NAME)?;
                                let name = String::from_utf8_lossy(name);
                                match ranks.iter().position(|(n, _)| *n == name) {
                                    Some(at) => {
                                        let mut vi = input.to_vec();
                                        put_bytes(
                                            &mut vi,
                                            value_info::TYPE,
                                            &rank_type(at, ranks[at].1),
                                        );
                                        put_bytes(&mut g, graph::INPUT, &vi);
                                    }
                                    None => g.extend_from_slice(raw),
                                }
                            }
                            _ => g.extend_from_slice(raw),
                        }
                        Ok(())
                    })?;
                    put_bytes(&mut out, model::GRAPH, &g);
                }
                _ => out.extend_from_slice(raw),
            }
            Ok(())
        })?;
        Ok(out)
    };
    rewrite().map_err(Refusal::text)
}

/// A copy of a checked model (call after [`check`]) whose nodes no longer name trailing
/// omitted optional inputs: a node's inputs that are `""` from some position to the end
/// are dropped, in the main graph, every subgraph (attributes `g` and `graphs`) and the
/// local functions. ONNX gives both forms one meaning, but ONNX Runtime 1.32's level-2
/// graph optimizations dereference the missing input of the `""` form
/// (`LayerNormalization(x, scale, "")` crashes the server when the model is loaded).
/// An empty name before a named input (Resize's `roi`) is kept. Every other byte is kept.
pub fn drop_trailing_empty_inputs(blob: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(blob.len());
    let rewritten = each_raw(blob, |number, raw, value| match (number, value) {
        (model::GRAPH, Value::Bytes(graph)) => {
            put_bytes(&mut out, number, &rewrite_graph(graph, 1)?);
            Ok(())
        }
        (model::FUNCTIONS, Value::Bytes(function)) => {
            let mut f = Vec::with_capacity(function.len());
            each_raw(function, |number, raw, value| match (number, value) {
                (function::NODE, Value::Bytes(node)) => {
                    put_bytes(&mut f, number, &rewrite_node(node, 2)?);
                    Ok(())
                }
                _ => {
                    f.extend_from_slice(raw);
                    Ok(())
                }
            })?;
            put_bytes(&mut out, number, &f);
            Ok(())
        }
        _ => {
            out.extend_from_slice(raw);
            Ok(())
        }
    });
    rewritten.map_err(Refusal::text)?;
    Ok(out)
}

fn rewrite_graph(graph: &[u8], depth: usize) -> Checked<Vec<u8>> {
    let depth = deeper(depth)?;
    let mut out = Vec::with_capacity(graph.len());
    each_raw(graph, |number, raw, value| {
        match (number, value) {
            (graph::NODE, Value::Bytes(node)) => {
                put_bytes(&mut out, number, &rewrite_node(node, depth)?)
            }
            _ => out.extend_from_slice(raw),
        }
        Ok(())
    })?;
    Ok(out)
}

fn rewrite_node(node: &[u8], depth: usize) -> Checked<Vec<u8>> {
    let depth = deeper(depth)?;
    // Inputs from `keep` on (counting input occurrences) are all "".
    let mut inputs = 0usize;
    let mut keep = 0usize;
    each_bytes(node, |number, inner| {
        if number == node::INPUT {
            inputs += 1;
            if !inner.is_empty() {
                keep = inputs;
            }
        }
        Ok(())
    })?;
    let mut out = Vec::with_capacity(node.len());
    let mut seen = 0usize;
    each_raw(node, |number, raw, value| {
        match (number, value) {
            (node::INPUT, Value::Bytes(_)) => {
                seen += 1;
                if seen <= keep {
                    out.extend_from_slice(raw);
                }
            }
            (node::ATTRIBUTE, Value::Bytes(attr)) => {
                let mut a = Vec::with_capacity(attr.len());
                each_raw(attr, |number, raw, value| {
                    match (number, value) {
                        (attribute::G | attribute::GRAPHS, Value::Bytes(graph)) => {
                            put_bytes(&mut a, number, &rewrite_graph(graph, depth)?)
                        }
                        _ => a.extend_from_slice(raw),
                    }
                    Ok(())
                })?;
                put_bytes(&mut out, number, &a);
            }
            _ => out.extend_from_slice(raw),
        }
        Ok(())
    })?;
    Ok(out)
}

/// `TypeProto { tensor_type { shape { dim { dim_param } x rank } } }`.
fn rank_type(input: usize, rank: usize) -> Vec<u8> {
    let mut shape = Vec::new();
    for d in 0..rank {
        let mut dim = Vec::new();
        put_bytes(
            &mut dim,
            2,
            format!("redisai_input{input}_dim{d}").as_bytes(),
        );
        put_bytes(&mut shape, 1, &dim);
    }
    let mut tensor = Vec::new();
    put_bytes(&mut tensor, type_proto::SHAPE, &shape);
    let mut ty = Vec::new();
    put_bytes(&mut ty, type_proto::TENSOR_TYPE, &tensor);
    ty
}

/// Appends a length-delimited field.
fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_varint(out, (u64::from(field) << 3) | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Calls `each` with every field of the message: its number, its bytes as written, and
/// its value.
fn each_raw<'a>(
    message: &'a [u8],
    mut each: impl FnMut(u32, &'a [u8], Value<'a>) -> Checked,
) -> Checked {
    let mut fields = Fields::of(message);
    loop {
        let before = fields.rest;
        let Some((number, value)) = fields.next_field()? else {
            return Ok(());
        };
        let raw = &before[..before.len() - fields.rest.len()];
        each(number, raw, value)?;
    }
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

/// One field's value, by wire type.
enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    /// Fixed32 and fixed64: nothing the checks need.
    Fixed,
}

/// Reads the fields of one message, one at a time.
struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    fn of(bytes: &'a [u8]) -> Fields<'a> {
        Fields { rest: bytes }
    }

    fn varint(&mut self) -> Checked<u64> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let Some((&byte, rest)) = self.rest.split_first() else {
                return Err(Refusal::Malformed("truncated varint"));
            };
            self.rest = rest;
            if i == 9 && byte > 1 {
                return Err(Refusal::Malformed("varint longer than 64 bits"));
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Refusal::Malformed("varint longer than 10 bytes"))
    }

    fn take(&mut self, n: u64) -> Checked<&'a [u8]> {
        let n = usize::try_from(n).map_err(|_| Refusal::Malformed("length past the end"))?;
        if n > self.rest.len() {
            return Err(Refusal::Malformed("length past the end"));
        }
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(taken)
    }

    /// The next field: its number and value; None at the end of the message.
    fn next_field(&mut self) -> Checked<Option<(u32, Value<'a>)>> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let tag = self.varint()?;
        let tag = u32::try_from(tag).map_err(|_| Refusal::Malformed("tag past 32 bits"))?;
        let number = tag >> 3;
        if number == 0 {
            return Err(Refusal::Malformed("field number 0"));
        }
        let value = match tag & 7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Value::Fixed
            }
            2 => {
                let len = self.varint()?;
                Value::Bytes(self.take(len)?)
            }
            5 => {
                self.take(4)?;
                Value::Fixed
            }
            // ONNX has no groups; a model that has them is not one this checks.
            3 | 4 => return Err(Refusal::Malformed("protobuf groups")),
            _ => return Err(Refusal::Malformed("invalid wire type")),
        };
        Ok(Some((number, value)))
    }
}

/// Calls `each` with every length-delimited occurrence of the message's fields, after
/// checking that the whole message is well formed.
fn each_bytes<'a>(message: &'a [u8], mut each: impl FnMut(u32, &'a [u8]) -> Checked) -> Checked {
    let mut fields = Fields::of(message);
    while let Some((number, value)) = fields.next_field()? {
        if let Value::Bytes(bytes) = value {
            each(number, bytes)?;
        }
    }
    Ok(())
}

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

/// The last length-delimited value of field `field` in `message` (`""` when none).
fn last_bytes(message: &[u8], field: u32) -> Checked<&[u8]> {
    let mut last: &[u8] = b"";
    each_bytes(message, |number, bytes| {
        if number == field {
            last = bytes;
        }
        Ok(())
    })?;
    Ok(last)
}

/// Field numbers, from onnx.proto3.
mod model {
    pub const GRAPH: u32 = 7;
    pub const TRAINING_INFO: u32 = 20;
    pub const FUNCTIONS: u32 = 25;
}
mod graph {
    pub const NODE: u32 = 1;
    pub const INITIALIZER: u32 = 5;
    pub const INPUT: u32 = 11;
    pub const SPARSE_INITIALIZER: u32 = 15;
}
mod value_info {
    pub const NAME: u32 = 1;
    pub const TYPE: u32 = 2;
}
/// TypeProto: a oneof of these (and others: sequence 4, map 5, optional 9, ...).
mod type_proto {
    pub const TENSOR_TYPE: u32 = 1;
    pub const SPARSE_TENSOR_TYPE: u32 = 8;
    /// TypeProto.Tensor (and SparseTensor).
    pub const ELEM_TYPE: u32 = 1;
    pub const SHAPE: u32 = 2;
}
mod node {
    pub const INPUT: u32 = 1;
    pub const OP_TYPE: u32 = 4;
    pub const ATTRIBUTE: u32 = 5;
    pub const DOMAIN: u32 = 7;
}
mod attribute {
    pub const T: u32 = 5;
    pub const G: u32 = 6;
    pub const TENSORS: u32 = 10;
    pub const GRAPHS: u32 = 11;
    pub const SPARSE_TENSOR: u32 = 22;
    pub const SPARSE_TENSORS: u32 = 23;
}
mod tensor {
    pub const NAME: u32 = 8;
    pub const EXTERNAL_DATA: u32 = 13;
    pub const DATA_LOCATION: u32 = 14;
}
mod sparse_tensor {
    pub const VALUES: u32 = 1;
    pub const INDICES: u32 = 2;
}
mod function {
    pub const NODE: u32 = 7;
    pub const DOMAIN: u32 = 10;
    pub const ATTRIBUTE_PROTO: u32 = 11;
}
mod training_info {
    pub const INITIALIZATION: u32 = 1;
    pub const ALGORITHM: u32 = 2;
}

/// The walk over the messages that can hold tensors or nodes.
struct Walk<'d> {
    domains: &'d HashSet<&'d [u8]>,
}

/// `depth` one level down, or TooDeep.
fn deeper(depth: usize) -> Checked<usize> {
    if depth >= MAX_DEPTH {
        return Err(Refusal::TooDeep);
    }
    Ok(depth + 1)
}

impl Walk<'_> {
    fn model(&self, bytes: &[u8]) -> Checked {
        let depth = 0;
        each_bytes(bytes, |number, inner| match number {
            model::GRAPH => self.graph(inner, deeper(depth)?),
            model::TRAINING_INFO => self.training_info(inner, deeper(depth)?),
            model::FUNCTIONS => self.function(inner, deeper(depth)?),
            _ => Ok(()),
        })
    }

    fn graph(&self, bytes: &[u8], depth: usize) -> Checked {
        each_bytes(bytes, |number, inner| match number {
            graph::NODE => self.node(inner, deeper(depth)?),
            graph::INITIALIZER => {
                deeper(depth)?;
                self.tensor(inner)
            }
            graph::SPARSE_INITIALIZER => self.sparse_tensor(inner, deeper(depth)?),
            _ => Ok(()),
        })
    }

    fn training_info(&self, bytes: &[u8], depth: usize) -> Checked {
        each_bytes(bytes, |number, inner| match number {
            training_info::INITIALIZATION | training_info::ALGORITHM => {
                self.graph(inner, deeper(depth)?)
            }
            _ => Ok(()),
        })
    }

    fn function(&self, bytes: &[u8], depth: usize) -> Checked {
        each_bytes(bytes, |number, inner| match number {
            function::NODE => self.node(inner, deeper(depth)?),
            function::ATTRIBUTE_PROTO => self.attribute(inner, deeper(depth)?),
            _ => Ok(()),
        })
    }

    fn node(&self, bytes: &[u8], depth: usize) -> Checked {
        let mut op: &[u8] = b"";
        let mut domain: &[u8] = b"";
        let mut forbidden: Option<&[u8]> = None;
        // The last position of an input named "" (an omitted optional input).
        let mut inputs = 0usize;
        let mut last_empty: Option<usize> = None;
        each_bytes(bytes, |number, inner| {
            match number {
                node::INPUT => {
                    if inner.is_empty() {
                        last_empty = Some(inputs);
                    }
                    inputs += 1;
                }
                node::OP_TYPE => op = inner,
                node::DOMAIN => {
                    domain = inner;
                    // Every value given counts, not only the last (the one protobuf keeps).
                    if forbidden.is_none() && !self.domain_allowed(inner) {
                        forbidden = Some(inner);
                    }
                }
                node::ATTRIBUTE => self.attribute(inner, deeper(depth)?)?,
                _ => {}
            }
            Ok(())
        })?;
        if let Some(domain) = forbidden {
            return Err(Refusal::ForbiddenOp {
                domain: printable(domain),
                op: printable(op),
                why: "custom operator domain",
            });
        }
        if let Some(position) = last_empty {
            if let Some((_, _, from)) = VARIADIC_OPS
                .iter()
                .find(|(d, o, _)| domain_is(d, domain) && o.as_bytes() == op)
            {
                if position >= *from {
                    return Err(Refusal::ForbiddenOp {
                        domain: if domain == b"ai.onnx" { String::new() } else { printable(domain) },
                        op: printable(op),
                        why: "an empty input name in a variadic position: only an optional input may be omitted",
                    });
                }
            }
        }
        if let Some((denied_domain, denied_op, why)) = DENIED_OPS
            .iter()
            .find(|(d, o, _)| d.as_bytes() == domain && o.as_bytes() == op)
        {
            return Err(Refusal::ForbiddenOp {
                domain: (*denied_domain).to_owned(),
                op: (*denied_op).to_owned(),
                why,
            });
        }
        Ok(())
    }

    fn domain_allowed(&self, domain: &[u8]) -> bool {
        ALLOWED_DOMAINS.iter().any(|d| d.as_bytes() == domain) || self.domains.contains(domain)
    }

    fn attribute(&self, bytes: &[u8], depth: usize) -> Checked {
        each_bytes(bytes, |number, inner| match number {
            attribute::T | attribute::TENSORS => {
                deeper(depth)?;
                self.tensor(inner)
            }
            attribute::SPARSE_TENSOR | attribute::SPARSE_TENSORS => {
                self.sparse_tensor(inner, deeper(depth)?)
            }
            attribute::G | attribute::GRAPHS => self.graph(inner, deeper(depth)?),
            _ => Ok(()),
        })
    }

    fn sparse_tensor(&self, bytes: &[u8], depth: usize) -> Checked {
        each_bytes(bytes, |number, inner| match number {
            sparse_tensor::VALUES | sparse_tensor::INDICES => {
                deeper(depth)?;
                self.tensor(inner)
            }
            _ => Ok(()),
        })
    }

    fn tensor(&self, bytes: &[u8]) -> Checked {
        let mut fields = Fields::of(bytes);
        while let Some((number, value)) = fields.next_field()? {
            match (number, value) {
                (tensor::EXTERNAL_DATA, _) => return Err(Refusal::ExternalData),
                // An enum is an int32: protobuf keeps the low 32 bits.
                (tensor::DATA_LOCATION, Value::Varint(location)) if location as u32 != 0 => {
                    return Err(Refusal::ExternalData)
                }
                (tensor::DATA_LOCATION, Value::Bytes(packed)) => {
                    // Not how a singular enum is written (protobuf would skip it as unknown);
                    // refused all the same when it says anything but DEFAULT.
                    let mut values = Fields::of(packed);
                    while !values.rest.is_empty() {
                        if values.varint()? as u32 != 0 {
                            return Err(Refusal::ExternalData);
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A protobuf message under construction.
    #[derive(Default, Clone)]
    struct Msg(Vec<u8>);

    impl Msg {
        fn varint(&mut self, mut v: u64) {
            loop {
                let byte = (v & 0x7f) as u8;
                v >>= 7;
                if v == 0 {
                    self.0.push(byte);
                    return;
                }
                self.0.push(byte | 0x80);
            }
        }
        fn int(mut self, field: u64, v: u64) -> Msg {
            self.varint(field << 3);
            self.varint(v);
            self
        }
        fn bytes(mut self, field: u64, data: &[u8]) -> Msg {
            self.varint((field << 3) | 2);
            self.varint(data.len() as u64);
            self.0.extend_from_slice(data);
            self
        }
        fn str(self, field: u64, s: &str) -> Msg {
            self.bytes(field, s.as_bytes())
        }
        fn msg(self, field: u64, m: Msg) -> Msg {
            self.bytes(field, &m.0)
        }
    }

    fn plain_tensor() -> Msg {
        Msg::default()
            .int(1, 1)
            .int(2, 1)
            .str(8, "w")
            .bytes(9, &1f32.to_le_bytes())
    }

    fn external_tensor() -> Msg {
        Msg::default()
            .int(1, 4)
            .int(2, 1)
            .str(8, "w")
            .msg(
                13,
                Msg::default()
                    .str(1, "location")
                    .str(2, "../../../../etc/passwd"),
            )
            .int(14, 1)
    }

    fn node(op: &str, domain: &str) -> Msg {
        Msg::default()
            .str(1, "x")
            .str(2, "y")
            .str(4, op)
            .str(7, domain)
    }

    fn graph_with(nodes: &[Msg], initializers: &[Msg]) -> Msg {
        let mut g = Msg::default().str(2, "g");
        for n in nodes {
            g = g.msg(1, n.clone());
        }
        for t in initializers {
            g = g.msg(5, t.clone());
        }
        g
    }

    fn model_of(graph: Msg) -> Vec<u8> {
        Msg::default()
            .int(1, 8)
            .msg(7, graph)
            .msg(8, Msg::default().str(1, "").int(2, 17))
            .0
    }

    fn refusal(bytes: &[u8]) -> String {
        check(bytes).expect_err("should be refused")
    }

    #[test]
    fn plain_models_pass() {
        let g = graph_with(
            &[
                node("Add", ""),
                node("Relu", "ai.onnx"),
                node("Gelu", "com.microsoft"),
            ],
            &[plain_tensor(), Msg::default().str(8, "z").int(14, 0)],
        );
        check(&model_of(g)).expect("a plain model passes");
        check(&model_of(graph_with(
            &[node("LinearClassifier", "ai.onnx.ml")],
            &[],
        )))
        .expect("ONNX-ML passes");
    }

    #[test]
    fn external_data_in_an_initializer() {
        let bytes = model_of(graph_with(&[node("Identity", "")], &[external_tensor()]));
        assert_eq!(refusal(&bytes), EXTERNAL_DATA);
        // Either half alone is enough.
        let location_only = Msg::default().str(8, "w").int(14, 1);
        let entries_only = Msg::default()
            .str(8, "w")
            .msg(13, Msg::default().str(1, "location").str(2, "x.bin"));
        for t in [location_only, entries_only] {
            assert_eq!(refusal(&model_of(graph_with(&[], &[t]))), EXTERNAL_DATA);
        }
        // EXTERNAL as a varint whose low 32 bits are 1 (protobuf truncates enums).
        let wide = Msg::default().str(8, "w").int(14, (1 << 32) | 1);
        assert_eq!(refusal(&model_of(graph_with(&[], &[wide]))), EXTERNAL_DATA);
        // A packed (length-delimited) data_location.
        let packed = Msg::default().str(8, "w").bytes(14, &[0, 1]);
        assert_eq!(
            refusal(&model_of(graph_with(&[], &[packed]))),
            EXTERNAL_DATA
        );
        // The second of two graphs (protobuf merges them).
        let bytes = Msg::default()
            .msg(7, graph_with(&[], &[plain_tensor()]))
            .msg(7, graph_with(&[], &[external_tensor()]))
            .0;
        assert_eq!(refusal(&bytes), EXTERNAL_DATA);
    }

    #[test]
    fn external_data_in_a_sparse_initializer() {
        for field in [1, 2] {
            let sparse = Msg::default().msg(field, external_tensor()).int(3, 4);
            let g = Msg::default().str(2, "g").msg(15, sparse);
            assert_eq!(refusal(&model_of(g)), EXTERNAL_DATA);
        }
    }

    #[test]
    fn external_data_in_node_attributes() {
        let sparse = Msg::default().msg(1, external_tensor());
        for attr in [
            Msg::default()
                .str(1, "value")
                .int(20, 4)
                .msg(5, external_tensor()),
            Msg::default()
                .str(1, "value")
                .int(20, 9)
                .msg(10, plain_tensor())
                .msg(10, external_tensor()),
            Msg::default()
                .str(1, "sparse_value")
                .int(20, 11)
                .msg(22, sparse.clone()),
            Msg::default()
                .str(1, "sparse_values")
                .int(20, 12)
                .msg(23, sparse),
        ] {
            let constant = Msg::default().str(2, "y").str(4, "Constant").msg(5, attr);
            assert_eq!(
                refusal(&model_of(graph_with(&[constant], &[]))),
                EXTERNAL_DATA
            );
        }
    }

    #[test]
    fn external_data_in_subgraphs() {
        let inner = graph_with(&[node("Identity", "")], &[external_tensor()]);
        let if_node = Msg::default()
            .str(1, "cond")
            .str(2, "y")
            .str(4, "If")
            .msg(
                5,
                Msg::default()
                    .str(1, "then_branch")
                    .int(20, 5)
                    .msg(6, graph_with(&[], &[])),
            )
            .msg(
                5,
                Msg::default()
                    .str(1, "else_branch")
                    .int(20, 5)
                    .msg(6, inner.clone()),
            );
        assert_eq!(
            refusal(&model_of(graph_with(&[if_node], &[]))),
            EXTERNAL_DATA
        );
        let graphs = Msg::default()
            .str(1, "bodies")
            .int(20, 10)
            .msg(11, inner.clone());
        let n = Msg::default().str(4, "Loop").msg(5, graphs);
        assert_eq!(refusal(&model_of(graph_with(&[n], &[]))), EXTERNAL_DATA);
        // Three levels down.
        let mut g = inner;
        for _ in 0..3 {
            let attr = Msg::default().str(1, "body").int(20, 5).msg(6, g);
            g = graph_with(&[Msg::default().str(4, "Loop").msg(5, attr)], &[]);
        }
        assert_eq!(refusal(&model_of(g)), EXTERNAL_DATA);
    }

    #[test]
    fn external_data_in_functions_and_training_info() {
        let constant = Msg::default().str(2, "y").str(4, "Constant").msg(
            5,
            Msg::default()
                .str(1, "value")
                .int(20, 4)
                .msg(5, external_tensor()),
        );
        let function = Msg::default()
            .str(1, "f")
            .str(10, "local.fn")
            .msg(7, constant);
        let bytes = Msg::default()
            .int(1, 8)
            .msg(7, graph_with(&[node("f", "local.fn")], &[]))
            .msg(25, function)
            .0;
        assert_eq!(refusal(&bytes), EXTERNAL_DATA);
        // A function attribute's default value.
        let function = Msg::default().str(1, "f").str(10, "local.fn").msg(
            11,
            Msg::default()
                .str(1, "a")
                .int(20, 4)
                .msg(5, external_tensor()),
        );
        let bytes = Msg::default().msg(25, function).0;
        assert_eq!(refusal(&bytes), EXTERNAL_DATA);
        // Training info's graphs.
        for field in [1, 2] {
            let info = Msg::default().msg(field, graph_with(&[], &[external_tensor()]));
            let bytes = Msg::default().msg(7, graph_with(&[], &[])).msg(20, info).0;
            assert_eq!(refusal(&bytes), EXTERNAL_DATA);
        }
    }

    #[test]
    fn custom_domains_are_refused_unless_a_local_function_has_them() {
        let bytes = model_of(graph_with(
            &[node("Add", ""), node("Evil", "com.example")],
            &[],
        ));
        assert_eq!(
            refusal(&bytes),
            "model uses a forbidden operation: com.example.Evil (custom operator domain)"
        );
        // A model's own function's domain is allowed.
        let function = Msg::default()
            .str(1, "Evil")
            .str(10, "com.example")
            .msg(7, node("Relu", ""));
        let bytes = Msg::default()
            .msg(7, graph_with(&[node("Evil", "com.example")], &[]))
            .msg(25, function.clone())
            .0;
        check(&bytes).expect("a local function's domain");
        // ... but not inside that function for another domain.
        let function = function.msg(7, node("Other", "org.other"));
        let bytes = Msg::default().msg(25, function).0;
        assert_eq!(
            refusal(&bytes),
            "model uses a forbidden operation: org.other.Other (custom operator domain)"
        );
        // A domain given twice: every value counts.
        let twice = node("Add", "com.example").str(7, "");
        assert_eq!(
            refusal(&model_of(graph_with(&[twice], &[]))),
            "model uses a forbidden operation: com.example.Add (custom operator domain)"
        );
        // In a subgraph.
        let attr = Msg::default()
            .str(1, "body")
            .int(20, 5)
            .msg(6, graph_with(&[node("X", "my.ops")], &[]));
        let bytes = model_of(graph_with(
            &[Msg::default().str(4, "Loop").msg(5, attr)],
            &[],
        ));
        assert_eq!(
            refusal(&bytes),
            "model uses a forbidden operation: my.ops.X (custom operator domain)"
        );
        // Names come back printable.
        let bytes = model_of(graph_with(&[node("A\r\nB", "x\ny")], &[]));
        assert_eq!(
            refusal(&bytes),
            "model uses a forbidden operation: x?y.A??B (custom operator domain)"
        );
    }

    #[test]
    fn function_domains_are_bounded() {
        let mut bytes = Vec::new();
        for i in 0..=MAX_FUNCTION_DOMAINS {
            let f = Msg::default().str(1, "f").str(10, &format!("d{i}"));
            bytes.extend_from_slice(&Msg::default().msg(25, f).0);
        }
        assert!(refusal(&bytes).contains("too many local function domains"));
        // Many functions in few domains are fine.
        let mut bytes = Vec::new();
        for i in 0..5000 {
            let f = Msg::default().str(1, &format!("f{i}")).str(10, "local");
            bytes.extend_from_slice(&Msg::default().msg(25, f).0);
        }
        check(&bytes).expect("one domain");
    }

    #[test]
    fn denied_contrib_ops() {
        let bytes = model_of(graph_with(&[node("EPContext", "com.microsoft")], &[]));
        assert_eq!(
            refusal(&bytes),
            "model uses a forbidden operation: com.microsoft.EPContext (loads a precompiled execution-provider context, which may name a file)"
        );
        for op in ["PythonOp", "PythonOpGrad", "ATen"] {
            let text = refusal(&model_of(graph_with(&[node(op, "com.microsoft")], &[])));
            assert!(
                text.starts_with(&format!(
                    "model uses a forbidden operation: com.microsoft.{op} ("
                )),
                "{text}"
            );
        }
        // The same names in the ONNX domain are just unknown operators (ONNX Runtime's business).
        check(&model_of(graph_with(&[node("EPContext", "")], &[]))).expect("not a contrib op");
    }

    #[test]
    fn ort_format_is_refused() {
        let mut bytes = vec![0x10, 0, 0, 0];
        bytes.extend_from_slice(b"ORTM");
        bytes.extend_from_slice(&[0; 16]);
        assert!(refusal(&bytes).contains(".ort"));
    }

    #[test]
    fn deep_nesting_is_refused_without_recursing_past_the_limit() {
        let mut g = graph_with(&[], &[]);
        for _ in 0..1000 {
            let attr = Msg::default().int(20, 5).msg(6, g);
            g = Msg::default().msg(1, Msg::default().str(4, "If").msg(5, attr));
        }
        let text = refusal(&model_of(g));
        assert!(text.contains("nested more than 100 deep"), "{text}");
        // 30 levels of subgraphs (90 messages) are fine.
        let mut g = graph_with(&[], &[]);
        for _ in 0..30 {
            let attr = Msg::default().int(20, 5).msg(6, g);
            g = Msg::default().msg(1, Msg::default().str(4, "If").msg(5, attr));
        }
        check(&model_of(g)).expect("30 levels");
    }

    #[test]
    fn malformed_bytes() {
        for (bytes, what) in [
            (&b"this is not an onnx model"[..], ""),
            (&[0x3a, 0x05, 1, 2][..], "length past the end"),
            (&[0x08][..], "truncated varint"),
            (
                &[
                    0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
                ][..],
                "64 bits",
            ),
            (&[0x00, 0x01][..], "field number 0"),
            (&[0x0b, 0x0c][..], "groups"),
            (&[0x0e][..], "invalid wire type"),
        ] {
            let text = refusal(bytes);
            assert!(text.contains("protobuf parsing failed"), "{text}");
            assert!(text.contains(what), "{text}");
        }
        check(b"").expect("an empty message is a valid (empty) model here; the backend refuses it");
    }

    #[test]
    fn empty_variadic_inputs_are_refused() {
        let with = |op: &str, domain: &str, inputs: &[&str]| {
            let mut n = Msg::default();
            for i in inputs {
                n = n.str(1, i);
            }
            model_of(graph_with(&[n.str(2, "y").str(4, op).str(7, domain)], &[]))
        };
        for op in [
            "Mean",
            "Sum",
            "Max",
            "Min",
            "Concat",
            "Einsum",
            "SequenceConstruct",
        ] {
            assert_eq!(
                refusal(&with(op, "", &["x", ""])),
                format!("model uses a forbidden operation: {op} (an empty input name in a variadic position: only an optional input may be omitted)")
            );
            assert!(refusal(&with(op, "ai.onnx", &["", "x"])).contains(op));
            check(&with(op, "", &["x", "x"])).expect("named inputs");
        }
        assert!(
            refusal(&with("FeatureVectorizer", "ai.onnx.ml", &["", "x"]))
                .contains("ai.onnx.ml.FeatureVectorizer")
        );
        // Loop's M and cond, Scan-8's sequence_lens, Resize's roi are optional.
        check(&with("Loop", "", &["", "", "v"])).expect("Loop");
        assert!(refusal(&with("Loop", "", &["", "", "v", ""])).contains("Loop"));
        check(&with("Scan", "", &["", "s"])).expect("Scan-8");
        check(&with("Resize", "", &["x", "", "scales"])).expect("Resize");
        // The same name in another domain is another operator.
        check(&with("Mean", "com.microsoft", &["x", ""])).expect("not ai.onnx");
    }

    fn input(name: &str, ty: Option<Msg>) -> Msg {
        let vi = Msg::default().str(1, name);
        match ty {
            Some(ty) => vi.msg(2, ty),
            None => vi,
        }
    }

    fn tensor_type(elem: u64, shape: Option<&[u64]>) -> Msg {
        let mut t = Msg::default().int(1, elem);
        if let Some(dims) = shape {
            t = t.msg(
                2,
                dims.iter()
                    .fold(Msg::default(), |s, &d| s.msg(1, Msg::default().int(1, d))),
            );
        }
        Msg::default().msg(1, t)
    }

    #[test]
    fn inputs_declare_their_types_and_any_rank_ones_are_listed() {
        let with_inputs = |inputs: &[Msg], inits: &[Msg]| {
            let mut g = graph_with(&[node("Identity", "")], inits);
            for i in inputs {
                g = g.msg(11, i.clone());
            }
            model_of(g)
        };
        let bytes = with_inputs(
            &[
                input("a", Some(tensor_type(1, Some(&[2, 3])))),
                input("b", Some(tensor_type(1, None))),
                input("w", None),
            ],
            &[plain_tensor()],
        );
        check(&bytes).expect("w is an initializer");
        assert_eq!(any_rank_inputs(&bytes).unwrap(), ["b"]);
        assert_eq!(
            refusal(&with_inputs(&[input("x", None)], &[])),
            "model input 'x' has no declared type: it has no type"
        );
        assert_eq!(
            refusal(&with_inputs(
                &[input("x", Some(Msg::default().msg(1, Msg::default())))],
                &[]
            )),
            "model input 'x' has no declared type: its tensor type has no element type"
        );
        // A later member of the oneof clears the shape (protobuf's merge).
        let switched = Msg::default()
            .msg(1, Msg::default().int(1, 1).msg(2, Msg::default()))
            .msg(4, Msg::default())
            .msg(1, Msg::default().int(1, 1));
        let bytes = with_inputs(&[input("x", Some(switched))], &[]);
        assert_eq!(any_rank_inputs(&bytes).unwrap(), ["x"]);
        // Sequences are the backend's to refuse.
        let seq = Msg::default().msg(4, Msg::default().msg(1, tensor_type(1, None)));
        check(&with_inputs(&[input("s", Some(seq))], &[])).expect("a sequence");
        // declare_ranks gives the listed inputs a shape of that rank; nothing else changes.
        let bytes = with_inputs(
            &[
                input("a", Some(tensor_type(1, Some(&[2])))),
                input("b", Some(tensor_type(7, None))),
            ],
            &[],
        );
        let declared = declare_ranks(&bytes, &[("b", 3)]).expect("rewrites");
        check(&declared).expect("still passes");
        assert!(any_rank_inputs(&declared).unwrap().is_empty());
        assert!(declared.len() > bytes.len());
        assert_eq!(declare_ranks(&bytes, &[]).unwrap(), bytes);
    }

    #[test]
    fn trailing_empty_inputs_are_dropped() {
        let n = |inputs: &[&str]| {
            inputs
                .iter()
                .fold(Msg::default(), |m, i| m.str(1, i))
                .str(2, "y")
                .str(4, "Op")
        };
        let before = model_of(graph_with(&[n(&["x", "s", ""]), n(&["x", "", "s"])], &[]));
        let after = drop_trailing_empty_inputs(&before).expect("rewrites");
        assert_eq!(
            after,
            model_of(graph_with(&[n(&["x", "s"]), n(&["x", "", "s"])], &[]))
        );
        // In a subgraph and in a local function.
        let sub = |inputs: &[&str]| {
            let attr = Msg::default()
                .str(1, "body")
                .int(20, 5)
                .msg(6, graph_with(&[n(inputs)], &[]));
            let function = Msg::default()
                .str(1, "f")
                .str(10, "local")
                .msg(7, n(inputs));
            Msg::default()
                .msg(
                    7,
                    graph_with(&[Msg::default().str(4, "Loop").msg(5, attr)], &[]),
                )
                .msg(25, function)
                .0
        };
        assert_eq!(
            drop_trailing_empty_inputs(&sub(&["a", "", ""])).unwrap(),
            sub(&["a"])
        );
        // Nothing to drop: the same bytes.
        let plain = model_of(graph_with(&[node("Add", "")], &[plain_tensor()]));
        assert_eq!(drop_trailing_empty_inputs(&plain).unwrap(), plain);
    }

    /// A small deterministic generator (xorshift64*).
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Random bytes, truncations and mutations of real and hostile models: each gives a
    /// verdict, never a panic, and a truncated hostile model is never let through.
    #[test]
    fn hostile_bytes_never_panic() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let inner = graph_with(&[node("Identity", "")], &[external_tensor()]);
        let attr = Msg::default()
            .str(1, "else_branch")
            .int(20, 5)
            .msg(6, inner);
        let hostile = model_of(graph_with(&[Msg::default().str(4, "If").msg(5, attr)], &[]));
        let mut seeds = vec![
            hostile.clone(),
            model_of(graph_with(&[node("Add", "")], &[plain_tensor()])),
        ];
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/models/onnx");
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                if entry.path().extension().is_some_and(|e| e == "onnx") {
                    seeds.push(std::fs::read(entry.path()).expect("model"));
                }
            }
        }
        for seed in &seeds {
            for len in 0..seed.len() {
                let _ = check(&seed[..len]);
            }
        }
        for round in 0..20_000 {
            let bytes = if round % 4 == 0 {
                (0..rng.below(200))
                    .map(|_| rng.next() as u8)
                    .collect::<Vec<u8>>()
            } else {
                let mut bytes = seeds[rng.below(seeds.len())].clone();
                for _ in 0..=rng.below(8) {
                    if bytes.is_empty() {
                        break;
                    }
                    let at = rng.below(bytes.len());
                    match rng.below(3) {
                        0 => bytes[at] = rng.next() as u8,
                        1 => bytes.truncate(at),
                        _ => bytes.insert(at, rng.next() as u8),
                    }
                }
                bytes
            };
            let _ = check(&bytes);
        }
    }
}
