//! Autobatching on the ONNX backend: concurrent runs of one model are stacked on
//! dimension 0, run once, and every client gets exactly its own rows back.

use std::thread;
use std::time::{Duration, Instant};

use redisai_tests::redis::{self, Connection, Value};
use redisai_tests::{error_text, run, run_str, Server};

fn model_bytes(name: &str) -> Vec<u8> {
    let path = redisai_tests::workspace_root()
        .join("tests/models/onnx")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

fn store(c: &mut Connection, key: &str, model: &str, batching: &str) {
    let blob = model_bytes(model);
    let mut args: Vec<&[u8]> = vec![b"AI.MODELSTORE", key.as_bytes(), b"ONNX", b"CPU"];
    args.extend(batching.split_whitespace().map(str::as_bytes));
    args.extend([&b"BLOB"[..], &blob]);
    assert_eq!(run(c, &args).expect("store"), Value::Okay);
}

fn connect(url: &str) -> Connection {
    redis::Client::open(url)
        .expect("client")
        .get_connection()
        .expect("connect")
}

fn info_field(c: &mut Connection, key: &str, name: &str) -> i64 {
    let Value::Array(info) = run_str(c, &format!("AI.INFO {key}")).expect("info") else {
        panic!()
    };
    let index = info
        .iter()
        .position(|v| matches!(v, Value::SimpleString(s) if s == name))
        .expect("field");
    match info[index + 1] {
        Value::Int(n) => n,
        ref other => panic!("{other:?}"),
    }
}

/// two_outputs computes x + x and x * x: each client sends distinctive rows and checks
/// that exactly its rows come back, in both outputs.
#[test]
fn many_clients_get_their_own_rows() {
    let server = Server::start();
    let mut c = server.client();
    store(&mut c, "m", "two_outputs.onnx", "BATCHSIZE 32");
    let clients = 24;
    let rounds = 20;
    let handles: Vec<_> = (0..clients)
        .map(|client| {
            let url = server.url();
            thread::spawn(move || {
                let mut conn = connect(&url);
                for round in 0..rounds {
                    let rows = 1 + (client + round) % 3;
                    let values: Vec<f32> = (0..rows * 2)
                        .map(|i| (client * 1000 + round * 10 + i) as f32)
                        .collect();
                    let blob: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                    let x = format!("x{client}");
                    let rows_text = rows.to_string();
                    run(
                        &mut conn,
                        &[
                            b"AI.TENSORSET",
                            x.as_bytes(),
                            b"FLOAT",
                            rows_text.as_bytes(),
                            b"2",
                            b"BLOB",
                            &blob,
                        ],
                    )
                    .expect("set");
                    let reply = run_str(
                        &mut conn,
                        &format!("AI.MODELEXECUTE m INPUTS 1 {x} OUTPUTS 2 s{client} p{client}"),
                    );
                    assert_eq!(reply.expect("execute"), Value::Okay);
                    let sum: Vec<u8> = values.iter().flat_map(|v| (v + v).to_le_bytes()).collect();
                    let prod: Vec<u8> = values.iter().flat_map(|v| (v * v).to_le_bytes()).collect();
                    assert_eq!(
                        run_str(&mut conn, &format!("AI.TENSORGET s{client} BLOB")).expect("s"),
                        Value::BulkString(sum)
                    );
                    assert_eq!(
                        run_str(&mut conn, &format!("AI.TENSORGET p{client} BLOB")).expect("p"),
                        Value::BulkString(prod)
                    );
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().expect("client");
    }
    let calls = info_field(&mut c, "m", "calls");
    let samples = info_field(&mut c, "m", "samples");
    assert!(
        samples >= (clients * rounds) as i64,
        "every row counted: {samples}"
    );
    assert!(
        calls <= (clients * rounds) as i64,
        "runs were batched: {calls} calls"
    );
}

#[test]
fn min_batch_size_waits_for_enough_rows() {
    let server = Server::start();
    let mut c = server.client();
    store(
        &mut c,
        "m",
        "two_outputs.onnx",
        "BATCHSIZE 8 MINBATCHSIZE 3",
    );
    run_str(&mut c, "AI.TENSORSET x FLOAT 1 2 VALUES 1 2").expect("x");
    let started = Instant::now();
    let waiters: Vec<_> = (0..2)
        .map(|i| {
            let url = server.url();
            thread::spawn(move || {
                let mut conn = connect(&url);
                let reply = run_str(
                    &mut conn,
                    &format!("AI.MODELEXECUTE m INPUTS 1 x OUTPUTS 2 s{i} p{i}"),
                );
                (reply.expect("execute"), Instant::now())
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(400));
    assert_eq!(
        run_str(&mut c, "EXISTS s0 s1").expect("exists"),
        Value::Int(0),
        "2 rows < MINBATCHSIZE 3: still waiting"
    );
    let third = run_str(&mut c, "AI.MODELEXECUTE m INPUTS 1 x OUTPUTS 2 s2 p2").expect("third");
    assert_eq!(third, Value::Okay);
    for waiter in waiters {
        let (reply, done) = waiter.join().expect("waiter");
        assert_eq!(reply, Value::Okay);
        assert!(done - started >= Duration::from_millis(400));
    }
    assert_eq!(
        info_field(&mut c, "m", "calls"),
        1,
        "one run for the three requests"
    );
    assert_eq!(info_field(&mut c, "m", "samples"), 3);
}

#[test]
fn min_batch_timeout_bounds_the_wait() {
    let server = Server::start();
    let mut c = server.client();
    store(
        &mut c,
        "m",
        "two_outputs.onnx",
        "BATCHSIZE 8 MINBATCHSIZE 4 MINBATCHTIMEOUT 300",
    );
    run_str(&mut c, "AI.TENSORSET x FLOAT 1 2 VALUES 1 2").expect("x");
    let started = Instant::now();
    assert_eq!(
        run_str(&mut c, "AI.MODELEXECUTE m INPUTS 1 x OUTPUTS 2 s p").expect("run"),
        Value::Okay
    );
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(280), "waited {waited:?}");
    assert!(waited < Duration::from_millis(2000), "waited {waited:?}");
}

#[test]
fn outputs_that_lose_the_batch_dimension_are_an_error() {
    let server = Server::start();
    let mut c = server.client();
    store(
        &mut c,
        "m",
        "batch_mismatch.onnx",
        "BATCHSIZE 8 MINBATCHSIZE 2",
    );
    run_str(&mut c, "AI.TENSORSET x FLOAT 1 2 VALUES 1 2").expect("x");
    let url = server.url();
    let other = thread::spawn(move || {
        let mut conn = connect(&url);
        error_text(run_str(
            &mut conn,
            "AI.MODELEXECUTE m INPUTS 1 x OUTPUTS 1 y1",
        ))
    });
    let mine = error_text(run_str(&mut c, "AI.MODELEXECUTE m INPUTS 1 x OUTPUTS 1 y2"));
    assert_eq!(mine, "ERR Model did not generate the expected batch size");
    assert_eq!(
        other.join().expect("other"),
        "ERR Model did not generate the expected batch size"
    );
}

#[test]
fn requests_of_other_shapes_or_models_are_not_mixed() {
    let server = Server::start();
    let mut c = server.client();
    store(
        &mut c,
        "m",
        "add_any_rank.onnx",
        "BATCHSIZE 8 MINBATCHSIZE 2 MINBATCHTIMEOUT 200",
    );
    store(
        &mut c,
        "n",
        "add_any_rank.onnx",
        "BATCHSIZE 8 MINBATCHSIZE 2 MINBATCHTIMEOUT 200",
    );
    run_str(&mut c, "AI.TENSORSET x FLOAT 1 2 VALUES 1 2").expect("x");
    run_str(&mut c, "AI.TENSORSET wide FLOAT 1 3 VALUES 1 2 3").expect("wide");
    let url = server.url();
    let other_model = thread::spawn(move || {
        let mut conn = connect(&url);
        run_str(&mut conn, "AI.MODELEXECUTE n INPUTS 2 x x OUTPUTS 1 ns").expect("n")
    });
    // A [1,3] input cannot stack with [1,2]; add_any_rank accepts any shape.
    let url = server.url();
    let other_shape = thread::spawn(move || {
        let mut conn = connect(&url);
        run_str(
            &mut conn,
            "AI.MODELEXECUTE m INPUTS 2 wide wide OUTPUTS 1 ws",
        )
        .expect("wide")
    });
    assert_eq!(
        run_str(&mut c, "AI.MODELEXECUTE m INPUTS 2 x x OUTPUTS 1 s").expect("m"),
        Value::Okay
    );
    assert_eq!(other_model.join().expect("n"), Value::Okay);
    assert_eq!(other_shape.join().expect("wide"), Value::Okay);
    let Value::Array(meta) = run_str(&mut c, "AI.TENSORGET ws META").expect("meta") else {
        panic!()
    };
    assert_eq!(meta[3], Value::Array(vec![Value::Int(1), Value::Int(3)]));
    assert_eq!(info_field(&mut c, "n", "calls"), 1);
    assert_eq!(
        info_field(&mut c, "m", "calls"),
        2,
        "the two shapes ran separately"
    );
}
