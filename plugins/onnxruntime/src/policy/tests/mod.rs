//! The policy's checks on hand-built models.

use super::*;

mod inputs;

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
