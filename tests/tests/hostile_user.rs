//! A client with a normal ACL user (`+@all -@admin -@dangerous ~app1:*`, or less) is
//! hostile: whatever it sends, stores or makes a script do, Redis stays up, its files
//! and settings stay out of reach, replicas and the AOF keep what the master keeps, and
//! `maxmemory` holds. Each test runs as such a user against a real server and checks the
//! exact reply and that the server still answers PING.
//!
//! The backends' own sandbox checks (stored models and scripts that would read files)
//! are in `hostile_onnx.rs`, `hostile_tf.rs` and `hostile_torch.rs`.

mod common;

use std::path::PathBuf;

use common::{call, call_str, client, info_modules, model_bytes, pong, APP_USER};
use redisai_tests::int_array as ints;
use redisai_tests::redis::{self, Connection, Value};
use redisai_tests::{error_text, wait_for_rewrite, Server, ServerConfig};

/// TorchScript entry points that make `redis.execute` calls with the script's ARGS.
const SCRIPT: &str = r#"
def call1(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute(args[0])
    return torch.tensor([1])

def call2(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute(args[0], args[1])
    return torch.tensor([1])

def call3(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute(args[0], args[1], args[2])
    return torch.tensor([1])

def call4(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute(args[0], args[1], args[2], args[3])
    return torch.tensor([1])

def call6(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute(args[0], args[1], args[2], args[3], args[4], args[5])
    return torch.tensor([1])

def count(tensors: List[Tensor], keys: List[str], args: List[str]):
    return torch.tensor([len(redis.asList(redis.execute(args[0])))])

def total(tensors: List[Tensor], keys: List[str], args: List[str]):
    return tensors[0].sum()

def none_of(tensors: List[Tensor], keys: List[str], args: List[str]):
    return tensors[0][0:0]
"#;

const ENTRY_POINTS: [&str; 8] = [
    "call1", "call2", "call3", "call4", "call6", "count", "total", "none_of",
];

fn torch_plugin() -> PathBuf {
    redisai_tests::workspace_root().join("dist/backends/redisai_torch/redisai_torch.so")
}

fn start(config: ServerConfig) -> Server {
    assert!(
        torch_plugin().exists(),
        "the TORCH plugin is missing at {} (build it with scripts/test)",
        torch_plugin().display()
    );
    Server::start_with(config)
}

fn login(server: &Server, user: &str) -> Connection {
    let mut c = client(server);
    call_str(&mut c, &format!("AUTH {user} pw")).expect("AUTH");
    c
}

fn store_script(c: &mut Connection, key: &str) {
    let count = ENTRY_POINTS.len().to_string();
    let mut args: Vec<&[u8]> = vec![
        b"AI.SCRIPTSTORE",
        key.as_bytes(),
        b"CPU",
        b"ENTRY_POINTS",
        count.as_bytes(),
    ];
    args.extend(ENTRY_POINTS.iter().map(|e| e.as_bytes()));
    args.push(b"SOURCE");
    args.push(SCRIPT.as_bytes());
    assert_eq!(call(c, &args).expect("SCRIPTSTORE"), Value::Okay);
}

fn store_mlp(c: &mut Connection, key: &str, device: &str) -> redis::RedisResult<Value> {
    let blob = model_bytes("onnx", "mlp.onnx");
    call(
        c,
        &[
            b"AI.MODELSTORE",
            key.as_bytes(),
            b"ONNX",
            device.as_bytes(),
            b"BLOB",
            &blob,
        ],
    )
}

/// A server with `app1` (see [`APP_USER`]), models and scripts under app1: and other:,
/// and the app1 user's connection.
fn setup(config: ServerConfig) -> (Server, Connection, Connection) {
    let server = start(config);
    let mut admin = client(&server);
    call_str(&mut admin, APP_USER).expect("ACL SETUSER");
    for key in ["app1:m", "app1:m2", "other:m"] {
        assert_eq!(store_mlp(&mut admin, key, "CPU").expect(key), Value::Okay);
    }
    store_script(&mut admin, "other:s");
    let mut app = login(&server, "app1");
    store_script(&mut app, "app1:s");
    store_script(&mut app, "app1:s2");
    call_str(&mut app, "AI.TENSORSET app1:a FLOAT 2 3 VALUES 1 2 3 4 5 6").expect("a");
    (server, admin, app)
}

/// `AI.SCRIPTEXECUTE app1:s <entry> [KEYS ...] INPUTS 1 app1:a ARGS <args> OUTPUTS 1 app1:o`
fn script_call(
    c: &mut Connection,
    entry: &str,
    keys: &[&str],
    args: &[&str],
) -> redis::RedisResult<Value> {
    let mut line = format!("AI.SCRIPTEXECUTE app1:s {entry}");
    if !keys.is_empty() {
        line += &format!(" KEYS {} {}", keys.len(), keys.join(" "));
    }
    line += &format!(
        " INPUTS 1 app1:a ARGS {} {} OUTPUTS 1 app1:o",
        args.len(),
        args.join(" ")
    );
    call_str(c, &line)
}

fn entry_for(args: &[&str]) -> &'static str {
    match args.len() {
        1 => "call1",
        2 => "call2",
        3 => "call3",
        4 => "call4",
        6 => "call6",
        n => panic!("no entry point takes {n} arguments"),
    }
}

fn values(c: &mut Connection, key: &str) -> Value {
    call_str(c, &format!("AI.TENSORGET {key} VALUES")).expect(key)
}

#[test]
fn every_ai_command_through_redis_execute_keeps_redis_up() {
    let (_server, mut admin, mut app) = setup(ServerConfig::default());

    // The scans ran on a client without a user and crashed Redis in
    // RM_GetCurrentUserName; they now list what the script's caller may read.
    assert_eq!(
        script_call(&mut app, "count", &[], &["AI._MODELSCAN"]).expect("_MODELSCAN"),
        Value::Okay
    );
    assert_eq!(
        values(&mut app, "app1:o"),
        ints(&[2]),
        "app1:m and app1:m2 only"
    );
    assert_eq!(
        script_call(&mut app, "count", &[], &["AI._SCRIPTSCAN"]).expect("_SCRIPTSCAN"),
        Value::Okay
    );
    assert_eq!(
        values(&mut app, "app1:o"),
        ints(&[2]),
        "app1:s and app1:s2 only"
    );
    pong(&mut app);
    // The default user sees every key through the same script.
    assert_eq!(
        script_call(&mut admin, "count", &[], &["AI._MODELSCAN"]).expect("_MODELSCAN"),
        Value::Okay
    );
    assert_eq!(values(&mut admin, "app1:o"), ints(&[3]));

    // Redis's ACL check reads a command's keys where its key specs say they are: a
    // command without its arguments used to crash Redis there. Arity comes first now.
    for (args, expected) in [
        (
            &["ZUNION"][..],
            "ERR wrong number of arguments for 'ZUNION' command (called from a script)",
        ),
        (
            &["SET"][..],
            "ERR wrong number of arguments for 'SET' command (called from a script)",
        ),
        (
            &["LMPOP", "1"][..],
            "ERR wrong number of arguments for 'LMPOP' command (called from a script)",
        ),
        (
            &["NOSUCHCOMMAND"][..],
            "ERR unknown command 'NOSUCHCOMMAND' (called from a script)",
        ),
    ] {
        let err = error_text(script_call(&mut app, entry_for(args), &["app1:k"], args));
        assert!(err.contains(expected), "{args:?}: {err}");
        pong(&mut app);
    }

    // Commands a script may call: they run, as the script's caller.
    let allowed: &[(&[&str], &[&str])] = &[
        (
            &["AI.TENSORSET", "app1:t", "FLOAT", "1", "VALUES", "5"],
            &["app1:t"],
        ),
        (&["AI.TENSORGET", "app1:t", "VALUES"], &["app1:t"]),
        (&["AI.MODELGET", "app1:m", "META"], &["app1:m"]),
        (&["AI.SCRIPTGET", "app1:s2"], &["app1:s2"]),
        (&["AI.INFO", "app1:m"], &["app1:m"]),
        (&["AI.INFO", "app1:m", "RESETSTAT"], &["app1:m"]),
        (&["AI.MODELDEL", "app1:m2"], &["app1:m2"]),
        (&["AI.SCRIPTDEL", "app1:s2"], &["app1:s2"]),
        (&["AI._MODELSCAN"], &[]),
        (&["AI._SCRIPTSCAN"], &[]),
    ];
    for (args, keys) in allowed {
        assert_eq!(
            script_call(&mut app, entry_for(args), keys, args)
                .unwrap_or_else(|err| panic!("{args:?}: {err}")),
            Value::Okay,
            "{args:?}"
        );
        pong(&mut app);
    }
    assert_eq!(
        values(&mut app, "app1:t"),
        Value::Array(vec![Value::BulkString(b"5".to_vec())])
    );
    for deleted in ["app1:m2", "app1:s2"] {
        assert_eq!(
            call_str(&mut app, &format!("EXISTS {deleted}")).expect("EXISTS"),
            Value::Int(0)
        );
    }

    // Commands that load, run, block or configure: refused with the reason (before
    // their arguments are looked at).
    let refused: &[&[&str]] = &[
        &["AI.MODELSTORE", "app1:n", "ONNX", "CPU"],
        &["AI.MODELSET", "app1:n", "ONNX", "CPU"],
        &["AI.MODELEXECUTE", "app1:m", "INPUTS", "1"],
        &["AI.MODELRUN", "app1:m", "INPUTS", "app1:a"],
        &["AI.SCRIPTSTORE", "app1:n", "CPU"],
        &["AI.SCRIPTSET", "app1:n", "CPU"],
        &["AI.SCRIPTEXECUTE", "app1:s", "total"],
        &["AI.SCRIPTRUN", "app1:s", "total"],
        &["AI.DAGEXECUTE", "ROUTING", "app1:a"],
        &["AI.DAGEXECUTE_RO", "ROUTING", "app1:a"],
        &["AI.DAGRUN", "ROUTING", "app1:a"],
        &["AI.DAGRUN_RO", "ROUTING", "app1:a"],
        &["AI.CONFIG", "MODEL_CHUNK_SIZE", "1"],
        &["AI.CONFIG", "LOADBACKEND", "X", "/tmp/x.so"],
    ];
    for args in refused {
        let err = error_text(script_call(&mut app, entry_for(args), &[], args));
        let expected = format!(
            "ERR command '{}' is not allowed from a script",
            args[0].to_ascii_lowercase()
        );
        assert!(err.contains(&expected), "{args:?}: {err}");
        pong(&mut app);
    }
    assert_eq!(
        call_str(&mut admin, "AI.CONFIG GET MODEL_CHUNK_SIZE").expect("GET"),
        Value::Int(535_822_336)
    );
}

#[test]
fn lua_scripts_reach_ai_commands_without_a_user_to_borrow() {
    let (_server, mut admin, mut app) = setup(ServerConfig::default());
    // Redis checks the command against the caller's ACL, but the module cannot tell
    // who the Lua client runs for: what needs a user is refused, not waved through.
    for (user, c) in [("app1", &mut app), ("default", &mut admin)] {
        for (body, what) in [
            (
                "redis.call('AI.CONFIG', 'MODEL_CHUNK_SIZE', '1')",
                "AI.CONFIG MODEL_CHUNK_SIZE",
            ),
            ("redis.call('AI._MODELSCAN')", "listing keys"),
            ("redis.call('AI.INFO', KEYS[1], 'RESETSTAT')", "RESETSTAT"),
        ] {
            let err = error_text(
                redis::cmd("EVAL")
                    .arg(format!("return {body}"))
                    .arg(1)
                    .arg("app1:m")
                    .query::<Value>(c),
            );
            assert!(
                err.contains(&format!(
                    "NOPERM {what} cannot tell which ACL user runs it here (a Lua script or \
                     another module's call): send it from a client"
                )),
                "{user}: {body}: {err}"
            );
            pong(c);
        }
        // What needs no user still works from Lua.
        let reply: Value = redis::cmd("EVAL")
            .arg("return redis.call('AI.TENSORSET', KEYS[1], 'FLOAT', '1', 'VALUES', '7')")
            .arg(1)
            .arg("app1:lua")
            .query(c)
            .expect("TENSORSET from Lua");
        assert_eq!(reply, Value::Okay, "{user}");
    }
    assert_eq!(
        call_str(&mut admin, "AI.CONFIG GET MODEL_CHUNK_SIZE").expect("GET"),
        Value::Int(535_822_336)
    );
}

/// A user whose rights stop at reading app1 keys, plus the named AI commands.
fn reader(server: &Server, admin: &mut Connection, name: &str, extra: &str) -> Connection {
    call_str(
        admin,
        &format!("ACL SETUSER {name} on >pw resetkeys ~app1:* -@all +@read +ping {extra}"),
    )
    .expect("ACL SETUSER");
    login(server, name)
}

#[test]
fn settings_statistics_and_devices_are_guarded() {
    let (server, mut admin, mut app) = setup(ServerConfig::default());

    // MODEL_CHUNK_SIZE changes what every client and the AOF see: admin only.
    assert_eq!(
        error_text(call_str(&mut app, "AI.CONFIG MODEL_CHUNK_SIZE 1")),
        "NOPERM this user has no permissions to run AI.CONFIG MODEL_CHUNK_SIZE: it needs the \
         rights of MODULE LOAD (@admin, @dangerous)"
    );
    assert_eq!(
        call_str(&mut app, "AI.CONFIG GET MODEL_CHUNK_SIZE").expect("GET"),
        Value::Int(535_822_336)
    );
    assert_eq!(
        call_str(&mut admin, "AI.CONFIG MODEL_CHUNK_SIZE 4096").expect("admin"),
        Value::Okay
    );

    // RESETSTAT: a reader may read the statistics but not reset them; nor may a user
    // whose key rights are read-only.
    let mut read_only = reader(&server, &mut admin, "reader", "+ai.info");
    let no_reset = "NOPERM this user has no permissions to reset the statistics of this key \
                    (RESETSTAT needs write access to it)";
    for key in ["app1:m", "app1:s"] {
        assert!(matches!(
            call_str(&mut read_only, &format!("AI.INFO {key}")),
            Ok(Value::Array(_))
        ));
        assert_eq!(
            error_text(call_str(
                &mut read_only,
                &format!("AI.INFO {key} RESETSTAT")
            )),
            no_reset
        );
    }
    call_str(
        &mut admin,
        "ACL SETUSER keyreader on >pw resetkeys %R~app1:* +@all -@admin -@dangerous",
    )
    .expect("ACL SETUSER");
    let mut key_reader = login(&server, "keyreader");
    assert_eq!(
        error_text(call_str(&mut key_reader, "AI.INFO app1:m RESETSTAT")),
        no_reset
    );
    assert_eq!(
        call_str(&mut app, "AI.INFO app1:m RESETSTAT").expect("owner"),
        Value::Okay
    );

    // Device indices are bounded: each has a queue with threads of its own.
    assert_eq!(
        error_text(store_mlp(&mut app, "app1:far", "CPU:16")),
        "ERR device index out of range: CPU:16 (indices 0 to 15 are accepted)"
    );
    assert_eq!(
        error_text(call(
            &mut app,
            &[
                b"AI.SCRIPTSTORE",
                b"app1:far",
                b"GPU:99999",
                b"ENTRY_POINTS",
                b"1",
                b"f",
                b"SOURCE",
                b"x"
            ]
        )),
        "ERR device index out of range: GPU:99999 (indices 0 to 15 are accepted)"
    );
    assert_eq!(
        store_mlp(&mut app, "app1:near", "CPU:15").expect("CPU:15"),
        Value::Okay
    );
    assert!(!info_modules(&mut admin).contains("ai_queue_cpu_16"));
    pong(&mut app);
}

#[test]
fn read_only_dags_are_held_to_maxmemory() {
    let (server, mut admin, _app) = setup(ServerConfig::default());
    call_str(&mut admin, "CONFIG SET maxmemory 200mb").expect("maxmemory");
    let mut user = reader(&server, &mut admin, "dagreader", "+ai.dagexecute_ro +info");
    let greedy = "AI.DAGEXECUTE_RO ROUTING app1:x |> AI.TENSORSET t INT8 536870912 \
                  |> AI.TENSORSET u INT8 536870912 |> AI.TENSORGET t META";
    assert_eq!(
        error_text(call_str(&mut user, greedy)),
        "OOM command not allowed when used memory > 'maxmemory'."
    );
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query(&mut user)
        .expect("INFO");
    let used: u64 = info
        .lines()
        .find_map(|line| line.strip_prefix("used_memory:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("used_memory");
    assert!(used < 200 << 20, "used_memory {used}");
    // What fits still runs.
    let small = "AI.DAGEXECUTE_RO ROUTING app1:x |> AI.TENSORSET t INT8 4 VALUES 1 2 3 4 \
                 |> AI.TENSORGET t VALUES";
    assert_eq!(
        call_str(&mut user, small).expect("small DAG"),
        Value::Array(vec![Value::Okay, ints(&[1, 2, 3, 4])])
    );
    pong(&mut user);
}

/// DEBUG DIGEST-VALUE of one key.
fn key_digest(c: &mut Connection, key: &str) -> Value {
    call_str(c, &format!("DEBUG DIGEST-VALUE {key}")).expect("DIGEST-VALUE")
}

fn meta(c: &mut Connection, key: &str) -> Value {
    call_str(c, &format!("AI.TENSORGET {key} META")).expect(key)
}

#[test]
fn rank_zero_and_empty_outputs_reach_replicas_the_aof_and_the_rdb() {
    let config = ServerConfig::default()
        .option("appendonly", &["yes"])
        .option("aof-use-rdb-preamble", &["no"]);
    let (mut server, mut admin, mut app) = setup(config);
    let replica = server.start_replica();
    for (entry, output, shape) in [
        ("total", "app1:sum", vec![]),
        ("none_of", "app1:none", vec![0, 3]),
    ] {
        let line = format!("AI.SCRIPTEXECUTE app1:s {entry} INPUTS 1 app1:a OUTPUTS 1 {output}");
        assert_eq!(call_str(&mut app, &line).expect(entry), Value::Okay);
        match meta(&mut app, output) {
            Value::Array(fields) if fields.len() == 4 => {
                assert_eq!(fields[3], ints(&shape), "{entry}")
            }
            other => panic!("{entry}: {other:?}"),
        }
    }
    assert_eq!(
        values(&mut app, "app1:sum"),
        Value::Array(vec![Value::BulkString(b"21".to_vec())])
    );
    let keys = ["app1:sum", "app1:none"];
    let digests: Vec<Value> = keys.iter().map(|k| key_digest(&mut admin, k)).collect();
    let check = |c: &mut Connection, when: &str| {
        for (key, digest) in keys.iter().zip(&digests) {
            assert_eq!(&key_digest(c, key), digest, "{key} {when}");
        }
        pong(c);
    };

    replica.wait_for_sync(&server);
    let mut r = client(&replica);
    check(&mut r, "on the replica");
    assert!(
        !replica.log().contains("invalid or negative value"),
        "{}",
        replica.log()
    );

    // AOF replay of the commands as received, then of a rewrite without and with the RDB
    // preamble, then an RDB reload.
    server.restart();
    check(&mut client(&server), "after AOF replay");
    let mut c = client(&server);
    call_str(&mut c, "BGREWRITEAOF").expect("rewrite");
    wait_for_rewrite(&mut c);
    server.restart();
    check(&mut client(&server), "after a rewritten AOF");
    let mut c = client(&server);
    call_str(&mut c, "CONFIG SET aof-use-rdb-preamble yes").expect("preamble");
    call_str(&mut c, "BGREWRITEAOF").expect("rewrite");
    wait_for_rewrite(&mut c);
    server.restart();
    let mut c = client(&server);
    check(&mut c, "after an AOF with an RDB preamble");
    call_str(&mut c, "DEBUG RELOAD").expect("DEBUG RELOAD");
    check(&mut c, "after DEBUG RELOAD");
    // A client still may not set such shapes itself (RedisAI's rule).
    assert_eq!(
        error_text(call_str(&mut c, "AI.TENSORSET app1:z FLOAT 0 3")),
        "ERR invalid or negative value found in tensor shape"
    );
}

/// Large blobs arrive as Redis's query buffer itself, with room to spare that Redis trims
/// after the command; the tensor keeps the argument and must read the trimmed buffer.
#[test]
fn large_blobs_kept_as_arguments_read_back_intact() {
    let (_server, _admin, mut app) = setup(ServerConfig::default());
    let sizes = [40_000usize, 65_537, 100_003, 1 << 20, 3_000_001];
    let mut pipe = redis::pipe();
    let mut blobs = Vec::new();
    for (i, &size) in sizes.iter().enumerate() {
        let blob: Vec<u8> = (0..size).map(|j| (j * 31 + i * 7) as u8).collect();
        pipe.cmd("AI.TENSORSET")
            .arg(format!("app1:big{i}"))
            .arg("UINT8")
            .arg(size)
            .arg("BLOB")
            .arg(&blob[..]);
        blobs.push(blob);
    }
    let replies: Vec<Value> = pipe.query(&mut app).expect("pipeline");
    assert!(replies.iter().all(|r| *r == Value::Okay), "{replies:?}");
    for (i, blob) in blobs.iter().enumerate() {
        let got: Vec<u8> = redis::cmd("AI.TENSORGET")
            .arg(format!("app1:big{i}"))
            .arg("BLOB")
            .query(&mut app)
            .expect("BLOB");
        assert!(got == *blob, "blob {i} of {} bytes changed", blob.len());
    }
    pong(&mut app);
}
