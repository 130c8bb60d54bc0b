//! Data written by RedisAI 1.0-1.2 loads: `DUMP` payloads and RDB files in RedisAI's
//! encodings (0 to 4) of tensors, models and scripts, built byte by byte by
//! `redisai_tests::redisai_rdb` from the format (not by our writer). Each value is
//! compared with the same value stored through commands on a reference server
//! (`DEBUG DIGEST-VALUE`, TENSORGET/MODELGET/SCRIPTGET), then again after DEBUG RELOAD
//! (saved in our encoding), a restart and on replicas; models and scripts run.
//! Hostile payloads (truncated, huge counts) answer an error and the server lives on.

mod hostile;
mod models;
mod scripts;

use redisai_tests::bulk_array as floats;
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

/// A value restored from RedisAI's encoding: its key, encoding and fields.
type Restored = (String, u64, Vec<Field>);

/// What restored values must survive, after they were compared on `server`: the replica
/// that received the RESTOREs (`early_replica`), DEBUG RELOAD (saved in our encoding), a
/// restart and a replica's full sync. At each stage every key answers `lines` as on the
/// reference; after the reload and the restart, `run` (given the key's index) runs it.
fn check_stages(
    server: &mut Server,
    early_replica: &Server,
    r: &mut Connection,
    keys: &[&str],
    lines: &[&str],
    mut run: impl FnMut(&mut Connection, usize, &str),
) {
    early_replica.wait_for_sync(server);
    let mut e = early_replica.client();
    for key in keys {
        same_answers(&mut e, r, key, lines, "replica (RESTORE)");
    }
    let mut c = server.client();
    run_str(&mut c, "DEBUG RELOAD").expect("DEBUG RELOAD");
    for (i, key) in keys.iter().enumerate() {
        same_answers(&mut c, r, key, lines, "after DEBUG RELOAD");
        run(&mut c, i, "after DEBUG RELOAD");
    }
    server.restart();
    let mut c = server.client();
    for (i, key) in keys.iter().enumerate() {
        same_answers(&mut c, r, key, lines, "after restart");
        run(&mut c, i, "after restart");
    }
    let replica = server.start_replica();
    let mut p = replica.client();
    for key in keys {
        same_answers(&mut p, r, key, lines, "replica (full sync)");
    }
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
    let restored: Vec<Restored> = cases
        .iter()
        .map(|(key, _, _, _, encver, fields)| (key.clone(), *encver, fields.clone()))
        .collect();
    check_rdb_file(rai::TENSOR, &restored, &mut r, &TENSOR_LINES, &[]);
    let keys: Vec<&str> = cases.iter().map(|case| case.0.as_str()).collect();
    check_stages(
        &mut server,
        &early_replica,
        &mut r,
        &keys,
        &TENSOR_LINES,
        |_, _, _| {},
    );
}

/// Starts a server on a RedisAI `dump.rdb` holding `entries` (values of `type_name`)
/// and compares each key with the reference; `runs` are commands that must succeed there.
fn check_rdb_file(
    type_name: &str,
    entries: &[Restored],
    r: &mut Connection,
    lines: &[&str],
    runs: &[&str],
) {
    let entries: Vec<(&str, &str, u64, Vec<Field>)> = entries
        .iter()
        .map(|(key, encver, fields)| (key.as_str(), type_name, *encver, fields.clone()))
        .collect();
    let dir = std::env::temp_dir().join(format!(
        "redisai-migration-{}-{}",
        std::process::id(),
        entries.first().map_or("none", |e| e.0).replace(':', "_")
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("data dir");
    std::fs::write(dir.join("dump.rdb"), rai::rdb_file(&entries)).expect("dump.rdb");
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
    for (key, ..) in &entries {
        same_answers(&mut c, r, key, lines, "from a RedisAI dump.rdb");
    }
    for line in runs {
        run_str(&mut c, line).unwrap_or_else(|e| panic!("{line}: {e}"));
    }
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
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
