//! Outputs that are not tensors: ONNX-ML's ZipMap (a sequence of maps) comes back as an
//! `[N, classes]` tensor in the maps' key order, a sequence of tensors of one shape comes
//! back stacked, and other types are refused at load with the output's name and type.

mod common;

use common::onnx::{elem, model, model_ml, Attr, MlNode, Node, Ty};
use common::{backend, f32s, run, run_err, Input};
use redisai_plugin_api::sdk::DType;
use redisai_plugin_testkit::{err, ok, values};

fn float_rows() -> Ty {
    Ty::Tensor(elem::FLOAT, Some(vec![-1, 3]))
}

/// X [N, 3] -> ZipMap with `labels` -> Z, a sequence of maps.
fn zipmap_model(labels: Attr<'_>, key: i64) -> Vec<u8> {
    model_ml(
        &[MlNode("ZipMap", "ai.onnx.ml", &["X"], &["Z"], &[labels])],
        &[("X", float_rows())],
        &[(
            "Z",
            Ty::Sequence(Box::new(Ty::Map(
                key,
                Box::new(Ty::Tensor(elem::FLOAT, None)),
            ))),
        )],
    )
}

const ROWS: [f32; 6] = [0.1, 0.2, 0.7, 0.5, 0.3, 0.2];

#[test]
fn zipmap_with_int64_labels_is_a_tensor_in_ascending_label_order() {
    let backend = backend();
    // Column j of X is label j: 10, 2, 7. The maps are ordered by label: 2, 7, 10.
    let model = ok(
        backend.load(&zipmap_model(
            Attr::Ints("classlabels_int64s", &[10, 2, 7]),
            elem::INT64,
        )),
        "a ZipMap model loads",
    );
    assert_eq!(model.output_names(), ["Z"]);
    let out = run(&backend, &model, &[Input::f32(&[2, 3], &ROWS)], 1);
    assert_eq!(out[0].dtype, DType::Float);
    assert_eq!(out[0].shape, [2, 3]);
    assert_eq!(f32s(&out[0].data), [0.2, 0.7, 0.1, 0.3, 0.2, 0.5]);

    // No rows: no maps, so no classes either.
    let out = run(&backend, &model, &[Input::f32(&[0, 3], &[])], 1);
    assert_eq!(out[0].shape, [0, 0]);
    assert!(out[0].data.is_empty());

    // Rows of the wrong width fail the run; the model stays usable.
    let message = run_err(&backend, &model, &[Input::f32(&[1, 2], &[0.5, 0.5])], 1);
    assert!(!message.is_empty());
    let out = run(
        &backend,
        &model,
        &[Input::f32(&[1, 3], &[1.0, 2.0, 3.0])],
        1,
    );
    assert_eq!(f32s(&out[0].data), [2.0, 3.0, 1.0]);
}

#[test]
fn zipmap_with_string_labels_is_a_tensor_in_label_byte_order() {
    let backend = backend();
    let model = ok(
        backend.load(&zipmap_model(
            Attr::Strings("classlabels_strings", &["b", "c", "a"]),
            elem::STRING,
        )),
        "a ZipMap model with string labels loads",
    );
    let out = run(&backend, &model, &[Input::f32(&[2, 3], &ROWS)], 1);
    assert_eq!(out[0].shape, [2, 3]);
    // a, b, c: columns 2, 0, 1.
    assert_eq!(f32s(&out[0].data), [0.7, 0.1, 0.2, 0.2, 0.5, 0.3]);
}

#[test]
fn classifier_label_and_probabilities_together() {
    // What skl2onnx writes, in small: a label tensor and the probabilities through ZipMap.
    let backend = backend();
    let blob = model_ml(
        &[
            MlNode(
                "ArgMax",
                "",
                &["X"],
                &["label"],
                &[Attr::Int("axis", 1), Attr::Int("keepdims", 0)],
            ),
            MlNode(
                "ZipMap",
                "ai.onnx.ml",
                &["X"],
                &["probabilities"],
                &[Attr::Ints("classlabels_int64s", &[0, 1, 2])],
            ),
        ],
        &[("X", float_rows())],
        &[
            ("label", Ty::Tensor(elem::INT64, None)),
            (
                "probabilities",
                Ty::Sequence(Box::new(Ty::Map(
                    elem::INT64,
                    Box::new(Ty::Tensor(elem::FLOAT, None)),
                ))),
            ),
        ],
    );
    let model = ok(backend.load(&blob), "loads");
    let out = run(&backend, &model, &[Input::f32(&[2, 3], &ROWS)], 2);
    assert_eq!(out[0].dtype, DType::Int64);
    assert_eq!(values::<i64>(&out[0].data), [2, 0]);
    assert_eq!(out[1].shape, [2, 3]);
    assert_eq!(f32s(&out[1].data), ROWS);
}

#[test]
fn a_sequence_of_tensors_is_stacked() {
    let backend = backend();
    let vector = || Ty::Tensor(elem::FLOAT, Some(vec![-1]));
    let blob = model(
        &[Node("SequenceConstruct", &["a", "b"], &["s"])],
        &[("a", vector()), ("b", vector())],
        &[("s", Ty::Sequence(Box::new(Ty::Tensor(elem::FLOAT, None))))],
    );
    let model = ok(backend.load(&blob), "a sequence output loads");
    let out = run(
        &backend,
        &model,
        &[Input::f32(&[2], &[1.0, 2.0]), Input::f32(&[2], &[3.0, 4.0])],
        1,
    );
    assert_eq!(out[0].dtype, DType::Float);
    assert_eq!(out[0].shape, [2, 2]);
    assert_eq!(f32s(&out[0].data), [1.0, 2.0, 3.0, 4.0]);

    let message = run_err(
        &backend,
        &model,
        &[
            Input::f32(&[2], &[1.0, 2.0]),
            Input::f32(&[3], &[3.0, 4.0, 5.0]),
        ],
        1,
    );
    assert_eq!(
        message,
        "output 0 ('s'): the sequence's tensors differ in shape ([2] at 0, [3] at 1): only a sequence of tensors of one shape can be returned, stacked, as a tensor"
    );
}

#[test]
fn an_empty_sequence_is_an_empty_tensor() {
    let backend = backend();
    let blob = model_ml(
        &[MlNode("SequenceEmpty", "", &[], &["s"], &[])],
        &[],
        &[("s", Ty::Sequence(Box::new(Ty::Tensor(elem::FLOAT, None))))],
    );
    let model = ok(backend.load(&blob), "loads");
    let out = run(&backend, &model, &[], 1);
    assert_eq!(out[0].dtype, DType::Float);
    assert_eq!(out[0].shape, [0]);
}

#[test]
fn other_output_types_are_refused_at_load() {
    let backend = backend();
    let strings = model(
        &[Node("SequenceConstruct", &["x"], &["s"])],
        &[("x", Ty::Tensor(elem::STRING, Some(vec![-1])))],
        &[("s", Ty::Sequence(Box::new(Ty::Tensor(elem::STRING, None))))],
    );
    assert_eq!(
        err(backend.load(&strings), "a sequence of strings is refused"),
        "model output 0 ('s') is of type seq(tensor(STRING)), a sequence of STRING tensors: the ONNX backend returns tensors, sequences of numeric tensors (stacked) and sequences of maps to FLOAT or DOUBLE (ONNX-ML ZipMap, as [N, classes])"
    );

    let optional = model(
        &[Node("Optional", &["x"], &["o"])],
        &[("x", Ty::Tensor(elem::FLOAT, Some(vec![-1])))],
        &[("o", Ty::Optional(Box::new(Ty::Tensor(elem::FLOAT, None))))],
    );
    let message = err(backend.load(&optional), "an optional output is refused");
    assert!(
        message.starts_with(
            "model output 0 ('o') is of type optional(tensor(FLOAT)), an optional value:"
        ),
        "{message}"
    );

    // Inputs are tensors only.
    let map_input = model(
        &[Node("Identity", &["x"], &["y"])],
        &[
            ("x", Ty::Tensor(elem::FLOAT, Some(vec![-1]))),
            (
                "m",
                Ty::Map(elem::INT64, Box::new(Ty::Tensor(elem::FLOAT, None))),
            ),
        ],
        &[("y", Ty::Tensor(elem::FLOAT, None))],
    );
    let message = err(backend.load(&map_input), "a map input is refused");
    assert_eq!(
        message,
        "model input 1 ('m') is a map (map(INT64,FLOAT)), not a tensor: the ONNX backend only takes tensors as inputs"
    );
}

#[test]
fn a_zipmap_with_a_repeated_label_has_one_column_per_distinct_label() {
    // ONNX Runtime's map keeps one entry per label (the last column's value).
    let backend = backend();
    let model = ok(
        backend.load(&zipmap_model(
            Attr::Ints("classlabels_int64s", &[5, 5, 1]),
            elem::INT64,
        )),
        "loads",
    );
    let out = run(&backend, &model, &[Input::f32(&[2, 3], &ROWS)], 1);
    assert_eq!(out[0].shape, [2, 2]);
    assert_eq!(f32s(&out[0].data), [0.7, 0.2, 0.2, 0.3]);
}

#[test]
fn a_zipmap_with_more_labels_than_columns_fails_the_run_not_the_process() {
    let backend = backend();
    let model = ok(
        backend.load(&zipmap_model(
            Attr::Ints("classlabels_int64s", &[1, 2, 3, 4, 5]),
            elem::INT64,
        )),
        "loads",
    );
    let message = run_err(&backend, &model, &[Input::f32(&[2, 3], &ROWS)], 1);
    assert!(!message.is_empty());
}
