//! AI.DAGEXECUTE and friends against a real server and the ONNX backend.

use std::thread;
use std::time::{Duration, Instant};

use redisai_tests::redis::{self, Connection, Value};
use redisai_tests::{digest, error_text, run, run_nested, run_str, Server, ServerConfig};

fn model_bytes(name: &str) -> Vec<u8> {
    let path = redisai_tests::workspace_root()
        .join("tests/models/onnx")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

fn store(c: &mut Connection, key: &str, model: &str, extra: &str) {
    let blob = model_bytes(model);
    let mut args: Vec<&[u8]> = vec![b"AI.MODELSTORE", key.as_bytes(), b"ONNX"];
    args.extend(extra.split_whitespace().map(str::as_bytes));
    args.extend([&b"BLOB"[..], &blob]);
    assert_eq!(run(c, &args).expect("store"), Value::Okay);
}

fn ok() -> Value {
    Value::Okay
}

fn bulk(text: &str) -> Value {
    Value::BulkString(text.as_bytes().to_vec())
}

#[test]
fn documented_flow_in_one_round_trip() {
    let server = Server::start();
    let mut c = server.client();
    store(&mut c, "add", "add.onnx", "CPU");
    run_str(&mut c, "AI.TENSORSET a FLOAT 2 VALUES 1 2").expect("a");
    let reply = run_str(
        &mut c,
        "AI.DAGEXECUTE LOAD 1 a |> AI.TENSORSET b FLOAT 2 VALUES 10 20 \
         |> AI.MODELEXECUTE add INPUTS 2 a b OUTPUTS 1 c |> AI.TENSORGET c VALUES",
    )
    .expect("dag");
    assert_eq!(
        reply,
        Value::Array(vec![ok(), ok(), Value::Array(vec![bulk("11"), bulk("22")])])
    );
    assert_eq!(
        run_str(&mut c, "EXISTS b c").expect("exists"),
        Value::Int(0),
        "DAG-local tensors stay local"
    );
    // The deprecated form.
    let reply = run_str(
        &mut c,
        "AI.DAGRUN LOAD 1 a |> AI.MODELRUN add INPUTS a a OUTPUTS c |> AI.TENSORGET c VALUES",
    )
    .expect("dagrun");
    assert_eq!(
        reply,
        Value::Array(vec![ok(), Value::Array(vec![bulk("2"), bulk("4")])])
    );
}

#[test]
fn persist_one_of_two_outputs() {
    let server = Server::start();
    let mut c = server.client();
    store(&mut c, "two", "two_outputs.onnx", "CPU");
    let reply = run_str(
        &mut c,
        "AI.DAGEXECUTE PERSIST 1 prod |> AI.TENSORSET x FLOAT 1 2 VALUES 3 4 \
         |> AI.MODELEXECUTE two INPUTS 1 x OUTPUTS 2 sum prod |> AI.TENSORGET sum VALUES",
    )
    .expect("dag");
    assert_eq!(
        reply,
        Value::Array(vec![ok(), ok(), Value::Array(vec![bulk("6"), bulk("8")])])
    );
    assert_eq!(
        run_str(&mut c, "EXISTS sum x").expect("exists"),
        Value::Int(0)
    );
    assert_eq!(
        run_str(&mut c, "AI.TENSORGET prod VALUES").expect("persisted"),
        Value::Array(vec![bulk("9"), bulk("16")])
    );
}

#[test]
fn tensor_only_dags_reply_at_once() {
    let server = Server::start();
    let mut c = server.client();
    let reply = run_str(
        &mut c,
        "AI.DAGEXECUTE PERSIST 1 t |> AI.TENSORSET t INT32 2 VALUES 5 6 |> AI.TENSORGET t META",
    )
    .expect("dag");
    let Value::Array(items) = reply else {
        panic!("array")
    };
    assert_eq!(items[0], ok());
    assert_eq!(
        items[1],
        Value::Array(vec![
            bulk("dtype"),
            bulk("INT32"),
            bulk("shape"),
            Value::Array(vec![Value::Int(2)])
        ])
    );
    assert_eq!(
        run_str(&mut c, "AI.TENSORGET t VALUES").expect("t"),
        Value::Array(vec![Value::Int(5), Value::Int(6)])
    );
}

#[test]
fn errors_before_running() {
    let server = Server::start();
    let mut c = server.client();
    store(&mut c, "add", "add.onnx", "CPU");
    run_str(&mut c, "SET plain x").expect("set");
    run_str(&mut c, "AI.TENSORSET a FLOAT 1").expect("a");
    for (command, expected) in [
        ("AI.DAGEXECUTE ROUTING a |> AI.MODELEXECUTE nomodel INPUTS 2 a a OUTPUTS 1 c", "ERR model key is empty"),
        ("AI.DAGEXECUTE ROUTING a |> AI.MODELEXECUTE plain INPUTS 2 a a OUTPUTS 1 c", "WRONGTYPE Operation against a key holding the wrong kind of value"),
        ("AI.DAGEXECUTE LOAD 1 nothing |> AI.TENSORGET nothing VALUES", "ERR tensor key is empty or in a different shard"),
        ("AI.DAGEXECUTE LOAD 1 plain |> AI.TENSORGET plain VALUES", "WRONGTYPE Operation against a key holding the wrong kind of value"),
        ("AI.DAGEXECUTE PERSIST 1 plain |> AI.TENSORSET plain FLOAT 1", "WRONGTYPE Operation against a key holding the wrong kind of value"),
        ("AI.DAGEXECUTE ROUTING a |> AI.MODELEXECUTE add INPUTS 2 a b OUTPUTS 1 c", "ERR INPUT key cannot be found in DAG"),
        ("AI.DAGEXECUTE LOAD 1 a PERSIST 1 c |> AI.TENSORGET a VALUES", "ERR PERSIST key cannot be found in DAG"),
        ("AI.DAGEXECUTE LOAD 1 a |> AI.MODELEXECUTE add INPUTS 1 a OUTPUTS 1 c", "ERR Number of keys given as INPUTS here does not match model definition"),
        ("AI.DAGEXECUTE_RO PERSIST 1 a |> AI.TENSORSET a FLOAT 1", "ERR PERSIST cannot be specified in a read-only DAG"),
        ("AI.DAGEXECUTE |> AI.TENSORSET a FLOAT 1 2 VALUES 5 10", "ERR AI.DAGEXECUTE and AI.DAGEXECUTE_RO commands must contain at least one out of ROUTING, LOAD, PERSIST keywords"),
        ("AI.DAGEXECUTE", "ERR missing arguments for 'AI.DAGEXECUTE' command"),
        ("AI.DAGEXECUTE ROUTING a |> AI.NOCOMMAND a", "ERR Unsupported command within DAG"),
    ] {
        assert_eq!(error_text(run_str(&mut c, command)), expected, "{command}");
    }
}

#[test]
fn a_failing_op_reports_in_its_slot_and_blocks_its_dependents() {
    let server = Server::start();
    let mut c = server.client();
    store(&mut c, "mlp", "mlp.onnx", "CPU");
    let reply = run_nested(
        &mut c,
        "AI.DAGEXECUTE PERSIST 1 y |> AI.TENSORSET ok FLOAT 1 |> AI.TENSORSET x FLOAT 2 5 \
         |> AI.MODELEXECUTE mlp INPUTS 1 x OUTPUTS 1 y |> AI.TENSORGET y VALUES |> AI.TENSORGET ok VALUES",
    );
    let Value::Array(items) = reply.expect("array reply") else {
        panic!("array")
    };
    assert_eq!(items.len(), 5);
    assert_eq!(items[0], ok());
    assert_eq!(items[1], ok());
    assert!(matches!(items[2], Value::ServerError(_)), "{:?}", items[2]);
    assert_eq!(items[3], Value::SimpleString("NA".into()));
    assert_eq!(
        items[4],
        Value::Array(vec![bulk("0")]),
        "independent ops still run"
    );
    assert_eq!(
        run_str(&mut c, "EXISTS y").expect("exists"),
        Value::Int(0),
        "nothing persisted"
    );
}

#[test]
fn read_only_dags_run_on_a_replica() {
    let master = Server::start();
    let mut m = master.client();
    store(&mut m, "add", "add.onnx", "CPU");
    run_str(&mut m, "AI.TENSORSET a FLOAT 2 VALUES 1 2").expect("a");
    let replica = master.start_replica();
    let mut r = replica.client();
    let reply = run_str(&mut r, "AI.DAGEXECUTE_RO LOAD 1 a |> AI.MODELEXECUTE add INPUTS 2 a a OUTPUTS 1 c |> AI.TENSORGET c VALUES");
    assert_eq!(
        reply.expect("ro dag"),
        Value::Array(vec![ok(), Value::Array(vec![bulk("2"), bulk("4")])])
    );
    let refused = error_text(run_str(
        &mut r,
        "AI.DAGEXECUTE PERSIST 1 c |> AI.TENSORSET c FLOAT 1",
    ));
    assert!(refused.starts_with("READONLY"), "{refused}");
    // PERSIST on the master replicates as tensor writes.
    run_str(
        &mut m,
        "AI.DAGEXECUTE LOAD 1 a PERSIST 1 c |> AI.MODELEXECUTE add INPUTS 2 a a OUTPUTS 1 c",
    )
    .expect("persist");
    replica.wait_for_sync(&master);
    assert_eq!(
        run_str(&mut r, "AI.TENSORGET c VALUES").expect("replicated"),
        Value::Array(vec![bulk("2"), bulk("4")])
    );
    assert_eq!(digest(&mut r), digest(&mut m));
}

#[test]
fn ops_on_different_devices_run_in_parallel() {
    let server = Server::start_with(
        ServerConfig::default().module_args(&["MODEL_EXECUTION_TIMEOUT", "1000"]),
    );
    let mut c = server.client();
    store(&mut c, "loop0", "endless_loop.onnx", "CPU");
    store(&mut c, "loop1", "endless_loop.onnx", "CPU:1");
    let dag = |second: &str| {
        format!(
            "AI.DAGEXECUTE ROUTING x |> AI.TENSORSET x FLOAT 1 \
             |> AI.MODELEXECUTE loop0 INPUTS 1 x OUTPUTS 1 y0 |> AI.MODELEXECUTE {second} INPUTS 1 x OUTPUTS 1 y1"
        )
    };
    // Each run is stopped by the 1 s execution timeout: one after the other takes 2 s,
    // side by side on two devices about 1 s.
    let started = Instant::now();
    let Value::Array(items) = run_nested(&mut c, &dag("loop1")).expect("dag") else {
        panic!()
    };
    let parallel = started.elapsed();
    assert!(matches!(items[1], Value::ServerError(_)) && matches!(items[2], Value::ServerError(_)));
    let started = Instant::now();
    run_nested(&mut c, &dag("loop0")).expect("dag");
    let serial = started.elapsed();
    assert!(
        serial >= Duration::from_millis(1900),
        "same device runs one after the other: {serial:?}"
    );
    assert!(
        parallel < Duration::from_millis(1700),
        "two devices overlap: {parallel:?}"
    );
    let info: String = redis::cmd("INFO")
        .arg("modules")
        .query(&mut c)
        .expect("info");
    assert!(
        info.contains("ai_queue_cpu_0:") && info.contains("ai_queue_cpu_1:"),
        "{info}"
    );
}

#[test]
fn dag_timeout() {
    let server = Server::start_with(
        ServerConfig::default().module_args(&["MODEL_EXECUTION_TIMEOUT", "3000"]),
    );
    let mut c = server.client();
    store(&mut c, "loop", "endless_loop.onnx", "CPU");
    let started = Instant::now();
    let reply = run_str(
        &mut c,
        "AI.DAGEXECUTE ROUTING x TIMEOUT 200 |> AI.TENSORSET x FLOAT 1 |> AI.MODELEXECUTE loop INPUTS 1 x OUTPUTS 1 y",
    );
    assert_eq!(
        reply.expect("reply"),
        Value::SimpleString("TIMEDOUT".into())
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    // The abandoned run is stopped, and the queue serves the next request promptly.
    store(&mut c, "add", "add.onnx", "CPU");
    run_str(&mut c, "AI.TENSORSET a FLOAT 1").expect("a");
    let started = Instant::now();
    assert_eq!(
        run_str(&mut c, "AI.MODELEXECUTE add INPUTS 2 a a OUTPUTS 1 b").expect("run"),
        ok()
    );
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn runs_inside_dags_batch_too() {
    let server = Server::start();
    let mut c = server.client();
    store(
        &mut c,
        "m",
        "two_outputs.onnx",
        "CPU BATCHSIZE 4 MINBATCHSIZE 2",
    );
    let url = server.url();
    let other = thread::spawn(move || {
        let mut conn = redis::Client::open(url)
            .expect("client")
            .get_connection()
            .expect("conn");
        run_str(&mut conn, "AI.DAGEXECUTE ROUTING x |> AI.TENSORSET x FLOAT 1 2 VALUES 1 2 |> AI.MODELEXECUTE m INPUTS 1 x OUTPUTS 2 s p |> AI.TENSORGET p VALUES").expect("dag")
    });
    let mine = run_str(&mut c, "AI.DAGEXECUTE ROUTING x |> AI.TENSORSET x FLOAT 1 2 VALUES 5 6 |> AI.MODELEXECUTE m INPUTS 1 x OUTPUTS 2 s p |> AI.TENSORGET p VALUES").expect("dag");
    assert_eq!(
        mine,
        Value::Array(vec![ok(), ok(), Value::Array(vec![bulk("25"), bulk("36")])])
    );
    assert_eq!(
        other.join().expect("other"),
        Value::Array(vec![ok(), ok(), Value::Array(vec![bulk("1"), bulk("4")])])
    );
    let Value::Array(info) = run_str(&mut c, "AI.INFO m").expect("info") else {
        panic!()
    };
    assert_eq!(info[15], Value::Int(1), "one batched run: {info:?}");
}

#[test]
fn dag_keys_are_declared() {
    let server = Server::start();
    let mut c = server.client();
    let keys = run_str(
        &mut c,
        "COMMAND GETKEYS AI.DAGEXECUTE LOAD 2 a b PERSIST 1 c ROUTING r |> AI.TENSORSET x FLOAT 1 |> AI.MODELEXECUTE m INPUTS 1 x OUTPUTS 1 c",
    )
    .expect("getkeys");
    assert_eq!(
        keys,
        Value::Array(vec![bulk("a"), bulk("b"), bulk("c"), bulk("r"), bulk("m")])
    );
    let keys = run_str(
        &mut c,
        "COMMAND GETKEYS AI.MODELEXECUTE m INPUTS 2 a b OUTPUTS 1 c TIMEOUT 5",
    )
    .expect("getkeys");
    assert_eq!(
        keys,
        Value::Array(vec![bulk("m"), bulk("a"), bulk("b"), bulk("c")])
    );
}
