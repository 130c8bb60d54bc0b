//! Why the policy exists: ONNX Runtime alone (ort, no policy) reads a model's relative
//! external-data path from the process's working directory (Redis's `dir`, where
//! dump.rdb, the AOF and nodes.conf live) and returns the file's bytes as the model's
//! weights (from a Constant's attribute, an If branch, a model-local function); the
//! backend refuses the same models. ONNX Runtime 1.32 itself refuses
//! absolute paths and paths that leave the working directory. One test in its own binary:
//! it changes the process's working directory.

mod common;

use common::backend;
use common::hostile::{
    constant_model, function_model, if_model, initializer_model, ort_output, SECRET,
};
use redisai_onnxruntime::policy::EXTERNAL_DATA;

#[test]
fn onnx_runtime_alone_reads_relative_external_data_from_the_working_directory() {
    let backend = backend();
    let dir = std::env::temp_dir().join(format!("redisai-external-data-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("appendonlydir")).expect("temp dir");
    let bytes: Vec<u8> = SECRET.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(dir.join("dump.rdb"), &bytes).expect("dump.rdb");
    std::fs::write(dir.join("appendonlydir/x.aof"), &bytes).expect("aof");
    std::env::set_current_dir(&dir).expect("cd");
    for location in [
        "dump.rdb",
        "appendonlydir/x.aof",
        "appendonlydir/../dump.rdb",
    ] {
        for (name, model) in [
            ("initializer", initializer_model(location)),
            ("Constant attribute", constant_model(location)),
            ("If subgraph", if_model(location)),
            ("local function", function_model(location)),
        ] {
            match ort_output(&model) {
                Ok(out) => assert_eq!(out, SECRET, "{name}, {location}: the file's bytes"),
                // ONNX Runtime 1.32 stumbles over a graph initializer's external data
                // when its optimizer looks at it in a model loaded from memory (no model
                // path), not by design: the other three read the file.
                Err(err) if name == "initializer" => {
                    assert!(err.contains("model_path must not be empty"), "{err}")
                }
                Err(err) => panic!("{name}, {location}: ONNX Runtime: {err}"),
            }
            match backend.load(&model) {
                Ok(_) => panic!("{name}, {location}: the backend loaded it"),
                Err(err) => assert_eq!(err.to_string(), EXTERNAL_DATA, "{name}, {location}"),
            }
        }
    }
    // Leaving the working directory is ONNX Runtime's own refusal.
    let escape = initializer_model("../etc/passwd");
    let err = ort_output(&escape).expect_err("escapes the working directory");
    assert!(err.contains("escapes"), "{err}");
    std::env::set_current_dir(std::env::temp_dir()).ok();
    std::fs::remove_dir_all(dir).ok();
}
