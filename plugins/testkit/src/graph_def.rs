//! A tiny GraphDef writer for tests (protobuf wire format by hand, field numbers of
//! tensorflow/core/framework/{graph,node_def,attr_value,function,op_def}.proto), for graphs
//! that must not be committed as files: the hostile ones the load policy refuses. Used by
//! the TF plugin's tests and the end-to-end tests.

use crate::protobuf::Pb;

/// tensorflow.DataType values.
pub const DT_FLOAT: u64 = 1;
pub const DT_STRING: u64 = 7;
pub const DT_INT32: u64 = 3;

pub fn field_varint(number: u32, value: u64) -> Vec<u8> {
    Pb::default().int(number, value as i64).0
}

pub fn field_bytes(number: u32, value: impl AsRef<[u8]>) -> Vec<u8> {
    Pb::default().bytes(number, value.as_ref()).0
}

/// AttrValue with `type` (6).
pub fn attr_type(dtype: u64) -> Vec<u8> {
    field_varint(6, dtype)
}

/// AttrValue with `s` (2).
pub fn attr_string(value: &str) -> Vec<u8> {
    field_bytes(2, value)
}

/// AttrValue with `func` (10): a NameAttrList naming a function.
pub fn attr_func(name: &str) -> Vec<u8> {
    field_bytes(10, field_bytes(1, name))
}

/// AttrValue with `list` (1) of types (`type` = 6 in ListValue, packed).
pub fn attr_type_list(dtypes: &[u64]) -> Vec<u8> {
    let dtypes: Vec<i64> = dtypes.iter().map(|&t| t as i64).collect();
    field_bytes(1, Pb::default().packed_ints(6, &dtypes).0)
}

/// NodeDef: name 1, op 2, input 3, attr 5 (map<string, AttrValue>).
pub fn node(name: &str, op: &str, inputs: &[&str], attrs: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut out = field_bytes(1, name);
    out.extend(field_bytes(2, op));
    for input in inputs {
        out.extend(field_bytes(3, input));
    }
    for (key, value) in attrs {
        let mut entry = field_bytes(1, key);
        entry.extend(field_bytes(2, value));
        out.extend(field_bytes(5, entry));
    }
    out
}

pub fn placeholder(name: &str, dtype: u64) -> Vec<u8> {
    node(name, "Placeholder", &[], &[("dtype", attr_type(dtype))])
}

/// GraphDef: node 1 (repeated), library 2 (FunctionDefLibrary).
pub fn graph(nodes: &[Vec<u8>], functions: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for n in nodes {
        out.extend(field_bytes(1, n));
    }
    if !functions.is_empty() {
        let library: Vec<u8> = functions.iter().flat_map(|f| field_bytes(1, f)).collect();
        out.extend(field_bytes(2, library));
    }
    out
}

/// ArgDef: name 1, type 3.
fn arg(name: &str, dtype: u64) -> Vec<u8> {
    let mut out = field_bytes(1, name);
    out.extend(field_varint(3, dtype));
    out
}

/// FunctionDef: signature 1 (OpDef: name 1, input_arg 2, output_arg 3), node_def 3,
/// ret 4 (map<string, string>). One input and one output, both of `dtype`; `ret` names the
/// output tensor (`node:output:0`).
pub fn function(name: &str, dtype: u64, nodes: &[Vec<u8>], ret: &str) -> Vec<u8> {
    let mut signature = field_bytes(1, name);
    signature.extend(field_bytes(2, arg("x", dtype)));
    signature.extend(field_bytes(3, arg("y", dtype)));
    let mut out = field_bytes(1, signature);
    for n in nodes {
        out.extend(field_bytes(3, n));
    }
    let mut entry = field_bytes(1, "y");
    entry.extend(field_bytes(2, ret));
    out.extend(field_bytes(4, entry));
    out
}

/// `fname` STRING -> MatchingFiles -> Identity `files` (the reported graph).
pub fn matching_files() -> Vec<u8> {
    graph(
        &[
            placeholder("fname", DT_STRING),
            node("matched", "MatchingFiles", &["fname"], &[]),
            node(
                "files",
                "Identity",
                &["matched"],
                &[("T", attr_type(DT_STRING))],
            ),
        ],
        &[],
    )
}

/// `fname` STRING -> ReadFile `contents`.
pub fn read_file() -> Vec<u8> {
    graph(
        &[
            placeholder("fname", DT_STRING),
            node("contents", "ReadFile", &["fname"], &[]),
        ],
        &[],
    )
}

/// `fname`, `data` STRING -> WriteFile `write` (no outputs; fetch `data`).
pub fn write_file() -> Vec<u8> {
    graph(
        &[
            placeholder("fname", DT_STRING),
            placeholder("data", DT_STRING),
            node("write", "WriteFile", &["fname", "data"], &[]),
            node(
                "out",
                "Identity",
                &["data", "^write"],
                &[("T", attr_type(DT_STRING))],
            ),
        ],
        &[],
    )
}

/// A graph whose only node calls a library function (`StatefulPartitionedCall`) whose body
/// reads a file: `fname` STRING -> call `contents`.
pub fn read_file_in_a_function() -> Vec<u8> {
    let body = node("read", "ReadFile", &["x"], &[]);
    through_a_function("reader", body, "read:contents:0")
}

/// The same, but the function only passes its input on (Identity): allowed.
pub fn identity_in_a_function() -> Vec<u8> {
    let body = node("same", "Identity", &["x"], &[("T", attr_type(DT_STRING))]);
    through_a_function("passer", body, "same:output:0")
}

/// `fname` STRING -> `contents`, a call of the library function `name` (STRING to STRING)
/// whose one node is `body` and whose output is `ret`.
fn through_a_function(name: &str, body: Vec<u8>, ret: &str) -> Vec<u8> {
    graph(
        &[
            placeholder("fname", DT_STRING),
            node(
                "contents",
                "StatefulPartitionedCall",
                &["fname"],
                &[
                    ("Tin", attr_type_list(&[DT_STRING])),
                    ("Tout", attr_type_list(&[DT_STRING])),
                    ("f", attr_func(name)),
                ],
            ),
        ],
        &[function(name, DT_STRING, &[body], ret)],
    )
}

// Graphs of allowed operations that crashed the process before (tests/hostile_runs.rs).

/// TensorShapeProto: dim 2 (Dim: size 1), unknown_rank 3. None: unknown rank.
pub fn shape_proto(dims: Option<&[i64]>) -> Vec<u8> {
    match dims {
        None => field_varint(3, 1),
        Some(dims) => dims
            .iter()
            .flat_map(|&d| field_bytes(2, field_varint(1, d as u64)))
            .collect(),
    }
}

/// A Placeholder with a `shape` attribute (AttrValue `shape` = 7).
pub fn placeholder_shaped(name: &str, dims: Option<&[i64]>) -> Vec<u8> {
    node(
        name,
        "Placeholder",
        &[],
        &[
            ("dtype", attr_type(DT_FLOAT)),
            ("shape", field_bytes(7, shape_proto(dims))),
        ],
    )
}

/// A Const of `dtype` (AttrValue `tensor` = 8: TensorProto dtype 1, tensor_shape 2,
/// float_val 5 / int_val 7, packed).
pub fn constant(name: &str, dtype: u64, dims: &[i64], values: &[f64]) -> Vec<u8> {
    let mut tensor = field_varint(1, dtype);
    tensor.extend(field_bytes(2, shape_proto(Some(dims))));
    if dtype == DT_FLOAT {
        let packed: Vec<u8> = values
            .iter()
            .flat_map(|&v| (v as f32).to_le_bytes())
            .collect();
        tensor.extend(field_bytes(5, packed));
    } else {
        let packed: Vec<u8> = values
            .iter()
            .flat_map(|&v| field_varint(1, v as i64 as u64)[1..].to_vec())
            .collect();
        tensor.extend(field_bytes(7, packed));
    }
    node(
        name,
        "Const",
        &[],
        &[
            ("dtype", attr_type(dtype)),
            ("value", field_bytes(8, tensor)),
        ],
    )
}

/// AttrValue list of ints (ListValue `i` = 3, packed).
pub fn attr_ints(values: &[i64]) -> Vec<u8> {
    let packed: Vec<u8> = values
        .iter()
        .flat_map(|&v| field_varint(1, v as u64)[1..].to_vec())
        .collect();
    field_bytes(1, field_bytes(3, packed))
}

/// x transposed by `perm`, the nodes before it.
pub fn transpose_graph(mut nodes: Vec<Vec<u8>>, x: &str, perm: &str) -> Vec<u8> {
    nodes.push(node(
        "t",
        "Transpose",
        &[x, perm],
        &[("T", attr_type(DT_FLOAT)), ("Tperm", attr_type(DT_INT32))],
    ));
    graph(&nodes, &[])
}

pub fn reverse_graph() -> Vec<u8> {
    graph(
        &[
            placeholder_shaped("x", None),
            constant("axis", DT_INT32, &[2], &[3.0, 1.0]),
            node(
                "r",
                "ReverseV2",
                &["x", "axis"],
                &[("T", attr_type(DT_FLOAT)), ("Tidx", attr_type(DT_INT32))],
            ),
        ],
        &[],
    )
}

/// x (NHWC, shape `x_dims`) convolved `layers` times with a 3x3 filter of `channels`
/// channels in and out (SAME padding, stride 1).
pub fn conv_graph(x_dims: Option<&[i64]>, channels: i64, layers: usize) -> Vec<u8> {
    let mut nodes = vec![placeholder_shaped("x", x_dims)];
    let count = (9 * channels * channels) as usize;
    let weights: Vec<f64> = (0..count).map(|i| ((i % 7) as f64 - 3.0) / 64.0).collect();
    nodes.push(constant(
        "w",
        DT_FLOAT,
        &[3, 3, channels, channels],
        &weights,
    ));
    let mut last = "x".to_owned();
    for layer in 0..layers {
        let name = format!("conv{layer}");
        nodes.push(node(
            &name,
            "Conv2D",
            &[&last, "w"],
            &[
                ("T", attr_type(DT_FLOAT)),
                ("strides", attr_ints(&[1, 1, 1, 1])),
                ("padding", field_bytes(2, "SAME")),
            ],
        ));
        last = name;
    }
    nodes.push(node(
        "y",
        "Identity",
        &[&last],
        &[("T", attr_type(DT_FLOAT))],
    ));
    graph(&nodes, &[])
}

/// Transpose(x, Size(c)): a `perm` that is a scalar once folded (x of unknown shape):
/// grappler's constant folding aborted the process on it.
pub fn transpose_of_a_folded_scalar_perm() -> Vec<u8> {
    let c = constant("c", DT_FLOAT, &[2], &[1.0, 2.0]);
    let size = node(
        "s",
        "Size",
        &["c"],
        &[
            ("T", attr_type(DT_FLOAT)),
            ("out_type", attr_type(DT_INT32)),
        ],
    );
    transpose_graph(vec![placeholder_shaped("x", None), c, size], "x", "s")
}
