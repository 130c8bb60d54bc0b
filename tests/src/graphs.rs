//! Random graphs and scripts for the live fuzzer (`tests/tests/fuzz_live.rs`): ONNX
//! `ModelProto`s and TensorFlow `GraphDef`s built from real operators by a small protobuf
//! writer, TorchScript scripts that chain torch calls, and TorchScript scripts whose entry
//! points call random commands through `redis.execute`. Each generated item says whether
//! a store of it must be refused by the backends' sandboxes (external data and custom
//! operator domains in ONNX, file operations in TF, `torch.from_file` in TorchScript).
//!
//! Everything stays small: shapes have a few elements, every size or repeat count a graph
//! can compute comes from a small constant (never from computed data), and loops have a
//! constant trip count, so a run is quick and allocates little whatever the operators do.

use std::sync::OnceLock;

use crate::hardening::Rng;

/// Whether the generators leave out `name`: an operator (ONNX op_type, TF op), a command
/// a script calls, or one of the tags `onnx-empty-input` (an ONNX node input named "").
/// From `$REDISAI_LIVE_FUZZ_AVOID`, comma-separated, to look past a known crash while it
/// is being fixed (the cases then differ from those of the same seed without it).
pub fn avoided(name: &str) -> bool {
    static AVOID: OnceLock<Vec<String>> = OnceLock::new();
    AVOID
        .get_or_init(|| {
            std::env::var("REDISAI_LIVE_FUZZ_AVOID")
                .unwrap_or_default()
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .iter()
        .any(|a| a.eq_ignore_ascii_case(name))
}

/// One of `items` whose name (by `name`) is not [`avoided`] (any, if all are).
pub fn pick_allowed<'a, T>(rng: &mut Rng, items: &'a [T], name: impl Fn(&T) -> &str) -> &'a T {
    for _ in 0..64 {
        let item = rng.pick(items);
        if !avoided(name(item)) {
            return item;
        }
    }
    rng.pick(items)
}

pub use crate::protobuf::Pb;

/// Files a hostile model or script would like to read (relative ones resolve against the
/// server's working directory, its data directory).
pub const LOCATIONS: &[&str] = &[
    "../../etc/passwd",
    "../../../../../../etc/hostname",
    "dump.rdb",
    "appendonlydir/appendonly.aof.1.incr.aof",
    "nodes.conf",
    "/etc/passwd",
    "./../redisai-fuzz-missing",
    "",
];

/// Where a generated TF graph would write, were it allowed to (the parent of the server's
/// data directory: the temp directory); the fuzzer checks afterwards that nothing was.
pub const WRITTEN: &str = "../redisai-fuzz-written";

/// Where a `PrintV2` node may print to (`file://` output stream); reported, not refused.
pub const PRINTED: &str = "redisai-fuzz-printv2";

/// Small values for input tensors and constants.
const SMALL_FLOATS: &[f32] = &[-2.0, -1.0, 0.0, 0.5, 1.0, 2.0, 3.0];

/// One of `items` (numbers).
fn one_i64(rng: &mut Rng, items: &[i64]) -> i64 {
    items[rng.below(items.len())]
}

/// One of `items`.
fn one<'a>(rng: &mut Rng, items: &[&'a str]) -> &'a str {
    items[rng.below(items.len())]
}

/// One generated model or script, and whether a store of it must be refused.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The model's bytes or the script's source.
    pub bytes: Vec<u8>,
    /// Why a store of it must be refused, when it must.
    pub must_refuse: Option<String>,
    /// The operations, for messages.
    pub ops: Vec<String>,
    /// TF: the output node; scripts: the entry points.
    pub names: Vec<String>,
    /// Scripts: the entry points whose first statement calls a command that scripts may
    /// never call (their runs must fail).
    pub refused_entries: Vec<String>,
    /// The input the model or script is run with: dtype, dims, values.
    pub input: (&'static str, Vec<usize>, Vec<String>),
    /// Other operations that reach files, refused or not by the sandbox (reported).
    pub other_file_ops: Vec<String>,
}

impl Generated {
    fn new(bytes: Vec<u8>) -> Generated {
        Generated {
            bytes,
            must_refuse: None,
            ops: Vec::new(),
            names: Vec::new(),
            refused_entries: Vec::new(),
            input: ("FLOAT", vec![4], vec!["1".into(); 4]),
            other_file_ops: Vec::new(),
        }
    }

    fn refuse(&mut self, why: impl Into<String>) {
        if self.must_refuse.is_none() {
            self.must_refuse = Some(why.into());
        }
    }
}

fn float_input(rng: &mut Rng, dims: &[usize]) -> (&'static str, Vec<usize>, Vec<String>) {
    // The declared shape mostly; else another small one.
    let dims = if rng.chance(80) {
        dims.to_vec()
    } else {
        rng.pick(&[vec![4], vec![2, 2], vec![1], vec![3, 1], vec![1, 4]])
            .clone()
    };
    let n: usize = dims.iter().product();
    let values = (0..n).map(|_| rng.pick(SMALL_FLOATS).to_string()).collect();
    ("FLOAT", dims, values)
}

// ---------------------------------------------------------------------------------------
// ONNX

/// ONNX `TensorProto.DataType`.
mod onnx_type {
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

const ONNX_ATTR_NAMES: &[&str] = &[
    "axis",
    "axes",
    "perm",
    "to",
    "alpha",
    "beta",
    "value",
    "shape",
    "mode",
    "keepdims",
    "transA",
    "transB",
    "equation",
    "body",
    "then_branch",
    "else_branch",
    "dtype",
    "seed",
    "num_outputs",
    "k",
    "upper",
    "location",
    "ep_cache_context",
    "embed_mode",
    "",
];

/// What the ONNX generator has built so far.
struct OnnxBuild {
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
    fn name(&mut self, prefix: &str) -> String {
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

fn value_info(name: &str, elem_type: i64, dims: Option<&[usize]>) -> Pb {
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

fn attribute(name: &str) -> Pb {
    Pb::default().str(1, name)
}

fn int_attr(name: &str, v: i64) -> Pb {
    attribute(name).int(3, v).int(20, 2)
}

fn ints_attr(name: &str, v: &[i64]) -> Pb {
    let mut a = attribute(name);
    for &x in v {
        a = a.int(8, x);
    }
    a.int(20, 7)
}

fn float_attr(name: &str, v: f32) -> Pb {
    attribute(name).float(2, v).int(20, 1)
}

fn str_attr(name: &str, v: &str) -> Pb {
    attribute(name).str(4, v).int(20, 3)
}

fn tensor_attr(name: &str, t: Pb) -> Pb {
    attribute(name).msg(5, t).int(20, 4)
}

fn graph_attr(name: &str, g: Pb) -> Pb {
    attribute(name).msg(6, g).int(20, 5)
}

fn small_float_tensor(rng: &mut Rng) -> Pb {
    let n = 1 + rng.below(4);
    let values: Vec<f32> = (0..n).map(|_| *rng.pick(SMALL_FLOATS)).collect();
    Pb::default()
        .int(1, n as i64)
        .int(2, onnx_type::FLOAT)
        .packed_floats(4, &values)
}

/// A branch or body subgraph: `inputs` (name, type), one node, and its outputs.
fn subgraph(nodes: &[Pb], inputs: &[(&str, i64)], outputs: &[(&str, i64)]) -> Pb {
    let mut g = Pb::default();
    for n in nodes {
        g = g.msg(1, n.clone());
    }
    g = g.str(2, "sub");
    for (name, ty) in inputs {
        g = g.msg(11, value_info(name, *ty, None));
    }
    for (name, ty) in outputs {
        g = g.msg(12, value_info(name, *ty, None));
    }
    g
}

fn onnx_node(op: &str, domain: &str, inputs: &[String], outputs: &[String]) -> Pb {
    let mut n = Pb::default();
    for i in inputs {
        n = n.str(1, i);
    }
    for o in outputs {
        n = n.str(2, o);
    }
    n = n.str(4, op);
    if !domain.is_empty() {
        n = n.str(7, domain);
    }
    n
}

/// Attributes for `op` (its usual ones, with small values), sometimes wrong or extra.
fn onnx_attrs(rng: &mut Rng, b: &mut OnnxBuild, op: &str) -> Vec<Pb> {
    let axis = rng.below(4) as i64 - 2;
    let mut attrs = match op {
        "Softmax" | "Flatten" | "Concat" | "Gather" | "GatherElements" | "ArgMax" | "Split"
        | "LayerNormalization" | "CumSum" | "TopK" | "Compress" => vec![int_attr("axis", axis)],
        "LeakyRelu" | "Elu" => vec![float_attr("alpha", *rng.pick(SMALL_FLOATS))],
        "Gemm" => vec![int_attr("transA", rng.below(2) as i64)],
        "Transpose" => vec![ints_attr(
            "perm",
            rng.pick::<&[i64]>(&[&[0], &[1, 0], &[0, 1], &[2, 0, 1]]),
        )],
        "Cast" => vec![int_attr(
            "to",
            *rng.pick(&[
                onnx_type::FLOAT,
                onnx_type::INT32,
                onnx_type::INT64,
                onnx_type::DOUBLE,
                onnx_type::BOOL,
                onnx_type::STRING,
                0,
                99,
            ]),
        )],
        "Einsum" => vec![str_attr(
            "equation",
            one(
                rng,
                &[
                    "i,i->i",
                    "ij,jk->ik",
                    "i,j->ij",
                    "...,...->...",
                    "ii->i",
                    "->",
                    "a",
                ],
            ),
        )],
        "Trilu" => vec![int_attr("upper", rng.below(2) as i64)],
        "DepthToSpace" | "SpaceToDepth" => vec![int_attr("blocksize", rng.below(4) as i64)],
        "MaxPool" | "AveragePool" | "MaxUnpool" | "Conv" | "ConvTranspose" => vec![
            ints_attr(
                "kernel_shape",
                rng.pick::<&[i64]>(&[&[2], &[1, 1], &[2, 2], &[0]]),
            ),
            ints_attr(
                "strides",
                rng.pick::<&[i64]>(&[&[1], &[1, 1], &[2, 2], &[0, 1]]),
            ),
        ],
        "Upsample" => vec![str_attr("mode", one(rng, &["nearest", "linear"]))],
        "Multinomial" => vec![int_attr("sample_size", 1 + rng.below(3) as i64)],
        "ReverseSequence" => vec![
            int_attr("batch_axis", rng.below(2) as i64),
            int_attr("time_axis", rng.below(2) as i64),
        ],
        "LpNormalization" => vec![int_attr("p", rng.below(4) as i64)],
        "DFT" => vec![int_attr("onesided", rng.below(2) as i64)],
        "Shrink" => vec![float_attr("lambd", *rng.pick(SMALL_FLOATS))],
        "Mod" => vec![int_attr("fmod", 1)],
        "ReduceMean" | "ReduceMax" => vec![int_attr("keepdims", rng.below(2) as i64)],
        "Resize" => vec![str_attr("mode", one(rng, &["nearest", "linear", "cubic"]))],
        "Pad" => vec![str_attr("mode", one(rng, &["constant", "reflect", "edge"]))],
        "RandomNormal" => vec![
            ints_attr("shape", rng.pick::<&[i64]>(&[&[2], &[1, 3], &[4]])),
            int_attr("dtype", onnx_type::FLOAT),
        ],
        "ConstantOfShape" => vec![tensor_attr(
            "value",
            Pb::default()
                .int(1, 1)
                .int(2, onnx_type::FLOAT)
                .packed_floats(4, &[1.5]),
        )],
        "StringNormalizer" => vec![str_attr("case_change_action", "LOWER")],
        "Normalizer" => vec![str_attr("norm", one(rng, &["MAX", "L1", "L2"]))],
        "Scaler" => vec![attribute("scale").float(7, 2.0).int(20, 6)],
        "Constant" => vec![tensor_attr("value", small_float_tensor(rng))],
        "If" => {
            let branch = |rng: &mut Rng, b: &mut OnnxBuild| {
                let out = b.name("br");
                let node = if rng.chance(50) {
                    onnx_node(
                        "Identity",
                        "",
                        &["x".to_owned()],
                        std::slice::from_ref(&out),
                    )
                } else {
                    onnx_node("Constant", "", &[], std::slice::from_ref(&out))
                        .msg(5, tensor_attr("value", small_float_tensor(rng)))
                };
                subgraph(&[node], &[], &[(out.as_str(), onnx_type::FLOAT)])
            };
            let then_g = branch(rng, b);
            let else_g = branch(rng, b);
            vec![
                graph_attr("then_branch", then_g),
                graph_attr("else_branch", else_g),
            ]
        }
        "Loop" => {
            // Body: (iteration, condition, carried) -> (condition, carried op).
            let op = *rng.pick(&["Relu", "Neg", "Identity", "Abs"]);
            let body = subgraph(
                &[
                    onnx_node("Identity", "", &["cond_in".into()], &["cond_out".into()]),
                    onnx_node(op, "", &["v_in".into()], &["v_out".into()]),
                ],
                &[
                    ("iter", onnx_type::INT64),
                    ("cond_in", onnx_type::BOOL),
                    ("v_in", onnx_type::FLOAT),
                ],
                &[("cond_out", onnx_type::BOOL), ("v_out", onnx_type::FLOAT)],
            );
            vec![graph_attr("body", body)]
        }
        "Scan" => {
            let body = subgraph(
                &[onnx_node(
                    "Identity",
                    "",
                    &["s_in".into()],
                    &["s_out".into()],
                )],
                &[("s_in", onnx_type::FLOAT)],
                &[("s_out", onnx_type::FLOAT)],
            );
            vec![graph_attr("body", body), int_attr("num_scan_inputs", 1)]
        }
        "EPContext" => vec![
            str_attr("ep_cache_context", one(rng, LOCATIONS)),
            int_attr("embed_mode", 0),
            str_attr("source", "x"),
        ],
        _ => Vec::new(),
    };
    if !attrs.is_empty() && rng.chance(8) {
        attrs.remove(rng.below(attrs.len()));
    }
    if rng.chance(10) {
        // An extra attribute, of any kind.
        let name = *rng.pick(ONNX_ATTR_NAMES);
        attrs.push(match rng.below(6) {
            0 => int_attr(name, rng.next_u64() as i64),
            1 => ints_attr(name, &[rng.below(5) as i64 - 2, 1]),
            2 => float_attr(name, f32::from_bits(rng.next_u64() as u32)),
            3 => str_attr(name, one(rng, LOCATIONS)),
            4 => tensor_attr(name, small_float_tensor(rng)),
            _ => attribute(name).int(20, rng.below(16) as i64),
        });
    }
    attrs
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

// ---------------------------------------------------------------------------------------
// TensorFlow

/// TensorFlow `DataType`.
mod tf_type {
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

fn tf_type_attr(v: i64) -> Pb {
    Pb::default().int(6, v)
}

fn tf_int_attr(v: i64) -> Pb {
    Pb::default().int(3, v)
}

fn tf_bool_attr(v: bool) -> Pb {
    Pb::default().int(5, v as i64)
}

fn tf_str_attr(v: &str) -> Pb {
    Pb::default().str(2, v)
}

fn tf_shape(dims: Option<&[i64]>) -> Pb {
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

fn tf_type_list(types: &[i64]) -> Pb {
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

/// The attributes `op` needs (with small values), sometimes one missing or one extra.
fn tf_attrs(rng: &mut Rng, op: &str, file_stream: &mut bool) -> Vec<(&'static str, Pb)> {
    let t = || ("T", tf_type_attr(tf_type::FLOAT));
    let int32 = tf_type_attr(tf_type::INT32);
    let mut attrs: Vec<(&'static str, Pb)> = match op {
        "Reshape" => vec![t(), ("Tshape", int32)],
        "Sum" | "Mean" => vec![
            t(),
            ("Tidx", int32),
            ("keep_dims", tf_bool_attr(rng.chance(50))),
        ],
        "ConcatV2" => vec![t(), ("N", tf_int_attr(2)), ("Tidx", int32)],
        "Pack" => vec![
            t(),
            ("N", tf_int_attr(2)),
            ("axis", tf_int_attr(rng.below(2) as i64)),
        ],
        "Shape" | "Size" => vec![t(), ("out_type", int32)],
        "Fill" => vec![t(), ("index_type", int32)],
        "Tile" => vec![t(), ("Tmultiples", int32)],
        "ExpandDims" => vec![t(), ("Tdim", int32)],
        "Transpose" => vec![t(), ("Tperm", int32)],
        "Squeeze" => vec![t(), ("squeeze_dims", Pb::default().msg(1, Pb::default()))],
        "Range" => vec![("Tidx", int32)],
        "Slice" | "Pad" | "MirrorPad" => vec![
            t(),
            ("Index", int32.clone()),
            ("Tpaddings", int32.clone()),
            ("mode", tf_str_attr(one(rng, &["REFLECT", "SYMMETRIC"]))),
        ],
        "StridedSlice" => vec![
            t(),
            ("Index", int32),
            ("begin_mask", tf_int_attr(rng.below(4) as i64)),
            ("end_mask", tf_int_attr(rng.below(4) as i64)),
            ("ellipsis_mask", tf_int_attr(rng.below(3) as i64)),
            ("new_axis_mask", tf_int_attr(rng.below(3) as i64)),
            ("shrink_axis_mask", tf_int_attr(rng.below(3) as i64)),
        ],
        "BroadcastTo" | "ReverseV2" | "Max" | "Prod" | "Cumsum" => vec![
            t(),
            ("Tidx", int32),
            ("keep_dims", tf_bool_attr(rng.chance(50))),
        ],
        "GatherV2" => vec![
            ("Tparams", tf_type_attr(tf_type::FLOAT)),
            ("Tindices", int32.clone()),
            ("Taxis", int32),
            ("batch_dims", tf_int_attr(rng.below(3) as i64 - 1)),
        ],
        "Split" => vec![t(), ("num_split", tf_int_attr(1 + rng.below(3) as i64))],
        "ArgMax" => vec![t(), ("Tidx", int32.clone()), ("output_type", int32)],
        "TopKV2" => vec![t(), ("sorted", tf_bool_attr(true))],
        "OneHot" => vec![
            t(),
            ("TI", int32),
            ("axis", tf_int_attr(rng.below(3) as i64 - 1)),
        ],
        "Unpack" => vec![
            t(),
            ("num", tf_int_attr(rng.below(4) as i64)),
            ("axis", tf_int_attr(rng.below(3) as i64 - 1)),
        ],
        "DepthToSpace" => vec![t(), ("block_size", tf_int_attr(rng.below(3) as i64))],
        "Conv2D" => vec![
            t(),
            (
                "strides",
                Pb::default().msg(1, Pb::default().packed_ints(3, &[1, 1, 1, 1])),
            ),
            ("padding", tf_str_attr(one(rng, &["SAME", "VALID"]))),
        ],
        "MaxPool" => vec![
            t(),
            (
                "ksize",
                Pb::default().msg(1, Pb::default().packed_ints(3, &[1, 2, 2, 1])),
            ),
            (
                "strides",
                Pb::default().msg(1, Pb::default().packed_ints(3, &[1, 1, 1, 1])),
            ),
            ("padding", tf_str_attr("VALID")),
        ],
        "ScatterNd" => vec![t(), ("Tindices", int32)],
        "StringToNumber" => vec![("out_type", tf_type_attr(tf_type::FLOAT))],
        "DecodeRaw" => vec![
            ("out_type", tf_type_attr(tf_type::FLOAT)),
            ("little_endian", tf_bool_attr(true)),
        ],
        "Bitcast" => vec![
            t(),
            (
                "type",
                tf_type_attr(one_i64(rng, &[tf_type::INT32, tf_type::DOUBLE, 4])),
            ),
        ],
        "BatchMatMulV2" => vec![t(), ("adj_x", tf_bool_attr(rng.chance(30)))],
        "Unique" => vec![t(), ("out_idx", int32)],
        "SegmentSum" | "UnsortedSegmentSum" => {
            vec![t(), ("Tindices", int32.clone()), ("Tnumsegments", int32)]
        }
        "Bincount" => vec![t()],
        "SparseToDense" => vec![
            t(),
            ("Tindices", int32),
            ("validate_indices", tf_bool_attr(rng.chance(50))),
        ],
        "Einsum" => vec![
            t(),
            ("N", tf_int_attr(2)),
            (
                "equation",
                tf_str_attr(one(
                    rng,
                    &["i,i->i", "ij,jk->ik", "...,...->...", "ii->i", "a"],
                )),
            ),
        ],
        "InTopKV2" => vec![t()],
        "ResizeNearestNeighbor" => vec![t(), ("align_corners", tf_bool_attr(rng.chance(50)))],
        "SpaceToBatchND" => vec![t(), ("Tblock_shape", int32.clone()), ("Tpaddings", int32)],
        "AvgPool" => vec![
            t(),
            (
                "ksize",
                Pb::default().msg(1, Pb::default().packed_ints(3, &[1, 2, 2, 1])),
            ),
            (
                "strides",
                Pb::default().msg(1, Pb::default().packed_ints(3, &[1, 1, 1, 1])),
            ),
            ("padding", tf_str_attr("VALID")),
        ],
        "LRN" => vec![t(), ("depth_radius", tf_int_attr(rng.below(4) as i64))],
        "FFT" => vec![("Tcomplex", tf_type_attr(8))],
        "TensorScatterUpdate" => vec![t(), ("Tindices", int32)],
        "Cast" => vec![
            ("SrcT", tf_type_attr(tf_type::FLOAT)),
            (
                "DstT",
                tf_type_attr(*rng.pick(&[
                    tf_type::FLOAT,
                    tf_type::INT32,
                    tf_type::INT64,
                    tf_type::DOUBLE,
                    tf_type::BOOL,
                    tf_type::STRING,
                ])),
            ),
            ("Truncate", tf_bool_attr(false)),
        ],
        "MatMul" => vec![
            t(),
            ("transpose_a", tf_bool_attr(rng.chance(30))),
            ("transpose_b", tf_bool_attr(rng.chance(30))),
        ],
        "BiasAdd" => vec![t(), ("data_format", tf_str_attr("NHWC"))],
        "AsString" => vec![
            t(),
            ("precision", tf_int_attr(-1)),
            ("scientific", tf_bool_attr(false)),
            ("shortest", tf_bool_attr(false)),
            ("width", tf_int_attr(-1)),
            ("fill", tf_str_attr("")),
        ],
        "StringJoin" => vec![("N", tf_int_attr(2)), ("separator", tf_str_attr("/"))],
        "ReduceJoin" => vec![
            ("keep_dims", tf_bool_attr(false)),
            ("separator", tf_str_attr("")),
        ],
        "RegexReplace" => vec![("replace_global", tf_bool_attr(true))],
        "StringSplit" => vec![("skip_empty", tf_bool_attr(true))],
        "StringLength" => vec![("unit", tf_str_attr("BYTE"))],
        "Substr" => vec![("T", int32), ("unit", tf_str_attr("BYTE"))],
        "PrintV2" => {
            let stream = if rng.chance(30) {
                *file_stream = true;
                format!("file://{PRINTED}")
            } else {
                rng.pick(&["stderr", "log(info)", "stdout"]).to_string()
            };
            vec![
                ("output_stream", tf_str_attr(&stream)),
                ("end", tf_str_attr("\n")),
            ]
        }
        "RandomUniform" => vec![
            ("T", int32),
            ("dtype", tf_type_attr(tf_type::FLOAT)),
            ("seed", tf_int_attr(1)),
            ("seed2", tf_int_attr(2)),
        ],
        "Save" => vec![("T", tf_type_list(&[tf_type::FLOAT]))],
        "SaveV2" | "RestoreV2" => vec![("dtypes", tf_type_list(&[tf_type::FLOAT]))],
        "ImmutableConst" => vec![
            ("dtype", tf_type_attr(tf_type::FLOAT)),
            ("shape", Pb::default().msg(7, tf_shape(Some(&[4])))),
            ("memory_region_name", tf_str_attr(one(rng, LOCATIONS))),
        ],
        "WholeFileReaderV2" => vec![
            ("container", tf_str_attr("")),
            ("shared_name", tf_str_attr("")),
        ],
        "ReadFile" | "WriteFile" | "MatchingFiles" | "NoOp" => Vec::new(),
        _ => vec![t()],
    };
    if !attrs.is_empty() && rng.chance(8) {
        attrs.remove(rng.below(attrs.len()));
    }
    if rng.chance(10) {
        let name = *rng.pick(&["T", "dtype", "N", "value", "shape", "_class", "Tidx", "x"]);
        let value = match rng.below(5) {
            0 => tf_type_attr(rng.below(30) as i64),
            1 => tf_int_attr(rng.next_u64() as i64),
            2 => tf_str_attr(one(rng, LOCATIONS)),
            3 => Pb::default().msg(7, tf_shape(None)),
            _ => Pb::default().float(4, f32::from_bits(rng.next_u64() as u32)),
        };
        attrs.push((name, value));
    }
    attrs
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

// ---------------------------------------------------------------------------------------
// TorchScript

/// Torch calls a script chains: `{v}` and `{w}` are earlier tensors, `{n}` a small count.
const TORCH_CALLS: &[&str] = &[
    "torch.add({v}, {w})",
    "torch.relu({v})",
    "{v}.sum()",
    "torch.cat([{v}, {w}])",
    "torch.zeros([{n}])",
    "torch.ones([{n}, {n}])",
    "{v} * 2",
    "{v} + 1",
    "torch.matmul({v}, {w})",
    "{v}.reshape([-1])",
    "torch.stack([{v}, {w}])",
    "{v}.view([{n}, -1])",
    "torch.exp({v})",
    "{v}.to(torch.int64)",
    "{v}.float()",
    "torch.flip({v}, [0])",
    "{v}[0:{n}]",
    "torch.mean({v})",
    "torch.arange({n})",
    "torch.tensor([{n}, {n}])",
    "torch.sort({v})[0]",
    "torch.cumsum({v}, 0)",
    "torch.where({v} > 0, {v}, {w})",
    "torch.max({v})",
    "{v}.t()",
    "torch.softmax({v}, 0)",
    "{v}.unsqueeze(0)",
    "{v}.squeeze()",
    "torch.rand([{n}])",
    "{v}.repeat([{n}])",
    "{v}.clone()",
    "torch.clamp({v}, min=0.0)",
    "torch.sigmoid({v})",
    "{v}.abs()",
    "torch.full([{n}], 7)",
    "{v} / {w}",
    "torch.tensor([len(args), len(keys)])",
    "{v}.contiguous()",
    "{v}.transpose(0, -1)",
    "torch.tensor([float(len(a)) for a in args] + [1.0])",
    "torch.zeros([-{n}])",
    "{v}.view([-1, 0])",
    "torch.index_select({v}, 0, torch.tensor([{n}, -{n}]))",
    "{v}[{n}]",
    "torch.narrow({v}, 0, {n}, 2)",
    "torch.gather({v}, 0, torch.tensor([[{n}]]))",
    "{v}.expand([{n}, -1, 2])",
    "torch.nonzero({v})",
    "torch.unique({v})",
    "{v}.to(torch.uint8)",
    "torch.topk({v}, {n})[0]",
    "torch.kthvalue({v}, {n})[0]",
    "torch.linalg.inv({v})",
];

/// Calls that read a file: a store of a script with one must be refused.
const TORCH_FROM_FILE: &[&str] = &[
    "torch.from_file(args[0], False, 10, dtype=torch.uint8)",
    "torch.from_file(\"../../etc/passwd\", False, 10, dtype=torch.uint8)",
    "torch.from_file(\"dump.rdb\", None, 64, dtype=torch.uint8)",
    "torch.from_file(keys[0], True, 10, dtype=torch.uint8)",
    "torch.from_file(filename=args[0], shared=False, size=4, dtype=torch.float32)",
];

const SCRIPT_SIGNATURE: &str = "(tensors: List[Tensor], keys: List[str], args: List[str])";

/// A TorchScript script with entry point `f` (and now and then a helper `g` it calls):
/// a chain of 1-5 torch calls on the input tensor; now and then one of them is
/// `torch.from_file` (plainly, in a branch never taken, or in the helper), which the
/// TORCH sandbox must refuse at store.
pub fn torch_script(rng: &mut Rng) -> Generated {
    let mut lines = Vec::new();
    let mut vars = vec!["t".to_owned()];
    let mut generated = Generated::new(Vec::new());
    let hostile = rng.chance(20);
    let hostile_at = rng.below(5);
    let count = 1 + rng.below(5);
    let helper = rng.chance(20);
    let mut helper_lines = Vec::new();
    let (mut file_call, mut file_var) = (None, None);
    for k in 0..count {
        let call = if hostile && k == hostile_at.min(count - 1) {
            file_call = Some(*rng.pick(TORCH_FROM_FILE));
            file_var = Some(format!("v{k}"));
            file_call.unwrap_or_default()
        } else {
            *rng.pick(TORCH_CALLS)
        };
        let fill = |rng: &mut Rng, vars: &[String]| {
            call.replace("{v}", rng.pick(vars).as_str())
                .replace("{w}", rng.pick(vars).as_str())
                .replace("{n}", &(1 + rng.below(3)).to_string())
        };
        let expr = fill(rng, &vars);
        generated
            .ops
            .push(call.split('(').next().unwrap_or(call).to_owned());
        let var = format!("v{k}");
        if call.contains("from_file") && helper {
            helper_lines.push(format!("    return {expr}"));
            lines.push(format!("    {var} = g(tensors, keys, args)"));
        } else if call.contains("from_file") && rng.chance(30) {
            // In a branch no run takes.
            lines.push(format!("    {var} = tensors[0]"));
            lines.push("    if len(args) > 1000:".to_owned());
            lines.push(format!("        {var} = {expr}"));
        } else {
            lines.push(format!("    {var} = {expr}"));
        }
        vars.push(var);
    }
    let mut ret = if rng.chance(15) {
        format!("[{}, {}]", rng.pick(&vars), rng.pick(&vars))
    } else {
        vars.last().cloned().unwrap_or_default()
    };
    if let (Some(call), Some(var)) = (file_call, file_var) {
        // What from_file returns is returned (TorchScript drops an unused call, which
        // then never runs: such scripts are counted apart), except in a helper, which
        // keeps its call whatever the caller does with its result.
        if helper || rng.chance(85) {
            if !helper && !ret.contains(&var) {
                ret = if rng.chance(50) {
                    var
                } else {
                    format!("[{ret}, {var}]")
                };
            }
            generated.refuse(format!("torch.from_file: {call}"));
        } else {
            generated
                .other_file_ops
                .push("from_file (result maybe unused)".to_owned());
        }
    }
    let mut source = String::new();
    if !helper_lines.is_empty() {
        source += &format!("def g{SCRIPT_SIGNATURE}:\n{}\n\n", helper_lines.join("\n"));
    }
    source += &format!(
        "def f{SCRIPT_SIGNATURE}:\n    t = tensors[0]\n{}\n    return {ret}\n",
        lines.join("\n")
    );
    generated.bytes = source.into_bytes();
    generated.names = vec!["f".to_owned()];
    generated.input = float_input(rng, &[2, 2]);
    generated
}

/// Commands a generated script calls through `redis.execute`: every AI.* command and
/// ordinary Redis ones.
pub const SCRIPT_COMMANDS: &[&str] = &[
    "AI._MODELSCAN",
    "AI._SCRIPTSCAN",
    "AI.INFO",
    "AI.TENSORSET",
    "AI.TENSORGET",
    "AI.MODELGET",
    "AI.MODELDEL",
    "AI.SCRIPTGET",
    "AI.SCRIPTDEL",
    "AI.CONFIG",
    "AI.MODELSTORE",
    "AI.MODELSET",
    "AI.MODELEXECUTE",
    "AI.MODELRUN",
    "AI.SCRIPTSTORE",
    "AI.SCRIPTSET",
    "AI.SCRIPTEXECUTE",
    "AI.SCRIPTRUN",
    "AI.DAGEXECUTE",
    "AI.DAGEXECUTE_RO",
    "AI.DAGRUN",
    "AI.DAGRUN_RO",
    "GET",
    "SET",
    "INCR",
    "LRANGE",
    "RPUSH",
    "DEL",
    "EXISTS",
    "TYPE",
    "APPEND",
    "STRLEN",
    "HSET",
    "HGETALL",
    "PING",
    "ECHO",
    "ZUNION",
    "LMPOP",
    "SINTERCARD",
    "GEORADIUS",
    "ZDIFFSTORE",
    "FLUSHALL",
    "FLUSHDB",
    "CONFIG",
    "MODULE",
    "SHUTDOWN",
    "DEBUG",
    "KEYS",
    "SAVE",
    "ACL",
    "SELECT",
    "MULTI",
    "EVAL",
    "BLPOP",
    "CLIENT",
    "SCRIPT",
];

/// Those of [`SCRIPT_COMMANDS`] a script may never call (the core refuses them before
/// anything else): a run whose first call is one of them must fail.
pub const REFUSED_IN_SCRIPTS: &[&str] = &[
    "AI.MODELSTORE",
    "AI.MODELSET",
    "AI.MODELEXECUTE",
    "AI.MODELRUN",
    "AI.SCRIPTSTORE",
    "AI.SCRIPTSET",
    "AI.SCRIPTEXECUTE",
    "AI.SCRIPTRUN",
    "AI.DAGEXECUTE",
    "AI.DAGEXECUTE_RO",
    "AI.DAGRUN",
    "AI.DAGRUN_RO",
    "AI.CONFIG",
    "FLUSHALL",
    "FLUSHDB",
    "CONFIG",
    "MODULE",
    "SHUTDOWN",
    "DEBUG",
    "KEYS",
    "SAVE",
    "ACL",
    "SELECT",
    "MULTI",
    "EVAL",
    "BLPOP",
    "CLIENT",
    "SCRIPT",
];

/// Literal arguments of the commands (never `canary`, the key no script may reach).
const SCRIPT_WORDS: &[&str] = &[
    "t1",
    "t2",
    "o:x",
    "o:m0",
    "o:s9",
    "plain",
    "secret",
    "FLOAT",
    "INT64",
    "STRING",
    "VALUES",
    "BLOB",
    "META",
    "RESETSTAT",
    "GET",
    "SET",
    "LOAD",
    "LOADBACKEND",
    "BACKENDSPATH",
    "MODEL_CHUNK_SIZE",
    "MODEL_EXECUTION_TIMEOUT",
    "INLINE_EXECUTION_LIMIT_US",
    "/tmp",
    "/tmp/x.so",
    "dir",
    "SEGFAULT",
    "SLEEP",
    "NOSAVE",
    "*",
    "0",
    "1",
    "2",
    "-1",
    "100",
    "9223372036854775807",
    "",
    "CPU",
    "ONNX",
    "INPUTS",
    "OUTPUTS",
    "|>",
];

/// Well-formed calls: a command and its arguments (`K`: one of the run's keys, `V`: a
/// value), allowed and refused.
const WELL_FORMED_CALLS: &[(&str, &str)] = &[
    ("GET", "K"),
    ("SET", "K V"),
    ("INCR", "K"),
    ("LRANGE", "K 0 -1"),
    ("RPUSH", "K V"),
    ("DEL", "K"),
    ("EXISTS", "K"),
    ("TYPE", "K"),
    ("APPEND", "K V"),
    ("STRLEN", "K"),
    ("HSET", "K f V"),
    ("HGETALL", "K"),
    ("PING", ""),
    ("ECHO", "V"),
    ("AI._MODELSCAN", ""),
    ("AI._SCRIPTSCAN", ""),
    ("AI.INFO", "K"),
    ("AI.INFO", "K RESETSTAT"),
    ("AI.TENSORSET", "K FLOAT 2 VALUES 1 V"),
    ("AI.TENSORGET", "K META"),
    ("AI.TENSORGET", "K VALUES"),
    ("AI.MODELGET", "K META"),
    ("AI.MODELDEL", "K"),
    ("AI.SCRIPTGET", "K"),
    ("AI.SCRIPTDEL", "K"),
    ("AI.CONFIG", "MODEL_CHUNK_SIZE 1"),
    ("AI.CONFIG", "LOADBACKEND TF /tmp/x.so"),
    ("AI.CONFIG", "GET MODEL_CHUNK_SIZE"),
    ("AI.MODELSTORE", "K ONNX CPU BLOB x"),
    ("AI.MODELEXECUTE", "K INPUTS 1 K OUTPUTS 1 K"),
    ("AI.SCRIPTEXECUTE", "K e0 KEYS 1 K"),
    ("AI.DAGEXECUTE", "ROUTING K |> AI.TENSORGET K"),
    ("FLUSHALL", ""),
    ("FLUSHDB", "ASYNC"),
    ("CONFIG", "SET dir /tmp"),
    ("CONFIG", "GET *"),
    ("MODULE", "LOAD /tmp/x.so"),
    ("MODULE", "UNLOAD ai"),
    ("SHUTDOWN", "NOSAVE"),
    ("DEBUG", "SEGFAULT"),
    ("DEBUG", "SLEEP 5"),
    ("KEYS", "*"),
    ("SAVE", ""),
    ("ACL", "SETUSER fuzz +@all"),
    ("SELECT", "1"),
    ("BLPOP", "K 0"),
    ("EVAL", "return 1 0"),
    ("CLIENT", "KILL TYPE normal"),
];

/// A Python string literal of printable ASCII `s` (quotes and backslashes escaped).
fn py_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_ascii_graphic() || c == ' ' => out.push(c),
            _ => out.push('?'),
        }
    }
    out.push('"');
    out
}

/// One argument of a `redis.execute` call: a literal, or one of the run's keys or args.
fn script_arg(rng: &mut Rng) -> String {
    match rng.below(10) {
        0 | 1 => format!("keys[{}]", rng.below(3)),
        2 => format!("args[{}]", rng.below(3)),
        3 => py_str(&(rng.next_u64() as i64).to_string()),
        _ => py_str(one(rng, SCRIPT_WORDS)),
    }
}

/// A script of 1-3 entry points `e0`.. whose bodies call random commands with random
/// arguments through `redis.execute` (their replies kept, turned into lists, strings or
/// numbers), now and then run a model through `redisAI.model_execute`, and return a
/// tensor.
pub fn execute_script(rng: &mut Rng) -> Generated {
    let mut generated = Generated::new(Vec::new());
    let entries = 1 + rng.below(3);
    let mut source = String::new();
    for e in 0..entries {
        let name = format!("e{e}");
        let mut body = Vec::new();
        let statements = *rng.pick(&[1, 1, 1, 2, 2, 3]);
        for s in 0..statements {
            if rng.chance(70) {
                // A well-formed call (most allowed ones run, as the default user).
                let (c, args) = loop {
                    let call = *pick_allowed(rng, WELL_FORMED_CALLS, |c| c.0);
                    if !REFUSED_IN_SCRIPTS.contains(&call.0) || rng.chance(30) {
                        break call;
                    }
                };
                if s == 0 && REFUSED_IN_SCRIPTS.contains(&c) {
                    generated.refused_entries.push(name.clone());
                }
                generated.ops.push(c.to_owned());
                let mut call = format!("redis.execute({}", py_str(c));
                for arg in args.split_whitespace() {
                    call += ", ";
                    call += &match arg {
                        "K" => format!("keys[{}]", if rng.chance(90) { 0 } else { 1 }),
                        "V" => match rng.below(4) {
                            0 => "args[0]".to_owned(),
                            1 => py_str(&rng.below(100).to_string()),
                            _ => py_str(one(rng, &["1", "2", "x", "-1", "0.5"])),
                        },
                        literal => py_str(literal),
                    };
                }
                call += ")";
                body.push(match c {
                    "LRANGE" | "AI._MODELSCAN" | "AI._SCRIPTSCAN" | "HGETALL" if rng.chance(50) => {
                        format!("    r{s} = redis.asList({call})\n    n{s} = len(r{s})")
                    }
                    "INCR" | "STRLEN" | "EXISTS" | "DEL" | "RPUSH" | "APPEND" if rng.chance(50) => {
                        format!("    r{s} = int(str({call}))")
                    }
                    _ if rng.chance(10) => {
                        generated.ops.push("model_execute".into());
                        format!(
                            "    {call}\n    r{s} = redisAI.model_execute(keys[0], [tensors[0]], 1)"
                        )
                    }
                    _ => format!("    {call}"),
                });
                continue;
            }
            let command = if rng.chance(8) {
                "args[0]".to_owned()
            } else {
                let c = *pick_allowed(rng, SCRIPT_COMMANDS, |c| c);
                if s == 0 && REFUSED_IN_SCRIPTS.contains(&c) {
                    generated.refused_entries.push(name.clone());
                }
                generated.ops.push(c.to_owned());
                py_str(c)
            };
            let mut call = format!("redis.execute({command}");
            for _ in 0..rng.below(5) {
                call += ", ";
                call += &script_arg(rng);
            }
            call += ")";
            body.push(match rng.below(6) {
                0 => format!("    r{s} = redis.asList({call})\n    n{s} = len(r{s})"),
                1 => format!("    r{s} = str({call})"),
                2 => format!("    r{s} = int(str({call}))"),
                3 if rng.chance(30) => {
                    generated.ops.push("model_execute".into());
                    format!(
                        "    {call}\n    r{s} = redisAI.model_execute(keys[0], [tensors[0]], 1)"
                    )
                }
                _ => format!("    {call}"),
            });
        }
        let ret = *rng.pick(&[
            "torch.tensor([1])",
            "torch.tensor([1])",
            "tensors[0]",
            "torch.tensor([len(keys), len(args)])",
            "[tensors[0], torch.zeros([2])]",
        ]);
        source += &format!(
            "def {name}{SCRIPT_SIGNATURE}:\n{}\n    return {ret}\n\n",
            body.join("\n")
        );
        generated.names.push(name);
    }
    generated.bytes = source.into_bytes();
    generated.input = float_input(rng, &[2]);
    generated
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generators_are_reproducible_and_flag_what_they_must() {
        let mut a = Rng::new(5);
        let mut b = Rng::new(5);
        let (mut onnx, mut tf, mut torch) = (0, 0, 0);
        for _ in 0..300 {
            let (x, y) = (onnx_model(&mut a), onnx_model(&mut b));
            assert_eq!(x.bytes, y.bytes);
            onnx += x.must_refuse.is_some() as usize;
            let g = tf_graph(&mut a);
            let _ = tf_graph(&mut b);
            tf += g.must_refuse.is_some() as usize;
            assert_eq!(
                g.must_refuse.is_some(),
                g.ops.iter().any(|op| TF_FILE_OPS.contains(&op.as_str()))
            );
            let s = torch_script(&mut a);
            let _ = torch_script(&mut b);
            let source = String::from_utf8(s.bytes).expect("UTF-8");
            assert!(s.must_refuse.is_none() || source.contains("from_file"));
            assert_eq!(
                s.must_refuse.is_some() || !s.other_file_ops.is_empty(),
                source.contains("from_file")
            );
            torch += s.must_refuse.is_some() as usize;
            let e = execute_script(&mut a);
            let _ = execute_script(&mut b);
            assert!(String::from_utf8(e.bytes)
                .expect("UTF-8")
                .contains("def e0"));
        }
        assert!(onnx > 20 && tf > 20 && torch > 20, "{onnx} {tf} {torch}");
    }
}
