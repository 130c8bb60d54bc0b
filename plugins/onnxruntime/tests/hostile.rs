//! Hostile models against the real ONNX Runtime: the backend refuses external data
//! wherever the tensor hides, before ONNX Runtime sees it (tests/external_data.rs shows
//! what ONNX Runtime alone does with these models), and custom operator domains. The test
//! models and the reference models still load.

mod common;

use std::path::Path;

use common::hostile::{
    constant, constant_model, custom_domain_model, function_model, if_model, initializer_model,
    inline_tensor, model, node, ort_output, value_info,
};
use common::onnx::{elem, Pb};
use common::{backend, f32s, load, views, Input};
use redisai_onnxruntime::policy::EXTERNAL_DATA;
use redisai_onnxruntime::OnnxBackend;
use redisai_plugin_api::sdk::DType;
use redisai_plugin_testkit::ok;

fn refused(backend: &OnnxBackend, bytes: &[u8]) -> String {
    match backend.load(bytes) {
        Ok(_) => panic!("the model was loaded"),
        Err(err) => err.to_string(),
    }
}

#[test]
fn the_backend_refuses_external_data_wherever_it_is() {
    let backend = backend();
    for location in ["dump.rdb", "appendonlydir/x.aof", "../../../../etc/passwd"] {
        for (name, bytes) in [
            ("initializer", initializer_model(location)),
            ("Constant attribute", constant_model(location)),
            ("If subgraph", if_model(location)),
            ("local function", function_model(location)),
        ] {
            assert_eq!(
                refused(&backend, &bytes),
                EXTERNAL_DATA,
                "{name}: {location}"
            );
        }
    }
    assert_eq!(
        EXTERNAL_DATA,
        "Initializer tensors with external data is not allowed."
    );
}

#[test]
fn the_backend_refuses_custom_operator_domains() {
    let backend = backend();
    assert_eq!(
        refused(&backend, &custom_domain_model()),
        "model uses a forbidden operation: com.example.Evil (custom operator domain)"
    );
    // ONNX Runtime alone refuses it too, for want of the operator.
    assert!(ort_output(&custom_domain_model()).is_err());
    let graph = Pb::default()
        .msg(1, node("EPContext", "com.microsoft", &["x"], &["y"]))
        .str(2, "g")
        .msg(11, value_info("x", elem::FLOAT, &[4]))
        .msg(12, value_info("y", elem::FLOAT, &[4]));
    let extra = Pb::default().msg(8, Pb::default().str(1, "com.microsoft").int(2, 1));
    let text = refused(&backend, &model(graph, extra));
    assert!(
        text.starts_with("model uses a forbidden operation: com.microsoft.EPContext ("),
        "{text}"
    );
}

#[test]
fn models_with_inline_data_still_load_and_run() {
    let backend = backend();
    // The If model with its then-branch's tensor inline, and a local function.
    let graph_if = {
        let branch = |name: &str| {
            let g = Pb::default()
                .msg(1, constant(inline_tensor("w"), &format!("{name}_out")))
                .str(2, name)
                .msg(12, value_info(&format!("{name}_out"), elem::FLOAT, &[4]));
            Pb::default().str(1, name).int(20, 5).msg(6, g)
        };
        let if_node = node("If", "", &["cond"], &["y"])
            .msg(5, branch("then_branch"))
            .msg(5, branch("else_branch"));
        Pb::default()
            .msg(1, if_node)
            .str(2, "g")
            .msg(11, value_info("cond", elem::BOOL, &[]))
            .msg(12, value_info("y", elem::FLOAT, &[4]))
    };
    let m = ok(
        backend.load(&model(graph_if, Pb::default())),
        "If with inline branches",
    );
    let out = ok(
        backend.run(&m, 0, &views(&[Input::new(DType::Bool, &[], vec![1])]), 1),
        "run",
    );
    assert_eq!(f32s(&out[0].data), [0.0; 4]);
    let function = Pb::default()
        .str(1, "Zero")
        .str(5, "out")
        .msg(7, constant(inline_tensor("w"), "out"))
        .msg(9, Pb::default().str(1, "").int(2, 17))
        .str(10, "local.fn");
    let graph = Pb::default()
        .msg(1, node("Zero", "local.fn", &[], &["y"]))
        .str(2, "g")
        .msg(12, value_info("y", elem::FLOAT, &[4]));
    let extra = Pb::default()
        .msg(8, Pb::default().str(1, "local.fn").int(2, 1))
        .msg(25, function);
    let m = ok(
        backend.load(&model(graph, extra)),
        "a model with a local function in its own domain",
    );
    let out = ok(backend.run(&m, 0, &[], 1), "run");
    assert_eq!(f32s(&out[0].data), [0.0; 4]);
}

#[test]
fn every_test_and_reference_model_passes_the_check() {
    let backend = backend();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(root.join("tests/models/onnx")).expect("tests/models/onnx") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "onnx") {
            names.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    assert!(names.len() >= 9, "{names:?}");
    for name in &names {
        load(&backend, name);
    }
    // ../shared/reference-models: real models from other tools (when this checkout has them).
    let reference = root.join("../shared/reference-models");
    let mut checked = 0;
    if let Ok(entries) = std::fs::read_dir(&reference) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "onnx") {
                let bytes = std::fs::read(&path).expect("model");
                redisai_onnxruntime::policy::check(&bytes)
                    .unwrap_or_else(|err| panic!("{}: {err}", path.display()));
                // Some are refused for what they are (logreg_iris.onnx outputs a sequence of
                // maps), never by the policy.
                if let Err(err) = backend.load(&bytes) {
                    assert!(
                        !err.to_string().contains("external data")
                            && !err.to_string().contains("forbidden"),
                        "{}: {}",
                        path.display(),
                        err
                    );
                    eprintln!("{}: {}", path.display(), err);
                }
                checked += 1;
            }
        }
    } else {
        eprintln!(
            "{} is missing: reference models not checked",
            reference.display()
        );
    }
    eprintln!(
        "{} test models load, {checked} reference models pass the check",
        names.len()
    );
}

/// Every prefix of a test model and of a hostile one, and garbage, through the whole load
/// (policy, then ONNX Runtime): an error or a model, never a panic, and never a model
/// that reads the file.
#[test]
fn truncated_and_garbage_blobs_are_errors() {
    let backend = backend();
    let hostile = constant_model("dump.rdb");
    for len in 0..hostile.len() {
        if let Ok(model) = backend.load(&hostile[..len]) {
            // What is left loads only once the tensor is gone: it has no output y.
            assert!(!model.output_names().contains(&"y".to_owned()), "{len}");
        }
    }
    let mlp = common::model_bytes("mlp.onnx");
    for len in (0..mlp.len()).step_by(7) {
        let _ = backend.load(&mlp[..len]);
    }
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..200 {
        let bytes: Vec<u8> = (0..64)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed as u8
            })
            .collect();
        let _ = backend.load(&bytes);
    }
}
