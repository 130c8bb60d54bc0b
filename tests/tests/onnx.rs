//! Models end to end on the ONNX Runtime backend plugin, with models made by
//! `scripts/gen-test-models` (tests/models/onnx).

use std::io::Write;
use std::net::TcpStream;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use redisai_plugin_api::abi::{RAI_PLUGIN_ABI_MAJOR, RAI_PLUGIN_ABI_MINOR};
use redisai_tests::redis::{self, Connection, Value};
use redisai_tests::{digest, error_text, run, run_str, Server, ServerConfig};

fn model_path(name: &str) -> PathBuf {
    redisai_tests::workspace_root()
        .join("tests/models/onnx")
        .join(name)
}

fn model_bytes(name: &str) -> Vec<u8> {
    std::fs::read(model_path(name)).unwrap_or_else(|err| panic!("{name}: {err}"))
}

fn store(c: &mut Connection, key: &str, model: &str) {
    let blob = model_bytes(model);
    let reply = run(
        c,
        &[
            b"AI.MODELSTORE",
            key.as_bytes(),
            b"ONNX",
            b"CPU",
            b"BLOB",
            &blob,
        ],
    );
    assert_eq!(reply.expect("MODELSTORE"), Value::Okay, "{model}");
}

fn f32_blob(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn blob_f32(value: Value) -> Vec<f32> {
    match value {
        Value::BulkString(bytes) => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        other => panic!("expected a blob, got {other:?}"),
    }
}

fn set_f32(c: &mut Connection, key: &str, shape: &[usize], values: &[f32]) {
    let mut args: Vec<Vec<u8>> = vec![b"AI.TENSORSET".to_vec(), key.into(), b"FLOAT".to_vec()];
    args.extend(shape.iter().map(|d| d.to_string().into_bytes()));
    args.push(b"BLOB".to_vec());
    args.push(f32_blob(values));
    let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
    assert_eq!(run(c, &refs).expect("TENSORSET"), Value::Okay);
}

fn onnx_server(module_args: &[&str]) -> Server {
    Server::start_with(ServerConfig::default().module_args(module_args))
}

fn pong(c: &mut Connection) {
    assert_eq!(
        run_str(c, "PING").expect("alive"),
        Value::SimpleString("PONG".into())
    );
}

#[test]
fn add_model_and_lazy_backend_load() {
    let server = onnx_server(&[]);
    let mut c = server.client();
    let info: String = redis::cmd("INFO")
        .arg("modules")
        .query(&mut c)
        .expect("info");
    assert!(
        info.contains("ai_loaded:0"),
        "no backend before the first MODELSTORE"
    );
    store(&mut c, "add", "add.onnx");
    let info: String = redis::cmd("INFO")
        .arg("modules")
        .query(&mut c)
        .expect("info");
    assert!(
        info.contains(&format!(
            "ai_onnx:runtime=1.32.0,abi={RAI_PLUGIN_ABI_MAJOR}.{RAI_PLUGIN_ABI_MINOR},devices=CPU"
        )),
        "{info}"
    );
    run_str(&mut c, "AI.TENSORSET a FLOAT 3 VALUES 1 2 3").expect("a");
    run_str(&mut c, "AI.TENSORSET b FLOAT 3 VALUES 10 20 30.5").expect("b");
    assert_eq!(
        run_str(&mut c, "AI.MODELEXECUTE add INPUTS 2 a b OUTPUTS 1 c").expect("run"),
        Value::Okay
    );
    assert_eq!(
        blob_f32(run_str(&mut c, "AI.TENSORGET c BLOB").expect("get")),
        vec![11.0, 22.0, 33.5]
    );
    let Value::Array(meta) = run_str(&mut c, "AI.MODELGET add META").expect("meta") else {
        panic!()
    };
    assert_eq!(
        meta[11],
        Value::Array(vec![
            Value::BulkString(b"a".to_vec()),
            Value::BulkString(b"b".to_vec())
        ])
    );
    assert_eq!(
        meta[13],
        Value::Array(vec![Value::BulkString(b"c".to_vec())])
    );
}

/// relu(x·W1 + b1)·W2 + b2, computed here from the weights the generator wrote.
fn mlp_reference(x: &[[f32; 4]]) -> Vec<f32> {
    let text = std::fs::read_to_string(model_path("mlp_weights.json")).expect("weights");
    let json: serde_json::Value = serde_json::from_str(&text).expect("json");
    let matrix = |name: &str| -> Vec<Vec<f32>> {
        json[name]
            .as_array()
            .expect("rows")
            .iter()
            .map(|row| {
                row.as_array()
                    .expect("row")
                    .iter()
                    .map(|v| v.as_f64().expect("number") as f32)
                    .collect()
            })
            .collect()
    };
    let vector = |name: &str| -> Vec<f32> {
        json[name]
            .as_array()
            .expect("vector")
            .iter()
            .map(|v| v.as_f64().expect("number") as f32)
            .collect()
    };
    let (w1, b1, w2, b2) = (matrix("W1"), vector("b1"), matrix("W2"), vector("b2"));
    let mut out = Vec::new();
    for row in x {
        let hidden: Vec<f32> = (0..b1.len())
            .map(|j| (0..4).map(|i| row[i] * w1[i][j]).sum::<f32>() + b1[j])
            .map(|h| h.max(0.0))
            .collect();
        for k in 0..b2.len() {
            out.push((0..hidden.len()).map(|j| hidden[j] * w2[j][k]).sum::<f32>() + b2[k]);
        }
    }
    out
}

#[test]
fn mlp_matches_its_weights() {
    let server = onnx_server(&[]);
    let mut c = server.client();
    store(&mut c, "mlp", "mlp.onnx");
    let x = [
        [1.0, 2.0, 3.0, 4.0],
        [-1.0, 0.5, 0.0, 2.0],
        [0.25, -3.0, 1.5, 0.0],
    ];
    let flat: Vec<f32> = x.iter().flatten().copied().collect();
    set_f32(&mut c, "x", &[3, 4], &flat);
    run_str(&mut c, "AI.MODELEXECUTE mlp INPUTS 1 x OUTPUTS 1 y").expect("run");
    let got = blob_f32(run_str(&mut c, "AI.TENSORGET y BLOB").expect("y"));
    let expected = mlp_reference(&x);
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(&expected) {
        assert!((g - e).abs() < 1e-5, "{got:?} vs {expected:?}");
    }
    let Value::Array(meta) = run_str(&mut c, "AI.TENSORGET y META").expect("meta") else {
        panic!()
    };
    assert_eq!(meta[3], Value::Array(vec![Value::Int(3), Value::Int(3)]));
}

#[test]
fn two_outputs_keep_their_order() {
    let server = onnx_server(&[]);
    let mut c = server.client();
    store(&mut c, "two", "two_outputs.onnx");
    set_f32(&mut c, "x", &[2, 2], &[1.0, 2.0, 3.0, 4.0]);
    run_str(&mut c, "AI.MODELEXECUTE two INPUTS 1 x OUTPUTS 2 s p").expect("run");
    assert_eq!(
        blob_f32(run_str(&mut c, "AI.TENSORGET s BLOB").expect("s")),
        vec![2.0, 4.0, 6.0, 8.0]
    );
    assert_eq!(
        blob_f32(run_str(&mut c, "AI.TENSORGET p BLOB").expect("p")),
        vec![1.0, 4.0, 9.0, 16.0]
    );
}

#[test]
fn string_int64_and_bool_tensors() {
    let server = onnx_server(&[]);
    let mut c = server.client();
    store(&mut c, "strings", "string_identity.onnx");
    run(
        &mut c,
        &[
            b"AI.TENSORSET",
            b"s",
            b"STRING",
            b"3",
            b"VALUES",
            b"hello",
            b"",
            "\u{3bb}x".as_bytes(),
        ],
    )
    .expect("s");
    run_str(&mut c, "AI.MODELEXECUTE strings INPUTS 1 s OUTPUTS 1 t").expect("run");
    assert_eq!(
        run_str(&mut c, "AI.TENSORGET t VALUES").expect("t"),
        Value::Array(vec![
            Value::BulkString(b"hello".to_vec()),
            Value::BulkString(b"".to_vec()),
            Value::BulkString("\u{3bb}x".as_bytes().to_vec()),
        ])
    );
    store(&mut c, "ints", "int_ops.onnx");
    run_str(
        &mut c,
        "AI.TENSORSET x INT64 3 VALUES -2 0 9223372036854775806",
    )
    .expect("x");
    run_str(&mut c, "AI.MODELEXECUTE ints INPUTS 1 x OUTPUTS 2 y pos").expect("run");
    assert_eq!(
        run_str(&mut c, "AI.TENSORGET y META VALUES").expect("y"),
        Value::Array(vec![
            Value::BulkString(b"dtype".to_vec()),
            Value::BulkString(b"INT64".to_vec()),
            Value::BulkString(b"shape".to_vec()),
            Value::Array(vec![Value::Int(3)]),
            Value::BulkString(b"values".to_vec()),
            Value::Array(vec![Value::Int(-1), Value::Int(1), Value::Int(i64::MAX)]),
        ])
    );
    let Value::Array(pos) = run_str(&mut c, "AI.TENSORGET pos META VALUES").expect("pos") else {
        panic!()
    };
    assert_eq!(pos[1], Value::BulkString(b"BOOL".to_vec()));
    assert_eq!(
        pos[5],
        Value::Array(vec![Value::Int(0), Value::Int(0), Value::Int(1)])
    );
}

#[test]
fn bad_blobs_and_inputs_are_errors_not_crashes() {
    let server = onnx_server(&[]);
    let mut c = server.client();
    let mut blob = model_bytes("mlp.onnx");
    for (name, corrupt) in [
        ("garbage", b"this is not an onnx model".to_vec()),
        ("truncated", blob[..blob.len() / 2].to_vec()),
        ("empty", Vec::new()),
    ] {
        let reply = run(
            &mut c,
            &[b"AI.MODELSTORE", b"bad", b"ONNX", b"CPU", b"BLOB", &corrupt],
        );
        let text = error_text(reply);
        assert!(text.starts_with("ERR "), "{name}: {text}");
        pong(&mut c);
    }
    for flip in [10usize, 100, 200] {
        if flip < blob.len() {
            blob[flip] ^= 0xff;
        }
    }
    // A flipped byte may still be a valid model (say, in a weight): either way, no crash.
    let _ = run(
        &mut c,
        &[
            b"AI.MODELSTORE",
            b"flipped",
            b"ONNX",
            b"CPU",
            b"BLOB",
            &blob,
        ],
    );
    pong(&mut c);
    assert_eq!(
        run_str(&mut c, "EXISTS bad").expect("exists"),
        Value::Int(0)
    );

    store(&mut c, "mlp", "mlp.onnx");
    run_str(&mut c, "AI.TENSORSET wrongtype INT32 1 4 VALUES 1 2 3 4").expect("set");
    let dtype = error_text(run_str(
        &mut c,
        "AI.MODELEXECUTE mlp INPUTS 1 wrongtype OUTPUTS 1 y",
    ));
    assert!(
        dtype.contains("INT32") && dtype.contains("FLOAT"),
        "{dtype}"
    );
    run_str(&mut c, "AI.TENSORSET wrongshape FLOAT 2 5").expect("set");
    let shape = error_text(run_str(
        &mut c,
        "AI.MODELEXECUTE mlp INPUTS 1 wrongshape OUTPUTS 1 y",
    ));
    assert!(shape.starts_with("ERR "), "{shape}");
    assert_eq!(
        run_str(&mut c, "EXISTS y").expect("exists"),
        Value::Int(0),
        "failed runs write nothing"
    );
    pong(&mut c);
}

#[test]
fn endless_model_is_stopped_by_the_execution_timeout() {
    let server = onnx_server(&["MODEL_EXECUTION_TIMEOUT", "300"]);
    let mut c = server.client();
    store(&mut c, "loop", "endless_loop.onnx");
    run_str(&mut c, "AI.TENSORSET x FLOAT 1 VALUES 0").expect("x");
    let started = Instant::now();
    let text = error_text(run_str(
        &mut c,
        "AI.MODELEXECUTE loop INPUTS 1 x OUTPUTS 1 y",
    ));
    assert!(text.to_lowercase().contains("time"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    // The queue is free again.
    store(&mut c, "add", "add.onnx");
    run_str(&mut c, "AI.MODELEXECUTE add INPUTS 2 x x OUTPUTS 1 z").expect("next run");
    let Value::Array(info) = run_str(&mut c, "AI.INFO loop").expect("info") else {
        panic!()
    };
    assert_eq!(
        info[17],
        Value::Int(1),
        "the failed run counts as an error: {info:?}"
    );
}

#[test]
fn request_timeout_and_queued_requests() {
    // One worker, held busy by a long run, so later requests wait in the queue.
    let server = onnx_server(&["MODEL_EXECUTION_TIMEOUT", "1500", "THREADS_PER_QUEUE", "1"]);
    let mut c = server.client();
    store(&mut c, "loop", "endless_loop.onnx");
    store(&mut c, "add", "add.onnx");
    run_str(&mut c, "AI.TENSORSET x FLOAT 1 VALUES 0").expect("x");
    let url = server.url();
    let blocker = thread::spawn(move || {
        let mut conn = redis::Client::open(url)
            .expect("client")
            .get_connection()
            .expect("conn");
        let _ = run_str(&mut conn, "AI.MODELEXECUTE loop INPUTS 1 x OUTPUTS 1 y");
    });
    thread::sleep(Duration::from_millis(200));
    // A request that times out while queued gets TIMEDOUT, promptly.
    let started = Instant::now();
    let reply = run_str(
        &mut c,
        "AI.MODELEXECUTE add INPUTS 2 x x OUTPUTS 1 t TIMEOUT 100",
    )
    .expect("reply");
    assert_eq!(reply, Value::SimpleString("TIMEDOUT".into()));
    assert!(started.elapsed() < Duration::from_millis(1000));
    // A client that disconnects while queued: its request is dropped, the server lives on.
    let mut raw = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    let words = [
        "AI.MODELEXECUTE",
        "add",
        "INPUTS",
        "2",
        "x",
        "x",
        "OUTPUTS",
        "1",
        "gone",
    ];
    let mut resp = format!("*{}\r\n", words.len());
    for word in words {
        resp.push_str(&format!("${}\r\n{word}\r\n", word.len()));
    }
    raw.write_all(resp.as_bytes()).expect("send");
    thread::sleep(Duration::from_millis(50));
    drop(raw);
    blocker.join().expect("blocker");
    // A client that goes away while its run is inside the backend: the run is stopped.
    let mut raw = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    let words = [
        "AI.MODELEXECUTE",
        "loop",
        "INPUTS",
        "1",
        "x",
        "OUTPUTS",
        "1",
        "never",
    ];
    let mut resp = format!("*{}\r\n", words.len());
    for word in words {
        resp.push_str(&format!("${}\r\n{word}\r\n", word.len()));
    }
    raw.write_all(resp.as_bytes()).expect("send");
    thread::sleep(Duration::from_millis(100));
    drop(raw);
    let started = Instant::now();
    // Everything queued has drained; new work runs.
    assert_eq!(
        run_str(&mut c, "AI.MODELEXECUTE add INPUTS 2 x x OUTPUTS 1 after").expect("run"),
        Value::Okay
    );
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "the abandoned run was stopped early: {:?}",
        started.elapsed()
    );
    assert_eq!(
        run_str(&mut c, "EXISTS gone never").expect("exists"),
        Value::Int(0)
    );
    pong(&mut c);
    let info: String = redis::cmd("INFO")
        .arg("modules")
        .query(&mut c)
        .expect("info");
    assert!(info.contains("pending=0"), "{info}");
}

#[test]
fn models_persist_and_replicate() {
    let mut server = onnx_server(&[]);
    let mut c = server.client();
    store(&mut c, "mlp", "mlp.onnx");
    store(&mut c, "add", "add.onnx");
    run_str(&mut c, "AI.MODELSTORE tagged ONNX CPU TAG v2 BLOB x").err();
    set_f32(&mut c, "x", &[1, 4], &[1.0, 2.0, 3.0, 4.0]);
    let replica = server.start_replica();
    run_str(&mut c, "AI.MODELEXECUTE mlp INPUTS 1 x OUTPUTS 1 y").expect("run");
    replica.wait_for_sync(&server);
    let mut r = replica.client();
    assert_eq!(digest(&mut r), digest(&mut c));
    assert_eq!(
        run_str(&mut r, "AI.MODELGET mlp BLOB").expect("replicated model"),
        Value::BulkString(model_bytes("mlp.onnx"))
    );
    let before = digest(&mut c);
    run_str(&mut c, "SAVE").expect("save");
    server.restart();
    let mut c = server.client();
    assert_eq!(digest(&mut c), before);
    // The backend was loaded lazily while the RDB loaded, and the model runs.
    run_str(&mut c, "AI.MODELEXECUTE mlp INPUTS 1 x OUTPUTS 1 y2").expect("run after restart");
    assert_eq!(
        run_str(&mut c, "AI.TENSORGET y2 BLOB").expect("y2"),
        run_str(&mut c, "AI.TENSORGET y BLOB").expect("y")
    );
}

#[test]
fn shutdown_while_a_run_is_inside_the_runtime() {
    let mut server = onnx_server(&["MODEL_EXECUTION_TIMEOUT", "20000"]);
    let mut c = server.client();
    store(&mut c, "loop", "endless_loop.onnx");
    run_str(&mut c, "AI.TENSORSET x FLOAT 1 VALUES 0").expect("x");
    let url = server.url();
    let runner = thread::spawn(move || {
        let mut conn = redis::Client::open(url)
            .expect("client")
            .get_connection()
            .expect("conn");
        let _ = run_str(&mut conn, "AI.MODELEXECUTE loop INPUTS 1 x OUTPUTS 1 y");
    });
    thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    server.shutdown();
    let _ = runner.join();
    // The run is interrupted (not waited for), and the process still exits cleanly.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shutdown took {:?}",
        started.elapsed()
    );
    let log = server.log();
    // "Redis is now ready to exit" (Valkey: "Valkey is now ready to exit").
    assert!(log.contains("is now ready to exit"), "{log}");
    for crash in [
        "crashed by signal",
        "pure virtual",
        "cpuinfo",
        "Segmentation",
    ] {
        assert!(!log.contains(crash), "{crash} in:\n{log}");
    }
}

#[test]
fn backend_named_in_the_module_arguments_loads_at_start() {
    let plugin = redisai_tests::workspace_root()
        .join("dist/backends/redisai_onnxruntime/redisai_onnxruntime.so");
    let relative = "redisai_onnxruntime/redisai_onnxruntime.so";
    for path in [plugin.display().to_string(), relative.to_owned()] {
        let server = onnx_server(&["ONNX", &path]);
        let mut c = server.client();
        let info: String = redis::cmd("INFO")
            .arg("modules")
            .query(&mut c)
            .expect("info");
        assert!(info.contains("ai_onnx:runtime=1.32.0"), "{path}: {info}");
        let again = error_text(run_str(
            &mut c,
            &format!("AI.CONFIG LOADBACKEND ONNX {path}"),
        ));
        assert!(again.contains("already loaded"), "{again}");
    }
    // A backend that cannot load is logged; the module and Redis keep running.
    let server = onnx_server(&["ONNX", "/nonexistent/plugin.so"]);
    let mut c = server.client();
    pong(&mut c);
    assert!(
        server.log().contains("Could not load backend ONNX"),
        "{}",
        server.log()
    );
}

#[test]
fn gpu_models_without_a_gpu_backend_are_a_clear_error() {
    let server = onnx_server(&[]);
    let mut c = server.client();
    let blob = model_bytes("add.onnx");
    for device in ["GPU", "GPU:1"] {
        let reply = run(
            &mut c,
            &[
                b"AI.MODELSTORE",
                b"g",
                b"ONNX",
                device.as_bytes(),
                b"BLOB",
                &blob,
            ],
        );
        let text = error_text(reply);
        assert!(text.starts_with("ERR device"), "{text}");
        assert!(
            text.contains(device) && text.contains("CPU only"),
            "says which device and why: {text}"
        );
    }
    assert_eq!(
        run_str(&mut c, "EXISTS g").expect("exists"),
        Value::Int(0),
        "never silently on the CPU"
    );
    store(&mut c, "cpu", "add.onnx");
}
