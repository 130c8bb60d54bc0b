//! A tiny GraphDef writer for tests (protobuf wire format by hand, field numbers of
//! tensorflow/core/framework/{graph,node_def,attr_value,function,op_def}.proto), for graphs
//! that must not be committed as files: the hostile ones the load policy refuses.

/// tensorflow.DataType values.
pub const DT_FLOAT: u64 = 1;
pub const DT_STRING: u64 = 7;

fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

pub fn field_varint(number: u32, value: u64) -> Vec<u8> {
    let mut out = Vec::new();
    varint(&mut out, u64::from(number) << 3);
    varint(&mut out, value);
    out
}

pub fn field_bytes(number: u32, value: impl AsRef<[u8]>) -> Vec<u8> {
    let value = value.as_ref();
    let mut out = Vec::new();
    varint(&mut out, u64::from(number) << 3 | 2);
    varint(&mut out, value.len() as u64);
    out.extend_from_slice(value);
    out
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
    let mut packed = Vec::new();
    for &t in dtypes {
        varint(&mut packed, t);
    }
    field_bytes(1, field_bytes(6, packed))
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
                    ("f", attr_func("reader")),
                ],
            ),
        ],
        &[function("reader", DT_STRING, &[body], "read:contents:0")],
    )
}

/// The same, but the function only passes its input on (Identity): allowed.
pub fn identity_in_a_function() -> Vec<u8> {
    let body = node("same", "Identity", &["x"], &[("T", attr_type(DT_STRING))]);
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
                    ("f", attr_func("passer")),
                ],
            ),
        ],
        &[function("passer", DT_STRING, &[body], "same:output:0")],
    )
}
