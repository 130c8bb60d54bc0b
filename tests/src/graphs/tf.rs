//! TensorFlow `GraphDef`s: a Placeholder feeding real operations, some of them file
//! operations the TF sandbox must refuse.

use super::tf_attrs::tf_attrs;
use super::*;

/// TensorFlow `DataType`.
pub(super) mod tf_type {
    pub const FLOAT: i64 = 1;
    pub const DOUBLE: i64 = 2;
    pub const INT32: i64 = 3;
    pub const STRING: i64 = 7;
    pub const INT64: i64 = 9;
    pub const BOOL: i64 = 10;
}

/// TensorFlow operations: (op, inputs, has an output). Inputs: `f` float data, `i` a small
/// INT32 constant, `s` a string (a constant from a list of paths and patterns, the
/// placeholder when it is a STRING, an earlier string output), `b` a BOOL constant.
const TF_OPS: &[(&str, &str, bool)] = &[
    ("Identity", "f", true),
    ("Add", "ff", true),
    ("AddV2", "ff", true),
    ("Sub", "ff", true),
    ("Mul", "ff", true),
    ("RealDiv", "ff", true),
    ("Maximum", "ff", true),
    ("Pow", "ff", true),
    ("MatMul", "ff", true),
    ("BiasAdd", "ff", true),
    ("Relu", "f", true),
    ("Relu6", "f", true),
    ("Neg", "f", true),
    ("Abs", "f", true),
    ("Square", "f", true),
    ("Exp", "f", true),
    ("Sigmoid", "f", true),
    ("Tanh", "f", true),
    ("Sqrt", "f", true),
    ("Softmax", "f", true),
    ("Reshape", "fi", true),
    ("Cast", "f", true),
    ("Sum", "fi", true),
    ("Mean", "fi", true),
    ("ConcatV2", "ffi", true),
    ("Pack", "ff", true),
    ("Shape", "f", true),
    ("Size", "f", true),
    ("Fill", "if", true),
    ("Tile", "fi", true),
    ("ExpandDims", "fi", true),
    ("Squeeze", "f", true),
    ("Transpose", "fi", true),
    ("ZerosLike", "f", true),
    ("Range", "iii", true),
    ("Select", "bff", true),
    ("StopGradient", "f", true),
    ("AsString", "f", true),
    ("StringJoin", "ss", true),
    ("StringLength", "s", true),
    ("ReduceJoin", "si", true),
    ("RegexReplace", "sss", true),
    ("StringSplit", "ss", true),
    ("Substr", "sii", true),
    ("PrintV2", "s", false),
    ("NoOp", "", false),
    ("RandomUniform", "i", true),
    ("Slice", "fii", true),
    ("StringToNumber", "s", true),
    ("DecodeBase64", "s", true),
    ("DecodeRaw", "s", true),
    ("Bitcast", "f", true),
    ("BatchMatMulV2", "ff", true),
    ("Unique", "f", true),
    ("SegmentSum", "fi", true),
    ("UnsortedSegmentSum", "fii", true),
    ("Bincount", "iif", true),
    ("SparseToDense", "iiff", true),
    ("Einsum", "ff", true),
    ("InTopKV2", "fii", true),
    ("ResizeNearestNeighbor", "fi", true),
    ("SpaceToBatchND", "fii", true),
    ("AvgPool", "f", true),
    ("LRN", "f", true),
    ("Cross", "ff", true),
    ("MatrixDiag", "f", true),
    ("MatrixInverse", "f", true),
    ("Cholesky", "f", true),
    ("Qr", "f", true),
    ("Svd", "f", true),
    ("FFT", "f", true),
    ("TensorScatterUpdate", "fif", true),
    ("StridedSlice", "fiii", true),
    ("Pad", "fi", true),
    ("MirrorPad", "fi", true),
    ("BroadcastTo", "fi", true),
    ("ReverseV2", "fi", true),
    ("GatherV2", "fii", true),
    ("Split", "if", true),
    ("Max", "fi", true),
    ("Prod", "fi", true),
    ("ArgMax", "fi", true),
    ("Cumsum", "fi", true),
    ("TopKV2", "fi", true),
    ("OneHot", "iiff", true),
    ("Unpack", "f", true),
    ("DepthToSpace", "f", true),
    ("Conv2D", "ff", true),
    ("MaxPool", "f", true),
    ("ResizeBilinear", "fi", true),
    ("ScatterNd", "ifi", true),
    ("ReadFile", "s", true),
    ("WriteFile", "ss", false),
    ("MatchingFiles", "s", true),
    ("ReadFile", "s", true),
    ("WriteFile", "ss", false),
    ("MatchingFiles", "s", true),
    ("Save", "ssf", false),
    ("SaveV2", "sssf", false),
    ("RestoreV2", "sss", true),
    ("ImmutableConst", "", true),
    ("WholeFileReaderV2", "", true),
];

/// The file operations the TF sandbox refuses: a store of a graph with one must fail.
pub const TF_FILE_OPS: &[&str] = &["ReadFile", "WriteFile", "MatchingFiles"];

/// Other operations that reach files (reported whether the sandbox refuses them).
const TF_OTHER_FILE_OPS: &[&str] = &[
    "Save",
    "SaveV2",
    "RestoreV2",
    "ImmutableConst",
    "WholeFileReaderV2",
    "PrintV2(file)",
];

/// Strings a graph's string constants hold: paths, patterns, text.
const TF_STRINGS: &[&str] = &[
    "../../etc/passwd",
    "/etc/hostname",
    "dump.rdb",
    "*",
    "/etc/*",
    "../*",
    WRITTEN,
    "hello",
    "",
    "a,b",
    "[a-z]+",
];

pub(super) fn tf_type_attr(v: i64) -> Pb {
    Pb::default().int(6, v)
}

pub(super) fn tf_int_attr(v: i64) -> Pb {
    Pb::default().int(3, v)
}

pub(super) fn tf_bool_attr(v: bool) -> Pb {
    Pb::default().int(5, v as i64)
}

pub(super) fn tf_str_attr(v: &str) -> Pb {
    Pb::default().str(2, v)
}

pub(super) fn tf_shape(dims: Option<&[i64]>) -> Pb {
    match dims {
        None => Pb::default().int(3, 1),
        Some(dims) => {
            let mut s = Pb::default();
            for &d in dims {
                s = s.msg(2, Pb::default().int(1, d));
            }
            s
        }
    }
}

pub(super) fn tf_type_list(types: &[i64]) -> Pb {
    Pb::default().msg(1, Pb::default().packed_ints(6, types))
}

struct TfBuild {
    nodes: Vec<Pb>,
    floats: Vec<String>,
    strings: Vec<String>,
    next: usize,
}

impl TfBuild {
    fn name(&mut self, prefix: &str) -> String {
        self.next += 1;
        format!("{prefix}{}", self.next)
    }

    fn constant(&mut self, dtype: i64, tensor: Pb) -> String {
        let name = self.name("c");
        self.nodes.push(tf_node(
            &name,
            "Const",
            &[],
            &[
                ("dtype", tf_type_attr(dtype)),
                ("value", Pb::default().msg(8, tensor.int(1, dtype))),
            ],
        ));
        name
    }

    fn input_for(&mut self, rng: &mut Rng, slot: char) -> String {
        match slot {
            'f' => {
                if self.floats.is_empty() || rng.chance(15) {
                    let values: Vec<f32> = (0..1 + rng.below(4))
                        .map(|_| *rng.pick(SMALL_FLOATS))
                        .collect();
                    let shape = tf_shape(Some(&[values.len() as i64]));
                    self.constant(
                        tf_type::FLOAT,
                        Pb::default().msg(2, shape).packed_floats(5, &values),
                    )
                } else {
                    rng.pick(&self.floats).clone()
                }
            }
            'i' => {
                let scalar = rng.chance(50);
                let n = if scalar { 1 } else { 1 + rng.below(2) };
                let values: Vec<i64> = (0..n).map(|_| rng.below(5) as i64 - 1).collect();
                let shape = if scalar {
                    tf_shape(Some(&[]))
                } else {
                    tf_shape(Some(&[n as i64]))
                };
                self.constant(
                    tf_type::INT32,
                    Pb::default().msg(2, shape).packed_ints(7, &values),
                )
            }
            'b' => self.constant(
                tf_type::BOOL,
                Pb::default()
                    .msg(2, tf_shape(Some(&[])))
                    .packed_ints(11, &[rng.below(2) as i64]),
            ),
            _ => {
                if !self.strings.is_empty() && rng.chance(40) {
                    rng.pick(&self.strings).clone()
                } else {
                    let s = *rng.pick(TF_STRINGS);
                    self.constant(
                        tf_type::STRING,
                        Pb::default().msg(2, tf_shape(Some(&[]))).str(8, s),
                    )
                }
            }
        }
    }
}

fn tf_node(name: &str, op: &str, inputs: &[String], attrs: &[(&str, Pb)]) -> Pb {
    let mut n = Pb::default().str(1, name).str(2, op);
    for i in inputs {
        n = n.str(3, i);
    }
    for (key, value) in attrs {
        n = n.msg(5, Pb::default().str(1, key).msg(2, value.clone()));
    }
    n
}

/// A TF graph: a Placeholder `x` (FLOAT, now and then STRING) feeding 1-3 random
/// operations, with their constants; the output is the last node that has one (a node
/// without outputs is made a control input of an Identity). The stored model's
/// `INPUTS 1 x OUTPUTS 1 <names[0]>`.
pub fn tf_graph(rng: &mut Rng) -> Generated {
    let string_input = rng.chance(20);
    let dims = rng.pick(&[vec![4], vec![2, 2], vec![1, 4]]).clone();
    let dims_i: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
    let mut attrs = vec![(
        "dtype",
        tf_type_attr(if string_input {
            tf_type::STRING
        } else {
            tf_type::FLOAT
        }),
    )];
    if rng.chance(60) {
        let shape = if string_input {
            tf_shape(Some(&[]))
        } else {
            tf_shape(Some(&dims_i))
        };
        attrs.push(("shape", Pb::default().msg(7, shape)));
    }
    let mut b = TfBuild {
        nodes: vec![tf_node("x", "Placeholder", &[], &attrs)],
        floats: Vec::new(),
        strings: Vec::new(),
        next: 0,
    };
    if string_input {
        b.strings.push("x".into());
        // Float data still has a source.
        let c = b.input_for(rng, 'f');
        b.floats.push(c);
    } else {
        b.floats.push("x".into());
    }
    let mut generated = Generated::new(Vec::new());
    let count = 1 + rng.below(3);
    let mut output = None;
    let mut names = Vec::new();
    for k in 0..count {
        let (op, slots, has_output) = *pick_allowed(rng, TF_OPS, |o| o.0);
        let mut inputs: Vec<String> = slots.chars().map(|s| b.input_for(rng, s)).collect();
        if rng.chance(3) {
            inputs.push(rng.pick(&["x:1", "^x", "nowhere", "x:-1", ""]).to_string());
        }
        let name = format!("op{k}");
        let mut file_stream = false;
        let attrs = tf_attrs(rng, op, &mut file_stream);
        b.nodes.push(tf_node(&name, op, &inputs, &attrs));
        generated.ops.push(op.to_owned());
        if TF_FILE_OPS.contains(&op) {
            generated.refuse(format!("TF operation {op}"));
        }
        if TF_OTHER_FILE_OPS.contains(&op) || file_stream {
            generated.other_file_ops.push(if file_stream {
                "PrintV2(file)".to_owned()
            } else {
                op.to_owned()
            });
        }
        names.push(name.clone());
        if has_output {
            output = Some(name.clone());
            match op {
                "ReadFile" | "AsString" | "StringJoin" | "RegexReplace" | "ReduceJoin"
                | "Substr" => b.strings.push(name),
                "MatchingFiles" | "StringSplit" | "RestoreV2" | "WholeFileReaderV2" => {
                    b.strings.push(name.clone());
                    b.floats.push(name);
                }
                _ => b.floats.push(name),
            }
        }
    }
    let last_has_output = output.as_deref() == names.last().map(String::as_str);
    if !last_has_output || rng.chance(30) {
        // Fetch an Identity that runs after every node (control inputs).
        let source = if string_input {
            "x"
        } else {
            b.floats[0].as_str()
        }
        .to_owned();
        let mut inputs = vec![source];
        inputs.extend(names.iter().map(|n| format!("^{n}")));
        let t = if string_input {
            tf_type::STRING
        } else {
            tf_type::FLOAT
        };
        b.nodes.push(tf_node(
            "out",
            "Identity",
            &inputs,
            &[("T", tf_type_attr(t))],
        ));
        output = Some("out".to_owned());
    }
    let mut g = Pb::default();
    if rng.chance(50) {
        // Nodes in any order (TF sorts them).
        let n = b.nodes.len();
        for _ in 0..n {
            let (i, j) = (rng.below(n), rng.below(n));
            b.nodes.swap(i, j);
        }
    }
    for n in &b.nodes {
        g = g.msg(1, n.clone());
    }
    g = g.msg(4, Pb::default().int(1, 1205).int(2, 0));
    generated.bytes = g.0;
    generated.names = vec![output.unwrap_or_else(|| "x".to_owned())];
    generated.input = if string_input {
        let path = *rng.pick(TF_STRINGS);
        ("STRING", vec![1], vec![path.to_owned()])
    } else {
        float_input(rng, &dims)
    };
    generated
}
