//! Tensors survive RDB and AOF restarts and replicate to replicas.

mod common;

use common::set_every_dtype;
use redisai_tests::redis::{Connection, Value};
use redisai_tests::{digest, run, run_str, wait_for_rewrite, Server, ServerConfig};

/// A data set with every dtype, odd shapes and a 1 MiB tensor.
fn write_data_set(c: &mut Connection) {
    set_every_dtype(c);
    run_str(c, "AI.TENSORSET t:zeros FLOAT 1 1 1 1 7").expect("zeros");
    let big: Vec<u8> = (0..(1u32 << 20)).map(|i| (i % 251) as u8).collect();
    run(
        c,
        &[
            b"AI.TENSORSET",
            b"t:big",
            b"UINT8",
            b"1024",
            b"1024",
            b"BLOB",
            &big,
        ],
    )
    .expect("big");
    run_str(c, "SET plain value").expect("plain key");
}

fn snapshot(c: &mut Connection) -> Vec<(String, Value)> {
    let mut keys: Vec<String> = redisai_tests::redis::cmd("KEYS")
        .arg("t:*")
        .query(c)
        .expect("keys");
    keys.sort();
    keys.into_iter()
        .map(|key| {
            let value = run_str(c, &format!("AI.TENSORGET {key}")).expect("get");
            (key, value)
        })
        .collect()
}

#[test]
fn rdb_save_and_restart() {
    let mut server = Server::start();
    let mut c = server.client();
    write_data_set(&mut c);
    let before = snapshot(&mut c);
    let digest_before = digest(&mut c);
    assert_eq!(run_str(&mut c, "SAVE").expect("save"), Value::Okay);
    server.restart();
    let mut c = server.client();
    assert_eq!(snapshot(&mut c), before);
    assert_eq!(digest(&mut c), digest_before);
    assert!(
        server.log().contains("DB loaded from disk"),
        "{}",
        server.log()
    );
}

fn aof_round_trip(preamble: &str) {
    let config = ServerConfig::default()
        .option("appendonly", &["yes"])
        .option("aof-use-rdb-preamble", &[preamble]);
    let mut server = Server::start_with(config);
    let mut c = server.client();
    write_data_set(&mut c);
    let before = snapshot(&mut c);
    let digest_before = digest(&mut c);
    run_str(&mut c, "BGREWRITEAOF").expect("rewrite");
    wait_for_rewrite(&mut c);
    server.restart();
    let mut c = server.client();
    assert_eq!(snapshot(&mut c), before);
    assert_eq!(digest(&mut c), digest_before);
}

#[test]
fn aof_rewrite_without_rdb_preamble_and_restart() {
    aof_round_trip("no");
}

#[test]
fn aof_rewrite_with_rdb_preamble_and_restart() {
    aof_round_trip("yes");
}

#[test]
fn aof_rewrite_emits_tensorset_blob() {
    let config = ServerConfig::default()
        .option("appendonly", &["yes"])
        .option("aof-use-rdb-preamble", &["no"]);
    let server = Server::start_with(config);
    let mut c = server.client();
    run_str(&mut c, "AI.TENSORSET rewritten INT16 2 VALUES 1 2").expect("set");
    run_str(&mut c, "BGREWRITEAOF").expect("rewrite");
    wait_for_rewrite(&mut c);
    let aof_dir = server.dir.join("appendonlydir");
    let base = std::fs::read_dir(&aof_dir)
        .expect("aof dir")
        .filter_map(Result::ok)
        .find(|entry| entry.file_name().to_string_lossy().contains(".base.aof"))
        .expect("base AOF file");
    let text = std::fs::read(base.path()).expect("read base");
    let text = String::from_utf8_lossy(&text);
    assert!(
        text.contains(
            "AI.TENSORSET\r\n$9\r\nrewritten\r\n$5\r\nINT16\r\n$1\r\n2\r\n$4\r\nBLOB\r\n$4\r\n"
        ),
        "{text}"
    );
}

#[test]
fn replica_ends_with_the_same_digest() {
    let master = Server::start();
    let mut c = master.client();
    write_data_set(&mut c);
    let replica = master.start_replica();
    // Writes after the initial sync travel through the replication stream.
    run_str(&mut c, "AI.TENSORSET t:late DOUBLE 2 VALUES 3.5 -1").expect("late write");
    run_str(&mut c, "AI.TENSORSET t:FLOAT FLOAT 1 VALUES 42").expect("overwrite");
    run_str(&mut c, "DEL t:INT8").expect("delete");
    replica.wait_for_sync(&master);
    let mut r = replica.client();
    assert_eq!(digest(&mut r), digest(&mut c));
    assert_eq!(snapshot(&mut r), snapshot(&mut c));
    assert_eq!(
        run_str(&mut r, "AI.TENSORGET t:late VALUES").expect("replicated"),
        Value::Array(vec![
            Value::BulkString(b"3.5".to_vec()),
            Value::BulkString(b"-1".to_vec())
        ])
    );
    let refused = redisai_tests::error_text(run_str(&mut r, "AI.TENSORSET x FLOAT 1"));
    assert!(refused.starts_with("READONLY"), "{refused}");
}
