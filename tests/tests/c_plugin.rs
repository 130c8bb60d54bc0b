//! A third-party backend written in C against the header alone, loaded and run through
//! Redis; plugins of another ABI version are refused.

use std::thread;

use redisai_example_c_plugins::{
    BAD_ABI_PLUGIN, EXAMPLE_ADD_BACKEND, EXAMPLE_ADD_PLUGIN, NEWER_MINOR_PLUGIN,
};
use redisai_plugin_api::abi::{RAI_PLUGIN_ABI_MAJOR, RAI_PLUGIN_ABI_MINOR};
use redisai_tests::bulk_array as floats;
use redisai_tests::redis::{Connection, Value};
use redisai_tests::{digest, error_text, run_str, Server, ServerConfig};

fn load_example(c: &mut Connection) {
    let reply = run_str(
        c,
        &format!("AI.CONFIG LOADBACKEND {EXAMPLE_ADD_BACKEND} {EXAMPLE_ADD_PLUGIN}"),
    );
    assert_eq!(reply.expect("LOADBACKEND"), Value::Okay);
}

fn server_with_example() -> (Server, Connection) {
    let server = Server::start();
    let mut c = server.client();
    load_example(&mut c);
    run_str(&mut c, "AI.MODELSTORE m EXAMPLE CPU TAG v1 BLOB add").expect("store");
    run_str(&mut c, "AI.TENSORSET a FLOAT 2 2 VALUES 1 2 3 4").expect("a");
    run_str(&mut c, "AI.TENSORSET b FLOAT 2 2 VALUES 10 20 30 40").expect("b");
    (server, c)
}

#[test]
fn c_plugin_stores_and_runs_a_model() {
    let (server, mut c) = server_with_example();
    assert_eq!(
        run_str(&mut c, "AI.MODELEXECUTE m INPUTS 2 a b OUTPUTS 1 c").expect("execute"),
        Value::Okay
    );
    assert_eq!(
        run_str(&mut c, "AI.TENSORGET c VALUES").expect("output"),
        floats(&["11", "22", "33", "44"])
    );
    assert_eq!(
        run_str(&mut c, "AI.TENSORGET c META").expect("meta"),
        Value::Array(vec![
            Value::BulkString(b"dtype".to_vec()),
            Value::BulkString(b"FLOAT".to_vec()),
            Value::BulkString(b"shape".to_vec()),
            Value::Array(vec![Value::Int(2), Value::Int(2)]),
        ])
    );
    // The deprecated form works too.
    assert_eq!(
        run_str(&mut c, "AI.MODELRUN m INPUTS a a OUTPUTS d").expect("modelrun"),
        Value::Okay
    );
    assert_eq!(
        run_str(&mut c, "AI.TENSORGET d VALUES").expect("output"),
        floats(&["2", "4", "6", "8"])
    );
    let info = info_modules(&server);
    assert!(
        info.contains(&format!("ai_example:runtime=1.0,abi={RAI_PLUGIN_ABI_MAJOR}.{RAI_PLUGIN_ABI_MINOR},devices=CPU,path=")),
        "INFO MODULES lists the backend:\n{info}"
    );
    assert!(
        info.contains("ai_queue_cpu_0:threads=1"),
        "and the CPU queue:\n{info}"
    );
    assert!(info.contains(EXAMPLE_ADD_PLUGIN), "with its path:\n{info}");
}

fn info_modules(server: &Server) -> String {
    redisai_tests::redis::cmd("INFO")
        .arg("modules")
        .query(&mut server.client())
        .expect("info")
}

#[test]
fn modelget_reports_meta_and_blob() {
    let (_server, mut c) = server_with_example();
    let reply = run_str(&mut c, "AI.MODELGET m META").expect("get");
    let expected = vec![
        Value::SimpleString("backend".into()),
        Value::BulkString(b"EXAMPLE".to_vec()),
        Value::SimpleString("device".into()),
        Value::BulkString(b"CPU".to_vec()),
        Value::SimpleString("tag".into()),
        Value::BulkString(b"v1".to_vec()),
        Value::SimpleString("batchsize".into()),
        Value::Int(0),
        Value::SimpleString("minbatchsize".into()),
        Value::Int(0),
        Value::SimpleString("inputs".into()),
        Value::Array(vec![
            Value::BulkString(b"a".to_vec()),
            Value::BulkString(b"b".to_vec()),
        ]),
        Value::SimpleString("outputs".into()),
        Value::Array(vec![Value::BulkString(b"sum".to_vec())]),
        Value::SimpleString("minbatchtimeout".into()),
        Value::Int(0),
    ];
    assert_eq!(reply, Value::Array(expected.clone()));
    let Value::Array(full) = run_str(&mut c, "AI.MODELGET m").expect("default is META BLOB") else {
        panic!("array")
    };
    assert_eq!(&full[..16], &expected[..]);
    assert_eq!(full[17], Value::BulkString(b"add".to_vec()));
    assert_eq!(
        run_str(&mut c, "AI.MODELGET m BLOB").expect("blob"),
        Value::BulkString(b"add".to_vec())
    );
    // Over MODEL_CHUNK_SIZE the blob comes back in chunks.
    run_str(&mut c, "AI.CONFIG MODEL_CHUNK_SIZE 2").expect("chunk size");
    assert_eq!(
        run_str(&mut c, "AI.MODELGET m BLOB").expect("chunks"),
        Value::Array(vec![
            Value::BulkString(b"ad".to_vec()),
            Value::BulkString(b"d".to_vec())
        ])
    );
    // ... and MODELSTORE accepts chunks.
    run_str(&mut c, "AI.MODELSTORE m2 EXAMPLE CPU BLOB a d d").expect("chunked store");
    assert_eq!(
        run_str(&mut c, "AI.MODELGET m2 BLOB").expect("blob"),
        Value::Array(vec![
            Value::BulkString(b"ad".to_vec()),
            Value::BulkString(b"d".to_vec())
        ])
    );
    assert_eq!(
        run_str(&mut c, "AI._MODELSCAN").map(|v| matches!(v, Value::Array(ref a) if a.len() == 2)),
        Ok(true)
    );
}

#[test]
fn model_command_errors() {
    let (_server, mut c) = server_with_example();
    run_str(&mut c, "SET plain x").expect("set");
    let cases = [
        (
            "AI.MODELSTORE m EXAMPLE CPU BLOB mul",
            "ERR example plugin: unknown model blob",
        ),
        (
            "AI.MODELSTORE m PORCH CPU BLOB add",
            "ERR unsupported backend",
        ),
        (
            "AI.MODELSTORE m EXAMPLE bad_device BLOB add",
            "ERR Invalid DEVICE",
        ),
        (
            "AI.MODELSTORE m EXAMPLE CPU BLOB",
            "ERR wrong number of arguments for 'AI.MODELSTORE' command",
        ),
        (
            "AI.MODELSTORE plain EXAMPLE CPU BLOB add",
            "WRONGTYPE Operation against a key holding the wrong kind of value",
        ),
        ("AI.MODELGET missing", "ERR model key is empty"),
        (
            "AI.MODELGET plain",
            "WRONGTYPE Operation against a key holding the wrong kind of value",
        ),
        ("AI.MODELDEL missing", "ERR model key is empty"),
        (
            "AI.MODELEXECUTE missing INPUTS 2 a b OUTPUTS 1 c",
            "ERR model key is empty",
        ),
        (
            "AI.MODELEXECUTE m INPUTS 1 a OUTPUTS 1 c",
            "ERR Number of keys given as INPUTS here does not match model definition",
        ),
        (
            "AI.MODELEXECUTE m INPUTS 2 a b OUTPUTS 2 c d",
            "ERR Number of keys given as OUTPUTS here does not match model definition",
        ),
        (
            "AI.MODELEXECUTE m INPUTS 2 a nope OUTPUTS 1 c",
            "ERR tensor key is empty or in a different shard",
        ),
        (
            "AI.MODELEXECUTE m INPUTS 2 a plain OUTPUTS 1 c",
            "WRONGTYPE Operation against a key holding the wrong kind of value",
        ),
        (
            "AI.MODELEXECUTE m INPUTS 2 a b OUTPUTS 1 plain",
            "WRONGTYPE Operation against a key holding the wrong kind of value",
        ),
        (
            "AI.MODELEXECUTE m INPUTS 2 a b OUTPUTS",
            "ERR wrong number of arguments for 'AI.MODELEXECUTE' command",
        ),
        (
            "AI.MODELEXECUTE m INPUTS 2 a b OUTPUTS 1 c bad_arg",
            "ERR Invalid argument: bad_arg",
        ),
        ("AI.INFO nothing", "ERR cannot find run info for key"),
    ];
    for (command, expected) in cases {
        assert_eq!(error_text(run_str(&mut c, command)), expected, "{command}");
    }
    // A run that fails inside the backend reports the backend's message.
    run_str(&mut c, "AI.TENSORSET short FLOAT 3 VALUES 1 2 3").expect("set");
    let mismatch = error_text(run_str(
        &mut c,
        "AI.MODELEXECUTE m INPUTS 2 a short OUTPUTS 1 c",
    ));
    assert!(mismatch.starts_with("ERR example plugin"), "{mismatch}");
    assert_eq!(
        run_str(&mut c, "PING").expect("alive"),
        Value::SimpleString("PONG".into())
    );
    let gpu = error_text(run_str(&mut c, "AI.MODELSTORE g EXAMPLE GPU:0 BLOB add"));
    assert!(
        gpu.contains("GPU:0") && gpu.contains("not supported"),
        "{gpu}"
    );
}

#[test]
fn execution_is_refused_inside_multi_and_lua() {
    let (_server, mut c) = server_with_example();
    run_str(&mut c, "MULTI").expect("multi");
    run_str(&mut c, "AI.MODELEXECUTE m INPUTS 2 a b OUTPUTS 1 c").expect("queued");
    let refused = error_text(run_str(&mut c, "EXEC"));
    assert!(
        refused.contains("Cannot run RedisAI command within a transaction or a LUA script"),
        "{refused}"
    );
    let lua = error_text(
        redisai_tests::redis::cmd("EVAL")
            .arg("return redis.call('AI.MODELEXECUTE','m','INPUTS','2','a','b','OUTPUTS','1','c')")
            .arg(0)
            .query(&mut c),
    );
    assert!(
        lua.contains("Cannot run RedisAI command within a transaction or a LUA script"),
        "{lua}"
    );
}

#[test]
fn run_statistics() {
    let (_server, mut c) = server_with_example();
    for _ in 0..3 {
        run_str(&mut c, "AI.MODELEXECUTE m INPUTS 2 a b OUTPUTS 1 c").expect("execute");
    }
    run_str(&mut c, "AI.TENSORSET short FLOAT 3 VALUES 1 2 3").expect("set");
    let _ = run_str(&mut c, "AI.MODELEXECUTE m INPUTS 2 a short OUTPUTS 1 c");
    let Value::Array(info) = run_str(&mut c, "AI.INFO m").expect("info") else {
        panic!("array")
    };
    let field = |name: &str| {
        let index = info
            .iter()
            .position(|v| matches!(v, Value::SimpleString(s) if s == name))
            .unwrap_or_else(|| panic!("no {name} in {info:?}"));
        info[index + 1].clone()
    };
    assert_eq!(field("key"), Value::BulkString(b"m".to_vec()));
    assert_eq!(field("type"), Value::SimpleString("MODEL".into()));
    assert_eq!(field("backend"), Value::BulkString(b"EXAMPLE".to_vec()));
    assert_eq!(field("device"), Value::BulkString(b"CPU".to_vec()));
    assert_eq!(field("tag"), Value::BulkString(b"v1".to_vec()));
    assert_eq!(field("calls"), Value::Int(4));
    assert_eq!(field("errors"), Value::Int(1));
    assert_eq!(field("samples"), Value::Int(6), "3 runs of 2 rows");
    assert!(matches!(field("duration"), Value::Int(_)));
    assert!(matches!(field("duration_p50"), Value::Int(_)));
    assert!(matches!(field("duration_p99"), Value::Int(_)));
    assert_eq!(
        run_str(&mut c, "AI.INFO m RESETSTAT").expect("reset"),
        Value::Okay
    );
    let Value::Array(info) = run_str(&mut c, "AI.INFO m").expect("info") else {
        panic!("array")
    };
    assert_eq!(info[15], Value::Int(0), "calls reset: {info:?}");
}

#[test]
fn plugins_of_another_abi_version_are_refused() {
    let server = Server::start();
    let mut c = server.client();
    let newer_minor = format!("{RAI_PLUGIN_ABI_MAJOR}.{}", RAI_PLUGIN_ABI_MINOR + 1);
    for (plugin, version) in [
        (BAD_ABI_PLUGIN, "2.0"),
        (NEWER_MINOR_PLUGIN, newer_minor.as_str()),
    ] {
        let refused = error_text(run_str(
            &mut c,
            &format!("AI.CONFIG LOADBACKEND EXAMPLE {plugin}"),
        ));
        assert!(
            refused.starts_with("ERR Could not load backend EXAMPLE"),
            "{refused}"
        );
        assert!(
            refused.contains(&format!("plugin ABI version {version}"))
                && refused.contains(&format!(
                    "ABI {RAI_PLUGIN_ABI_MAJOR}.{RAI_PLUGIN_ABI_MINOR}"
                )),
            "names both versions: {refused}"
        );
    }
    let not_a_plugin = error_text(run_str(
        &mut c,
        "AI.CONFIG LOADBACKEND EXAMPLE /usr/lib/x86_64-linux-gnu/libc.so.6",
    ));
    assert!(
        not_a_plugin.contains("not a redisai-rs plugin"),
        "{not_a_plugin}"
    );
    load_example(&mut c);
    let twice = error_text(run_str(
        &mut c,
        &format!("AI.CONFIG LOADBACKEND EXAMPLE {EXAMPLE_ADD_PLUGIN}"),
    ));
    assert!(twice.contains("already loaded"), "{twice}");
    let wrong_name = error_text(run_str(
        &mut c,
        &format!("AI.CONFIG LOADBACKEND TORCH {EXAMPLE_ADD_PLUGIN}"),
    ));
    assert!(
        wrong_name.contains("is the plugin of backend EXAMPLE"),
        "{wrong_name}"
    );
    assert_eq!(
        run_str(&mut c, "PING").expect("alive"),
        Value::SimpleString("PONG".into())
    );
}

#[test]
fn outputs_and_models_replicate() {
    let master = Server::start();
    let mut m = master.client();
    load_example(&mut m);
    let replica = Server::start();
    let mut r = replica.client();
    load_example(&mut r);
    run_str(&mut r, &format!("REPLICAOF 127.0.0.1 {}", master.port)).expect("replicaof");
    run_str(&mut m, "AI.MODELSTORE m EXAMPLE CPU BLOB add").expect("store");
    run_str(&mut m, "AI.TENSORSET a FLOAT 2 VALUES 1 2").expect("a");
    run_str(&mut m, "AI.MODELEXECUTE m INPUTS 2 a a OUTPUTS 1 out").expect("execute");
    run_str(&mut m, "AI.MODELSTORE gone EXAMPLE CPU BLOB add").expect("store");
    run_str(&mut m, "AI.MODELDEL gone").expect("del");
    replica.wait_for_sync(&master);
    assert_eq!(
        run_str(&mut r, "AI.TENSORGET out VALUES").expect("replicated"),
        floats(&["2", "4"])
    );
    assert_eq!(
        run_str(&mut r, "EXISTS gone").expect("exists"),
        Value::Int(0)
    );
    assert_eq!(digest(&mut r), digest(&mut m));
    // The replica's own copy of the model runs (read-only replicas refuse writes).
    let refused = error_text(run_str(
        &mut r,
        "AI.MODELEXECUTE m INPUTS 2 a a OUTPUTS 1 x",
    ));
    assert!(refused.starts_with("READONLY"), "{refused}");
}

#[test]
fn models_survive_a_restart_even_without_their_backend() {
    let mut server = Server::start_with(
        ServerConfig::default()
            .option("appendonly", &["yes"])
            .option("aof-use-rdb-preamble", &["no"]),
    );
    let mut c = server.client();
    load_example(&mut c);
    run_str(&mut c, "AI.MODELSTORE m EXAMPLE CPU TAG keep BLOB add").expect("store");
    run_str(&mut c, "AI.TENSORSET a FLOAT 1 VALUES 1").expect("a");
    let before = digest(&mut c);
    // Through an AOF rewrite (AI.MODELSTORE replayed at start) and then an RDB.
    run_str(&mut c, "BGREWRITEAOF").expect("rewrite");
    thread::sleep(std::time::Duration::from_millis(500));
    server.restart();
    let mut c = server.client();
    assert_eq!(
        digest(&mut c),
        before,
        "nothing lost although EXAMPLE is not loaded"
    );
    let missing = error_text(run_str(
        &mut c,
        "AI.MODELEXECUTE m INPUTS 2 a a OUTPUTS 1 o",
    ));
    assert!(missing.contains("backend EXAMPLE"), "{missing}");
    run_str(&mut c, "CONFIG SET appendonly no").expect("aof off");
    run_str(&mut c, "SAVE").expect("save");
    server.restart();
    let mut c = server.client();
    assert_eq!(digest(&mut c), before);
    load_example(&mut c);
    run_str(&mut c, "AI.MODELSTORE m EXAMPLE CPU TAG keep BLOB add").expect("store again");
    assert_eq!(
        run_str(&mut c, "AI.MODELEXECUTE m INPUTS 2 a a OUTPUTS 1 o").expect("runs"),
        Value::Okay
    );
}

#[test]
fn replacing_and_deleting_a_model_while_clients_run_it() {
    let (server, mut c) = server_with_example();
    let url = server.url();
    let workers: Vec<_> = (0..8)
        .map(|i| {
            let url = url.clone();
            thread::spawn(move || {
                let client = redisai_tests::redis::Client::open(url).expect("client");
                let mut conn = client.get_connection().expect("connect");
                let mut ok = 0;
                for _ in 0..150 {
                    match run_str(
                        &mut conn,
                        &format!("AI.MODELEXECUTE m INPUTS 2 a b OUTPUTS 1 out{i}"),
                    ) {
                        Ok(Value::Okay) => ok += 1,
                        Ok(other) => panic!("unexpected reply {other:?}"),
                        Err(err) => {
                            let text = error_text(Err(err));
                            assert_eq!(
                                text, "ERR model key is empty",
                                "only a missing model may fail"
                            );
                        }
                    }
                }
                ok
            })
        })
        .collect();
    for _ in 0..150 {
        run_str(&mut c, "AI.MODELDEL m").expect("del");
        run_str(&mut c, "AI.MODELSTORE m EXAMPLE CPU BLOB add").expect("store");
    }
    let successes: i32 = workers.into_iter().map(|w| w.join().expect("worker")).sum();
    assert!(successes > 0, "some runs succeeded");
    for i in 0..8 {
        if let Ok(Value::Array(values)) = run_str(&mut c, &format!("AI.TENSORGET out{i} VALUES")) {
            assert_eq!(Value::Array(values), floats(&["11", "22", "33", "44"]));
        }
    }
    assert_eq!(
        run_str(&mut c, "PING").expect("alive"),
        Value::SimpleString("PONG".into())
    );
}
