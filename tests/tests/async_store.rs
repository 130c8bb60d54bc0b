//! AI.MODELSTORE and AI.SCRIPTSTORE load off Redis's main thread: the storing client
//! waits, everybody else is served. The slow loads come from the test-only FAULTS
//! plugin (`slow-load:<ms>`); nothing here measures time: the checks are about which
//! reply comes before which, with INFO MODULES telling whether a load is in progress.

use std::path::PathBuf;
use std::thread::sleep;
use std::time::{Duration, Instant};

use redisai_tests::hardening::{backend_built, exists, model_bytes};
use redisai_tests::redis::{self, Connection, RedisResult, Value};
use redisai_tests::{digest, error_text, run, run_str, Server, ServerConfig};

/// The faults plugin, built beside this test binary (a dev-dependency of the tests).
fn faults_plugin() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary");
    let path = exe.parent().expect("deps dir").join("libredisai_faults.so");
    assert!(path.exists(), "{} is missing", path.display());
    path
}

fn load_faults(c: &mut Connection) {
    run_str(
        c,
        &format!("AI.CONFIG LOADBACKEND FAULTS {}", faults_plugin().display()),
    )
    .expect("LOADBACKEND FAULTS");
}

fn start(config: ServerConfig) -> Server {
    let server = Server::start_with(config);
    load_faults(&mut client(&server));
    server
}

/// A client whose replies time out (a stuck server fails the test instead of hanging).
fn client(server: &Server) -> Connection {
    let c = server.client();
    c.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("read timeout");
    c
}

/// Sends a command without reading its reply.
fn send(c: &mut Connection, words: &[&[u8]]) {
    let mut command = redis::cmd(std::str::from_utf8(words[0]).expect("ASCII name"));
    for word in &words[1..] {
        command.arg(*word);
    }
    c.send_packed_command(&command.get_packed_command())
        .expect("send");
}

fn send_str(c: &mut Connection, line: &str) {
    let words: Vec<&[u8]> = line.split_whitespace().map(str::as_bytes).collect();
    send(c, &words);
}

/// Reads the next reply; an error reply is `Err`.
fn receive(c: &mut Connection) -> RedisResult<Value> {
    c.recv_response().and_then(Value::extract_error)
}

/// The loader's state in INFO MODULES: (loads waiting, whether one is in progress).
fn loader(c: &mut Connection) -> (u64, bool) {
    let info: String = redis::cmd("INFO")
        .arg("modules")
        .query(c)
        .expect("INFO MODULES");
    let line = info
        .lines()
        .find_map(|line| line.strip_prefix("ai_loader:"))
        .unwrap_or("pending=0,loading=0")
        .trim()
        .to_owned();
    let field = |name: &str| {
        line.split(',')
            .find_map(|part| part.strip_prefix(name))
            .and_then(|value| value.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (field("pending="), field("loading=") == 1)
}

/// Waits (bounded, generously) until `ready` holds; panics with `what` otherwise.
fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(Instant::now() < deadline, "gave up waiting until {what}");
        sleep(Duration::from_millis(10));
    }
}

fn wait_until_loading(c: &mut Connection) {
    wait_for("a load is in progress", || loader(c).1);
}

fn wait_until_idle(c: &mut Connection) {
    wait_for("the loader is idle", || loader(c) == (0, false));
}

fn assert_ok(reply: RedisResult<Value>, what: &str) {
    match reply {
        Ok(Value::Okay) => {}
        Ok(Value::SimpleString(s)) if s == "OK" => {}
        other => panic!("{what}: expected OK, got {other:?}"),
    }
}

#[test]
fn other_clients_are_served_while_a_model_loads() {
    let server = start(ServerConfig::default());
    let mut a = client(&server);
    let mut b = client(&server);
    run_str(&mut b, "AI.TENSORSET x FLOAT 2 VALUES 1 2").expect("x");

    send_str(
        &mut a,
        "AI.MODELSTORE slow FAULTS CPU TAG t1 BLOB slow-load:3000",
    );
    wait_until_loading(&mut b);
    // B is answered while A's model loads: the load is still in progress afterwards.
    assert_eq!(
        run_str(&mut b, "PING").expect("PING"),
        Value::SimpleString("PONG".into())
    );
    assert_eq!(
        run_str(&mut b, "AI.TENSORGET x VALUES").expect("TENSORGET"),
        Value::Array(vec![
            Value::BulkString(b"1".to_vec()),
            Value::BulkString(b"2".to_vec())
        ])
    );
    assert!(loader(&mut b).1, "the load ended before B was served");
    assert!(
        !exists(&mut b, "slow"),
        "the model is stored before it loaded"
    );

    assert_ok(receive(&mut a), "A's MODELSTORE");
    run_str(&mut a, "AI.MODELEXECUTE slow INPUTS 1 x OUTPUTS 1 y").expect("run");
    assert_eq!(
        run_str(&mut b, "AI.TENSORGET y VALUES").expect("y"),
        run_str(&mut b, "AI.TENSORGET x VALUES").expect("x")
    );
    let meta = run_str(&mut b, "AI.MODELGET slow META").expect("MODELGET");
    assert!(format!("{meta:?}").contains("t1"), "{meta:?}");
}

#[test]
fn commands_pipelined_after_a_store_run_after_it() {
    let server = start(ServerConfig::default());
    let mut a = client(&server);
    run_str(&mut a, "AI.TENSORSET x FLOAT 2 VALUES 3 4").expect("x");
    send_str(&mut a, "AI.MODELSET m FAULTS CPU BLOB slow-load:300");
    send_str(&mut a, "AI.MODELEXECUTE m INPUTS 1 x OUTPUTS 1 y");
    send_str(&mut a, "AI.TENSORGET y VALUES");
    assert_ok(receive(&mut a), "MODELSET");
    assert_ok(receive(&mut a), "MODELEXECUTE");
    assert_eq!(
        receive(&mut a).expect("TENSORGET"),
        Value::Array(vec![
            Value::BulkString(b"3".to_vec()),
            Value::BulkString(b"4".to_vec())
        ])
    );
    // Two stores of one key finish in the order they were received.
    let mut b = client(&server);
    send_str(
        &mut a,
        "AI.MODELSTORE k FAULTS CPU TAG first BLOB slow-load:500",
    );
    wait_until_loading(&mut b);
    send_str(&mut b, "AI.MODELSTORE k FAULTS CPU TAG second BLOB echo");
    assert_ok(receive(&mut a), "first store");
    assert_ok(receive(&mut b), "second store");
    let meta = run_str(&mut a, "AI.MODELGET k META").expect("MODELGET");
    assert!(format!("{meta:?}").contains("second"), "{meta:?}");
}

#[test]
fn load_errors_reply_as_before() {
    let server = start(ServerConfig::default());
    let mut c = client(&server);
    for (line, expected) in [
        (
            "AI.MODELSTORE bad FAULTS CPU BLOB error-load",
            "ERR faults: refusing to load this model",
        ),
        (
            "AI.MODELSTORE bad FAULTS CPU BLOB panic-load",
            "faults: panic while loading a model",
        ),
        (
            "AI.MODELSTORE bad FAULTS CPU BLOB what",
            "ERR faults: unknown fault",
        ),
        (
            "AI.MODELSTORE bad NOPE CPU BLOB x",
            "ERR unsupported backend",
        ),
    ] {
        let err = error_text(run_str(&mut c, line));
        assert!(err.contains(expected), "{line}: {err}");
    }
    assert!(!exists(&mut c, "bad"));
    // A key of another type: WRONGTYPE before any load ...
    run_str(&mut c, "SET str hello").expect("SET");
    let err = error_text(run_str(&mut c, "AI.MODELSTORE str FAULTS CPU BLOB echo"));
    assert!(err.starts_with("WRONGTYPE"), "{err}");
    // ... and after it, when the key changed type while the model loaded: nothing is
    // stored.
    let mut other = client(&server);
    send_str(&mut c, "AI.MODELSTORE k FAULTS CPU BLOB slow-load:2000");
    wait_until_loading(&mut other);
    run_str(&mut other, "SET k value").expect("SET k");
    let err = error_text(receive(&mut c));
    assert!(err.starts_with("WRONGTYPE"), "{err}");
    let value: String = redis::cmd("GET").arg("k").query(&mut other).expect("GET k");
    assert_eq!(value, "value");
}

#[test]
fn multi_exec_and_lua_store_at_once() {
    let server = start(ServerConfig::default());
    let mut c = client(&server);
    // Inside MULTI the store completes before the next queued command runs.
    run_str(&mut c, "MULTI").expect("MULTI");
    run_str(
        &mut c,
        "AI.MODELSTORE m FAULTS CPU TAG inmulti BLOB slow-load:100",
    )
    .expect("queued");
    run_str(&mut c, "AI.MODELGET m META").expect("queued");
    let Value::Array(replies) = run_str(&mut c, "EXEC").expect("EXEC") else {
        panic!("EXEC reply is not an array")
    };
    assert_eq!(replies.len(), 2, "{replies:?}");
    assert!(
        matches!(&replies[0], Value::Okay) || replies[0] == Value::SimpleString("OK".into()),
        "{replies:?}"
    );
    assert!(
        format!("{:?}", replies[1]).contains("inmulti"),
        "{replies:?}"
    );
    // The same from Lua.
    let reply = redis::cmd("EVAL")
        .arg("redis.call('AI.MODELSTORE', KEYS[1], 'FAULTS', 'CPU', 'BLOB', 'echo'); return redis.call('EXISTS', KEYS[1])")
        .arg(1)
        .arg("lua")
        .query::<i64>(&mut c)
        .expect("EVAL");
    assert_eq!(reply, 1);
    // A load error inside MULTI is that command's reply.
    run_str(&mut c, "MULTI").expect("MULTI");
    run_str(&mut c, "AI.MODELSTORE bad FAULTS CPU BLOB error-load").expect("queued");
    let exec = redisai_tests::run_nested(&mut c, "EXEC").expect("EXEC");
    assert!(
        format!("{exec:?}").contains("faults: refusing to load this model"),
        "{exec:?}"
    );
}

#[test]
fn a_client_that_leaves_during_its_load_stores_nothing() {
    let server = start(ServerConfig::default());
    let mut c = client(&server);
    {
        let mut leaving = client(&server);
        send_str(
            &mut leaving,
            "AI.MODELSTORE gone FAULTS CPU BLOB slow-load:2500",
        );
        wait_until_loading(&mut c);
        // Queued behind it: skipped once its client has left.
        send_str(&mut leaving, "AI.MODELSTORE gone2 FAULTS CPU BLOB echo");
        let mut queued = client(&server);
        send_str(&mut queued, "AI.MODELSTORE gone3 FAULTS CPU BLOB echo");
        wait_for("a load is queued", || loader(&mut c).0 == 1);
    }
    wait_until_idle(&mut c);
    assert_eq!(
        run_str(&mut c, "PING").expect("PING"),
        Value::SimpleString("PONG".into())
    );
    for key in ["gone", "gone2", "gone3"] {
        assert!(
            !exists(&mut c, key),
            "{key} was stored for a client that left"
        );
    }
    // The loader still works.
    assert_ok(
        run_str(&mut c, "AI.MODELSTORE back FAULTS CPU BLOB slow-load:10"),
        "store after",
    );
}

#[test]
fn shutdown_during_a_load_exits_cleanly() {
    let mut server = start(ServerConfig::default());
    let mut c = client(&server);
    let mut loading = client(&server);
    send_str(
        &mut loading,
        "AI.MODELSTORE a FAULTS CPU BLOB slow-load:2500",
    );
    wait_until_loading(&mut c);
    let mut waiting = client(&server);
    send_str(&mut waiting, "AI.MODELSTORE b FAULTS CPU BLOB echo");
    wait_for("a load is queued", || loader(&mut c).0 == 1);
    server.shutdown();
    // Each blocked client gets an error or sees the connection close; none hangs.
    for (what, connection) in [("loading", &mut loading), ("waiting", &mut waiting)] {
        match receive(connection) {
            Ok(value) => panic!("{what}: a reply after SHUTDOWN: {value:?}"),
            Err(err) => assert!(
                !err.is_timeout(),
                "{what}: no reply and no close after SHUTDOWN"
            ),
        }
    }
    let log = server.log();
    assert!(
        log.contains("ready to exit, bye bye"),
        "no clean exit:\n{log}"
    );
    assert!(!log.contains("BUG REPORT"), "{log}");
}

fn replicated_stores(c: &mut Connection) {
    assert_ok(
        run_str(c, "AI.MODELSTORE m1 FAULTS CPU TAG a BLOB slow-load:200"),
        "MODELSTORE",
    );
    assert_ok(
        run_str(c, "AI.MODELSET m2 FAULTS CPU TAG b BLOB echo"),
        "MODELSET",
    );
    if backend_built("redisai_onnxruntime") {
        let blob = model_bytes("onnx", "mlp.onnx");
        let (head, tail) = blob.split_at(blob.len() / 2);
        let reply = run(
            c,
            &[
                b"AI.MODELSTORE",
                b"mlp",
                b"ONNX",
                b"CPU",
                b"TAG",
                b"v1",
                b"BLOB",
                head,
                tail,
            ],
        );
        assert_ok(reply, "ONNX MODELSTORE in two chunks");
    }
    if backend_built("redisai_torch") {
        let source = "def f(tensors: List[Tensor], keys: List[str], args: List[str]):\n    return tensors[0] + tensors[0]\n";
        let reply = run(
            c,
            &[
                b"AI.SCRIPTSTORE",
                b"s1",
                b"CPU",
                b"TAG",
                b"st",
                b"ENTRY_POINTS",
                b"1",
                b"f",
                b"SOURCE",
                source.as_bytes(),
            ],
        );
        assert_ok(reply, "SCRIPTSTORE");
    }
    // A failed load replicates nothing.
    let _ = error_text(run_str(c, "AI.MODELSTORE bad FAULTS CPU BLOB error-load"));
    // A store lands in (and replicates to) the database its client had selected.
    run_str(c, "SELECT 2").expect("SELECT 2");
    assert_ok(
        run_str(c, "AI.MODELSTORE indb2 FAULTS CPU BLOB slow-load:50"),
        "MODELSTORE in db 2",
    );
    assert!(exists(c, "indb2"));
    run_str(c, "SELECT 0").expect("SELECT 0");
    assert!(!exists(c, "indb2"));
}

#[test]
fn stores_reach_replicas() {
    let master = start(ServerConfig::default());
    let replica = master.start_replica();
    load_faults(&mut client(&replica));
    let mut c = client(&master);
    replicated_stores(&mut c);
    replica.wait_for_sync(&master);
    let mut r = client(&replica);
    for key in ["m1", "m2", "mlp"] {
        let on_master = run_str(&mut c, &format!("AI.MODELGET {key} META BLOB"));
        let on_replica = run_str(&mut r, &format!("AI.MODELGET {key} META BLOB"));
        match on_master {
            Ok(value) => assert_eq!(on_replica.expect(key), value, "{key}"),
            Err(_) => assert!(!exists(&mut r, key), "{key}"),
        }
    }
    if exists(&mut c, "s1") {
        assert_eq!(
            run_str(&mut r, "AI.SCRIPTGET s1 META SOURCE").expect("replica s1"),
            run_str(&mut c, "AI.SCRIPTGET s1 META SOURCE").expect("master s1")
        );
    }
    assert!(!exists(&mut r, "bad"));
    run_str(&mut r, "SELECT 2").expect("SELECT 2");
    assert!(exists(&mut r, "indb2"), "db 2 on the replica");
    run_str(&mut r, "SELECT 0").expect("SELECT 0");
    assert_eq!(digest(&mut r), digest(&mut c));
    // The replica runs what it received.
    run_str(&mut c, "AI.TENSORSET x FLOAT 1 VALUES 5").expect("x");
    replica.wait_for_sync(&master);
    let reply = redisai_tests::run_nested(
        &mut r,
        "AI.DAGEXECUTE_RO LOAD 1 x |> AI.MODELEXECUTE m1 INPUTS 1 x OUTPUTS 1 y |> AI.TENSORGET y VALUES",
    )
    .expect("DAG on the replica");
    assert!(format!("{reply:?}").contains('5'), "{reply:?}");
}

#[test]
fn stores_survive_aof_replay_and_rewrite() {
    let mut server = start(
        ServerConfig::default()
            .option("appendonly", &["yes"])
            .option("aof-use-rdb-preamble", &["no"]),
    );
    let mut c = client(&server);
    replicated_stores(&mut c);
    let before = digest(&mut c);
    // The stores are in the AOF as the commands received.
    let aof_dir = server.dir.join("appendonlydir");
    let incr: Vec<u8> = std::fs::read_dir(&aof_dir)
        .expect("aof dir")
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().contains(".incr.aof"))
        .flat_map(|entry| std::fs::read(entry.path()).unwrap_or_default())
        .collect();
    let text = String::from_utf8_lossy(&incr);
    assert!(
        text.contains("AI.MODELSTORE") && text.contains("slow-load:200"),
        "{text}"
    );
    assert!(text.contains("AI.MODELSET"), "{text}");
    assert!(
        !text.contains("error-load"),
        "a failed store was logged: {text}"
    );

    // Replayed from the AOF (FAULTS models come back without a runtime: that backend
    // is loaded by hand).
    server.restart();
    let mut c = client(&server);
    assert_eq!(digest(&mut c), before, "after replaying the AOF");
    load_faults(&mut c);
    run_str(&mut c, "BGREWRITEAOF").expect("rewrite");
    redisai_tests::wait_for_rewrite(&mut c);
    server.restart();
    let mut c = client(&server);
    assert_eq!(digest(&mut c), before, "after a rewrite");
}

#[test]
fn a_finished_store_notifies_its_keyspace_event() {
    let server = start(ServerConfig::default().option("notify-keyspace-events", &["Kd"]));
    let mut subscriber = client(&server);
    let mut pubsub = subscriber.as_pubsub();
    pubsub.subscribe("__keyspace@0__:m").expect("SUBSCRIBE");
    let mut c = client(&server);
    assert_ok(
        run_str(&mut c, "AI.MODELSTORE m FAULTS CPU BLOB slow-load:50"),
        "MODELSTORE",
    );
    let message = pubsub.get_message().expect("a notification");
    assert_eq!(message.get_channel_name(), "__keyspace@0__:m");
    let event: String = message.get_payload().expect("payload");
    assert_eq!(event, "ai.modelstore");
}
