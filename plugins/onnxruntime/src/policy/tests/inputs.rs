//! Model inputs: empty variadic inputs, undeclared types, any-rank inputs, trailing
//! empty inputs; and random bytes.

use super::*;

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
