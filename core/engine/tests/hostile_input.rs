//! Hostile input: property tests that throw random and adversarial arguments at every
//! command parser and at tensor decoding (BLOB and VALUES for every dtype, STRING blobs,
//! shapes with huge, negative or zero dimensions). Nothing may panic, every key
//! position must be inside the argument list, and what parses must be self-consistent.
//!
//! Cases per property: `REDISAI_FUZZ_CASES` (default 256); `scripts/stress --fuzz`
//! raises it.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;

use redisai_engine::config::{BackendKind, Config};
use redisai_engine::dag::parse::{dag_key_positions, parse_dag, DagFlavor};
use redisai_engine::model::parse::{
    model_execute_key_positions, model_run_key_positions, parse_model_execute, parse_model_run,
    parse_model_store,
};
use redisai_engine::script::parse::{
    parse_script_execute, parse_script_run, parse_script_store, script_execute_keys,
    script_run_keys, KeyAccess,
};
use redisai_engine::tensor::parse::{tensor_from_args, tensor_from_values, GetFormat, TensorArgs};
use redisai_engine::tensor::{element_count, DType, Tensor};

static CASES_RUN: AtomicU64 = AtomicU64::new(0);

fn cases() -> u32 {
    std::env::var("REDISAI_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn count_case() {
    CASES_RUN.fetch_add(1, Ordering::Relaxed);
}

const DTYPES: [DType; 10] = [
    DType::Float,
    DType::Double,
    DType::Int8,
    DType::Int16,
    DType::Int32,
    DType::Int64,
    DType::Uint8,
    DType::Uint16,
    DType::Bool,
    DType::String,
];

const WORDS: &[&str] = &[
    "FLOAT",
    "DOUBLE",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "UINT8",
    "UINT16",
    "BOOL",
    "STRING",
    "float",
    "BLOB",
    "VALUES",
    "META",
    "INPUTS",
    "OUTPUTS",
    "TIMEOUT",
    "TAG",
    "BATCHSIZE",
    "MINBATCHSIZE",
    "MINBATCHTIMEOUT",
    "LOAD",
    "PERSIST",
    "ROUTING",
    "|>",
    "AI.TENSORSET",
    "AI.TENSORGET",
    "AI.MODELEXECUTE",
    "AI.MODELRUN",
    "AI.SCRIPTEXECUTE",
    "AI.DAGEXECUTE",
    "ONNX",
    "TF",
    "TFLITE",
    "TORCH",
    "CPU",
    "GPU",
    "GPU:0",
    "CPU:-1",
    "k",
    "m",
    "x",
    "0",
    "1",
    "2",
    "3",
    "-1",
    "+1",
    " 1",
    "1e309",
    "nan",
    "inf",
    "-0",
    "255",
    "256",
    "65536",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "18446744073709551616",
    "4294967296",
    "",
    "\0",
    "BACKENDSPATH",
    "THREADS_PER_QUEUE",
    "MODEL_CHUNK_SIZE",
    "INLINE_EXECUTION_LIMIT_US",
    "INTRA_OP_PARALLELISM",
    "../x",
    "/abs",
    "KEYS",
    "ARGS",
    "ENTRY_POINTS",
    "SOURCE",
    "$",
    "AI.SCRIPTRUN",
];

/// One argument: a vocabulary word most of the time, else random bytes.
fn arg() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => proptest::sample::select(WORDS).prop_map(|w| w.as_bytes().to_vec()),
        1 => proptest::collection::vec(any::<u8>(), 0..12),
        1 => any::<i64>().prop_map(|n| n.to_string().into_bytes()),
    ]
}

fn args(max: usize) -> impl Strategy<Value = Vec<Vec<u8>>> {
    proptest::collection::vec(arg(), 0..max)
}

fn slices(args: &[Vec<u8>]) -> Vec<&[u8]> {
    args.iter().map(Vec::as_slice).collect()
}

fn dtype() -> impl Strategy<Value = DType> {
    proptest::sample::select(&DTYPES[..])
}

/// Dimensions that stress the size arithmetic.
fn hostile_dim() -> impl Strategy<Value = i64> {
    prop_oneof![
        1 => Just(0i64),
        1 => Just(-1i64),
        1 => Just(i64::MAX),
        1 => Just(i64::MIN),
        1 => Just(1i64 << 32),
        1 => Just(1i64 << 62),
        4 => 1i64..5,
        1 => any::<i64>(),
    ]
}

fn small_shape() -> impl Strategy<Value = Vec<i64>> {
    proptest::collection::vec(1i64..5, 1..4)
}

/// A random value for a VALUES list: in range, out of range, or junk.
fn value_text() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any::<i8>().prop_map(|v| v.to_string().into_bytes()),
        any::<i64>().prop_map(|v| v.to_string().into_bytes()),
        any::<f64>().prop_map(|v| v.to_string().into_bytes()),
        proptest::sample::select(
            &["0", "1", "2", "-1", "nan", "inf", "-inf", "1e400", " 1", "0x10", ""][..]
        )
        .prop_map(|w| w.as_bytes().to_vec()),
        proptest::collection::vec(any::<u8>(), 0..6),
    ]
}

fn check_tensor(tensor: &Tensor) {
    let expected = tensor
        .shape()
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64));
    assert_eq!(Some(tensor.len() as u64), expected, "len matches the shape");
    assert_eq!(
        tensor.elements().count(),
        tensor.len(),
        "elements match the shape"
    );
    if let Some(size) = tensor.dtype().element_size() {
        assert_eq!(tensor.data().len(), tensor.len() * size);
    }
    assert!(tensor.memory_usage() >= tensor.data().len());
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn tensorset_arguments_never_panic(args in args(10)) {
        count_case();
        let args = slices(&args);
        // Huge shapes without data would allocate up to the 4 GiB limit: parse them and
        // build only those that are small.
        if let Ok(parsed) = TensorArgs::parse(&args) {
            let small = element_count(&parsed.shape, parsed.dtype).is_ok_and(|n| n < 1 << 16);
            if small {
                if let Ok(tensor) = tensor_from_args(&args) {
                    check_tensor(&tensor);
                }
            }
        }
        let _ = GetFormat::parse(&args);
    }

    #[test]
    fn blobs_of_every_dtype_decode_or_are_refused(
        dtype in dtype(),
        shape in small_shape(),
        extra in -3i64..3,
        seed in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        count_case();
        let elements = element_count(&shape, dtype).expect("small shapes are valid");
        let size = dtype.element_size().unwrap_or(1);
        let len = (elements as i64 * size as i64 + extra).max(0) as usize;
        let blob: Vec<u8> = seed.iter().copied().cycle().take(len).chain(std::iter::repeat(0)).take(len).collect();
        match Tensor::from_blob(dtype, shape.clone(), &blob) {
            Ok(tensor) => {
                check_tensor(&tensor);
                prop_assert_eq!(tensor.data(), &blob[..]);
                if dtype != DType::String {
                    prop_assert_eq!(extra, 0);
                }
            }
            Err(_) => {
                if dtype != DType::String && dtype != DType::Bool {
                    prop_assert_ne!(extra, 0, "a blob of the right length is accepted");
                }
            }
        }
    }

    #[test]
    fn string_blobs_are_validated(
        count in 1i64..6,
        blob in proptest::collection::vec(prop_oneof![3 => Just(0u8), 5 => any::<u8>()], 0..24),
    ) {
        count_case();
        if let Ok(tensor) = Tensor::from_blob(DType::String, vec![count], &blob) {
            check_tensor(&tensor);
            prop_assert_eq!(blob.iter().filter(|&&b| b == 0).count() as i64, count);
            prop_assert_eq!(blob.last(), Some(&0u8));
        }
    }

    #[test]
    fn huge_and_negative_dims_are_refused_without_allocating(
        dtype in dtype(),
        shape in proptest::collection::vec(hostile_dim(), 0..5),
        blob in proptest::collection::vec(any::<u8>(), 0..16),
    ) {
        count_case();
        let count = element_count(&shape, dtype);
        if shape.iter().any(|&d| d < 0) {
            prop_assert!(count.is_err());
        }
        let size = dtype.element_size().unwrap_or(1) as u64;
        match count {
            Ok(n) if n < 1 << 16 => {
                if let Ok(tensor) = Tensor::zeros(dtype, shape.clone()) {
                    check_tensor(&tensor);
                }
            }
            // Over the 4 GiB limit (or overflowing): refused before any allocation.
            Ok(n) if n.saturating_mul(size) > redisai_engine::tensor::MAX_TENSOR_BYTES => {
                prop_assert!(Tensor::zeros(dtype, shape.clone()).is_err());
            }
            Ok(_) => {}
            Err(_) => prop_assert!(Tensor::zeros(dtype, shape.clone()).is_err()),
        }
        if let Ok(tensor) = Tensor::from_blob(dtype, shape.clone(), &blob) {
            check_tensor(&tensor);
        }
        let values: Vec<&[u8]> = blob.iter().map(std::slice::from_ref).collect();
        if let Ok(tensor) = tensor_from_values(dtype, shape, &values) {
            check_tensor(&tensor);
        }
    }

    #[test]
    fn values_of_every_dtype_parse_or_are_refused(
        dtype in dtype(),
        shape in small_shape(),
        values in proptest::collection::vec(value_text(), 0..70),
    ) {
        count_case();
        let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
        let elements = element_count(&shape, dtype).expect("small shapes are valid");
        if let Ok(tensor) = tensor_from_values(dtype, shape, &refs) {
            check_tensor(&tensor);
            prop_assert_eq!(elements as usize, refs.len());
        }
    }

    #[test]
    fn in_range_integer_values_round_trip(values in proptest::collection::vec(any::<i16>(), 1..20)) {
        count_case();
        let texts: Vec<Vec<u8>> = values.iter().map(|v| v.to_string().into_bytes()).collect();
        let refs: Vec<&[u8]> = texts.iter().map(Vec::as_slice).collect();
        let tensor = tensor_from_values(DType::Int16, vec![values.len() as i64], &refs)
            .expect("in-range INT16 values");
        let back: Vec<i16> = tensor
            .data()
            .chunks_exact(2)
            .map(|c| i16::from_le_bytes([c[0], c[1]]))
            .collect();
        prop_assert_eq!(back, values);
    }

    #[test]
    fn model_parsers_never_panic_and_keys_are_in_range(args in args(14), legacy in any::<bool>()) {
        count_case();
        let args = slices(&args);
        let _ = parse_model_store(&args, legacy);
        let _ = parse_model_execute(&args);
        let _ = parse_model_run(&args);
        // Key positions index the full command (name at 0).
        let mut full: Vec<&[u8]> = vec![b"AI.MODELEXECUTE"];
        full.extend(&args);
        for position in model_execute_key_positions(&full) {
            prop_assert!(position > 0 && position < full.len());
        }
        for position in model_run_key_positions(&full) {
            prop_assert!(position > 0 && position < full.len());
        }
        if let Ok(parsed) = parse_model_execute(&args) {
            prop_assert_eq!(model_execute_key_positions(&full).len(), 1 + parsed.inputs.len() + parsed.outputs.len());
        }
        if let Ok(parsed) = parse_model_run(&args) {
            prop_assert_eq!(model_run_key_positions(&full).len(), 1 + parsed.inputs.len() + parsed.outputs.len());
        }
    }

    #[test]
    fn dag_parser_never_panics_and_keys_are_in_range(
        args in args(24),
        read_only in any::<bool>(),
        deprecated in any::<bool>(),
    ) {
        count_case();
        let args = slices(&args);
        let flavor = DagFlavor { read_only, deprecated };
        let parsed = parse_dag(&args, flavor);
        let mut full: Vec<&[u8]> = vec![b"AI.DAGEXECUTE"];
        full.extend(&args);
        let positions = dag_key_positions(&full);
        for &position in &positions {
            prop_assert!(position > 0 && position < full.len());
        }
        if let Ok(dag) = parsed {
            // Every LOAD and PERSIST key is declared to Redis (ACL, cluster).
            let declared: Vec<&[u8]> = positions.iter().map(|&p| full[p]).collect();
            for key in dag.load.iter().chain(dag.persist.iter()) {
                prop_assert!(declared.contains(key), "undeclared key {:?}", key);
            }
            if let Some(routing) = dag.routing {
                prop_assert!(declared.contains(&routing));
            }
        }
    }

    #[test]
    fn script_parsers_never_panic_and_keys_are_in_range(args in args(16), in_dag in any::<bool>()) {
        count_case();
        let args = slices(&args);
        for legacy in [false, true] {
            if let Ok(spec) = parse_script_store(&args, legacy) {
                prop_assert!(legacy || !spec.entry_points.is_empty());
                prop_assert!(spec.source.len() <= args.iter().map(|a| a.len()).max().unwrap_or(0));
            }
        }
        let execute = parse_script_execute(&args, in_dag);
        let run = parse_script_run(&args);
        // Key positions index the full command (name at 0), the script key first.
        let mut full: Vec<&[u8]> = vec![b"AI.SCRIPTEXECUTE"];
        full.extend(&args);
        let execute_keys = script_execute_keys(&full);
        let run_keys = script_run_keys(&full);
        for &(position, _) in execute_keys.iter().chain(run_keys.iter()) {
            prop_assert!(position > 0 && position < full.len());
        }
        if let Ok(parsed) = execute {
            // Every key the command names is declared, with the access it needs.
            prop_assert_eq!(
                execute_keys.len(),
                1 + parsed.keys.len() + parsed.inputs.len() + parsed.outputs.len()
            );
            let declared = |access: KeyAccess| -> Vec<&[u8]> {
                execute_keys.iter().filter(|(_, a)| *a == access).map(|&(p, _)| full[p]).collect()
            };
            prop_assert_eq!(declared(KeyAccess::ReadWrite), parsed.keys.clone());
            prop_assert_eq!(declared(KeyAccess::Write), parsed.outputs.clone());
            let mut reads = vec![parsed.script_key];
            reads.extend(&parsed.inputs);
            prop_assert_eq!(declared(KeyAccess::Read), reads);
        }
        if let Ok(parsed) = run {
            prop_assert_eq!(run_keys.len(), 1 + parsed.inputs.len() + parsed.outputs.len());
            let written: Vec<&[u8]> = run_keys
                .iter()
                .filter(|(_, a)| *a == KeyAccess::Write)
                .map(|&(p, _)| full[p])
                .collect();
            prop_assert_eq!(written, parsed.outputs.clone());
            let read: Vec<&[u8]> = run_keys
                .iter()
                .filter(|(_, a)| *a == KeyAccess::Read)
                .map(|&(p, _)| full[p])
                .collect();
            let mut expected = vec![parsed.script_key];
            expected.extend(&parsed.inputs);
            prop_assert_eq!(read, expected);
        }
    }

    #[test]
    fn script_sources_of_any_bytes_parse_as_one_argument(
        source in proptest::collection::vec(any::<u8>(), 0..4096),
        entry_points in proptest::collection::vec(arg(), 0..4),
    ) {
        count_case();
        let count = entry_points.len().to_string();
        let mut args: Vec<&[u8]> = vec![b"CPU", b"ENTRY_POINTS", count.as_bytes()];
        args.extend(entry_points.iter().map(Vec::as_slice));
        args.push(b"SOURCE");
        args.push(&source);
        match parse_script_store(&args, false) {
            Ok(spec) => {
                prop_assert_eq!(spec.source, &source[..]);
                prop_assert_eq!(spec.entry_points.len(), entry_points.len());
            }
            Err(err) => prop_assert!(err.0.starts_with("ERR "), "{}", err.0),
        }
    }

    #[test]
    fn module_arguments_never_panic(args in args(8)) {
        count_case();
        let args = slices(&args);
        let _ = Config::from_module_args(PathBuf::from("/tmp/redisai-fuzz/backends"), &args);
        let mut config = Config::with_backends_path(PathBuf::from("/tmp/redisai-fuzz/backends"));
        for arg in &args {
            let _ = config.set_model_chunk_size(arg);
            if config.set_inline_execution_limit(arg).is_ok() {
                prop_assert!(config.inline_execution_limit_us <= redisai_engine::config::MAX_INLINE_EXECUTION_LIMIT_US);
            }
            let _ = BackendKind::parse(arg);
            let _ = DType::parse(arg);
            if let Ok(path) = config.resolve_backend_path(arg) {
                // Relative paths stay inside BACKENDSPATH.
                if !arg.starts_with(b"/") {
                    prop_assert!(path.starts_with("/tmp/redisai-fuzz/backends"), "{:?}", path);
                }
            }
        }
    }

    #[test]
    fn batches_split_back_into_their_parts(
        dtype in dtype(),
        rows in proptest::collection::vec(1i64..4, 1..5),
        width in 1i64..4,
        seed in any::<u8>(),
    ) {
        count_case();
        let parts: Vec<Tensor> = rows
            .iter()
            .enumerate()
            .map(|(i, &r)| {
                let n = (r * width) as usize;
                let blob: Vec<u8> = match dtype.element_size() {
                    Some(size) => (0..n * size).map(|b| (b as u8).wrapping_add(seed).wrapping_add(i as u8) & if dtype == DType::Bool { 1 } else { 0xff }).collect(),
                    None => (0..n).flat_map(|_| [b'a' + (i as u8 % 26), 0]).collect(),
                };
                Tensor::from_blob(dtype, vec![r, width], &blob).expect("part")
            })
            .collect();
        let refs: Vec<&Tensor> = parts.iter().collect();
        let batch = Tensor::concat_rows(&refs).expect("compatible parts concatenate");
        check_tensor(&batch);
        let split = batch
            .split_rows(&rows.iter().map(|&r| r as usize).collect::<Vec<_>>())
            .expect("split");
        prop_assert_eq!(split, parts);
    }
}

#[test]
fn report_cases() {
    // Runs alongside the properties; the count is only a figure for the logs.
    eprintln!(
        "hostile_input: {} cases per property (REDISAI_FUZZ_CASES), {} run so far in this process",
        cases(),
        CASES_RUN.load(Ordering::Relaxed)
    );
    assert!(cases() > 0);
}

/// Regression (found by `script_parsers_never_panic_and_keys_are_in_range`): SCRIPTRUN
/// keys named like a keyword were not declared, so Redis checked no ACL key pattern or
/// slot for them; an output after a second `INPUTS` word was declared as a read.
#[test]
fn script_run_keys_named_like_keywords_are_declared() {
    let full: Vec<&[u8]> = vec![
        b"AI.SCRIPTRUN",
        b"s",
        b"bar",
        b"INPUTS",
        b"INPUTS",
        b"a",
        b"OUTPUTS",
        b"o",
        b"INPUTS",
        b"other",
        b"OUTPUTS",
    ];
    let parsed = parse_script_run(&full[1..]).expect("parses");
    assert_eq!(parsed.inputs, vec![&b"INPUTS"[..], b"a"]);
    assert_eq!(parsed.outputs.len(), 4);
    assert_eq!(
        script_run_keys(&full),
        vec![
            (1, KeyAccess::Read),
            (4, KeyAccess::Read),
            (5, KeyAccess::Read),
            (7, KeyAccess::Write),
            (8, KeyAccess::Write),
            (9, KeyAccess::Write),
            (10, KeyAccess::Write),
        ]
    );
}

/// Regression: arguments from a live-fuzzer crash (`scripts/stress --fuzz`).
#[test]
fn dag_arguments_from_a_fuzzer_crash() {
    let args: Vec<&[u8]> = vec![
        b"\xf8\xd2c\xd8\x80\x88\xd7\xe2\xf6\x9bp{",
        b"2",
        b"t1",
        b"CPU:1",
        b"100",
        b"tflite",
        b"nan",
        b"2",
        b"-7781215280201249797",
        b"t1",
        b"add",
        b"MODEL_CHUNK_SIZE",
        b"18446744073709551616",
    ];
    for read_only in [true, false] {
        for deprecated in [true, false] {
            let _ = parse_dag(
                &args,
                DagFlavor {
                    read_only,
                    deprecated,
                },
            );
        }
    }
    let mut full: Vec<&[u8]> = vec![b"AI.DAGEXECUTE_RO"];
    full.extend(&args);
    let _ = dag_key_positions(&full);
}
