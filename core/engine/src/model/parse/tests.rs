//! Unit tests of the model command parsers.

use super::*;

fn words(text: &str) -> Vec<&[u8]> {
    text.split_whitespace().map(str::as_bytes).collect()
}

#[test]
fn model_store_full() {
    let args = words("onnx CPU:1 TAG v1 BATCHSIZE 8 MINBATCHSIZE 2 MINBATCHTIMEOUT 50 BLOB c1 c2");
    let spec = parse_model_store(&args, false).expect("valid");
    assert_eq!(spec.backend, "ONNX");
    assert_eq!(spec.device.to_string(), "CPU:1");
    assert_eq!(spec.tag, b"v1");
    assert_eq!(
        spec.batching,
        Batching {
            size: 8,
            min_size: 2,
            min_timeout_ms: 50
        }
    );
    assert_eq!(spec.blob(), b"c1c2");
}

#[test]
fn model_store_errors() {
    for (text, expected) in [
        ("TORCH bad_device BLOB x", "ERR Invalid DEVICE"),
        (
            "TORCH CPU BATCHSIZE bad BLOB x",
            "ERR Invalid argument for BATCHSIZE",
        ),
        (
            "TORCH CPU MINBATCHSIZE 2 BLOB x",
            "ERR MINBATCHSIZE specified without BATCHSIZE",
        ),
        (
            "TORCH CPU BATCHSIZE 2 MINBATCHSIZE bad BLOB x",
            "ERR Invalid argument for MINBATCHSIZE",
        ),
        (
            "TORCH CPU BATCHSIZE 2 MINBATCHTIMEOUT 1000 BLOB x",
            "ERR MINBATCHTIMEOUT specified without MINBATCHSIZE",
        ),
        (
            "TORCH CPU BATCHSIZE 2 MINBATCHSIZE 2 MINBATCHTIMEOUT bad BLOB x",
            "ERR Invalid argument for MINBATCHTIMEOUT",
        ),
        (
            "TORCH CPU INPUTS 2 a b OUTPUTS 1 c BLOB x",
            "ERR INPUTS argument should not be specified for this backend",
        ),
        (
            "TORCH CPU BATCHSIZE 2",
            "ERR Insufficient arguments, missing model BLOB",
        ),
        (
            "TORCH CPU BATCHSIZE 2 NOT_BLOB",
            "ERR Invalid argument, expected BLOB",
        ),
        (
            "TORCH CPU BATCHSIZE 2 BLOB",
            "ERR Insufficient arguments, missing model BLOB",
        ),
        (
            "TFLITE CPU BATCHSIZE 2 BLOB x",
            "ERR Auto-batching not supported by the TFLITE backend",
        ),
        ("TF CPU BLOB x", "ERR INPUTS not specified for TF"),
        (
            "TF CPU INPUTS 1 a BLOB x",
            "ERR OUTPUTS not specified for TF",
        ),
        (
            "TF CPU INPUTS 0 BLOB x",
            "ERR Invalid argument for input_count",
        ),
        (
            "TF CPU INPUTS 3 a b",
            "ERR number of model inputs does not match the number of given arguments",
        ),
        (
            "TF CPU INPUTS 1 a OUTPUTS 2 b",
            "ERR number of model outputs does not match the number of given arguments",
        ),
        (
            "TORCH CPU TAG t",
            "ERR Insufficient arguments, missing model BLOB",
        ),
        (
            "TORCH CPU OUTPUTS 1 c BLOB x",
            "ERR Invalid argument, expected BLOB",
        ),
    ] {
        let err = parse_model_store(&words(text), false).expect_err(text);
        assert_eq!(err.0, expected, "{text}");
    }
}

#[test]
fn model_set_errors_as_redisai_deprecated_parser() {
    for (text, expected) in [
        ("ONNX CPU", "ERR Insufficient arguments, missing model BLOB"),
        (
            "TORCH CPU MINBATCHSIZE 0 BLOB x",
            "ERR MINBATCHSIZE specified without BATCHSIZE",
        ),
        (
            "TORCH CPU MINBATCHTIMEOUT 5 BLOB x",
            "ERR MINBATCHTIMEOUT specified without BATCHSIZE",
        ),
        (
            "TF CPU BLOB x",
            "ERR Insufficient arguments, INPUTS and OUTPUTS not specified",
        ),
        ("TF CPU OUTPUTS b BLOB x", "ERR INPUTS not specified"),
        ("TF CPU INPUTS a BLOB x", "ERR OUTPUTS not specified"),
    ] {
        let err = parse_model_store(&words(text), true).expect_err(text);
        assert_eq!(err.0, expected, "{text}");
    }
    // Names given to another backend were skipped.
    let spec = parse_model_store(&words("ONNX CPU INPUTS a OUTPUTS b BLOB x"), true)
        .expect("names skipped");
    assert!(spec.inputs.is_empty() && spec.outputs.is_empty());
}

#[test]
fn tf_names_with_and_without_counts() {
    let spec = parse_model_store(&words("TF CPU INPUTS 2 a b OUTPUTS 1 mul BLOB x"), false)
        .expect("valid");
    assert_eq!(
        (spec.inputs.clone(), spec.outputs.clone()),
        (vec!["a".into(), "b".into()], vec!["mul".into()])
    );
    let legacy =
        parse_model_store(&words("TF CPU INPUTS a b OUTPUTS mul BLOB x"), true).expect("valid");
    assert_eq!(legacy.inputs, spec.inputs);
    assert_eq!(legacy.outputs, spec.outputs);
}

#[test]
fn model_execute() {
    let args = words("m INPUTS 2 a b OUTPUTS 1 c TIMEOUT 100");
    let parsed = parse_model_execute(&args).expect("valid");
    assert_eq!(parsed.inputs, vec![&b"a"[..], b"b"]);
    assert_eq!(parsed.outputs, vec![&b"c"[..]]);
    assert_eq!(parsed.timeout_ms, Some(100));
}

#[test]
fn model_execute_errors() {
    for (text, expected) in [
        ("m timeout 1000 INPUTS 2 a b OUTPUTS 1 c", "ERR INPUTS not specified"),
        ("m INPUTS not_a_number a b OUTPUTS 1 c", "ERR Invalid argument for input_count"),
        ("m INPUTS 0 a b OUTPUTS 1 c", "ERR Input count must be a positive integer"),
        ("m INPUTS 2 a b NOT_OUTPUTS 1 c", "ERR OUTPUTS not specified"),
        ("m INPUTS 2 a b OUTPUTS not_a_number c", "ERR Invalid argument for output_count"),
        ("m INPUTS 2 a b OUTPUTS 0 c", "ERR Output count must be a positive integer"),
        ("m INPUTS 2 a b OUTPUTS 1", "ERR number of output keys to AI.MODELEXECUTE command does not match the number of given arguments"),
        ("m INPUTS 2 a b OUTPUTS 1 c bad_arg", "ERR Invalid argument: bad_arg"),
        ("m INPUTS 2 a b OUTPUTS 1 c TIMEOUT", "ERR No value provided for TIMEOUT"),
        ("m INPUTS 2 a b OUTPUTS 1 c TIMEOUT -43", "ERR Invalid value for TIMEOUT"),
        ("m INPUTS 2 a b OUTPUTS 1 c TIMEOUT 1000 bad_arg", "ERR Invalid argument: bad_arg"),
        ("m INPUTS 99999999999 a OUTPUTS 1 c", "ERR number of input keys to AI.MODELEXECUTE command does not match the number of given arguments"),
    ] {
        let err = parse_model_execute(&words(text)).expect_err(text);
        assert_eq!(err.0, expected, "{text}");
    }
}

#[test]
fn model_run_legacy() {
    let parsed = parse_model_run(&words("m TIMEOUT 5 INPUTS a b OUTPUTS c")).expect("valid");
    assert_eq!(parsed.inputs.len(), 2);
    assert_eq!(parsed.outputs, vec![&b"c"[..]]);
    assert_eq!(parsed.timeout_ms, Some(5));
    assert!(parse_model_run(&words("m INPUTS a b")).is_err());
}

#[test]
fn key_positions() {
    let args = words("AI.MODELEXECUTE m INPUTS 2 a b OUTPUTS 1 c TIMEOUT 5");
    assert_eq!(model_execute_key_positions(&args), vec![1, 4, 5, 8]);
    let truncated = words("AI.MODELEXECUTE m INPUTS 5 a");
    assert_eq!(model_execute_key_positions(&truncated), vec![1, 4]);
    let run = words("AI.MODELRUN m TIMEOUT 5 INPUTS a OUTPUTS c");
    assert_eq!(model_run_key_positions(&run), vec![1, 5, 7]);
    // Keys named like keywords are keys where the parser reads them as keys.
    let named = words("AI.MODELRUN m INPUTS INPUTS a OUTPUTS OUTPUTS INPUTS");
    let parsed = parse_model_run(&named[1..]).expect("parses");
    assert_eq!(parsed.inputs.len() + parsed.outputs.len(), 4);
    assert_eq!(model_run_key_positions(&named), vec![1, 3, 4, 6, 7]);
}
