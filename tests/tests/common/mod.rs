//! Helpers shared by the TF and TFLite end-to-end tests (`tensorflow.rs`, `tflite.rs`).
#![allow(dead_code)]

pub mod onnx_graph;

use std::path::PathBuf;
use std::time::Duration;

use redisai_tests::redis::{self, Connection, RedisResult, Value};
use redisai_tests::{run, run_str, Server};

/// The test models are small: a reply that takes longer than this means the server is
/// stuck, and the test fails instead of waiting for ever.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

/// The ACL user `app1` (password `pw`): every command but @admin and @dangerous, keys
/// `app1:*` only. It may store models and scripts: what it sends is hostile input.
pub const APP_USER: &str = "ACL SETUSER app1 on >pw resetkeys ~app1:* +@all -@admin -@dangerous";

/// Creates [`APP_USER`] on `server`; a connection authenticated as it.
pub fn app_user(server: &Server) -> Connection {
    let mut admin = client(server);
    call_str(&mut admin, APP_USER).expect("ACL SETUSER");
    let mut app = client(server);
    call_str(&mut app, "AUTH app1 pw").expect("AUTH");
    app
}

/// Every dtype but STRING.
pub const DTYPES: [&str; 9] = [
    "FLOAT", "DOUBLE", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "BOOL",
];

/// `t:<dtype>` for each of [`DTYPES`] (shape [2, 3]) and `t:STRING` (three strings, one
/// empty, one not UTF-8): the tensors of the persistence tests' data sets.
pub fn set_every_dtype(c: &mut Connection) {
    for (i, dtype) in DTYPES.iter().enumerate() {
        run_str(
            c,
            &format!(
                "AI.TENSORSET t:{dtype} {dtype} 2 3 VALUES 1 0 1 1 0 {}",
                i % 2
            ),
        )
        .expect("set");
    }
    run(
        c,
        &[
            b"AI.TENSORSET",
            b"t:STRING",
            b"STRING",
            b"3",
            b"VALUES",
            b"a",
            b"",
            b"\xff\xfe",
        ],
    )
    .expect("strings");
}

/// A client whose replies time out after [`REPLY_TIMEOUT`].
pub fn client(server: &Server) -> Connection {
    let c = server.client();
    c.set_read_timeout(Some(REPLY_TIMEOUT))
        .expect("read timeout");
    c
}

pub fn model_path(dir: &str, name: &str) -> PathBuf {
    redisai_tests::workspace_root()
        .join("tests/models")
        .join(dir)
        .join(name)
}

pub fn model_bytes(dir: &str, name: &str) -> Vec<u8> {
    let path = model_path(dir, name);
    std::fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// Fails at once, with a message that says so, when the server did not reply in time.
pub fn replied(reply: RedisResult<Value>, what: &str) -> RedisResult<Value> {
    if let Err(err) = &reply {
        assert!(
            !err.is_timeout() && err.kind() != redis::ErrorKind::IoError,
            "{what}: no reply (the server is stuck past {REPLY_TIMEOUT:?}, or gone): {err}"
        );
    }
    reply
}

/// Runs `words` (the last argument may be binary) and checks the server replied in time.
pub fn call(c: &mut Connection, words: &[&[u8]]) -> RedisResult<Value> {
    let what = String::from_utf8_lossy(words[0]).into_owned();
    replied(run(c, words), &what)
}

/// Runs a text command line and checks the server replied in time.
pub fn call_str(c: &mut Connection, line: &str) -> RedisResult<Value> {
    replied(run_str(c, line), line)
}

pub fn set_blob(c: &mut Connection, key: &str, dtype: &str, shape: &[usize], blob: &[u8]) {
    let mut args: Vec<Vec<u8>> = vec![b"AI.TENSORSET".to_vec(), key.into(), dtype.into()];
    args.extend(shape.iter().map(|d| d.to_string().into_bytes()));
    args.push(b"BLOB".to_vec());
    args.push(blob.to_vec());
    let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
    assert_eq!(call(c, &refs).expect("TENSORSET"), Value::Okay, "{key}");
}

pub fn f32_blob(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

pub fn set_f32(c: &mut Connection, key: &str, shape: &[usize], values: &[f32]) {
    set_blob(c, key, "FLOAT", shape, &f32_blob(values));
}

/// The tensor's dtype, shape and blob.
pub fn get(c: &mut Connection, key: &str) -> (String, Vec<i64>, Vec<u8>) {
    let reply = call_str(c, &format!("AI.TENSORGET {key} META BLOB")).expect("TENSORGET");
    let Value::Array(reply) = reply else {
        panic!("TENSORGET {key}: not an array: {reply:?}")
    };
    let dtype = match &reply[1] {
        Value::SimpleString(s) => s.clone(),
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        other => panic!("dtype of {key}: {other:?}"),
    };
    let Value::Array(dims) = &reply[3] else {
        panic!("shape of {key}: {reply:?}")
    };
    let shape = dims
        .iter()
        .map(|d| match d {
            Value::Int(n) => *n,
            other => panic!("dim {other:?}"),
        })
        .collect();
    let Value::BulkString(blob) = &reply[5] else {
        panic!("blob of {key}: {reply:?}")
    };
    (dtype, shape, blob.clone())
}

pub fn get_f32(c: &mut Connection, key: &str) -> (Vec<i64>, Vec<f32>) {
    let (dtype, shape, blob) = get(c, key);
    assert_eq!(dtype, "FLOAT", "{key}");
    let values = blob
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (shape, values)
}

pub fn pong(c: &mut Connection) {
    assert_eq!(
        call_str(c, "PING").expect("the server answers"),
        Value::SimpleString("PONG".into())
    );
}

pub fn info_modules(c: &mut Connection) -> String {
    redis::cmd("INFO")
        .arg("modules")
        .query(c)
        .expect("INFO modules")
}

pub fn server_pid(c: &mut Connection) -> u32 {
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query(c)
        .expect("INFO server");
    info.lines()
        .find_map(|line| line.strip_prefix("process_id:"))
        .and_then(|pid| pid.trim().parse().ok())
        .unwrap_or_else(|| panic!("no process_id in INFO server:\n{info}"))
}

/// The `MODELGET key META` reply as (field, value) pairs.
pub fn model_meta(c: &mut Connection, key: &str) -> Vec<(String, Value)> {
    let Value::Array(meta) = call_str(c, &format!("AI.MODELGET {key} META")).expect("META") else {
        panic!("MODELGET {key} META: not an array")
    };
    meta.chunks_exact(2)
        .map(|pair| {
            let name = match &pair[0] {
                Value::SimpleString(s) => s.clone(),
                Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
                other => panic!("field name {other:?}"),
            };
            (name, pair[1].clone())
        })
        .collect()
}

pub fn meta_field(meta: &[(String, Value)], name: &str) -> Value {
    meta.iter()
        .find(|(field, _)| field == name)
        .map(|(_, value)| value.clone())
        .unwrap_or_else(|| panic!("no {name} in {meta:?}"))
}

/// `MODELGET key META` and `MODELGET key BLOB` of each key.
fn model_snapshot(c: &mut Connection, keys: &[&str]) -> Vec<(Vec<(String, Value)>, Value)> {
    keys.iter()
        .map(|key| {
            let blob = call_str(c, &format!("AI.MODELGET {key} BLOB")).expect("MODELGET BLOB");
            (model_meta(c, key), blob)
        })
        .collect()
}

/// Stores models with `store`, checks them with `check` (which runs them and asserts their
/// outputs), then checks that the models `keys` come back the same and run after: a
/// replica's full sync (the replica is promoted, then runs them), DEBUG RELOAD, SAVE and a
/// restart (RDB), and an AOF rewrite without the RDB preamble and a restart.
pub fn models_persist_and_replicate(
    keys: &[&str],
    store: impl Fn(&mut Connection),
    check: impl Fn(&mut Connection),
) {
    let mut server = Server::start();
    let mut c = client(&server);
    store(&mut c);
    check(&mut c);
    let stored = model_snapshot(&mut c, keys);

    let replica = server.start_replica();
    let mut r = client(&replica);
    assert_eq!(redisai_tests::digest(&mut r), redisai_tests::digest(&mut c));
    assert_eq!(model_snapshot(&mut r, keys), stored, "on the replica");
    assert_eq!(
        call_str(&mut r, "REPLICAOF NO ONE").expect("promote"),
        Value::Okay
    );
    check(&mut r);
    drop(replica);

    assert_eq!(
        call_str(&mut c, "DEBUG RELOAD").expect("DEBUG RELOAD"),
        Value::Okay
    );
    assert_eq!(model_snapshot(&mut c, keys), stored, "after DEBUG RELOAD");
    check(&mut c);

    call_str(&mut c, "SAVE").expect("SAVE");
    server.restart();
    let mut c = client(&server);
    assert_eq!(model_snapshot(&mut c, keys), stored, "after an RDB restart");
    check(&mut c);
    drop(server);

    let config = redisai_tests::ServerConfig::default()
        .option("appendonly", &["yes"])
        .option("aof-use-rdb-preamble", &["no"]);
    let mut server = Server::start_with(config);
    let mut c = client(&server);
    store(&mut c);
    call_str(&mut c, "BGREWRITEAOF").expect("BGREWRITEAOF");
    wait_for_rewrite(&mut c);
    server.restart();
    let mut c = client(&server);
    assert_eq!(
        model_snapshot(&mut c, keys),
        stored,
        "after an AOF rewrite and restart"
    );
    check(&mut c);
}

pub use redisai_tests::wait_for_rewrite;

/// A field of `INFO memory`, in bytes.
pub fn memory_field(c: &mut Connection, name: &str) -> u64 {
    memory_fields(c, &[name])[0]
}

/// Fields of `INFO memory`, all from one reading (so that they agree with each other).
pub fn memory_fields(c: &mut Connection, names: &[&str]) -> Vec<u64> {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query(c)
        .expect("INFO memory");
    names
        .iter()
        .map(|name| {
            info.lines()
                .find_map(|line| line.strip_prefix(&format!("{name}:")))
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or_else(|| panic!("{name} missing from INFO memory"))
        })
        .collect()
}

/// Waits (up to 10 s, purging the allocator's caches) until RSS is within `slack` bytes
/// of `baseline`; returns the last RSS seen.
pub fn rss_settles(c: &mut Connection, baseline: u64, slack: u64) -> u64 {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let _ = call_str(c, "MEMORY PURGE");
        let rss = memory_field(c, "used_memory_rss");
        if rss <= baseline.saturating_add(slack) || std::time::Instant::now() > deadline {
            return rss;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

// ---- the GPU bundle (gpu.rs, torch_gpu.rs) ----

/// The GPU bundle's module: `$REDISAI_GPU_MODULE`, else dist-gpu/redisai.so.
pub fn gpu_module() -> PathBuf {
    let path = std::env::var_os("REDISAI_GPU_MODULE")
        .map(PathBuf::from)
        .unwrap_or_else(|| redisai_tests::workspace_root().join("dist-gpu/redisai.so"));
    assert!(
        path.is_file(),
        "{} is missing: run scripts/build-gpu first",
        path.display()
    );
    path
}

/// A server with `module` (a GPU bundle's) loaded.
pub fn gpu_server(module: PathBuf) -> Server {
    let config = redisai_tests::ServerConfig {
        module: Some(module),
        ..redisai_tests::ServerConfig::default()
    };
    Server::start_with(config)
}

/// AI.MODELSTORE of the test model `model` on `device`: ONNX for `*.onnx`, else TORCH.
pub fn store_on(c: &mut Connection, key: &str, model: &str, device: &str) -> RedisResult<Value> {
    let (kind, backend) = if model.ends_with(".onnx") {
        ("onnx", "ONNX")
    } else {
        ("torch", "TORCH")
    };
    let blob = model_bytes(kind, model);
    run(
        c,
        &[
            b"AI.MODELSTORE",
            key.as_bytes(),
            backend.as_bytes(),
            device.as_bytes(),
            b"BLOB",
            &blob,
        ],
    )
}

/// The numbers of a TENSORGET VALUES reply.
pub fn values_f64(value: Value) -> Vec<f64> {
    match value {
        Value::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Value::BulkString(b) => String::from_utf8_lossy(&b).parse().expect("number"),
                Value::Double(d) => d,
                other => panic!("not a number: {other:?}"),
            })
            .collect(),
        other => panic!("expected values, got {other:?}"),
    }
}

/// Equal within a GPU's rounding (1e-3, relative above 1).
pub fn close(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| (x - y).abs() <= 1e-3 * (1.0 + y.abs()))
}
