//! The script ABI path (with ABI 1.2's SCRIPTRUN convention) and the ABI 1.1 host
//! services (`redis_command`, `model_execute`, `reply_free`, `host_tensor_release`)
//! exercised through `script_echo.c`, a C plugin that calls itself TORCH. It checks the
//! core's plumbing only; TorchScript behaviour is tested with the real plugin in
//! `scripts/`.

use std::thread::sleep;
use std::time::Duration;

use redisai_example_c_plugins::{
    EXAMPLE_ADD_BACKEND, EXAMPLE_ADD_PLUGIN, SCRIPT_ECHO_ABI_1_1_PLUGIN, SCRIPT_ECHO_PLUGIN,
};
use redisai_tests::redis::{Connection, Value};
use redisai_tests::{bulk_array as strings, int_array as ints};
use redisai_tests::{
    digest, error_text, run_nested, run_str, wait_for_rewrite, Server, ServerConfig,
};

fn config() -> ServerConfig {
    ServerConfig::default().module_args(&["TORCH", SCRIPT_ECHO_PLUGIN])
}

fn server() -> (Server, Connection) {
    let server = Server::start_with(config());
    let mut c = server.client();
    let stored = run_str(
        &mut c,
        "AI.SCRIPTSTORE s CPU TAG v1 ENTRY_POINTS 6 echo incr len exec model wait SOURCE any_text",
    );
    assert_eq!(stored.expect("SCRIPTSTORE"), Value::Okay);
    (server, c)
}

#[test]
fn script_outputs_map_to_several_output_keys() {
    let (_server, mut c) = server();
    run_str(&mut c, "AI.TENSORSET a FLOAT 2 VALUES 1 2").expect("a");
    run_str(&mut c, "AI.TENSORSET b INT64 1 VALUES 7").expect("b");
    assert_eq!(
        run_str(&mut c, "AI.SCRIPTEXECUTE s echo INPUTS 2 a b OUTPUTS 2 x y").expect("exec"),
        Value::Okay
    );
    assert_eq!(
        run_str(&mut c, "AI.TENSORGET x VALUES").expect("x"),
        strings(&["1", "2"])
    );
    assert_eq!(
        run_str(&mut c, "AI.TENSORGET y VALUES").expect("y"),
        ints(&[7])
    );
    // Fewer OUTPUTS than results is an error; nothing is written.
    let err = error_text(run_str(
        &mut c,
        "AI.SCRIPTEXECUTE s echo INPUTS 2 a b OUTPUTS 1 z",
    ));
    assert!(err.contains("returned 2 tensors but 1 OUTPUTS"), "{err}");
    assert_eq!(run_str(&mut c, "EXISTS z").expect("exists"), Value::Int(0));
    // The deprecated form, with the variadic marker.
    assert_eq!(
        run_str(&mut c, "AI.SCRIPTRUN s echo INPUTS a $ b OUTPUTS p q").expect("run"),
        Value::Okay
    );
    assert_eq!(
        run_str(&mut c, "AI.TENSORGET q VALUES").expect("q"),
        ints(&[7])
    );
}

#[test]
fn a_plugin_of_abi_1_1_still_runs_scriptrun() {
    let server = Server::start_with(
        ServerConfig::default().module_args(&["TORCH", SCRIPT_ECHO_ABI_1_1_PLUGIN]),
    );
    let mut c = server.client();
    let set = run_str(&mut c, "AI.SCRIPTSET old CPU SOURCE any_text");
    assert_eq!(set.expect("SCRIPTSET"), Value::Okay);
    run_str(&mut c, "AI.TENSORSET a FLOAT 1 VALUES 1").expect("a");
    run_str(&mut c, "AI.TENSORSET b INT64 1 VALUES 7").expect("b");
    assert_eq!(
        run_str(&mut c, "AI.SCRIPTRUN old echo INPUTS a $ b OUTPUTS p q").expect("run"),
        Value::Okay
    );
    assert_eq!(
        run_str(&mut c, "AI.TENSORGET q VALUES").expect("q"),
        ints(&[7])
    );
    let Value::BulkString(info) = run_str(&mut c, "INFO MODULES").expect("info") else {
        panic!("INFO MODULES")
    };
    let info = String::from_utf8_lossy(&info);
    assert!(info.contains(",abi=1.1,devices=CPU,"), "{info}");
}

#[test]
fn the_plugin_learns_scriptrun_and_where_the_marker_was() {
    let server = Server::start_with(config());
    let mut c = server.client();
    let set = run_str(&mut c, "AI.SCRIPTSET old CPU SOURCE any_text");
    assert_eq!(set.expect("SCRIPTSET"), Value::Okay);
    run_str(&mut c, "AI.TENSORSET a FLOAT 1 VALUES 1").expect("a");
    // (convention, variadic): RAI_SCRIPT_CALL_LISTS is 0, RAI_SCRIPT_CALL_POSITIONAL 1.
    let cases = [
        (
            "AI.SCRIPTEXECUTE old calling INPUTS 2 a a OUTPUTS 2 c v",
            0,
            -1,
        ),
        ("AI.SCRIPTRUN old calling INPUTS a a OUTPUTS c v", 1, -1),
        ("AI.SCRIPTRUN old calling INPUTS a $ a a OUTPUTS c v", 1, 1),
        ("AI.SCRIPTRUN old calling INPUTS a a $ OUTPUTS c v", 1, 2),
    ];
    for (command, convention, variadic) in cases {
        assert_eq!(run_str(&mut c, command).expect(command), Value::Okay);
        let got = (
            run_str(&mut c, "AI.TENSORGET c VALUES").expect("c"),
            run_str(&mut c, "AI.TENSORGET v VALUES").expect("v"),
        );
        assert_eq!(got, (ints(&[convention]), ints(&[variadic])), "{command}");
    }
    let reply = run_nested(
        &mut c,
        "AI.DAGRUN LOAD 1 a |> AI.SCRIPTRUN old calling INPUTS $ a OUTPUTS c v \
         |> AI.TENSORGET c VALUES |> AI.TENSORGET v VALUES",
    )
    .expect("dagrun");
    assert_eq!(
        reply,
        Value::Array(vec![Value::Okay, ints(&[1]), ints(&[0])])
    );
}

#[test]
fn unknown_functions_and_compile_errors_come_from_the_backend() {
    let (_server, mut c) = server();
    run_str(&mut c, "AI.TENSORSET a FLOAT 1 VALUES 1").expect("a");
    assert_eq!(
        error_text(run_str(
            &mut c,
            "AI.SCRIPTEXECUTE s nope INPUTS 1 a OUTPUTS 1 b"
        )),
        "ERR Function nope does not exist in the given script."
    );
    let err = error_text(run_str(
        &mut c,
        "AI.SCRIPTSTORE bad CPU ENTRY_POINTS 1 f SOURCE syntax_error",
    ));
    assert!(err.contains("syntax error"), "{err}");
    assert_eq!(
        run_str(&mut c, "EXISTS bad").expect("exists"),
        Value::Int(0)
    );
    assert_eq!(
        run_str(&mut c, "PING").expect("ping"),
        Value::SimpleString("PONG".into())
    );
}

#[test]
fn redis_command_runs_declared_keys_only() {
    let (server, mut c) = server();
    run_str(&mut c, "SET counter 41").expect("set");
    assert_eq!(
        run_str(
            &mut c,
            "AI.SCRIPTEXECUTE s incr KEYS 1 counter INPUTS 0 OUTPUTS 1 out"
        )
        .expect("incr"),
        Value::Okay
    );
    assert_eq!(
        run_str(&mut c, "AI.TENSORGET out VALUES").expect("out"),
        ints(&[42])
    );
    assert_eq!(
        run_str(&mut c, "GET counter").expect("get"),
        Value::BulkString(b"42".to_vec())
    );
    run_str(&mut c, "RPUSH list a b c").expect("rpush");
    assert_eq!(
        run_str(&mut c, "AI.SCRIPTEXECUTE s len KEYS 1 list OUTPUTS 1 n").expect("len"),
        Value::Okay
    );
    assert_eq!(
        run_str(&mut c, "AI.TENSORGET n VALUES").expect("n"),
        ints(&[3])
    );
    // A key the caller did not declare is refused.
    let err = error_text(run_str(
        &mut c,
        "AI.SCRIPTEXECUTE s exec KEYS 1 counter ARGS 3 SET other 1 OUTPUTS 1 o",
    ));
    assert!(err.contains("'other' is not declared in the KEYS"), "{err}");
    assert_eq!(
        run_str(&mut c, "EXISTS other").expect("exists"),
        Value::Int(0)
    );
    // Blocking and admin commands are refused.
    for command in [
        "BLPOP list 0",
        "FLUSHALL",
        "AI.SCRIPTEXECUTE s echo INPUTS 0",
    ] {
        let words = command.split_whitespace().count();
        let line =
            format!("AI.SCRIPTEXECUTE s exec KEYS 1 list ARGS {words} {command} OUTPUTS 1 o");
        let err = error_text(run_str(&mut c, &line));
        assert!(
            err.contains("is not allowed from a script"),
            "{command}: {err}"
        );
    }
    // Errors of the command itself come back as they are.
    let err = error_text(run_str(
        &mut c,
        "AI.SCRIPTEXECUTE s exec KEYS 1 list ARGS 2 INCR list OUTPUTS 1 o",
    ));
    assert!(err.starts_with("WRONGTYPE"), "{err}");
    // The selected database is the caller's.
    run_str(&mut c, "SELECT 3").expect("select");
    run_str(&mut c, "SET counter 9").expect("set");
    run_str(&mut c, "AI.SCRIPTSTORE s CPU ENTRY_POINTS 1 incr SOURCE x").expect("store");
    run_str(
        &mut c,
        "AI.SCRIPTEXECUTE s incr KEYS 1 counter OUTPUTS 1 out",
    )
    .expect("incr");
    assert_eq!(
        run_str(&mut c, "GET counter").expect("get"),
        Value::BulkString(b"10".to_vec())
    );
    let mut other = server.client();
    assert_eq!(
        run_str(&mut other, "GET counter").expect("get"),
        Value::BulkString(b"42".to_vec())
    );
}

#[test]
fn redis_command_applies_the_callers_acl() {
    let (server, mut c) = server();
    run_str(&mut c, "ACL SETUSER limited on >pw ~* &* +@all -incr").expect("acl");
    let mut limited = server.client();
    run_str(&mut limited, "AUTH limited pw").expect("auth");
    run_str(&mut limited, "SET counter 1").expect("set");
    let err = error_text(run_str(
        &mut limited,
        "AI.SCRIPTEXECUTE s incr KEYS 1 counter OUTPUTS 1 out",
    ));
    assert!(err.starts_with("NOPERM"), "{err}");
    assert_eq!(
        run_str(&mut limited, "GET counter").expect("get"),
        Value::BulkString(b"1".to_vec())
    );
    // Key patterns apply to the declared KEYS before anything runs.
    run_str(&mut c, "ACL SETUSER keyed on >pw ~allowed:* &* +@all").expect("acl");
    let mut keyed = server.client();
    run_str(&mut keyed, "AUTH keyed pw").expect("auth");
    let err = error_text(run_str(
        &mut keyed,
        "AI.SCRIPTEXECUTE s incr KEYS 1 secret OUTPUTS 1 allowed:out",
    ));
    assert!(err.starts_with("NOPERM"), "{err}");
}

#[test]
fn model_execute_runs_a_stored_model_from_a_script() {
    let (_server, mut c) = server();
    let load = format!("AI.CONFIG LOADBACKEND {EXAMPLE_ADD_BACKEND} {EXAMPLE_ADD_PLUGIN}");
    run_str(&mut c, &load).expect("load");
    run_str(&mut c, "AI.MODELSTORE m EXAMPLE CPU BLOB add").expect("model");
    run_str(&mut c, "AI.TENSORSET a FLOAT 2 VALUES 1 2").expect("a");
    run_str(&mut c, "AI.TENSORSET b FLOAT 2 VALUES 10 20").expect("b");
    assert_eq!(
        run_str(
            &mut c,
            "AI.SCRIPTEXECUTE s model KEYS 1 m INPUTS 2 a b OUTPUTS 1 c"
        )
        .expect("exec"),
        Value::Okay
    );
    assert_eq!(
        run_str(&mut c, "AI.TENSORGET c VALUES").expect("c"),
        strings(&["11", "22"])
    );
    // The model key must be declared, and must hold a model.
    let err = error_text(run_str(
        &mut c,
        "AI.SCRIPTEXECUTE s model KEYS 1 a INPUTS 2 a b ARGS 1 m OUTPUTS 1 c",
    ));
    assert!(err.contains("'m' is not declared"), "{err}");
    let err = error_text(run_str(
        &mut c,
        "AI.SCRIPTEXECUTE s model KEYS 1 nomodel INPUTS 2 a b OUTPUTS 1 c",
    ));
    assert_eq!(err, "ERR model key is empty");
    // The model's own statistics count the run.
    let info = run_str(&mut c, "AI.INFO m").expect("info");
    let Value::Array(fields) = info else {
        panic!("AI.INFO: {info:?}")
    };
    assert_eq!(fields[15], Value::Int(1), "calls: {fields:?}");
}

#[test]
fn scripts_persist_replicate_and_show_in_info() {
    let (mut server, mut c) = server();
    run_str(&mut c, "AI.SCRIPTSET legacy CPU SOURCE old_text").expect("scriptset");
    run_str(&mut c, "AI.TENSORSET a FLOAT 1 VALUES 3").expect("a");
    run_str(&mut c, "AI.SCRIPTEXECUTE s echo INPUTS 1 a OUTPUTS 1 b").expect("exec");
    let info = run_str(&mut c, "AI.INFO s").expect("info");
    let Value::Array(fields) = info else {
        panic!("AI.INFO: {info:?}")
    };
    assert_eq!(fields[3], Value::SimpleString("SCRIPT".into()));
    assert_eq!(fields[5], Value::SimpleString("TORCH".into()));
    assert_eq!(fields[9], Value::BulkString(b"v1".to_vec()));
    assert_eq!(fields[13], Value::Int(-1), "samples");
    assert_eq!(fields[15], Value::Int(1), "calls");
    assert_eq!(
        run_str(&mut c, "AI.INFO s RESETSTAT").expect("reset"),
        Value::Okay
    );
    let Value::Array(fields) = run_str(&mut c, "AI.INFO s").expect("info") else {
        panic!("AI.INFO")
    };
    assert_eq!(fields[15], Value::Int(0), "calls after RESETSTAT");

    let before = digest(&mut c);
    let replica = server.start_replica();
    replica.wait_for_sync(&server);
    let mut r = replica.client();
    assert_eq!(digest(&mut r), before, "replica holds the same scripts");
    run_str(&mut c, "SET counter 1").expect("set");
    run_str(
        &mut c,
        "AI.SCRIPTEXECUTE s incr KEYS 1 counter OUTPUTS 1 out",
    )
    .expect("incr");
    run_str(&mut c, "AI.SCRIPTDEL legacy").expect("del");
    replica.wait_for_sync(&server);
    assert_eq!(
        digest(&mut r),
        digest(&mut c),
        "writes of scripts replicate"
    );
    assert_eq!(
        run_str(&mut r, "GET counter").expect("get"),
        Value::BulkString(b"2".to_vec())
    );
    drop(r);
    drop(replica);
    run_str(&mut c, "AI.SCRIPTSET legacy CPU SOURCE old_text").expect("scriptset");

    let before = digest(&mut c);
    run_str(&mut c, "DEBUG RELOAD").expect("reload");
    assert_eq!(digest(&mut c), before, "DEBUG RELOAD");
    run_str(&mut c, "SAVE").expect("save");
    server.restart();
    let mut c = server.client();
    assert_eq!(digest(&mut c), before, "RDB restart");
    assert_eq!(
        run_str(&mut c, "AI.SCRIPTGET s").expect("get"),
        Value::Array(vec![
            Value::SimpleString("device".into()),
            Value::BulkString(b"CPU".to_vec()),
            Value::SimpleString("tag".into()),
            Value::BulkString(b"v1".to_vec()),
            Value::SimpleString("Entry Points".into()),
            strings(&["echo", "incr", "len", "exec", "model", "wait"]),
            Value::SimpleString("source".into()),
            Value::BulkString(b"any_text".to_vec()),
        ])
    );
    assert_eq!(
        run_str(&mut c, "AI.SCRIPTGET legacy SOURCE").expect("source"),
        Value::BulkString(b"old_text".to_vec())
    );
    let scan = run_str(&mut c, "AI._SCRIPTSCAN").expect("scan");
    let Value::Array(entries) = scan else {
        panic!("scan")
    };
    assert_eq!(entries.len(), 2);
}

#[test]
fn scripts_survive_an_aof_rewrite() {
    let config = config()
        .option("appendonly", &["yes"])
        .option("aof-use-rdb-preamble", &["no"]);
    let mut server = Server::start_with(config);
    let mut c = server.client();
    run_str(
        &mut c,
        "AI.SCRIPTSTORE s CPU TAG t ENTRY_POINTS 2 echo incr SOURCE src",
    )
    .expect("s");
    run_str(&mut c, "AI.SCRIPTSET legacy CPU SOURCE old").expect("legacy");
    let before = digest(&mut c);
    run_str(&mut c, "BGREWRITEAOF").expect("rewrite");
    wait_for_rewrite(&mut c);
    server.restart();
    let mut c = server.client();
    assert_eq!(digest(&mut c), before);
}

#[test]
fn scripts_run_inside_dags() {
    let (_server, mut c) = server();
    run_str(&mut c, "AI.TENSORSET a FLOAT 2 VALUES 1 2").expect("a");
    run_str(&mut c, "SET counter 1").expect("set");
    let reply = run_nested(
        &mut c,
        "AI.DAGEXECUTE KEYS 1 counter LOAD 1 a PERSIST 1 n |> AI.SCRIPTEXECUTE s echo INPUTS 2 a a \
         OUTPUTS 2 x y |> AI.SCRIPTEXECUTE s incr INPUTS 0 OUTPUTS 1 n |> AI.TENSORGET y VALUES",
    )
    .expect("dag");
    assert_eq!(
        reply,
        Value::Array(vec![Value::Okay, Value::Okay, strings(&["1", "2"])])
    );
    assert_eq!(
        run_str(&mut c, "AI.TENSORGET n VALUES").expect("n"),
        ints(&[2])
    );
    // The deprecated forms.
    let reply = run_nested(
        &mut c,
        "AI.DAGRUN LOAD 1 a |> AI.SCRIPTRUN s echo INPUTS a OUTPUTS b |> AI.TENSORGET b VALUES",
    )
    .expect("dagrun");
    assert_eq!(reply, Value::Array(vec![Value::Okay, strings(&["1", "2"])]));
    assert_eq!(
        error_text(run_str(
            &mut c,
            "AI.DAGEXECUTE_RO LOAD 1 a |> AI.SCRIPTEXECUTE s echo INPUTS 1 a OUTPUTS 1 b"
        )),
        "ERR AI.SCRIPTEXECUTE command cannot be specified in a read-only DAG"
    );
    assert_eq!(
        error_text(run_str(
            &mut c,
            "AI.DAGEXECUTE LOAD 1 a |> AI.SCRIPTEXECUTE nosuch echo INPUTS 1 a OUTPUTS 1 b"
        )),
        "ERR script key is empty"
    );
    // A failing script op fails its DAG's dependent ops, not the server.
    let reply = run_nested(
        &mut c,
        "AI.DAGEXECUTE LOAD 1 a |> AI.SCRIPTEXECUTE s incr INPUTS 0 OUTPUTS 1 m \
         |> AI.TENSORGET m VALUES",
    )
    .expect("dag");
    let Value::Array(items) = reply else {
        panic!("dag reply")
    };
    assert!(matches!(&items[0], Value::ServerError(_)), "{items:?}");
    assert_eq!(items[1], Value::SimpleString("NA".into()));
}

#[test]
fn timeout_and_missing_backend() {
    let (_server, mut c) = server();
    assert_eq!(
        run_str(&mut c, "AI.SCRIPTEXECUTE s wait INPUTS 0 TIMEOUT 50").expect("timeout"),
        Value::SimpleString("TIMEDOUT".into())
    );
    // The server still runs scripts afterwards.
    run_str(&mut c, "AI.TENSORSET a FLOAT 1 VALUES 5").expect("a");
    assert_eq!(
        run_str(&mut c, "AI.SCRIPTEXECUTE s echo INPUTS 1 a OUTPUTS 1 b").expect("echo"),
        Value::Okay
    );
    let bare =
        Server::start_with(ServerConfig::default().module_args(&["BACKENDSPATH", "/nonexistent"]));
    let mut b = bare.client();
    let err = error_text(run_str(
        &mut b,
        "AI.SCRIPTSTORE s CPU ENTRY_POINTS 1 f SOURCE x",
    ));
    assert!(err.starts_with("ERR Could not load backend"), "{err}");
    let load = format!("AI.CONFIG LOADBACKEND {EXAMPLE_ADD_BACKEND} {EXAMPLE_ADD_PLUGIN}");
    run_str(&mut b, &load).expect("load");
    assert_eq!(
        error_text(run_str(&mut b, "AI.SCRIPTGET s")),
        "ERR script key is empty"
    );
    run_str(&mut b, "SET str x").expect("set");
    assert!(error_text(run_str(&mut b, "AI.SCRIPTGET str")).starts_with("WRONGTYPE"));
    assert!(error_text(run_str(&mut b, "AI.SCRIPTDEL str")).starts_with("WRONGTYPE"));
    assert_eq!(
        error_text(run_str(&mut b, "AI.SCRIPTSTORE s CPU SOURCE x")),
        "ERR wrong number of arguments for 'AI.SCRIPTSTORE' command"
    );
    assert_eq!(
        error_text(run_str(&mut b, "AI.SCRIPTSTORE s CPU TAG t SOURCE x y")),
        "ERR Insufficient arguments, missing script entry points"
    );
    assert_eq!(
        error_text(run_str(&mut b, "AI.SCRIPTEXECUTE s f OUTPUTS 1 a")),
        "ERR KEYS or INPUTS scope must be provided first for AI.SCRIPTEXECUTE command"
    );
}

#[test]
fn keys_type_copy_and_memory_usage() {
    let (_server, mut c) = server();
    let keys = run_str(
        &mut c,
        "COMMAND GETKEYS AI.SCRIPTEXECUTE s f KEYS 1 k INPUTS 2 a b ARGS 2 x y OUTPUTS 1 o TIMEOUT 5",
    )
    .expect("getkeys");
    assert_eq!(keys, strings(&["s", "k", "a", "b", "o"]));
    let keys = run_str(
        &mut c,
        "COMMAND GETKEYS AI.SCRIPTRUN s f INPUTS a $ b OUTPUTS o",
    )
    .expect("getkeys");
    assert_eq!(keys, strings(&["s", "a", "b", "o"]));
    let keys = run_str(
        &mut c,
        "COMMAND GETKEYS AI.DAGEXECUTE KEYS 1 k LOAD 1 a |> AI.SCRIPTEXECUTE s f INPUTS 1 a",
    )
    .expect("getkeys");
    assert_eq!(keys, strings(&["k", "a", "s"]));
    assert_eq!(
        run_str(&mut c, "TYPE s").expect("type"),
        Value::SimpleString("AI_SCRIPT".into())
    );
    assert_eq!(run_str(&mut c, "COPY s s2").expect("copy"), Value::Int(1));
    assert_eq!(
        run_str(&mut c, "AI.SCRIPTGET s2 SOURCE").expect("copied"),
        Value::BulkString(b"any_text".to_vec())
    );
    let Value::Int(bytes) = run_str(&mut c, "MEMORY USAGE s").expect("memory") else {
        panic!("MEMORY USAGE")
    };
    assert!(bytes > 8, "{bytes}");
}

#[test]
fn concurrent_scripts_share_the_keyspace_safely() {
    let server = Server::start_with(ServerConfig::default().module_args(&[
        "TORCH",
        SCRIPT_ECHO_PLUGIN,
        "THREADS_PER_QUEUE",
        "3",
    ]));
    let mut c = server.client();
    run_str(&mut c, "AI.SCRIPTSTORE s CPU ENTRY_POINTS 1 incr SOURCE x").expect("store");
    run_str(&mut c, "SET counter 0").expect("set");
    let clients: Vec<_> = (0..4)
        .map(|i| {
            let mut client = server.client();
            std::thread::spawn(move || {
                for _ in 0..25 {
                    let line = format!("AI.SCRIPTEXECUTE s incr KEYS 1 counter OUTPUTS 1 out{i}");
                    assert_eq!(run_str(&mut client, &line).expect("incr"), Value::Okay);
                }
            })
        })
        .collect();
    for client in clients {
        client.join().expect("client thread");
    }
    assert_eq!(
        run_str(&mut c, "GET counter").expect("get"),
        Value::BulkString(b"100".to_vec())
    );
}

#[test]
fn shutdown_stops_a_running_script() {
    let (mut server, _c) = server();
    let mut waiting = server.client();
    let runner = std::thread::spawn(move || {
        // The connection closes under it; any reply or none is fine.
        let _ = run_str(&mut waiting, "AI.SCRIPTEXECUTE s wait INPUTS 0");
    });
    sleep(Duration::from_millis(100));
    server.shutdown();
    let _ = runner.join();
    let log = server.log();
    assert!(log.contains("ready to exit, bye bye"), "clean exit:\n{log}");
}
