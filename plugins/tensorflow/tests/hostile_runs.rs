//! Stored graphs of allowed operations that used to crash the process (found by the live
//! fuzzer, tests/tests/fuzz_live.rs): each now runs, or fails its run with an error.
//! - grappler (TensorFlow's graph optimiser, on a session's first run) aborted on a
//!   Transpose whose `perm` is a scalar, and divided by zero on a ReverseV2 of axes [3,1]
//!   of an input of unknown shape: the sessions run without it (src/proto.rs).
//! - oneDNN's Conv2D kernel aborted on a rank-2 input: oneDNN is off (src/runtime.rs), and
//!   an input whose rank the graph's placeholder contradicts is refused before the run.

mod common;

use std::time::{Duration, Instant};

use common::graph_def::{attr_type, field_bytes, field_varint, graph, node, DT_FLOAT};
use common::{backend, load, model_bytes, run, run_err, Input};
use redisai_plugin_testkit::{f32s, ok};

const DT_INT32: u64 = 3;

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|n| (*n).to_owned()).collect()
}

/// TensorShapeProto: dim 2 (Dim: size 1), unknown_rank 3. None: unknown rank.
fn shape_proto(dims: Option<&[i64]>) -> Vec<u8> {
    match dims {
        None => field_varint(3, 1),
        Some(dims) => dims
            .iter()
            .flat_map(|&d| field_bytes(2, field_varint(1, d as u64)))
            .collect(),
    }
}

/// A Placeholder with a `shape` attribute (AttrValue `shape` = 7).
fn placeholder_shaped(name: &str, dims: Option<&[i64]>) -> Vec<u8> {
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
fn constant(name: &str, dtype: u64, dims: &[i64], values: &[f64]) -> Vec<u8> {
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
fn attr_ints(values: &[i64]) -> Vec<u8> {
    let packed: Vec<u8> = values
        .iter()
        .flat_map(|&v| field_varint(1, v as u64)[1..].to_vec())
        .collect();
    field_bytes(1, field_bytes(3, packed))
}

/// x transposed by `perm`, the nodes before it.
fn transpose_graph(mut nodes: Vec<Vec<u8>>, x: &str, perm: &str) -> Vec<u8> {
    nodes.push(node(
        "t",
        "Transpose",
        &[x, perm],
        &[("T", attr_type(DT_FLOAT)), ("Tperm", attr_type(DT_INT32))],
    ));
    graph(&nodes, &[])
}

fn reverse_graph() -> Vec<u8> {
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
fn conv_graph(x_dims: Option<&[i64]>, channels: i64, layers: usize) -> Vec<u8> {
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

fn load_blob(
    backend: &redisai_tensorflow::TfBackend,
    blob: &[u8],
    inputs: &[&str],
    outputs: &[&str],
) -> redisai_tensorflow::TfModel {
    ok(
        backend.load(blob, &names(inputs), &names(outputs)),
        "the graph should load",
    )
}

#[test]
fn transpose_with_a_scalar_perm_fails_the_run() {
    let backend = backend();
    // perm = Size(c), a scalar only known once folded: grappler's constant folding
    // aborted the process on it (CHECK in Tensor::tensor<int, 1>, RemoveShuffleOrTranspose).
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
    let blob = transpose_graph(vec![placeholder_shaped("x", None), c, size], "x", "s");
    let model = load_blob(&backend, &blob, &["x"], &["t"]);
    let input = Input::f32(&[2, 2], &[1.0, 2.0, 3.0, 4.0]);
    for _ in 0..2 {
        let err = run_err(&backend, &model, std::slice::from_ref(&input), 1);
        assert_eq!(err, "perm must be rank 1, got shape [] \t [[{{node t}}]]");
    }
    // A scalar Const perm of an input of known rank: TensorFlow's shape inference refuses
    // it at load.
    let blob = transpose_graph(
        vec![
            constant("x", DT_FLOAT, &[2, 2], &[1.0, 2.0, 3.0, 4.0]),
            constant("perm", DT_INT32, &[], &[0.0]),
        ],
        "x",
        "perm",
    );
    let err = common::load_err(&backend, &blob, &[], &["t"]);
    assert!(
        err.starts_with("Shape must be rank 1 but is rank 0"),
        "{err}"
    );
}

#[test]
fn reverse_v2_of_axes_3_1_on_an_input_of_unknown_shape() {
    let backend = backend();
    let model = load_blob(&backend, &reverse_graph(), &["x"], &["r"]);
    // Rank 4: runs (axes 3 and 1 reversed).
    let values: Vec<f32> = (0..8).map(|v| v as f32).collect();
    let out = run(&backend, &model, &[Input::f32(&[1, 2, 2, 2], &values)], 1);
    assert_eq!(out[0].shape, [1, 2, 2, 2]);
    assert_eq!(f32s(&out[0].data), [5.0, 4.0, 7.0, 6.0, 1.0, 0.0, 3.0, 2.0]);
    // Rank 2: the kernel's error.
    let err = run_err(&backend, &model, &[Input::f32(&[2, 2], &values[..4])], 1);
    assert!(
        err.starts_with("'axis'[0] = 3 is out of valid range [0, 1"),
        "{err}"
    );
}

#[test]
fn conv2d_of_a_rank_2_input_fails_the_run() {
    let backend = backend();
    let input = || Input::f32(&[2, 2], &[1.0, 2.0, 3.0, 4.0]);
    // A placeholder of unknown shape: TensorFlow's (Eigen) kernel says so.
    let model = load_blob(&backend, &conv_graph(None, 1, 1), &["x"], &["y"]);
    let err = run_err(&backend, &model, &[input()], 1);
    assert!(err.contains("input must be 4-dimensional"), "{err}");
    // A placeholder of rank 4: refused before the run.
    let model = load_blob(
        &backend,
        &conv_graph(Some(&[-1, -1, -1, 1]), 1, 1),
        &["x"],
        &["y"],
    );
    let err = run_err(&backend, &model, &[input()], 1);
    assert_eq!(
        err,
        "input 0 ('x') has shape [2,2], the graph declares [?,?,?,1] (rank 4)"
    );
    let out = run(
        &backend,
        &model,
        &[Input::f32(&[1, 2, 2, 1], &[1.0, 2.0, 3.0, 4.0])],
        1,
    );
    assert_eq!(out[0].shape, [1, 2, 2, 1]);
}

#[test]
fn inputs_are_checked_against_the_declared_ranks() {
    let backend = backend();
    // mlp.pb's x is [?,4].
    let model = load(&backend, "mlp.pb", &["x"], &["y"]);
    let err = run_err(&backend, &model, &[Input::f32(&[4], &[0.0; 4])], 1);
    assert_eq!(
        err,
        "input 0 ('x') has shape [4], the graph declares [?,4] (rank 2)"
    );
    let err = run_err(&backend, &model, &[Input::f32(&[1, 1, 4], &[0.0; 4])], 1);
    assert_eq!(
        err,
        "input 0 ('x') has shape [1,1,4], the graph declares [?,4] (rank 2)"
    );
    let out = run(&backend, &model, &[Input::f32(&[3, 4], &[0.5; 12])], 1);
    assert_eq!(out[0].shape, [3, 3]);
}

fn time_runs(
    backend: &redisai_tensorflow::TfBackend,
    model: &redisai_tensorflow::TfModel,
    inputs: &[Input],
    runs: u32,
) -> (Duration, Duration) {
    let first = Instant::now();
    run(backend, model, inputs, 1);
    let first = first.elapsed();
    let start = Instant::now();
    for _ in 0..runs {
        run(backend, model, inputs, 1);
    }
    (first, start.elapsed() / runs)
}

/// Run times of real models and a small convolution network (first run, and the mean of
/// later ones); for comparisons across builds and `TF_ENABLE_ONEDNN_OPTS` values:
/// `cargo test --release -p redisai-tensorflow --test hostile_runs -- --ignored --nocapture`.
#[test]
#[ignore]
fn run_times() {
    let backend = backend();
    let model = load(&backend, "mlp.pb", &["x"], &["y"]);
    let x = Input::f32(&[32, 4], &[0.5; 128]);
    let (first, mean) = time_runs(&backend, &model, &[x], 2000);
    println!("mlp.pb [32,4]: first {first:?}, then {mean:?}");

    let graph_pb = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/reference-models/graph.pb");
    if let Ok(blob) = std::fs::read(&graph_pb) {
        let model = load_blob(&backend, &blob, &["a", "b"], &["mul"]);
        let a = || Input::f32(&[2, 2], &[2.0, 3.0, 2.0, 3.0]);
        let (first, mean) = time_runs(&backend, &model, &[a(), a()], 2000);
        println!("graph.pb [2,2]: first {first:?}, then {mean:?}");
    }
    let _ = model_bytes;

    for (size, channels, layers, runs) in [(32, 16, 4, 200), (64, 32, 4, 50), (112, 64, 3, 10)] {
        let model = load_blob(
            &backend,
            &conv_graph(Some(&[-1, size, size, channels]), channels, layers),
            &["x"],
            &["y"],
        );
        let n = (size * size * channels) as usize;
        let values: Vec<f32> = (0..n).map(|i| (i % 13) as f32 / 13.0).collect();
        let x = Input::f32(&[1, size, size, channels], &values);
        let (first, mean) = time_runs(&backend, &model, &[x], runs);
        println!("conv {layers}x3x3 {size}x{size}x{channels}: first {first:?}, then {mean:?}");
    }
}
