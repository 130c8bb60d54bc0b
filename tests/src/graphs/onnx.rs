//! ONNX `ModelProto`s: real operators wired to a FLOAT input, now and then external data
//! or an operator from a domain ONNX Runtime does not provide.

use super::onnx_attrs::{graph_attr, onnx_attrs, onnx_node, subgraph, tensor_attr};
use super::*;

/// ONNX `TensorProto.DataType`.
pub(super) mod onnx_type {
    pub const FLOAT: i64 = 1;
    pub const INT32: i64 = 6;
    pub const INT64: i64 = 7;
    pub const STRING: i64 = 8;
    pub const BOOL: i64 = 9;
    pub const DOUBLE: i64 = 11;
}

/// ONNX operators: (op_type, domain, inputs, outputs). Inputs: `f` a float value (the
/// graph input, an earlier output, a float constant), `i` a small INT64 constant (sizes,
/// axes, counts), `s` a small float constant (scales, limits), `b` a BOOL constant, `?`
/// an optional input left empty.
const ONNX_OPS: &[(&str, &str, &str, usize)] = &[
    ("Add", "", "ff", 1),
    ("Sub", "", "ff", 1),
    ("Mul", "", "ff", 1),
    ("Div", "", "ff", 1),
    ("Pow", "", "ff", 1),
    ("Max", "", "ff", 1),
    ("Min", "", "ff", 1),
    ("Sum", "", "fff", 1),
    ("Mean", "", "ff", 1),
    ("Mod", "", "ff", 1),
    ("Relu", "", "f", 1),
    ("Neg", "", "f", 1),
    ("Abs", "", "f", 1),
    ("Sigmoid", "", "f", 1),
    ("Tanh", "", "f", 1),
    ("Exp", "", "f", 1),
    ("Log", "", "f", 1),
    ("Sqrt", "", "f", 1),
    ("Identity", "", "f", 1),
    ("Floor", "", "f", 1),
    ("Reciprocal", "", "f", 1),
    ("Erf", "", "f", 1),
    ("Softmax", "", "f", 1),
    ("LeakyRelu", "", "f", 1),
    ("Elu", "", "f", 1),
    ("Clip", "", "fss", 1),
    ("Dropout", "", "f", 1),
    ("MatMul", "", "ff", 1),
    ("Gemm", "", "fff", 1),
    ("Reshape", "", "fi", 1),
    ("Expand", "", "fi", 1),
    ("Tile", "", "fi", 1),
    ("Gather", "", "fi", 1),
    ("GatherElements", "", "fi", 1),
    ("GatherND", "", "fi", 1),
    ("ScatterND", "", "fif", 1),
    ("Slice", "", "fiii", 1),
    ("Squeeze", "", "fi", 1),
    ("Unsqueeze", "", "fi", 1),
    ("Transpose", "", "f", 1),
    ("Flatten", "", "f", 1),
    ("Concat", "", "ff", 1),
    ("Split", "", "f", 2),
    ("Pad", "", "fi", 1),
    ("ReduceSum", "", "fi", 1),
    ("ReduceMean", "", "f", 1),
    ("ReduceMax", "", "f", 1),
    ("CumSum", "", "fi", 1),
    ("TopK", "", "fi", 2),
    ("ArgMax", "", "f", 1),
    ("Shape", "", "f", 1),
    ("Size", "", "f", 1),
    ("ConstantOfShape", "", "i", 1),
    ("Range", "", "sss", 1),
    ("Cast", "", "f", 1),
    ("CastLike", "", "ff", 1),
    ("Where", "", "bff", 1),
    ("Equal", "", "ff", 1),
    ("Greater", "", "ff", 1),
    ("Not", "", "b", 1),
    ("Resize", "", "f?s", 1),
    ("Einsum", "", "ff", 1),
    ("NonZero", "", "f", 1),
    ("Unique", "", "f", 1),
    ("OneHot", "", "iif", 1),
    ("Trilu", "", "f", 1),
    ("EyeLike", "", "f", 1),
    ("RandomNormal", "", "", 1),
    ("RandomUniformLike", "", "f", 1),
    ("LayerNormalization", "", "fff", 1),
    ("Compress", "", "fb", 1),
    ("SequenceConstruct", "", "ff", 1),
    ("StringNormalizer", "", "f", 1),
    ("Constant", "", "", 1),
    ("Loop", "", "ibf", 1),
    ("If", "", "b", 1),
    ("Scan", "", "f", 1),
    ("Upsample", "", "fs", 1),
    ("ScatterElements", "", "fif", 1),
    ("DepthToSpace", "", "f", 1),
    ("SpaceToDepth", "", "f", 1),
    ("Conv", "", "ff", 1),
    ("ConvTranspose", "", "ff", 1),
    ("MaxPool", "", "f", 1),
    ("AveragePool", "", "f", 1),
    ("GlobalAveragePool", "", "f", 1),
    ("BatchNormalization", "", "fffff", 1),
    ("InstanceNormalization", "", "fff", 1),
    ("ReverseSequence", "", "fi", 1),
    ("Hardmax", "", "f", 1),
    ("LpNormalization", "", "f", 1),
    ("Round", "", "f", 1),
    ("Sign", "", "f", 1),
    ("IsNaN", "", "f", 1),
    ("Shrink", "", "f", 1),
    ("Det", "", "f", 1),
    ("QuantizeLinear", "", "fs", 1),
    ("DequantizeLinear", "", "fs", 1),
    ("GridSample", "", "ff", 1),
    ("RoiAlign", "", "ffi", 1),
    ("NonMaxSuppression", "", "ffiss", 1),
    ("MaxUnpool", "", "fi", 1),
    ("Col2Im", "", "fii", 1),
    ("DFT", "", "f", 1),
    ("Multinomial", "", "f", 1),
    ("Bernoulli", "", "f", 1),
    ("CenterCropPad", "", "fi", 1),
    ("SequenceAt", "", "fi", 1),
    ("ArgMin", "", "f", 1),
    // ONNX Runtime's contrib and ML operators (allowed domains).
    ("Gelu", "com.microsoft", "f", 1),
    ("FusedMatMul", "com.microsoft", "ff", 1),
    ("BiasGelu", "com.microsoft", "ff", 1),
    ("Normalizer", "ai.onnx.ml", "f", 1),
    ("Scaler", "ai.onnx.ml", "f", 1),
];

/// Operators from domains ONNX Runtime does not provide, and contrib operators that reach
/// outside the model: a store must be refused.
const ONNX_HOSTILE_OPS: &[(&str, &str)] = &[
    ("Evil", "com.example"),
    ("Leak", "evil.ops"),
    ("ReadFile", "org.files"),
    ("Relu", "custom"),
    ("EPContext", "com.microsoft"),
    ("PythonOp", "com.microsoft"),
    ("ATen", "com.microsoft"),
];

/// What the ONNX generator has built so far.
pub(super) struct OnnxBuild {
    nodes: Vec<Pb>,
    initializers: Vec<Pb>,
    sparse: Vec<Pb>,
    /// Names of float values (data).
    floats: Vec<String>,
    /// The domains the nodes use, for `opset_import`.
    domains: Vec<String>,
    next: usize,
    generated: Generated,
}

impl OnnxBuild {
    pub(super) fn name(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}{}", self.next)
    }

    fn int_const(&mut self, rng: &mut Rng) -> String {
        let name = self.name("i");
        let scalar = rng.chance(40);
        let n = if scalar { 1 } else { 1 + rng.below(2) };
        let values: Vec<i64> = (0..n).map(|_| rng.below(5) as i64 - 1).collect();
        let mut t = Pb::default();
        if !scalar {
            t = t.int(1, n as i64);
        }
        t = t
            .int(2, onnx_type::INT64)
            .packed_ints(7, &values)
            .str(8, &name);
        self.initializers.push(t);
        name
    }

    fn float_const(&mut self, rng: &mut Rng) -> String {
        let name = self.name("s");
        let scalar = rng.chance(40);
        let n = if scalar { 1 } else { 1 + rng.below(4) };
        let values: Vec<f32> = (0..n).map(|_| *rng.pick(SMALL_FLOATS)).collect();
        let mut t = Pb::default();
        if !scalar {
            t = t.int(1, n as i64);
        }
        t = t
            .int(2, onnx_type::FLOAT)
            .packed_floats(4, &values)
            .str(8, &name);
        self.initializers.push(t);
        name
    }

    fn bool_const(&mut self, rng: &mut Rng) -> String {
        let name = self.name("b");
        let t = Pb::default()
            .int(2, onnx_type::BOOL)
            .packed_ints(5, &[rng.below(2) as i64])
            .str(8, &name);
        self.initializers.push(t);
        name
    }

    fn input_for(&mut self, rng: &mut Rng, slot: char) -> String {
        if rng.chance(3) {
            // Anything: a name that does not exist, empty, or another kind of value.
            return match rng.below(3) {
                0 => "nowhere".to_owned(),
                1 if !avoided("onnx-empty-input") => String::new(),
                1 => "nowhere".to_owned(),
                _ => rng.pick(&self.floats).clone(),
            };
        }
        match slot {
            'f' => {
                if rng.chance(15) {
                    self.float_const(rng)
                } else {
                    rng.pick(&self.floats).clone()
                }
            }
            'i' => self.int_const(rng),
            's' => self.float_const(rng),
            'b' => self.bool_const(rng),
            _ => String::new(),
        }
    }
}

pub(super) fn value_info(name: &str, elem_type: i64, dims: Option<&[usize]>) -> Pb {
    let mut tensor = Pb::default().int(1, elem_type);
    if let Some(dims) = dims {
        let mut shape = Pb::default();
        for &d in dims {
            shape = shape.msg(1, Pb::default().int(1, d as i64));
        }
        tensor = tensor.msg(2, shape);
    }
    Pb::default()
        .str(1, name)
        .msg(2, Pb::default().msg(1, tensor))
}

/// A FLOAT [4] tensor whose data is in the file `location` (external data), in one of
/// the ways ONNX says so.
fn external_tensor(rng: &mut Rng, name: &str) -> Pb {
    let location = *rng.pick(LOCATIONS);
    let entry = |k: &str, v: &str| Pb::default().str(1, k).str(2, v);
    let mut t = Pb::default()
        .int(1, 4)
        .int(2, onnx_type::FLOAT)
        .str(8, name);
    let how = rng.below(4);
    if how != 1 {
        t = t.msg(13, entry("location", location));
        if rng.chance(50) {
            t = t.msg(13, entry("offset", one(rng, &["0", "4", "-1", "99999999"])));
        }
        if rng.chance(50) {
            t = t.msg(13, entry("length", one(rng, &["16", "0", "4096"])));
        }
    }
    if how != 2 {
        t = t.int(14, 1);
    }
    t
}

/// An ONNX model: a FLOAT graph input `x`, 1-4 nodes of real operators wired to it, their
/// constants as initializers, and the last node's output `y` as the graph output; now and
/// then a tensor with external data (in an initializer, a sparse initializer, a Constant, an
/// If branch or a local function) or an operator from a domain ONNX Runtime does not
/// provide, which the backend must refuse.
pub fn onnx_model(rng: &mut Rng) -> Generated {
    let dims = rng
        .pick(&[vec![4], vec![2, 2], vec![1, 4], vec![3]])
        .clone();
    let mut b = OnnxBuild {
        nodes: Vec::new(),
        initializers: Vec::new(),
        sparse: Vec::new(),
        floats: vec!["x".to_owned()],
        domains: Vec::new(),
        next: 0,
        generated: Generated::new(Vec::new()),
    };
    let hostile = if rng.chance(25) { rng.below(7) } else { 99 };
    let mut functions = Vec::new();
    match hostile {
        0 => {
            b.initializers.push(external_tensor(rng, "w"));
            b.floats.push("w".into());
            b.generated.refuse("external data in an initializer");
        }
        1 => {
            let values = external_tensor(rng, "sw");
            b.sparse.push(
                Pb::default()
                    .msg(1, values)
                    .msg(
                        2,
                        Pb::default()
                            .int(1, 1)
                            .int(2, onnx_type::INT64)
                            .packed_ints(7, &[0]),
                    )
                    .packed_ints(3, &[4]),
            );
            b.floats.push("sw".into());
            b.generated.refuse("external data in a sparse initializer");
        }
        2 => {
            let t = external_tensor(rng, "c");
            b.nodes.push(
                onnx_node("Constant", "", &[], &["cw".into()]).msg(5, tensor_attr("value", t)),
            );
            b.floats.push("cw".into());
            b.generated.refuse("external data in a Constant");
            b.generated.ops.push("Constant(external)".into());
        }
        3 => {
            let cond = b.bool_const(rng);
            let then_g = subgraph(
                &[onnx_node("Constant", "", &[], &["t_out".into()])
                    .msg(5, tensor_attr("value", external_tensor(rng, "t")))],
                &[],
                &[("t_out", onnx_type::FLOAT)],
            );
            let else_g = subgraph(
                &[onnx_node("Identity", "", &["x".into()], &["e_out".into()])],
                &[],
                &[("e_out", onnx_type::FLOAT)],
            );
            b.nodes.push(
                onnx_node("If", "", &[cond], &["iw".into()])
                    .msg(5, graph_attr("then_branch", then_g))
                    .msg(5, graph_attr("else_branch", else_g)),
            );
            b.floats.push("iw".into());
            b.generated.refuse("external data in an If branch");
            b.generated.ops.push("If(external)".into());
        }
        4 => {
            let function = Pb::default()
                .str(1, "Leak")
                .str(5, "out")
                .msg(
                    7,
                    onnx_node("Constant", "", &[], &["out".into()])
                        .msg(5, tensor_attr("value", external_tensor(rng, "f"))),
                )
                .msg(9, Pb::default().str(1, "").int(2, 17))
                .str(10, "local.fn");
            functions.push(function);
            b.domains.push("local.fn".into());
            b.nodes
                .push(onnx_node("Leak", "local.fn", &[], &["fw".into()]));
            b.floats.push("fw".into());
            b.generated.refuse("external data in a local function");
            b.generated.ops.push("local.fn.Leak(external)".into());
        }
        5 | 6 => {
            let (op, domain) = *rng.pick(ONNX_HOSTILE_OPS);
            let input = rng.pick(&b.floats).clone();
            let mut node = onnx_node(op, domain, &[input], &["hw".into()]);
            for attr in onnx_attrs(rng, &mut b, op) {
                node = node.msg(5, attr);
            }
            b.nodes.push(node);
            if rng.chance(80) {
                b.domains.push(domain.into());
            }
            b.floats.push("hw".into());
            b.generated.refuse(format!("operator {domain}.{op}"));
            b.generated.ops.push(format!("{domain}.{op}"));
        }
        _ => {}
    }
    let count = 1 + rng.below(4);
    for k in 0..count {
        let (op, domain, slots, outputs) = *pick_allowed(rng, ONNX_OPS, |o| o.0);
        let inputs: Vec<String> = slots.chars().map(|s| b.input_for(rng, s)).collect();
        let outs: Vec<String> = (0..outputs)
            .map(|o| {
                if k + 1 == count && o == 0 {
                    "y".to_owned()
                } else {
                    b.name("n")
                }
            })
            .collect();
        let mut node = onnx_node(op, domain, &inputs, &outs).str(3, &format!("node{k}"));
        for attr in onnx_attrs(rng, &mut b, op) {
            node = node.msg(5, attr);
        }
        if !domain.is_empty() && !b.domains.iter().any(|d| d == domain) {
            b.domains.push(domain.into());
        }
        b.nodes.push(node);
        b.generated.ops.push(if domain.is_empty() {
            op.to_owned()
        } else {
            format!("{domain}.{op}")
        });
        b.floats.extend(outs.iter().cloned());
    }
    // The graph.
    let mut g = Pb::default();
    for n in &b.nodes {
        g = g.msg(1, n.clone());
    }
    g = g.str(2, "fuzzed");
    for t in &b.initializers {
        g = g.msg(5, t.clone());
    }
    let declared: Option<&[usize]> = if rng.chance(85) { Some(&dims) } else { None };
    g = g.msg(11, value_info("x", onnx_type::FLOAT, declared));
    let out_type = if rng.chance(90) {
        onnx_type::FLOAT
    } else {
        *rng.pick(&[onnx_type::INT64, onnx_type::BOOL, onnx_type::INT32])
    };
    g = g.msg(12, value_info("y", out_type, None));
    for s in &b.sparse {
        g = g.msg(15, s.clone());
    }
    // The model.
    let mut m = Pb::default()
        .int(1, *rng.pick(&[8, 8, 8, 7, 9, 3]))
        .str(2, "fuzz_live")
        .msg(7, g)
        .msg(
            8,
            Pb::default()
                .str(1, "")
                .int(2, *rng.pick(&[17, 17, 13, 18, 21])),
        );
    for d in &b.domains {
        m = m.msg(8, Pb::default().str(1, d).int(2, 1));
    }
    for f in functions {
        m = m.msg(25, f);
    }
    let mut generated = b.generated;
    generated.bytes = m.0;
    generated.input = float_input(rng, &dims);
    generated
}
