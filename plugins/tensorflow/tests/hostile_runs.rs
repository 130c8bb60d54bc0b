//! Stored graphs of allowed operations that used to crash the process (found by the live
//! fuzzer, tests/tests/fuzz_live/): each now runs, or fails its run with an error.
//! - grappler (TensorFlow's graph optimiser, on a session's first run) aborted on a
//!   Transpose whose `perm` is a scalar, and divided by zero on a ReverseV2 of axes [3,1]
//!   of an input of unknown shape: the sessions run without it (src/proto.rs).
//! - oneDNN's Conv2D kernel aborted on a rank-2 input: oneDNN is off (src/runtime.rs), and
//!   an input whose rank the graph's placeholder contradicts is refused before the run.
//! - grappler's internal fusions (`_FusedMatMul`, ...) read a short bias past its end: they
//!   are refused at load (src/policy.rs).

mod common;

use std::time::{Duration, Instant};

use common::{backend, load, model_bytes, run, run_err, Input};
use redisai_plugin_testkit::graph_def::{
    attr_type, attr_type_list, constant, conv_graph, field_bytes, field_varint, graph, node,
    placeholder_shaped, reverse_graph, transpose_graph, transpose_of_a_folded_scalar_perm,
    DT_FLOAT, DT_INT32,
};
use redisai_plugin_testkit::{f32s, ok};

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|n| (*n).to_owned()).collect()
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
    let blob = transpose_of_a_folded_scalar_perm();
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
    // A declared scalar takes a [1] (clients cannot make rank-0 tensors).
    let blob = graph(
        &[
            placeholder_shaped("x", Some(&[])),
            constant("c", DT_FLOAT, &[2], &[1.0, 2.0]),
            node("y", "Mul", &["x", "c"], &[("T", attr_type(DT_FLOAT))]),
        ],
        &[],
    );
    let model = load_blob(&backend, &blob, &["x"], &["y"]);
    let out = run(&backend, &model, &[Input::f32(&[1], &[3.0])], 1);
    assert_eq!(f32s(&out[0].data), [3.0, 6.0]);
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

/// Grappler's internal fusions are refused at load: their kernels read a BiasAdd argument
/// shorter than the output's channels past its end (a bias of [1] for 4096 columns came
/// back as 4095 columns of TensorFlow's memory).
#[test]
fn grapplers_internal_fusions_are_refused() {
    let backend = backend();
    for op in ["_FusedMatMul", "_FusedConv2D", "_FusedBatchNormEx"] {
        let blob = graph(
            &[
                placeholder_shaped("x", None),
                constant("w", DT_FLOAT, &[2, 2], &[0.5; 4]),
                constant("b", DT_FLOAT, &[1], &[0.25]),
                node(
                    "y",
                    op,
                    &["x", "w", "b"],
                    &[
                        ("T", attr_type(DT_FLOAT)),
                        ("num_args", field_varint(3, 1)),
                        ("fused_ops", field_bytes(1, field_bytes(2, "BiasAdd"))),
                        ("TArgs", attr_type_list(&[DT_FLOAT])),
                    ],
                ),
            ],
            &[],
        );
        let err = common::load_err(&backend, &blob, &["x"], &["y"]);
        assert_eq!(
            err,
            format!("model uses a forbidden operation: {op} (not on the allow-list)")
        );
    }
}
