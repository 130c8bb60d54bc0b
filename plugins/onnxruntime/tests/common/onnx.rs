//! Writes small ONNX models (protobuf by hand): enough for graphs of plain nodes whose
//! inputs and outputs are tensors, sequences, maps or optional values, and for ONNX-ML
//! nodes with attributes ([`model_ml`]), on the tests' protobuf writer ([`Pb`]).

pub use redisai_plugin_testkit::Pb;

/// ONNX TensorProto.DataType values.
pub mod elem {
    pub const FLOAT: i64 = 1;
    pub const UINT8: i64 = 2;
    pub const INT8: i64 = 3;
    pub const UINT16: i64 = 4;
    pub const INT16: i64 = 5;
    pub const INT32: i64 = 6;
    pub const INT64: i64 = 7;
    pub const STRING: i64 = 8;
    pub const BOOL: i64 = 9;
    pub const FLOAT16: i64 = 10;
    pub const DOUBLE: i64 = 11;
}

/// A value type.
#[derive(Clone)]
pub enum Ty {
    /// Element type and shape (None: any rank; a dimension of -1 is symbolic).
    Tensor(i64, Option<Vec<i64>>),
    Sequence(Box<Ty>),
    /// Key element type, value type.
    Map(i64, Box<Ty>),
    Optional(Box<Ty>),
}

impl Ty {
    fn proto(&self) -> Pb {
        match self {
            Ty::Tensor(elem, shape) => {
                let mut tensor = Pb::default().int(1, *elem);
                if let Some(dims) = shape {
                    let mut shape = Pb::default();
                    for (i, &d) in dims.iter().enumerate() {
                        let dim = if d < 0 {
                            Pb::default().str(2, &format!("d{i}"))
                        } else {
                            Pb::default().int(1, d)
                        };
                        shape = shape.msg(1, dim);
                    }
                    tensor = tensor.msg(2, shape);
                }
                Pb::default().msg(1, tensor)
            }
            Ty::Sequence(inner) => Pb::default().msg(4, Pb::default().msg(1, inner.proto())),
            Ty::Map(key, value) => {
                Pb::default().msg(5, Pb::default().int(1, *key).msg(2, value.proto()))
            }
            Ty::Optional(inner) => Pb::default().msg(9, Pb::default().msg(1, inner.proto())),
        }
    }
}

/// A node: op type, input names, output names.
pub struct Node<'a>(pub &'a str, pub &'a [&'a str], pub &'a [&'a str]);

/// A node attribute.
pub enum Attr<'a> {
    Int(&'a str, i64),
    Ints(&'a str, &'a [i64]),
    Strings(&'a str, &'a [&'a str]),
}

/// A node with a domain and attributes: op type, domain, inputs, outputs, attributes.
pub struct MlNode<'a>(
    pub &'a str,
    pub &'a str,
    pub &'a [&'a str],
    pub &'a [&'a str],
    pub &'a [Attr<'a>],
);

/// A model (IR 8, opsets 17 and ai.onnx.ml 3) of nodes with domains and attributes.
pub fn model_ml(nodes: &[MlNode<'_>], inputs: &[(&str, Ty)], outputs: &[(&str, Ty)]) -> Vec<u8> {
    let nodes = nodes
        .iter()
        .enumerate()
        .map(|(i, MlNode(op, domain, ins, outs, attrs))| {
            let node = attrs
                .iter()
                .fold(node_proto(i, op, ins, outs), |node, attr| {
                    // AttributeProto: name 1, type 20 (INT 2, INTS 7, STRINGS 8), i 3, ints 8,
                    // strings 9.
                    let attr = match attr {
                        Attr::Int(name, v) => Pb::default().str(1, name).int(20, 2).int(3, *v),
                        Attr::Ints(name, values) => values
                            .iter()
                            .fold(Pb::default().str(1, name).int(20, 7), |m, &v| m.int(8, v)),
                        Attr::Strings(name, values) => values
                            .iter()
                            .fold(Pb::default().str(1, name).int(20, 8), |m, v| m.str(9, v)),
                    };
                    node.msg(5, attr)
                });
            node.str(7, domain)
        })
        .collect();
    model_proto(
        nodes,
        Vec::new(),
        inputs,
        outputs,
        &[("", 17), ("ai.onnx.ml", 3)],
    )
}

/// A model (IR 8, opset 17) with the given nodes, graph inputs and outputs.
pub fn model(nodes: &[Node<'_>], inputs: &[(&str, Ty)], outputs: &[(&str, Ty)]) -> Vec<u8> {
    model_with_weights(nodes, inputs, outputs, &[])
}

/// A FLOAT initializer: name, shape and values.
pub struct Weight<'a>(pub &'a str, pub &'a [i64], pub &'a [f32]);

/// Same as [`model`], with FLOAT initializers.
pub fn model_with_weights(
    nodes: &[Node<'_>],
    inputs: &[(&str, Ty)],
    outputs: &[(&str, Ty)],
    weights: &[Weight<'_>],
) -> Vec<u8> {
    let nodes = nodes
        .iter()
        .enumerate()
        .map(|(i, Node(op, ins, outs))| node_proto(i, op, ins, outs))
        .collect();
    let initializers = weights
        .iter()
        .map(|Weight(name, dims, values)| {
            let tensor = dims.iter().fold(Pb::default(), |t, &d| t.int(1, d));
            let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            tensor.int(2, elem::FLOAT).str(8, name).bytes(9, &raw)
        })
        .collect();
    model_proto(nodes, initializers, inputs, outputs, &[("", 17)])
}

/// NodeProto `n{i}`: inputs 1, outputs 2, name 3, op type 4.
fn node_proto(i: usize, op: &str, inputs: &[&str], outputs: &[&str]) -> Pb {
    let node = inputs
        .iter()
        .fold(Pb::default(), |node, name| node.str(1, name));
    let node = outputs.iter().fold(node, |node, name| node.str(2, name));
    node.str(3, &format!("n{i}")).str(4, op)
}

/// ModelProto (IR 8) of graph `g`: nodes 1, initializers 5, inputs 11, outputs 12; and
/// `opsets` (domain, version).
fn model_proto(
    nodes: Vec<Pb>,
    initializers: Vec<Pb>,
    inputs: &[(&str, Ty)],
    outputs: &[(&str, Ty)],
    opsets: &[(&str, i64)],
) -> Vec<u8> {
    let graph = nodes.into_iter().fold(Pb::default(), |g, n| g.msg(1, n));
    let mut graph = initializers
        .into_iter()
        .fold(graph.str(2, "g"), |g, t| g.msg(5, t));
    for (field, values) in [(11, inputs), (12, outputs)] {
        for (name, ty) in values {
            graph = graph.msg(field, Pb::default().str(1, name).msg(2, ty.proto()));
        }
    }
    let model = Pb::default()
        .int(1, 8)
        .str(2, "redisai-onnxruntime-tests")
        .msg(7, graph);
    opsets
        .iter()
        .fold(model, |m, (domain, version)| {
            m.msg(8, Pb::default().str(1, domain).int(2, *version))
        })
        .0
}
