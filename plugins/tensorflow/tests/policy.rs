//! The load policy (src/policy.rs) with real TensorFlow: graphs with operations that touch
//! files are refused at load with the exact message, wherever the operation hides (a node,
//! a library function, a `func` attribute), and every test model still loads.

mod common;

use common::{backend, load_err, model_bytes, Input};
use redisai_plugin_testkit::graph_def::{
    self, attr_func, attr_type, attr_type_list, graph, node, placeholder,
};
use redisai_tensorflow::policy::ALLOWED;

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|n| (*n).to_owned()).collect()
}

#[test]
fn file_operations_are_refused_with_the_exact_message() {
    let backend = backend();
    let cases = [
        (
            graph_def::matching_files(),
            &["fname"][..],
            "files",
            "MatchingFiles",
        ),
        (
            graph_def::read_file(),
            &["fname"][..],
            "contents",
            "ReadFile",
        ),
        (
            graph_def::write_file(),
            &["fname", "data"][..],
            "out",
            "WriteFile",
        ),
    ];
    for (blob, inputs, output, op) in cases {
        let err = load_err(&backend, &blob, inputs, &[output]);
        assert_eq!(
            err,
            format!("model uses a forbidden operation: {op} (file access)")
        );
    }
}

#[test]
fn operations_in_the_function_library_are_checked() {
    let backend = backend();
    let err = load_err(
        &backend,
        &graph_def::read_file_in_a_function(),
        &["fname"],
        &["contents"],
    );
    assert_eq!(
        err,
        "model uses a forbidden operation: ReadFile (file access)"
    );

    // A `func` attribute naming a primitive op directly (TensorFlow would run the op).
    let blob = graph(
        &[
            placeholder("fname", graph_def::DT_STRING),
            node(
                "contents",
                "PartitionedCall",
                &["fname"],
                &[
                    ("Tin", attr_type_list(&[graph_def::DT_STRING])),
                    ("Tout", attr_type_list(&[graph_def::DT_STRING])),
                    ("f", attr_func("ReadFile")),
                ],
            ),
        ],
        &[],
    );
    let err = load_err(&backend, &blob, &["fname"], &["contents"]);
    assert_eq!(
        err,
        "model uses a forbidden operation: ReadFile (file access)"
    );

    // The same shape with a harmless function loads and runs.
    let model = backend
        .load(
            &graph_def::identity_in_a_function(),
            &names(&["fname"]),
            &names(&["contents"]),
        )
        .expect("a function of allowed ops loads");
    let out = backend
        .run(
            &model,
            0,
            &common::views(&[Input::strings(&[], &[b"abc"])]),
            1,
        )
        .expect("runs");
    assert_eq!(out[0].data, b"abc\0");
}

#[test]
fn unknown_and_other_forbidden_operations() {
    let backend = backend();
    let err = load_err(&backend, &model_bytes("unknown_op.pb"), &["a"], &["y"]);
    assert_eq!(
        err,
        "model uses a forbidden operation: NoSuchOpForRedisAITests (not on the allow-list)"
    );
    for (op, rule) in [
        ("PyFunc", "Python functions"),
        ("TFRecordDataset", "datasets, queues and iterators"),
        ("FIFOQueueV2", "datasets, queues and iterators"),
        ("SaveV2", "file access"),
        ("RestoreV2", "file access"),
        ("WholeFileReaderV2", "file access"),
        ("ImmutableConst", "file access"),
        ("Abort", "process control"),
        ("DebugIdentityV2", "debugging output"),
    ] {
        let blob = graph(&[node("y", op, &[], &[("T", attr_type(1))])], &[]);
        let err = load_err(&backend, &blob, &[], &["y"]);
        assert_eq!(
            err,
            format!("model uses a forbidden operation: {op} ({rule})")
        );
    }
    // Not a GraphDef: TensorFlow's reason, as before.
    let err = load_err(&backend, b"this is not a GraphDef", &["a"], &["y"]);
    assert_eq!(err, "Invalid GraphDef");
}

#[test]
fn every_test_model_still_loads() {
    let backend = backend();
    let models: &[(&str, &[&str], &[&str])] = &[
        ("mul.pb", &["a", "b"], &["mul"]),
        ("mlp.pb", &["x"], &["hidden", "y"]),
        (
            "split.pb",
            &["x"],
            &["halves:0", "halves:1", "second_twice"],
        ),
        (
            "types.pb",
            &["in_float", "in_bool"],
            &["out_float", "not_bool", "neg_int64"],
        ),
        ("strings.pb", &["s"], &["out", "len"]),
        ("png.pb", &["image"], &["png_size", "decoded"]),
        ("zlib.pb", &["data"], &["text", "size"]),
        ("count_loop.pb", &["limit"], &["count"]),
        ("tf2_frozen.pb", &["x"], &["Identity", "Identity_1"]),
    ];
    for (name, inputs, outputs) in models {
        backend
            .load(&model_bytes(name), &names(inputs), &names(outputs))
            .unwrap_or_else(|err| panic!("{name}: {}", err));
    }
    // RedisAI's own test graph, where the shared reference models are checked out.
    let reference = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/reference-models/graph.pb");
    if let Ok(blob) = std::fs::read(&reference) {
        backend
            .load(&blob, &names(&["a", "b"]), &names(&["mul"]))
            .unwrap_or_else(|err| panic!("{}: {err}", reference.display()));
    }
    assert!(ALLOWED.len() > 400);
}
