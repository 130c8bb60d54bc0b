//! Scripts end to end on the real TORCH backend plugin (`dist/backends/redisai_torch`):
//! every script command and its errors, `redis.execute` / `redis.asList` and
//! `redisAI.model_execute` (of an ONNX model) from TorchScript, list outputs, DAGs,
//! persistence, replication, AI.INFO and TIMEOUT; RedisAI 1.2 style functions through
//! the deprecated SCRIPTSET / SCRIPTRUN (tensors as parameters, `$` for a list).

mod legacy;

use std::path::PathBuf;

use redisai_tests::redis::{Connection, Value};
use redisai_tests::{bulk_array as strings, int_array as ints};
use redisai_tests::{
    digest, error_text, run, run_nested, run_str, wait_for_rewrite, Server, ServerConfig,
};

const SCRIPT: &str = r#"
def bar(tensors: List[Tensor], keys: List[str], args: List[str]):
    a = tensors[0]
    b = tensors[1]
    return a + b

def bar_variadic(tensors: List[Tensor], keys: List[str], args: List[str]):
    total = tensors[0]
    for t in tensors[1:]:
        total = total + t
    return total

def split(tensors: List[Tensor], keys: List[str], args: List[str]):
    return [tensors[0] * 2, tensors[0] + 1]

def incr_key(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute("INCR", keys[0])
    return torch.tensor([int(str(redis.execute("GET", keys[0])))])

def set_get(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute("SET", keys[0], args[0])
    return torch.tensor([int(str(redis.execute("GET", keys[0])))])

def list_len(tensors: List[Tensor], keys: List[str], args: List[str]):
    items = redis.asList(redis.execute("LRANGE", keys[0], "0", "-1"))
    return torch.tensor([len(items)])

def run_mlp(tensors: List[Tensor], keys: List[str], args: List[str]):
    return redisAI.model_execute(keys[0], [tensors[0]], 1)[0]

def undeclared(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute("SET", "not_declared", "1")
    return torch.tensor([1])

def slow(tensors: List[Tensor], keys: List[str], args: List[str]):
    x = tensors[0]
    for i in range(int(args[0])):
        x = x + 1
    return x
"#;

const ENTRY_POINTS: &[&str] = &[
    "bar",
    "bar_variadic",
    "split",
    "incr_key",
    "set_get",
    "list_len",
    "run_mlp",
    "undeclared",
    "slow",
];

fn torch_plugin() -> PathBuf {
    redisai_tests::workspace_root().join("dist/backends/redisai_torch/redisai_torch.so")
}

fn start(config: ServerConfig) -> Server {
    assert!(
        torch_plugin().exists(),
        "the TORCH plugin is missing at {} (build it with scripts/test or build_all)",
        torch_plugin().display()
    );
    Server::start_with(config)
}

fn store_script(c: &mut Connection, key: &str) {
    let count = ENTRY_POINTS.len().to_string();
    let mut args: Vec<&[u8]> = vec![
        b"AI.SCRIPTSTORE",
        key.as_bytes(),
        b"CPU",
        b"TAG",
        b"v1",
        b"ENTRY_POINTS",
        count.as_bytes(),
    ];
    args.extend(ENTRY_POINTS.iter().map(|e| e.as_bytes()));
    args.push(b"SOURCE");
    args.push(SCRIPT.as_bytes());
    assert_eq!(run(c, &args).expect("SCRIPTSTORE"), Value::Okay);
}

fn server() -> (Server, Connection) {
    let server = start(ServerConfig::default());
    let mut c = server.client();
    store_script(&mut c, "s");
    run_str(&mut c, "AI.TENSORSET a FLOAT 2 2 VALUES 2 3 2 3").expect("a");
    run_str(&mut c, "AI.TENSORSET b FLOAT 2 2 VALUES 2 3 2 3").expect("b");
    (server, c)
}

#[test]
fn store_get_execute_delete() {
    let (_server, mut c) = server();
    assert_eq!(
        run_str(&mut c, "AI.SCRIPTEXECUTE s bar INPUTS 2 a b OUTPUTS 1 c").expect("execute"),
        Value::Okay
    );
    assert_eq!(
        run_str(&mut c, "AI.TENSORGET c VALUES").expect("c"),
        strings(&["4", "6", "4", "6"])
    );
    // A list result goes to several OUTPUTS, in order.
    assert_eq!(
        run_str(&mut c, "AI.SCRIPTEXECUTE s split INPUTS 1 a OUTPUTS 2 x y").expect("split"),
        Value::Okay
    );
    assert_eq!(
        run_str(&mut c, "AI.TENSORGET x VALUES").expect("x"),
        strings(&["4", "6", "4", "6"])
    );
    assert_eq!(
        run_str(&mut c, "AI.TENSORGET y VALUES").expect("y"),
        strings(&["3", "4", "3", "4"])
    );
    // Deprecated SCRIPTSET / SCRIPTRUN with the variadic marker.
    let set: Vec<&[u8]> = vec![
        b"AI.SCRIPTSET",
        b"old",
        b"CPU",
        b"SOURCE",
        SCRIPT.as_bytes(),
    ];
    assert_eq!(run(&mut c, &set).expect("SCRIPTSET"), Value::Okay);
    assert_eq!(
        run_str(
            &mut c,
            "AI.SCRIPTRUN old bar_variadic INPUTS a $ b b OUTPUTS v"
        )
        .expect("run"),
        Value::Okay
    );
    assert_eq!(
        run_str(&mut c, "AI.TENSORGET v VALUES").expect("v"),
        strings(&["6", "9", "6", "9"])
    );
    let meta = run_str(&mut c, "AI.SCRIPTGET s META").expect("meta");
    let Value::Array(fields) = meta else {
        panic!("SCRIPTGET META")
    };
    assert_eq!(fields[0], Value::SimpleString("device".into()));
    assert_eq!(fields[1], Value::BulkString(b"CPU".to_vec()));
    assert_eq!(fields[3], Value::BulkString(b"v1".to_vec()));
    assert_eq!(fields[5], strings(ENTRY_POINTS));
    assert_eq!(fields.len(), 6);
    assert_eq!(
        run_str(&mut c, "AI.SCRIPTGET s SOURCE").expect("source"),
        Value::BulkString(SCRIPT.as_bytes().to_vec())
    );
    let Value::Array(scan) = run_str(&mut c, "AI._SCRIPTSCAN").expect("scan") else {
        panic!("_SCRIPTSCAN")
    };
    assert_eq!(scan.len(), 2);
    assert_eq!(
        run_str(&mut c, "AI.SCRIPTDEL old").expect("del"),
        Value::Okay
    );
    assert_eq!(
        run_str(&mut c, "EXISTS old").expect("exists"),
        Value::Int(0)
    );
    assert_eq!(
        error_text(run_str(&mut c, "AI.SCRIPTDEL old")),
        "ERR script key is empty"
    );
}

#[test]
fn errors_match_redisai() {
    let (_server, mut c) = server();
    let cases = [
        ("AI.SCRIPTSTORE k CPU SOURCE x", "ERR wrong number of arguments for 'AI.SCRIPTSTORE' command"),
        ("AI.SCRIPTSTORE k CPU NO_ENTRY_POINTS 2 bar baz SOURCE x", "ERR Insufficient arguments, missing script entry points"),
        ("AI.SCRIPTSTORE k CPU ENTRY_POINTS ENTRY_POINTS bar baz SOURCE x", "ERR Non numeric entry points number provided to AI.SCRIPTSTORE command"),
        ("AI.SCRIPTSTORE k CPU ENTRY_POINTS 2 bar baz SOURCE", "ERR Insufficient arguments, missing script SOURCE"),
        ("AI.SCRIPTSTORE k CPU ENTRY_POINTS 5 bar baz SOURCE x", "ERR Insufficient arguments, missing script entry points"),
        ("AI.SCRIPTSTORE k bad_device ENTRY_POINTS 1 f SOURCE x", "ERR Invalid DEVICE"),
        ("AI.SCRIPTSTORE k CPU ENTRY_POINTS 1 f", "ERR wrong number of arguments for 'AI.SCRIPTSTORE' command"),
        ("AI.SCRIPTSTORE k", "ERR wrong number of arguments for 'AI.SCRIPTSTORE' command"),
        ("AI.SCRIPTSET nope SOURCE", "ERR wrong number of arguments for 'AI.SCRIPTSET' command"),
        ("AI.SCRIPTSET nope SOURCE x", "ERR wrong number of arguments for 'AI.SCRIPTSET' command"),
        ("AI.SCRIPTSET nope bad_device SOURCE x", "ERR Invalid DEVICE"),
        ("AI.SCRIPTSET nope CPU TAG t x y", "ERR Insufficient arguments, missing script SOURCE"),
        ("AI.SCRIPTGET nothing", "ERR script key is empty"),
        ("AI.SCRIPTEXECUTE s bar KEYS 1", "ERR Missing arguments after KEYS keyword"),
        ("AI.SCRIPTEXECUTE s bar KEYS not_number k", "ERR Invalid or negative value found in number of KEYS"),
        ("AI.SCRIPTEXECUTE s bar KEYS 2 k", "ERR Number of pre declared KEYS to be used in the command does not match the number of given arguments"),
        ("AI.SCRIPTEXECUTE s bar OUTPUTS 1 c", "ERR KEYS or INPUTS scope must be provided first for AI.SCRIPTEXECUTE command"),
        ("AI.SCRIPTEXECUTE s bar INPUTS 2 a b OUTPUTS 1 c TIMEOUT", "ERR No value provided for TIMEOUT in AI.SCRIPTEXECUTE"),
        ("AI.SCRIPTEXECUTE s bar KEYS 1 k ARGS", "ERR Invalid arguments provided to AI.SCRIPTEXECUTE"),
        ("AI.SCRIPTEXECUTE s bar INPUTS OUTPUTS", "ERR Invalid argument for inputs count in AI.SCRIPTEXECUTE"),
        ("AI.SCRIPTEXECUTE s bar INPUTS 2 a b OUTPUTS 1 c TIMEOUT TIMEOUT", "ERR Invalid value for TIMEOUT"),
        ("AI.SCRIPTEXECUTE s bar INPUTS 2 a empty OUTPUTS 1 c", "ERR tensor key is empty or in a different shard"),
        ("AI.SCRIPTEXECUTE nothing bar INPUTS 2 a b OUTPUTS 1 c", "ERR script key is empty"),
        ("AI.SCRIPTEXECUTE s nope INPUTS 2 a b OUTPUTS 1 c", "ERR Function nope does not exist in the given script."),
        ("AI.SCRIPTRUN s bar INPUTS $ a $ b OUTPUTS c", "ERR Already encountered a variable size list of tensors"),
    ];
    for (command, expected) in cases {
        assert_eq!(error_text(run_str(&mut c, command)), expected, "{command}");
    }
    run_str(&mut c, "SET str x").expect("set");
    assert!(error_text(run_str(&mut c, "AI.SCRIPTGET str")).starts_with("WRONGTYPE"));
    assert!(error_text(run_str(
        &mut c,
        "AI.SCRIPTEXECUTE s bar INPUTS 2 a str OUTPUTS 1 c"
    ))
    .starts_with("WRONGTYPE"));
    // A declared entry point missing from the source.
    let err = error_text(run_str(
        &mut c,
        "AI.SCRIPTSTORE k CPU ENTRY_POINTS 1 missing SOURCE def\u{20}f(x):",
    ));
    assert!(err.starts_with("ERR"), "{err}");
    // A script with a syntax error: an error reply, and the server carries on.
    let broken =
        "def bar(tensors: List[Tensor], keys: List[str], args: List[str]):\n    return a +\n";
    let args: Vec<&[u8]> = vec![
        b"AI.SCRIPTSTORE",
        b"broken",
        b"CPU",
        b"ENTRY_POINTS",
        b"1",
        b"bar",
        b"SOURCE",
        broken.as_bytes(),
    ];
    let err = error_text(run(&mut c, &args));
    assert!(err.starts_with("ERR"), "{err}");
    assert_eq!(
        run_str(&mut c, "EXISTS broken").expect("exists"),
        Value::Int(0)
    );
    assert_eq!(
        run_str(&mut c, "AI.SCRIPTEXECUTE s bar INPUTS 2 a b OUTPUTS 1 c").expect("still runs"),
        Value::Okay
    );
}

#[test]
fn redis_execute_and_as_list_from_torchscript() {
    let (_server, mut c) = server();
    run_str(&mut c, "SET counter 41").expect("set");
    assert_eq!(
        run_str(
            &mut c,
            "AI.SCRIPTEXECUTE s incr_key KEYS 1 counter OUTPUTS 1 n"
        )
        .expect("incr"),
        Value::Okay
    );
    assert_eq!(
        run_str(&mut c, "AI.TENSORGET n VALUES").expect("n"),
        ints(&[42])
    );
    assert_eq!(
        run_str(&mut c, "GET counter").expect("get"),
        Value::BulkString(b"42".to_vec())
    );
    assert_eq!(
        run_str(
            &mut c,
            "AI.SCRIPTEXECUTE s set_get KEYS 1 k ARGS 1 17 OUTPUTS 1 m"
        )
        .expect("set_get"),
        Value::Okay
    );
    assert_eq!(
        run_str(&mut c, "AI.TENSORGET m VALUES").expect("m"),
        ints(&[17])
    );
    run_str(&mut c, "RPUSH list a b c d").expect("rpush");
    assert_eq!(
        run_str(
            &mut c,
            "AI.SCRIPTEXECUTE s list_len KEYS 1 list OUTPUTS 1 len"
        )
        .expect("len"),
        Value::Okay
    );
    assert_eq!(
        run_str(&mut c, "AI.TENSORGET len VALUES").expect("len"),
        ints(&[4])
    );
    // Keys must be declared in KEYS.
    let err = error_text(run_str(
        &mut c,
        "AI.SCRIPTEXECUTE s undeclared KEYS 1 counter OUTPUTS 1 o",
    ));
    assert!(err.contains("not declared in the KEYS"), "{err}");
    assert_eq!(
        run_str(&mut c, "EXISTS not_declared").expect("exists"),
        Value::Int(0)
    );
}

fn f32_blob(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

#[test]
fn model_execute_of_an_onnx_model_from_torchscript() {
    let (_server, mut c) = server();
    let model = std::fs::read(redisai_tests::workspace_root().join("tests/models/onnx/mlp.onnx"))
        .expect("mlp.onnx");
    let store: Vec<&[u8]> = vec![b"AI.MODELSTORE", b"mlp", b"ONNX", b"CPU", b"BLOB", &model];
    assert_eq!(run(&mut c, &store).expect("MODELSTORE"), Value::Okay);
    let x = f32_blob(&[1.0, 2.0, 3.0, 4.0]);
    let set: Vec<&[u8]> = vec![b"AI.TENSORSET", b"x", b"FLOAT", b"1", b"4", b"BLOB", &x];
    assert_eq!(run(&mut c, &set).expect("x"), Value::Okay);
    assert_eq!(
        run_str(
            &mut c,
            "AI.SCRIPTEXECUTE s run_mlp KEYS 1 mlp INPUTS 1 x OUTPUTS 1 y"
        )
        .expect("run_mlp"),
        Value::Okay
    );
    assert_eq!(
        run_str(&mut c, "AI.TENSORGET y VALUES").expect("y"),
        strings(&["0.421875", "1.8125", "0.015625"])
    );
}

#[test]
fn scripts_in_dags() {
    let (_server, mut c) = server();
    run_str(&mut c, "SET counter 1").expect("set");
    let reply = run_nested(
        &mut c,
        "AI.DAGEXECUTE KEYS 1 counter LOAD 2 a b PERSIST 1 n |> AI.SCRIPTEXECUTE s bar \
         INPUTS 2 a b OUTPUTS 1 c |> AI.SCRIPTEXECUTE s incr_key INPUTS 1 c OUTPUTS 1 n \
         |> AI.TENSORGET c VALUES",
    )
    .expect("dag");
    assert_eq!(
        reply,
        Value::Array(vec![
            Value::Okay,
            Value::Okay,
            strings(&["4", "6", "4", "6"])
        ])
    );
    assert_eq!(
        run_str(&mut c, "AI.TENSORGET n VALUES").expect("n"),
        ints(&[2])
    );
    let reply = run_nested(
        &mut c,
        "AI.DAGRUN LOAD 2 a b |> AI.SCRIPTRUN s bar INPUTS a b OUTPUTS c |> AI.TENSORGET c VALUES",
    )
    .expect("dagrun");
    assert_eq!(
        reply,
        Value::Array(vec![Value::Okay, strings(&["4", "6", "4", "6"])])
    );
    assert_eq!(
        error_text(run_str(
            &mut c,
            "AI.DAGEXECUTE_RO LOAD 2 a b |> AI.SCRIPTEXECUTE s bar INPUTS 2 a b OUTPUTS 1 c"
        )),
        "ERR AI.SCRIPTEXECUTE command cannot be specified in a read-only DAG"
    );
}

#[test]
fn info_and_timeout() {
    let (_server, mut c) = server();
    for _ in 0..3 {
        run_str(&mut c, "AI.SCRIPTEXECUTE s bar INPUTS 2 a b OUTPUTS 1 c").expect("run");
    }
    let Value::Array(fields) = run_str(&mut c, "AI.INFO s").expect("info") else {
        panic!("AI.INFO")
    };
    let expected_keys = [
        "key",
        "type",
        "backend",
        "device",
        "tag",
        "duration",
        "samples",
        "calls",
        "errors",
        "duration_p50",
        "duration_p99",
    ];
    for (index, name) in expected_keys.iter().enumerate() {
        assert_eq!(
            fields[index * 2],
            Value::SimpleString((*name).into()),
            "{fields:?}"
        );
    }
    assert_eq!(fields[3], Value::SimpleString("SCRIPT".into()));
    assert_eq!(fields[5], Value::SimpleString("TORCH".into()));
    assert_eq!(fields[13], Value::Int(-1));
    assert_eq!(fields[15], Value::Int(3));
    assert_eq!(fields[17], Value::Int(0));
    assert_eq!(
        run_str(&mut c, "AI.INFO s RESETSTAT").expect("reset"),
        Value::Okay
    );
    let Value::Array(fields) = run_str(&mut c, "AI.INFO s").expect("info") else {
        panic!("AI.INFO")
    };
    assert_eq!(fields[15], Value::Int(0));
    // A run far longer than its TIMEOUT is answered TIMEDOUT.
    assert_eq!(
        run_str(
            &mut c,
            "AI.SCRIPTEXECUTE s slow INPUTS 1 a ARGS 1 300000 OUTPUTS 1 z TIMEOUT 1"
        )
        .expect("timeout"),
        Value::SimpleString("TIMEDOUT".into())
    );
    assert_eq!(
        run_str(&mut c, "AI.SCRIPTEXECUTE s bar INPUTS 2 a b OUTPUTS 1 c").expect("after"),
        Value::Okay
    );
}

#[test]
fn persistence_and_replication() {
    let config = ServerConfig::default()
        .option("appendonly", &["yes"])
        .option("aof-use-rdb-preamble", &["no"]);
    let mut server = start(config);
    let mut c = server.client();
    store_script(&mut c, "s");
    run_str(&mut c, "AI.TENSORSET a FLOAT 2 VALUES 1 2").expect("a");
    let before = digest(&mut c);

    let replica = server.start_replica();
    let mut r = replica.client();
    assert_eq!(digest(&mut r), before, "replica");
    run_str(&mut c, "SET counter 5").expect("set");
    run_str(
        &mut c,
        "AI.SCRIPTEXECUTE s incr_key KEYS 1 counter OUTPUTS 1 n",
    )
    .expect("incr");
    replica.wait_for_sync(&server);
    assert_eq!(digest(&mut r), digest(&mut c), "script writes replicate");
    assert_eq!(
        run_str(&mut r, "AI.TENSORGET n VALUES").expect("n"),
        ints(&[6])
    );
    // The replica's copy of the script runs too.
    assert_eq!(
        run_str(&mut r, "AI.SCRIPTGET s SOURCE").expect("source"),
        Value::BulkString(SCRIPT.as_bytes().to_vec())
    );
    drop(r);
    drop(replica);

    let before = digest(&mut c);
    run_str(&mut c, "DEBUG RELOAD").expect("reload");
    assert_eq!(digest(&mut c), before, "DEBUG RELOAD");
    run_str(&mut c, "BGREWRITEAOF").expect("rewrite");
    wait_for_rewrite(&mut c);
    server.restart();
    let mut c = server.client();
    assert_eq!(digest(&mut c), before, "AOF restart");
    run_str(&mut c, "SAVE").expect("save");
    run_str(&mut c, "CONFIG SET appendonly no").expect("aof off");
    server.restart();
    let mut c = server.client();
    assert_eq!(digest(&mut c), before, "restart");
    assert_eq!(
        run_str(&mut c, "AI.SCRIPTEXECUTE s split INPUTS 1 a OUTPUTS 2 x y").expect("runs"),
        Value::Okay
    );
}
