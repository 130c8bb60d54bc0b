//! Data written by RedisAI 1.0-1.2 loads: `DUMP` payloads and RDB files in RedisAI's
//! encodings (0 to 4) of tensors, models and scripts, built byte by byte by
//! `redisai_tests::redisai_rdb` from the format (not by our writer). Each value is
//! compared with the same value stored through commands on a reference server
//! (`DEBUG DIGEST-VALUE`, TENSORGET/MODELGET/SCRIPTGET), then again after DEBUG RELOAD
//! (saved in our encoding), a restart and on replicas; models and scripts run.
//! Hostile payloads (truncated, huge counts) answer an error and the server lives on.

use redisai_tests::hardening::{backend_built, f32_blob, model_bytes};
use redisai_tests::redis::{Connection, RedisResult, Value};
use redisai_tests::redisai_rdb::{self as rai, Field, RaiModel};
use redisai_tests::{error_text, run, run_str, Server, ServerConfig};

fn restore(c: &mut Connection, key: &str, payload: &[u8]) -> RedisResult<Value> {
    run(c, &[b"RESTORE", key.as_bytes(), b"0", payload])
}

fn restore_ok(c: &mut Connection, key: &str, payload: &[u8]) {
    if let Err(err) = restore(c, key, payload) {
        panic!("RESTORE {key}: {err}");
    }
}

fn digest_value(c: &mut Connection, key: &str) -> Value {
    run_str(c, &format!("DEBUG DIGEST-VALUE {key}")).expect("DIGEST-VALUE")
}

/// Asserts that `lines` (with `{}` for the key) answer the same on both servers.
fn same_answers(c: &mut Connection, r: &mut Connection, key: &str, lines: &[&str], when: &str) {
    for line in lines {
        let line = line.replace("{}", key);
        assert_eq!(
            run_str(c, &line).unwrap_or_else(|e| panic!("{when}: {line}: {e}")),
            run_str(r, &line).unwrap_or_else(|e| panic!("reference: {line}: {e}")),
            "{when}: {line}"
        );
    }
    assert_eq!(
        digest_value(c, key),
        digest_value(r, key),
        "{when}: DIGEST-VALUE {key}"
    );
}

fn floats(values: &[&str]) -> Value {
    Value::Array(
        values
            .iter()
            .map(|v| Value::BulkString(v.as_bytes().to_vec()))
            .collect(),
    )
}

#[test]
fn dump_framing_matches_redis() {
    let server = Server::start();
    let mut c = server.client();
    run_str(&mut c, "SET s hello").expect("SET");
    let dumped: Vec<u8> = redisai_tests::redis::cmd("DUMP")
        .arg("s")
        .query(&mut c)
        .expect("DUMP");
    let mut value = Vec::new();
    rai::push_string(&mut value, b"hello");
    // The trailer: the server's RDB version (10 for Redis 7.0, 11 for Valkey 8), then
    // the CRC64 of everything before it.
    assert!(dumped.len() > 10, "{dumped:?}");
    let version = u16::from_le_bytes([dumped[dumped.len() - 10], dumped[dumped.len() - 9]]);
    assert_eq!(
        dumped,
        rai::dump_payload_of_version(rai::TYPE_STRING, &value, version)
    );
    let mut value = Vec::new();
    rai::push_string(&mut value, b"made by the generator");
    restore_ok(&mut c, "s2", &rai::dump_payload(rai::TYPE_STRING, &value));
    assert_eq!(
        run_str(&mut c, "GET s2").expect("GET"),
        Value::BulkString(b"made by the generator".to_vec())
    );
}

const NUMERIC: [&str; 8] = [
    "FLOAT", "DOUBLE", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16",
];

fn element_size(dtype: &str) -> usize {
    match dtype {
        "INT8" | "UINT8" | "BOOL" => 1,
        "INT16" | "UINT16" => 2,
        "FLOAT" | "INT32" => 4,
        _ => 8,
    }
}

/// `(key, dtype, shape, data, encoding, RedisAI fields)`.
type TensorCase = (String, &'static str, Vec<i64>, Vec<u8>, u64, Vec<Field>);

/// Every version and dtype, plus rank 0, an empty dimension and STRING.
fn tensor_cases() -> Vec<TensorCase> {
    let mut cases = Vec::new();
    for encver in 0..=4u64 {
        let mut dtypes: Vec<&str> = NUMERIC.to_vec();
        if encver == 4 {
            dtypes.push("BOOL");
        }
        for dtype in dtypes {
            let shape = vec![2, 3];
            let data: Vec<u8> = (0..6 * element_size(dtype))
                .map(|i| {
                    if dtype == "BOOL" {
                        (i % 2) as u8
                    } else {
                        (i * 37 + 11) as u8
                    }
                })
                .collect();
            let fields = rai::tensor_fields(encver, dtype, &shape, &data, &[]);
            cases.push((
                format!("t:{encver}:{dtype}"),
                dtype,
                shape,
                data,
                encver,
                fields,
            ));
        }
    }
    // Rank 0 and an empty dimension.
    for (name, shape) in [("scalar", vec![]), ("empty", vec![2, 0])] {
        let data = if shape.is_empty() {
            f32_blob(&[1.5])
        } else {
            Vec::new()
        };
        for encver in [1u64, 4] {
            let fields = rai::tensor_fields(encver, "FLOAT", &shape, &data, &[]);
            cases.push((
                format!("t:{encver}:{name}"),
                "FLOAT",
                shape.clone(),
                data.clone(),
                encver,
                fields,
            ));
        }
    }
    let strings = b"a\0bc\0\0".to_vec();
    let fields = rai::tensor_fields(4, "STRING", &[3], &strings, &[2, 3, 1]);
    cases.push((
        "t:4:STRING".to_owned(),
        "STRING",
        vec![3],
        strings,
        4,
        fields,
    ));
    cases
}

fn tensor_reference(r: &mut Connection, key: &str, dtype: &str, shape: &[i64], data: &[u8]) {
    let mut args: Vec<Vec<u8>> = vec![
        b"AI.TENSORSET".to_vec(),
        key.as_bytes().to_vec(),
        dtype.as_bytes().to_vec(),
    ];
    args.extend(shape.iter().map(|d| d.to_string().into_bytes()));
    args.push(b"BLOB".to_vec());
    args.push(data.to_vec());
    let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
    run(r, &refs).unwrap_or_else(|e| panic!("reference {key}: {e}"));
}

const TENSOR_LINES: [&str; 2] = ["AI.TENSORGET {} META BLOB", "TYPE {}"];

/// TENSORGET META BLOB as (everything but the blob, the blob).
fn meta_and_blob(c: &mut Connection, key: &str) -> (Vec<Value>, Value) {
    match run_str(c, &format!("AI.TENSORGET {key} META BLOB")) {
        Ok(Value::Array(mut items)) if !items.is_empty() => {
            let blob = items.pop().unwrap_or(Value::Nil);
            (items, blob)
        }
        other => panic!("TENSORGET {key}: {other:?}"),
    }
}

#[test]
fn tensors_of_every_version_and_dtype_load() {
    let mut server = Server::start();
    let reference = Server::start();
    let mut r = reference.client();
    // A replica from the start receives the RESTOREs themselves (RedisAI payloads).
    let early_replica = server.start_replica();
    let mut c = server.client();
    let cases = tensor_cases();
    for (key, dtype, shape, data, encver, fields) in &cases {
        restore_ok(&mut c, key, &rai::module_dump(rai::TENSOR, *encver, fields));
        // TENSORSET makes no rank-0 tensor and no zero dimension (a model can): those
        // are checked for their data, and the reference gets them through our own
        // DUMP (so later stages compare with what RESTORE made).
        if shape.is_empty() || shape.contains(&0) {
            let (_, data_reply) = meta_and_blob(&mut c, key);
            assert_eq!(data_reply, Value::BulkString(data.clone()), "{key}");
            let dump: Vec<u8> = redisai_tests::redis::cmd("DUMP")
                .arg(key.as_str())
                .query(&mut c)
                .expect("DUMP");
            run(
                &mut r,
                &[b"RESTORE", key.as_bytes(), b"0", &dump, b"REPLACE"],
            )
            .expect("reference from our own DUMP");
        } else {
            tensor_reference(&mut r, key, dtype, shape, data);
        }
        same_answers(&mut c, &mut r, key, &TENSOR_LINES, "restored");
    }
    // The same values in a RedisAI dump.rdb.
    let entries: Vec<(&str, &str, u64, Vec<Field>)> = cases
        .iter()
        .map(|(key, _, _, _, encver, fields)| (key.as_str(), rai::TENSOR, *encver, fields.clone()))
        .collect();
    check_rdb_file(&entries, &mut r, &TENSOR_LINES, &[]);

    early_replica.wait_for_sync(&server);
    let mut e = early_replica.client();
    for (key, ..) in &cases {
        same_answers(&mut e, &mut r, key, &TENSOR_LINES, "replica (RESTORE)");
    }
    run_str(&mut c, "DEBUG RELOAD").expect("DEBUG RELOAD");
    for (key, ..) in &cases {
        same_answers(&mut c, &mut r, key, &TENSOR_LINES, "after DEBUG RELOAD");
    }
    server.restart();
    let mut c = server.client();
    for (key, ..) in &cases {
        same_answers(&mut c, &mut r, key, &TENSOR_LINES, "after restart");
    }
    let replica = server.start_replica();
    let mut p = replica.client();
    for (key, ..) in &cases {
        same_answers(&mut p, &mut r, key, &TENSOR_LINES, "replica (full sync)");
    }
}

/// Starts a server on a RedisAI `dump.rdb` holding `entries` and compares each key with
/// the reference; `runs` are commands that must succeed there.
fn check_rdb_file(
    entries: &[(&str, &str, u64, Vec<Field>)],
    r: &mut Connection,
    lines: &[&str],
    runs: &[&str],
) {
    let dir = std::env::temp_dir().join(format!(
        "redisai-migration-{}-{}",
        std::process::id(),
        entries.first().map_or("none", |e| e.0).replace(':', "_")
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("data dir");
    std::fs::write(dir.join("dump.rdb"), rai::rdb_file(entries)).expect("dump.rdb");
    let config = ServerConfig {
        data_dir: Some(dir.clone()),
        ..ServerConfig::default()
    };
    let server = Server::try_start(config)
        .unwrap_or_else(|err| panic!("a RedisAI dump.rdb did not load:\n{}", err.log));
    let mut c = server.client();
    assert_eq!(
        run_str(&mut c, "DBSIZE").expect("DBSIZE"),
        Value::Int(entries.len() as i64)
    );
    for (key, ..) in entries {
        same_answers(&mut c, r, key, lines, "from a RedisAI dump.rdb");
    }
    for line in runs {
        run_str(&mut c, line).unwrap_or_else(|e| panic!("{line}: {e}"));
    }
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

struct ModelCase {
    backend: &'static str,
    plugin: &'static str,
    file: (&'static str, &'static str),
    inputs: &'static [&'static str],
    outputs: &'static [&'static str],
    batching: bool,
    /// MODELEXECUTE's output on a = [1, 2], b = [3, 4].
    expected: [&'static str; 2],
}

const MODELS: [ModelCase; 4] = [
    ModelCase {
        backend: "ONNX",
        plugin: "redisai_onnxruntime",
        file: ("onnx", "add.onnx"),
        inputs: &[],
        outputs: &[],
        batching: true,
        expected: ["4", "6"],
    },
    ModelCase {
        backend: "TF",
        plugin: "redisai_tensorflow",
        file: ("tf", "mul.pb"),
        inputs: &["a", "b"],
        outputs: &["mul"],
        batching: true,
        expected: ["3", "8"],
    },
    ModelCase {
        backend: "TFLITE",
        plugin: "redisai_tflite",
        file: ("tflite", "add.tflite"),
        inputs: &[],
        outputs: &[],
        batching: false,
        expected: ["4", "6"],
    },
    ModelCase {
        backend: "TORCH",
        plugin: "redisai_torch",
        file: ("torch", "add.pt"),
        inputs: &[],
        outputs: &[],
        batching: true,
        expected: ["4", "6"],
    },
];

const MODEL_LINES: [&str; 3] = ["AI.MODELGET {} META", "AI.MODELGET {} BLOB", "TYPE {}"];

fn model_reference(r: &mut Connection, key: &str, m: &RaiModel) {
    let mut args: Vec<Vec<u8>> = vec![
        b"AI.MODELSTORE".to_vec(),
        key.as_bytes().to_vec(),
        m.backend.as_bytes().to_vec(),
        m.device.as_bytes().to_vec(),
        b"TAG".to_vec(),
        m.tag.to_vec(),
    ];
    if m.batchsize > 0 {
        args.push(b"BATCHSIZE".to_vec());
        args.push(m.batchsize.to_string().into_bytes());
        if m.minbatchsize > 0 {
            args.push(b"MINBATCHSIZE".to_vec());
            args.push(m.minbatchsize.to_string().into_bytes());
            if m.minbatchtimeout > 0 {
                args.push(b"MINBATCHTIMEOUT".to_vec());
                args.push(m.minbatchtimeout.to_string().into_bytes());
            }
        }
    }
    for (keyword, names) in [("INPUTS", m.inputs), ("OUTPUTS", m.outputs)] {
        if !names.is_empty() {
            args.push(keyword.as_bytes().to_vec());
            args.push(names.len().to_string().into_bytes());
            args.extend(names.iter().map(|n| n.as_bytes().to_vec()));
        }
    }
    args.push(b"BLOB".to_vec());
    args.push(m.blob.to_vec());
    let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
    run(r, &refs).unwrap_or_else(|e| panic!("reference {key}: {e}"));
}

fn run_model(c: &mut Connection, key: &str, expected: &[&str; 2], when: &str) {
    run_str(c, "AI.TENSORSET mig:a FLOAT 2 VALUES 1 2").expect("a");
    run_str(c, "AI.TENSORSET mig:b FLOAT 2 VALUES 3 4").expect("b");
    run_str(
        c,
        &format!("AI.MODELEXECUTE {key} INPUTS 2 mig:a mig:b OUTPUTS 1 mig:out"),
    )
    .unwrap_or_else(|e| panic!("{when}: run {key}: {e}"));
    assert_eq!(
        run_str(c, "AI.TENSORGET mig:out VALUES").expect("out"),
        floats(expected),
        "{when}: {key}"
    );
}

#[test]
fn models_of_every_version_and_backend_load_and_run() {
    let mut server = Server::start();
    let reference = Server::start();
    let mut r = reference.client();
    let early_replica = server.start_replica();
    let mut c = server.client();
    let mut loaded: Vec<(String, &ModelCase)> = Vec::new();
    let mut entries: Vec<(String, u64, Vec<Field>)> = Vec::new();
    for case in &MODELS {
        if !backend_built(case.plugin) {
            eprintln!("{} is not built; its models are skipped", case.plugin);
            continue;
        }
        let blob = model_bytes(case.file.0, case.file.1);
        for encver in 0..=4u64 {
            let key = format!("m:{encver}:{}", case.backend);
            let tag = format!("tag {encver}");
            let (batchsize, minbatchsize, minbatchtimeout) = match (case.batching, encver) {
                (false, _) => (0, 0, 0),
                (true, 0 | 1) => (4, 2, 0),
                (true, _) => (4, 2, 7),
            };
            // RedisAI's chunking, with a chunk size that divides the blob (an empty last
            // chunk), a small one, and one larger than the blob.
            let chunk_size = match encver {
                1 => 64,
                2 => blob.len(),
                3 => 1 << 20,
                _ => 1000,
            };
            let m = RaiModel {
                backend: case.backend,
                device: "CPU",
                tag: tag.as_bytes(),
                batchsize,
                minbatchsize,
                minbatchtimeout,
                inputs: case.inputs,
                outputs: case.outputs,
                blob: &blob,
                chunk_size,
            };
            let fields = rai::model_fields(encver, &m);
            restore_ok(&mut c, &key, &rai::module_dump(rai::MODEL, encver, &fields));
            model_reference(&mut r, &key, &m);
            same_answers(&mut c, &mut r, &key, &MODEL_LINES, "restored");
            run_model(&mut c, &key, &case.expected, "restored");
            entries.push((key.clone(), encver, fields));
            loaded.push((key, case));
        }
    }
    if loaded.is_empty() {
        return;
    }
    let file_entries: Vec<(&str, &str, u64, Vec<Field>)> = entries
        .iter()
        .map(|(key, encver, fields)| (key.as_str(), rai::MODEL, *encver, fields.clone()))
        .collect();
    let runs: Vec<String> = loaded
        .iter()
        .flat_map(|(key, _)| {
            [
                "AI.TENSORSET mig:a FLOAT 2 VALUES 1 2".to_owned(),
                "AI.TENSORSET mig:b FLOAT 2 VALUES 3 4".to_owned(),
                format!("AI.MODELEXECUTE {key} INPUTS 2 mig:a mig:b OUTPUTS 1 mig:out"),
            ]
        })
        .collect();
    let runs: Vec<&str> = runs.iter().map(String::as_str).collect();
    check_rdb_file(&file_entries, &mut r, &MODEL_LINES, &runs);

    early_replica.wait_for_sync(&server);
    let mut e = early_replica.client();
    for (key, _) in &loaded {
        same_answers(&mut e, &mut r, key, &MODEL_LINES, "replica (RESTORE)");
    }
    run_str(&mut c, "DEBUG RELOAD").expect("DEBUG RELOAD");
    for (key, case) in &loaded {
        same_answers(&mut c, &mut r, key, &MODEL_LINES, "after DEBUG RELOAD");
        run_model(&mut c, key, &case.expected, "after DEBUG RELOAD");
    }
    server.restart();
    let mut c = server.client();
    for (key, case) in &loaded {
        same_answers(&mut c, &mut r, key, &MODEL_LINES, "after restart");
        run_model(&mut c, key, &case.expected, "after restart");
    }
    let replica = server.start_replica();
    let mut p = replica.client();
    for (key, _) in &loaded {
        same_answers(&mut p, &mut r, key, &MODEL_LINES, "replica (full sync)");
    }
}

#[test]
fn a_model_its_backend_refuses_is_kept_with_the_reason() {
    let mut server = Server::start();
    let mut c = server.client();
    let m = RaiModel {
        backend: "TORCH",
        device: "CPU",
        tag: b"broken",
        batchsize: 0,
        minbatchsize: 0,
        minbatchtimeout: 0,
        inputs: &[],
        outputs: &[],
        blob: b"this is not TorchScript",
        chunk_size: 8,
    };
    restore_ok(
        &mut c,
        "broken",
        &rai::module_dump(rai::MODEL, 4, &rai::model_fields(4, &m)),
    );
    let check = |c: &mut Connection| {
        assert_eq!(
            run_str(c, "AI.MODELGET broken BLOB").expect("BLOB"),
            Value::BulkString(b"this is not TorchScript".to_vec())
        );
        run_str(c, "AI.TENSORSET mig:a FLOAT 2 VALUES 1 2").expect("a");
        let err = error_text(run_str(
            c,
            "AI.MODELEXECUTE broken INPUTS 2 mig:a mig:a OUTPUTS 1 mig:out",
        ));
        assert!(err.contains("model cannot run"), "{err}");
    };
    check(&mut c);
    let digest = digest_value(&mut c, "broken");
    run_str(&mut c, "DEBUG RELOAD").expect("DEBUG RELOAD");
    check(&mut c);
    assert_eq!(digest_value(&mut c, "broken"), digest);
    server.restart();
    let mut c = server.client();
    check(&mut c);
    assert_eq!(digest_value(&mut c, "broken"), digest);
}

const SCRIPT: &str = "def bar(tensors: List[Tensor], keys: List[str], args: List[str]):
    return tensors[0] + tensors[1]

def twice(tensors: List[Tensor], keys: List[str], args: List[str]):
    return [tensors[0] * 2, tensors[0] + float(args[0])]
";

const SCRIPT_LINES: [&str; 3] = ["AI.SCRIPTGET {} META", "AI.SCRIPTGET {} SOURCE", "TYPE {}"];

fn run_script(c: &mut Connection, key: &str, encver: u64, when: &str) {
    run_str(c, "AI.TENSORSET mig:t FLOAT 2 VALUES 1 2").expect("t");
    if encver >= 3 {
        run_str(
            c,
            &format!("AI.SCRIPTEXECUTE {key} twice INPUTS 1 mig:t ARGS 1 10 OUTPUTS 2 mig:x mig:y"),
        )
        .unwrap_or_else(|e| panic!("{when}: {key}: {e}"));
        assert_eq!(
            run_str(c, "AI.TENSORGET mig:y VALUES").expect("y"),
            floats(&["11", "12"])
        );
    } else {
        run_str(
            c,
            &format!("AI.SCRIPTRUN {key} bar INPUTS mig:t mig:t OUTPUTS mig:x"),
        )
        .unwrap_or_else(|e| panic!("{when}: {key}: {e}"));
    }
    assert_eq!(
        run_str(c, "AI.TENSORGET mig:x VALUES").expect("x"),
        floats(&["2", "4"]),
        "{when}: {key}"
    );
}

#[test]
fn scripts_of_every_version_load_and_run() {
    if !backend_built("redisai_torch") {
        eprintln!("the TORCH plugin is not built; skipped");
        return;
    }
    let mut server = Server::start();
    let reference = Server::start();
    let mut r = reference.client();
    let early_replica = server.start_replica();
    let mut c = server.client();
    let mut entries: Vec<(String, u64, Vec<Field>)> = Vec::new();
    for encver in 0..=4u64 {
        let key = format!("s:{encver}");
        let tag = format!("tag{encver}");
        let entry_points: &[&str] = if encver >= 3 { &["bar", "twice"] } else { &[] };
        let fields = rai::script_fields(encver, "CPU", tag.as_bytes(), SCRIPT, entry_points);
        restore_ok(
            &mut c,
            &key,
            &rai::module_dump(rai::SCRIPT, encver, &fields),
        );
        let mut args: Vec<&[u8]> = vec![
            if entry_points.is_empty() {
                b"AI.SCRIPTSET".as_slice()
            } else {
                b"AI.SCRIPTSTORE".as_slice()
            },
            key.as_bytes(),
            b"CPU".as_slice(),
            b"TAG".as_slice(),
            tag.as_bytes(),
        ];
        let count = entry_points.len().to_string();
        if !entry_points.is_empty() {
            args.push(b"ENTRY_POINTS");
            args.push(count.as_bytes());
            args.extend(entry_points.iter().map(|n| n.as_bytes()));
        }
        args.push(b"SOURCE");
        args.push(SCRIPT.as_bytes());
        run(&mut r, &args).unwrap_or_else(|e| panic!("reference {key}: {e}"));
        same_answers(&mut c, &mut r, &key, &SCRIPT_LINES, "restored");
        run_script(&mut c, &key, encver, "restored");
        entries.push((key, encver, fields));
    }
    let file_entries: Vec<(&str, &str, u64, Vec<Field>)> = entries
        .iter()
        .map(|(key, encver, fields)| (key.as_str(), rai::SCRIPT, *encver, fields.clone()))
        .collect();
    check_rdb_file(
        &file_entries,
        &mut r,
        &SCRIPT_LINES,
        &[
            "AI.TENSORSET mig:t FLOAT 2 VALUES 1 2",
            "AI.SCRIPTRUN s:0 bar INPUTS mig:t mig:t OUTPUTS mig:x",
            "AI.SCRIPTEXECUTE s:4 twice INPUTS 1 mig:t ARGS 1 10 OUTPUTS 2 mig:x mig:y",
        ],
    );
    early_replica.wait_for_sync(&server);
    let mut e = early_replica.client();
    for (key, ..) in &entries {
        same_answers(&mut e, &mut r, key, &SCRIPT_LINES, "replica (RESTORE)");
    }
    run_str(&mut c, "DEBUG RELOAD").expect("DEBUG RELOAD");
    for (key, encver, _) in &entries {
        same_answers(&mut c, &mut r, key, &SCRIPT_LINES, "after DEBUG RELOAD");
        run_script(&mut c, key, *encver, "after DEBUG RELOAD");
    }
    server.restart();
    let mut c = server.client();
    for (key, encver, _) in &entries {
        same_answers(&mut c, &mut r, key, &SCRIPT_LINES, "after restart");
        run_script(&mut c, key, *encver, "after restart");
    }
    let replica = server.start_replica();
    let mut p = replica.client();
    for (key, ..) in &entries {
        same_answers(&mut p, &mut r, key, &SCRIPT_LINES, "replica (full sync)");
    }
}

/// Every prefix of a valid value's fields (re-framed with a correct checksum), and
/// values with huge or inconsistent counts: RESTORE answers an error, nothing crashes.
#[test]
fn hostile_redisai_payloads_are_refused() {
    use Field::{Signed as S, Unsigned as U};
    let server = Server::start();
    let mut c = server.client();
    let model = RaiModel {
        backend: "ONNX",
        device: "CPU",
        tag: b"t",
        batchsize: 2,
        minbatchsize: 1,
        minbatchtimeout: 3,
        inputs: &["x"],
        outputs: &["y"],
        blob: b"0123456789abcdef",
        chunk_size: 5,
    };
    let valid: Vec<(&str, u64, Vec<Field>)> = vec![
        (
            rai::TENSOR,
            3,
            rai::tensor_fields(3, "FLOAT", &[2], &f32_blob(&[1.0, 2.0]), &[]),
        ),
        (
            rai::TENSOR,
            4,
            rai::tensor_fields(4, "STRING", &[2], b"ab\0c\0", &[3, 2]),
        ),
        (rai::MODEL, 0, rai::model_fields(0, &model)),
        (rai::MODEL, 4, rai::model_fields(4, &model)),
        (
            rai::SCRIPT,
            4,
            rai::script_fields(4, "CPU", b"t", "def f(x):\n  return x\n", &["f"]),
        ),
    ];
    let mut refused = 0;
    let mut accepted = 0;
    for (type_name, encver, fields) in &valid {
        let value = rai::module_value(type_name, *encver, fields);
        // Cut inside the fields (after the module id, before the EOF opcode). RESTORE
        // reads on into the payload's trailer, so a cut near the end can still make a
        // well-formed (different) value: then it must be a usable one.
        for cut in 9..value.len() - 1 {
            let payload = rai::dump_payload(rai::TYPE_MODULE_2, &value[..cut]);
            match restore(&mut c, "hostile", &payload) {
                Err(_) => refused += 1,
                Ok(_) => {
                    accepted += 1;
                    assert_eq!(
                        run_str(&mut c, "TYPE hostile").expect("TYPE"),
                        Value::SimpleString((*type_name).to_owned())
                    );
                    let digest = digest_value(&mut c, "hostile");
                    assert_ne!(digest, Value::Nil, "{type_name} v{encver} cut at {cut}");
                    run_str(&mut c, "DEL hostile").expect("DEL");
                }
            }
            assert_eq!(
                run_str(&mut c, "PING").expect("alive"),
                Value::SimpleString("PONG".to_owned())
            );
        }
        // Fewer fields than the encoding has, properly terminated.
        for keep in 0..fields.len() {
            let payload = rai::module_dump(type_name, *encver, &fields[..keep]);
            assert!(
                restore(&mut c, "hostile", &payload).is_err(),
                "{type_name} v{encver} with {keep} fields was accepted"
            );
            refused += 1;
        }
    }
    assert!(
        accepted * 10 < refused,
        "{accepted} truncated payloads accepted, {refused} refused"
    );
    let cpu = rai::c_str("CPU");
    let huge: Vec<(&str, u64, Vec<Field>)> = vec![
        // Tensor rank 2^40, 2^63 (negative as signed), lanes 4, unknown dtype.
        (
            rai::TENSOR,
            2,
            vec![U(1), U(0), U(32), U(2), U(1), U(1 << 40)],
        ),
        (rai::TENSOR, 4, vec![U(2), U(32), S(i64::MIN)]),
        (rai::TENSOR, 4, vec![U(2), U(32), S(1 << 40)]),
        (
            rai::TENSOR,
            1,
            vec![
                U(1),
                U(0),
                U(32),
                U(2),
                U(4),
                U(1),
                U(1),
                U(1),
                U(0),
                rai::bytes(&[0; 16]),
            ],
        ),
        (rai::TENSOR, 4, vec![U(5), U(32), S(0), rai::bytes(&[0; 4])]),
        // Dims whose product overflows, and data of the wrong length.
        (
            rai::TENSOR,
            4,
            vec![
                U(2),
                U(32),
                S(2),
                S(1 << 40),
                S(1 << 40),
                rai::bytes(&[0; 4]),
            ],
        ),
        (
            rai::TENSOR,
            4,
            vec![U(2), U(32), S(1), S(3), rai::bytes(&[0; 4])],
        ),
        // A STRING tensor claiming 2^40 elements, and one whose elements lack NULs.
        (
            rai::TENSOR,
            4,
            vec![U(7), U(8), S(1), S(1 << 40), rai::bytes(b"a\0"), U(2)],
        ),
        (
            rai::TENSOR,
            4,
            vec![U(7), U(8), S(1), S(2), rai::bytes(b"abc"), U(1), U(2)],
        ),
        // Model: unknown backend, 2^62 inputs, 2^62 chunks, chunks longer or shorter
        // than the length, a length of 2^62.
        (rai::MODEL, 3, vec![U(9), cpu.clone()]),
        (
            rai::MODEL,
            3,
            vec![
                U(3),
                cpu.clone(),
                rai::bytes(b""),
                U(0),
                U(0),
                U(0),
                U(1 << 62),
            ],
        ),
        (
            rai::MODEL,
            3,
            vec![
                U(3),
                cpu.clone(),
                rai::bytes(b""),
                U(0),
                U(0),
                U(0),
                U(0),
                U(0),
                U(4),
                U(1 << 62),
                rai::bytes(b"ab"),
            ],
        ),
        (
            rai::MODEL,
            3,
            vec![
                U(3),
                cpu.clone(),
                rai::bytes(b""),
                U(0),
                U(0),
                U(0),
                U(0),
                U(0),
                U(2),
                U(1),
                rai::bytes(b"abcd"),
            ],
        ),
        (
            rai::MODEL,
            3,
            vec![
                U(3),
                cpu.clone(),
                rai::bytes(b""),
                U(0),
                U(0),
                U(0),
                U(0),
                U(0),
                U(1 << 62),
                U(1),
                rai::bytes(b"ab"),
            ],
        ),
        (
            rai::MODEL,
            3,
            vec![U(3), rai::c_str("TPU"), rai::bytes(b"")],
        ),
        // Script: 2^62 entry points.
        (
            rai::SCRIPT,
            3,
            vec![cpu.clone(), rai::bytes(b""), rai::c_str("x"), U(1 << 62)],
        ),
    ];
    for (type_name, encver, fields) in &huge {
        let result = restore(
            &mut c,
            "hostile",
            &rai::module_dump(type_name, *encver, fields),
        );
        assert!(result.is_err(), "{type_name} v{encver} {fields:?} accepted");
        refused += 1;
    }
    // Encodings that are neither RedisAI's nor ours.
    for encver in [5u64, 50, 99, 101, 1023] {
        let fields = rai::tensor_fields(4, "FLOAT", &[1], &f32_blob(&[1.0]), &[]);
        let err = error_text(restore(
            &mut c,
            "hostile",
            &rai::module_dump(rai::TENSOR, encver, &fields),
        ));
        assert!(err.contains("Bad data format"), "{err}");
        refused += 1;
    }
    assert_eq!(
        run_str(&mut c, "EXISTS hostile").expect("EXISTS"),
        Value::Int(0)
    );
    assert_eq!(
        run_str(&mut c, "PING").expect("PING"),
        Value::SimpleString("PONG".to_owned())
    );
    eprintln!("{refused} hostile payloads refused, {accepted} truncations well-formed");
}

/// An AOF whose base is an RDB preamble written by RedisAI (Redis 7's multi-part AOF:
/// a manifest naming the base file) loads like a dump.rdb.
#[test]
fn a_redisai_aof_with_an_rdb_preamble_loads() {
    let dir = std::env::temp_dir().join(format!("redisai-migration-aof-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let aof_dir = dir.join("appendonlydir");
    std::fs::create_dir_all(&aof_dir).expect("aof dir");
    let data = f32_blob(&[1.0, -2.5, 3.25]);
    let entries = vec![
        (
            "a:2",
            rai::TENSOR,
            2,
            rai::tensor_fields(2, "FLOAT", &[3], &data, &[]),
        ),
        (
            "a:4",
            rai::TENSOR,
            4,
            rai::tensor_fields(4, "FLOAT", &[1, 3], &data, &[]),
        ),
    ];
    std::fs::write(
        aof_dir.join("appendonly.aof.1.base.rdb"),
        rai::rdb_file(&entries),
    )
    .expect("base");
    std::fs::write(
        aof_dir.join("appendonly.aof.manifest"),
        "file appendonly.aof.1.base.rdb seq 1 type b\n",
    )
    .expect("manifest");
    let config = ServerConfig {
        data_dir: Some(dir.clone()),
        ..ServerConfig::default()
    }
    .option("appendonly", &["yes"]);
    let server = Server::try_start(config)
        .unwrap_or_else(|err| panic!("a RedisAI AOF did not load:\n{}", err.log));
    let mut c = server.client();
    let reference = Server::start();
    let mut r = reference.client();
    tensor_reference(&mut r, "a:2", "FLOAT", &[3], &data);
    tensor_reference(&mut r, "a:4", "FLOAT", &[1, 3], &data);
    for key in ["a:2", "a:4"] {
        same_answers(&mut c, &mut r, key, &TENSOR_LINES, "from a RedisAI AOF");
    }
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

/// A RedisAI model placed on a GPU this build has no backend for is kept, with the
/// reason, like a model whose backend refuses it.
#[test]
fn a_gpu_model_without_a_gpu_backend_is_kept() {
    let server = Server::start();
    let mut c = server.client();
    let blob = model_bytes("onnx", "add.onnx");
    let m = RaiModel {
        backend: "ONNX",
        device: "GPU:0",
        tag: b"gpu",
        batchsize: 0,
        minbatchsize: 0,
        minbatchtimeout: 0,
        inputs: &["a", "b"],
        outputs: &["c"],
        blob: &blob,
        chunk_size: 512,
    };
    restore_ok(
        &mut c,
        "gpu",
        &rai::module_dump(rai::MODEL, 3, &rai::model_fields(3, &m)),
    );
    assert_eq!(
        run_str(&mut c, "AI.MODELGET gpu BLOB").expect("BLOB"),
        Value::BulkString(blob.clone())
    );
    let meta = format!(
        "{:?}",
        run_str(&mut c, "AI.MODELGET gpu META").expect("META")
    );
    assert!(meta.contains("GPU:0") && meta.contains("gpu"), "{meta}");
    run_str(&mut c, "AI.TENSORSET mig:a FLOAT 2 VALUES 1 2").expect("a");
    let run_result = run_str(
        &mut c,
        "AI.MODELEXECUTE gpu INPUTS 2 mig:a mig:a OUTPUTS 1 mig:out",
    );
    if backend_built("redisai_onnxruntime") {
        // Only a CPU build of the backend: the model cannot run, and says why.
        if let Err(err) = run_result {
            let text = err.to_string();
            assert!(text.contains("model cannot run"), "{text}");
        }
    }
    let digest = digest_value(&mut c, "gpu");
    run_str(&mut c, "DEBUG RELOAD").expect("DEBUG RELOAD");
    assert_eq!(digest_value(&mut c, "gpu"), digest);
}
