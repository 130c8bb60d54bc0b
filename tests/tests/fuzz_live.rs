//! A bounded random-command fuzzer against a live server: random AI.* commands with
//! random arity and bytes, mutated valid commands, and truncated and bit-flipped model
//! blobs for every installed backend (ONNX, TF, TFLite, TORCH, the C example), and AI.SCRIPT*
//! commands with truncated, bit-flipped, random and huge TorchScript sources (when the
//! TORCH plugin is built). The server must
//! never crash or hang: it answers PING throughout, and at the end its data passes
//! `redis-check-rdb` and loads again after a restart.
//!
//! A second test generates models and scripts (`redisai_tests::graphs`): ONNX models and
//! TF graphs of random real operators, TorchScript scripts chaining random torch calls,
//! and scripts calling random commands through `redis.execute`, stored and run as the
//! default user and as a user without @admin/@dangerous. Stores the backends' sandboxes
//! must refuse (external data, custom operator domains, TF file operations,
//! `torch.from_file`) fail the test when accepted, as do runs of refused commands that
//! succeed; it prints what each kind of case did.
//!
//! Cases: `REDISAI_LIVE_FUZZ_CASES` (default 3000, for each test); seed: `REDISAI_SEED`.

use std::time::Duration;

use redisai_example_c_plugins::{EXAMPLE_ADD_BACKEND, EXAMPLE_ADD_PLUGIN};
use redisai_tests::graphs;
use redisai_tests::hardening::{
    answers_ping, backend_built, env_usize, model_bytes, server_pid, Rng,
};
use redisai_tests::redis::{self, Connection, ConnectionLike, Value};
use redisai_tests::{run, run_str, Server, ServerConfig};

const COMMANDS: &[&str] = &[
    "AI.TENSORSET",
    "AI.TENSORGET",
    "AI.MODELSTORE",
    "AI.MODELSET",
    "AI.MODELGET",
    "AI.MODELDEL",
    "AI.MODELEXECUTE",
    "AI.MODELRUN",
    "AI._MODELSCAN",
    "AI.INFO",
    "AI.DAGEXECUTE",
    "AI.DAGEXECUTE_RO",
    "AI.DAGRUN",
    "AI.DAGRUN_RO",
    "AI.CONFIG",
    "AI.SCRIPTSTORE",
    "AI.SCRIPTEXECUTE",
    "AI.SCRIPTSET",
    "AI.SCRIPTGET",
    "AI.SCRIPTDEL",
    "AI.SCRIPTRUN",
    "AI._SCRIPTSCAN",
];

const WORDS: &[&str] = &[
    "t1",
    "t2",
    "t3",
    "out",
    "onnx",
    "tflite",
    "example",
    "plain",
    "missing",
    "FLOAT",
    "DOUBLE",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "UINT8",
    "UINT16",
    "BOOL",
    "STRING",
    "BLOB",
    "VALUES",
    "META",
    "INPUTS",
    "OUTPUTS",
    "TIMEOUT",
    "TAG",
    "BATCHSIZE",
    "MINBATCHSIZE",
    "MINBATCHTIMEOUT",
    "LOAD",
    "PERSIST",
    "ROUTING",
    "|>",
    "AI.TENSORSET",
    "AI.TENSORGET",
    "AI.MODELEXECUTE",
    "AI.MODELRUN",
    "AI.SCRIPTEXECUTE",
    "ONNX",
    "TFLITE",
    "TF",
    "TORCH",
    "EXAMPLE",
    "CPU",
    "GPU",
    "GPU:0",
    "CPU:1",
    "GET",
    "MODEL_CHUNK_SIZE",
    "RESETSTAT",
    "0",
    "1",
    "2",
    "3",
    "4",
    "-1",
    "100",
    "65536",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551616",
    "1e309",
    "nan",
    "",
    "add",
    "s1",
    "s2",
    "KEYS",
    "ARGS",
    "ENTRY_POINTS",
    "SOURCE",
    "$",
    "bar",
    "split",
    "setk",
    "boom",
];

/// A TorchScript source for the fuzzer to store, run and mutate.
const SCRIPT: &str = r#"
def bar(tensors: List[Tensor], keys: List[str], args: List[str]):
    total = tensors[0]
    for t in tensors[1:]:
        total = total + t
    return total

def split(tensors: List[Tensor], keys: List[str], args: List[str]):
    return [tensors[0] * 2, tensors[0] + 1]

def setk(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute("SET", keys[0], args[0])
    return torch.tensor([len(keys)])

def boom(tensors: List[Tensor], keys: List[str], args: List[str]):
    return tensors[7]
"#;

const ENTRY_POINTS: [&str; 4] = ["bar", "split", "setk", "boom"];

/// A model of an installed backend: its backend, the MODELSTORE words between the
/// device and BLOB (TF's node names), and its blob.
type SeedModel = (&'static str, &'static [&'static str], Vec<u8>);

struct Models {
    /// Every installed backend's models.
    blobs: Vec<SeedModel>,
    /// Whether the TORCH plugin is built (script cases run then).
    torch: bool,
}

fn models() -> Models {
    let mut blobs = Vec::new();
    if backend_built("redisai_onnxruntime") {
        for name in ["add.onnx", "mlp.onnx", "two_outputs.onnx", "int_ops.onnx"] {
            blobs.push(("ONNX", &[][..], model_bytes("onnx", name)));
        }
    }
    if backend_built("redisai_tflite") {
        for name in [
            "add.tflite",
            "mlp.tflite",
            "fc_int8.tflite",
            "two_outputs.tflite",
        ] {
            blobs.push(("TFLITE", &[][..], model_bytes("tflite", name)));
        }
    }
    if backend_built("redisai_tensorflow") {
        const MUL: &[&str] = &["INPUTS", "2", "a", "b", "OUTPUTS", "1", "mul"];
        const MLP: &[&str] = &["INPUTS", "1", "x", "OUTPUTS", "2", "y", "hidden"];
        blobs.push(("TF", MUL, model_bytes("tf", "mul.pb")));
        blobs.push(("TF", MLP, model_bytes("tf", "mlp.pb")));
    }
    if backend_built("redisai_torch") {
        for name in ["add.pt", "mlp.pt", "two_outputs.pt"] {
            blobs.push(("TORCH", &[][..], model_bytes("torch", name)));
        }
    }
    blobs.push(("EXAMPLE", &[][..], b"add".to_vec()));
    Models {
        blobs,
        torch: backend_built("redisai_torch"),
    }
}

fn mutate(rng: &mut Rng, blob: &[u8]) -> Vec<u8> {
    let mut out = blob.to_vec();
    match rng.below(4) {
        0 => out.truncate(rng.below(blob.len().max(1))),
        1 => {
            for _ in 0..1 + rng.below(8) {
                if !out.is_empty() {
                    let at = rng.below(out.len());
                    out[at] ^= 1 << rng.below(8);
                }
            }
        }
        2 => {
            let at = rng.below(out.len().max(1));
            let junk = {
                let n = rng.below(32);
                rng.bytes(n)
            };
            out.splice(at.min(out.len())..at.min(out.len()), junk);
        }
        _ => {
            let at = rng.below(out.len().max(1)).min(out.len());
            let len = rng.below(64);
            let end = (at + len).min(out.len());
            out.drain(at..end);
        }
    }
    out
}

fn word(rng: &mut Rng) -> Vec<u8> {
    match rng.below(10) {
        0 => {
            let n = rng.below(16);
            rng.bytes(n)
        }
        1 => (rng.next_u64() as i64).to_string().into_bytes(),
        _ => rng.pick(WORDS).as_bytes().to_vec(),
    }
}

/// One random command.
fn random_command(rng: &mut Rng, models: &Models) -> Vec<Vec<u8>> {
    let valid_blob = |rng: &mut Rng| -> Vec<Vec<u8>> {
        let dtype = *rng.pick(&[
            "FLOAT", "INT8", "UINT8", "INT64", "BOOL", "STRING", "DOUBLE",
        ]);
        let n = 1 + rng.below(4);
        // Right-sized half of the time (FLOAT and DOUBLE then usually run), else not.
        let size = match dtype {
            "FLOAT" => 4,
            "INT64" | "DOUBLE" => 8,
            _ => 1,
        };
        let len = if rng.chance(50) {
            n * size
        } else {
            rng.below(40)
        };
        let blob = rng.bytes(len);
        vec![
            b"AI.TENSORSET".to_vec(),
            rng.pick(&["t1", "t2", "t3"]).as_bytes().to_vec(),
            dtype.as_bytes().to_vec(),
            n.to_string().into_bytes(),
            b"BLOB".to_vec(),
            blob,
        ]
    };
    let script_cases = if models.torch { 3 } else { 0 };
    let pick = rng.below(8 + script_cases);
    if pick >= 8 {
        return random_script_command(rng, pick - 8);
    }
    match pick {
        // A model blob of an installed backend, mutated.
        0 | 1 => {
            let (backend, names, blob) = rng.pick(&models.blobs);
            let key = rng.pick(&["onnx", "tflite", "example", "fuzzed"]);
            let mut command = vec![
                b"AI.MODELSTORE".to_vec(),
                key.as_bytes().to_vec(),
                backend.as_bytes().to_vec(),
                b"CPU".to_vec(),
            ];
            command.extend(names.iter().map(|w| w.as_bytes().to_vec()));
            command.push(b"BLOB".to_vec());
            command.push(mutate(rng, blob));
            command
        }
        // A blob tensor of random length.
        2 => valid_blob(rng),
        // A plausible execution with random keys.
        3 => {
            let model = rng.pick(&["onnx", "tflite", "example", "fuzzed", "t1"]);
            let mut command: Vec<Vec<u8>> = ["AI.MODELEXECUTE", model, "INPUTS"]
                .iter()
                .map(|s| s.as_bytes().to_vec())
                .collect();
            let n = rng.below(4);
            command.push(n.to_string().into_bytes());
            for _ in 0..n {
                command.push(rng.pick(&["t1", "t2", "t3", "out"]).as_bytes().to_vec());
            }
            command.push(b"OUTPUTS".to_vec());
            let m = rng.below(3);
            command.push(m.to_string().into_bytes());
            for _ in 0..m {
                command.push(rng.pick(&["out", "t3"]).as_bytes().to_vec());
            }
            if rng.chance(20) {
                command.push(b"TIMEOUT".to_vec());
                command.push(rng.below(200).to_string().into_bytes());
            }
            command
        }
        // Random arity and words.
        _ => {
            let mut command = vec![rng.pick(COMMANDS).as_bytes().to_vec()];
            let arity = rng.below(14);
            for _ in 0..arity {
                command.push(word(rng));
            }
            // Never point the server at other native code.
            if command[0] == b"AI.CONFIG"
                && command.get(1).is_some_and(|a| {
                    a.eq_ignore_ascii_case(b"LOADBACKEND")
                        || a.eq_ignore_ascii_case(b"BACKENDSPATH")
                })
            {
                command[1] = b"GET".to_vec();
            }
            command
        }
    }
}

fn word_of(s: impl AsRef<[u8]>) -> Vec<u8> {
    s.as_ref().to_vec()
}

/// A TorchScript source: the valid one mutated, random bytes, or huge.
fn script_source(rng: &mut Rng) -> Vec<u8> {
    match rng.below(10) {
        0 => SCRIPT.as_bytes().to_vec(),
        1 => {
            let n = rng.below(512);
            rng.bytes(n)
        }
        // Huge: the source repeated (duplicate definitions) or junk, up to ~1 MiB.
        2 => {
            let times = 1 + rng.below(2000);
            let mut out = SCRIPT.repeat(times).into_bytes();
            if rng.chance(50) {
                let at = rng.below(out.len());
                out.truncate(at);
            }
            out
        }
        _ => mutate(rng, SCRIPT.as_bytes()),
    }
}

/// One script command: a store of a mutated source, a plausible execution, or a script
/// command with random arity and words.
fn random_script_command(rng: &mut Rng, kind: usize) -> Vec<Vec<u8>> {
    let key = |rng: &mut Rng| word_of(rng.pick(&["s1", "s2", "t1", "plain", "missing"]));
    match kind {
        0 => {
            let mut command = vec![word_of("AI.SCRIPTSTORE"), key(rng), word_of("CPU")];
            if rng.chance(20) {
                command.push(word_of("TAG"));
                command.push(word(rng));
            }
            let n = if rng.chance(90) {
                1 + rng.below(ENTRY_POINTS.len())
            } else {
                rng.below(6)
            };
            command.push(word_of("ENTRY_POINTS"));
            command.push(n.to_string().into_bytes());
            for _ in 0..n {
                command.push(if rng.chance(90) {
                    word_of(rng.pick(&ENTRY_POINTS))
                } else {
                    word(rng)
                });
            }
            command.push(word_of("SOURCE"));
            command.push(script_source(rng));
            command
        }
        1 => {
            let keys = ["t1", "t2", "t3", "out", "plain", "missing", "s1"];
            let mut command = vec![
                word_of("AI.SCRIPTEXECUTE"),
                key(rng),
                if rng.chance(90) {
                    word_of(rng.pick(&ENTRY_POINTS))
                } else {
                    word(rng)
                },
            ];
            for scope in ["KEYS", "INPUTS", "ARGS", "OUTPUTS"] {
                if rng.chance(60) {
                    let n = rng.below(4);
                    command.push(word_of(scope));
                    command.push(if rng.chance(95) {
                        n.to_string().into_bytes()
                    } else {
                        word(rng)
                    });
                    for _ in 0..n {
                        command.push(if scope == "ARGS" {
                            word(rng)
                        } else {
                            word_of(rng.pick(&keys))
                        });
                    }
                }
            }
            if rng.chance(20) {
                command.push(word_of("TIMEOUT"));
                command.push(rng.below(200).to_string().into_bytes());
            }
            if rng.chance(20) {
                // The deprecated form: SCRIPTRUN key fn INPUTS k... [$ k...] OUTPUTS k...
                command = vec![word_of("AI.SCRIPTRUN"), key(rng), word_of("bar")];
                command.push(word_of("INPUTS"));
                for _ in 0..rng.below(4) {
                    command.push(word_of(rng.pick(&["t1", "t2", "$", "out"])));
                }
                command.push(word_of("OUTPUTS"));
                for _ in 0..rng.below(3) {
                    command.push(word_of(rng.pick(&["out", "t3"])));
                }
            }
            if rng.chance(15) {
                // The same op inside a DAG.
                let mut dag = vec![
                    word_of("AI.DAGEXECUTE"),
                    word_of("LOAD"),
                    b"1".to_vec(),
                    word_of("t1"),
                    word_of("|>"),
                ];
                dag.extend(command);
                command = dag;
            }
            command
        }
        _ => {
            let name = rng.pick(&[
                "AI.SCRIPTSTORE",
                "AI.SCRIPTSET",
                "AI.SCRIPTGET",
                "AI.SCRIPTDEL",
                "AI.SCRIPTEXECUTE",
                "AI.SCRIPTRUN",
                "AI._SCRIPTSCAN",
            ]);
            let mut command = vec![word_of(name)];
            for _ in 0..rng.below(12) {
                command.push(word(rng));
            }
            command
        }
    }
}

fn send(c: &mut Connection, command: &[Vec<u8>]) -> redis::RedisResult<Value> {
    let mut cmd = redis::Cmd::new();
    for arg in command {
        cmd.arg(arg.as_slice());
    }
    c.req_packed_command(&cmd.get_packed_command())
}

fn printable(command: &[Vec<u8>]) -> String {
    command
        .iter()
        .map(|a| {
            if a.len() > 24 {
                format!("<{} bytes>", a.len())
            } else {
                String::from_utf8_lossy(a).into_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn connect(server: &Server) -> Connection {
    let c = server.client();
    c.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    c
}

#[test]
fn random_commands_never_crash_or_hang_the_server() {
    let cases = env_usize("REDISAI_LIVE_FUZZ_CASES", 3000);
    let mut rng = Rng::from_env("fuzz_live");
    // A generous inline limit: every seed model (TF's too) soon runs on the main thread,
    // so the fuzzed inputs reach the inline path as well as the workers.
    let server = Server::start_with(ServerConfig::default().module_args(&[
        "MODEL_EXECUTION_TIMEOUT",
        "2000",
        "INLINE_EXECUTION_LIMIT_US",
        "10000",
    ]));
    let mut c = connect(&server);
    run_str(
        &mut c,
        &format!("AI.CONFIG LOADBACKEND {EXAMPLE_ADD_BACKEND} {EXAMPLE_ADD_PLUGIN}"),
    )
    .expect("LOADBACKEND");
    let models = models();
    for (i, (backend, names, blob)) in models.blobs.iter().enumerate() {
        let key = format!("seed{i}");
        let mut store: Vec<&[u8]> = vec![b"AI.MODELSTORE", key.as_bytes(), backend.as_bytes()];
        store.push(b"CPU");
        store.extend(names.iter().map(|w| w.as_bytes()));
        store.extend([&b"BLOB"[..], blob]);
        run(&mut c, &store).unwrap_or_else(|err| panic!("{backend} seed model: {err}"));
    }
    if models.torch {
        let mut store: Vec<&[u8]> = vec![b"AI.SCRIPTSTORE", b"s1", b"CPU", b"ENTRY_POINTS", b"4"];
        store.extend(ENTRY_POINTS.iter().map(|e| e.as_bytes()));
        store.extend([&b"SOURCE"[..], SCRIPT.as_bytes()]);
        run(&mut c, &store).expect("seed script");
    }
    run_str(&mut c, "AI.TENSORSET t1 FLOAT 2 VALUES 1 2").expect("t1");
    run_str(&mut c, "SET plain value").expect("plain");
    // Warm the seed models up (their runs may fail: a failed run is a run too), so that
    // the fuzzed runs of them go inline.
    for i in 0..models.blobs.len() {
        for _ in 0..10 {
            for inputs in ["2 t1 t1", "1 t1"] {
                let _ = run_str(
                    &mut c,
                    &format!("AI.MODELEXECUTE seed{i} INPUTS {inputs} OUTPUTS 1 warm"),
                );
            }
        }
    }

    let (mut oks, mut errors, mut reconnects, mut script_cases) = (0, 0, 0, 0);
    let mut recent: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    for case in 0..cases {
        let command = random_command(&mut rng, &models);
        if recent.len() == 8 {
            recent.pop_front();
        }
        recent.push_back(printable(&command));
        if command
            .iter()
            .take(6)
            .any(|a| a.starts_with(b"AI.SCRIPT") || a == b"AI._SCRIPTSCAN")
        {
            script_cases += 1;
        }
        match send(&mut c, &command) {
            Ok(Value::ServerError(_)) => errors += 1,
            Ok(_) => oks += 1,
            Err(err) if err.is_io_error() || err.is_connection_dropped() || err.is_timeout() => {
                panic!(
                    "case {case}: the server stopped answering after `{}`: {err}\nPING on a new connection: {}\nthe commands before it:\n{}\n{}",
                    printable(&command),
                    answers_ping(&server.url(), Duration::from_secs(5)),
                    Vec::from(recent).join("\n"),
                    server.log()
                );
            }
            // An error text that echoes non-UTF-8 bytes is more than this client
            // parses; start over on a fresh connection.
            Err(err) if err.kind() == redis::ErrorKind::ParseError => {
                reconnects += 1;
                c = connect(&server);
                continue;
            }
            Err(_) => errors += 1,
        }
        // One reply per command: the next PING on this connection gets its PONG.
        match send(&mut c, &[b"PING".to_vec()]) {
            Ok(Value::SimpleString(ref s)) if s == "PONG" => {}
            other => panic!(
                "case {case}: `{}` left the connection out of step (next reply {other:?})",
                printable(&command)
            ),
        }
        if case % 50 == 0 {
            assert!(
                answers_ping(&server.url(), Duration::from_secs(10)),
                "case {case}: no PONG after `{}`\n{}",
                printable(&command),
                server.log()
            );
        }
    }
    assert!(answers_ping(&server.url(), Duration::from_secs(10)));
    let info: String = redis::cmd("INFO")
        .arg("modules")
        .query(&mut c)
        .unwrap_or_default();
    let queues: Vec<&str> = info
        .lines()
        .filter(|line| line.starts_with("ai_queue_"))
        .collect();
    assert!(
        !queues.iter().all(|q| q.ends_with(",inline=0")),
        "no run went inline: the fuzz missed the main-thread path ({queues:?})"
    );
    eprintln!(
        "fuzz_live: {cases} cases ({script_cases} script commands): {oks} OK, {errors} error replies, {reconnects} unparsable; server alive; queues: {}",
        queues.join(" ")
    );

    rdb_checks_and_reloads(server, &mut c);
}

/// What a fuzzer left is well-formed: `redis-check-rdb` passes on a SAVE, and a restart
/// loads every key again (stored models and scripts are loaded, and checked, again).
fn rdb_checks_and_reloads(mut server: Server, c: &mut Connection) {
    let keys: i64 = redis::cmd("DBSIZE").query(c).expect("DBSIZE");
    run_str(c, "SAVE").expect("SAVE");
    let rdb = server.dir.join("dump.rdb");
    if let Ok(output) = std::process::Command::new("redis-check-rdb")
        .arg(&rdb)
        .output()
    {
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && text.contains("RDB looks OK"),
            "{text}"
        );
    }
    let dir = server.dir.clone();
    let config = ServerConfig {
        data_dir: Some(dir.clone()),
        ..ServerConfig::default()
    };
    server.shutdown();
    // EXAMPLE models come back without their backend (they say so when run).
    let reloaded = Server::start_with(config);
    let mut r = reloaded.client();
    let reloaded_keys: i64 = redis::cmd("DBSIZE").query(&mut r).expect("DBSIZE");
    assert_eq!(reloaded_keys, keys, "every key came back from the RDB file");
    drop(reloaded);
    let _ = std::fs::remove_dir_all(dir);
}

/// The non-admin user of the generated cases: it may write only `t*` and `o*` keys.
const FUZZ_USER: &str = "ACL SETUSER fuzz on >pw resetkeys ~t* ~o* +@all -@admin -@dangerous";

/// The kinds of generated cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// An ONNX model of random operators.
    Onnx,
    /// A TF graph of random operations.
    Tf,
    /// A TorchScript script chaining random torch calls.
    Torch,
    /// A TorchScript script calling random commands through `redis.execute`.
    Execute,
}

/// What the generated cases of one kind did.
#[derive(Debug, Default)]
struct Tally {
    cases: usize,
    as_user: usize,
    accepted: usize,
    refused: usize,
    /// Cases that must be refused (external data, file operations, from_file), and how
    /// many of them were.
    hostile: usize,
    hostile_refused: usize,
    runs: usize,
    runs_ok: usize,
    /// Runs that had to fail (a refused command called from a script), and did.
    refused_calls: usize,
    /// Other file operations (TF): stores of graphs with them refused / accepted.
    other_file_ops: (usize, usize),
}

fn login(server: &Server) -> Connection {
    let mut c = connect(server);
    run_str(&mut c, "AUTH fuzz pw").expect("AUTH fuzz");
    c
}

fn words<I: IntoIterator<Item = S>, S: AsRef<[u8]>>(items: I) -> Vec<Vec<u8>> {
    items.into_iter().map(|s| s.as_ref().to_vec()).collect()
}

/// `AI.TENSORSET key dtype dims... VALUES values...`
fn tensorset(key: &str, input: &(&str, Vec<usize>, Vec<String>)) -> Vec<Vec<u8>> {
    let (dtype, dims, values) = input;
    let mut command = words(["AI.TENSORSET", key, dtype]);
    command.extend(dims.iter().map(|d| d.to_string().into_bytes()));
    command.push(b"VALUES".to_vec());
    command.extend(values.iter().map(|v| v.as_bytes().to_vec()));
    command
}

/// Sends `command`: the reply, or None when a reply could not be parsed (the caller
/// reconnects). A server that stops answering fails the test.
fn send_case(
    c: &mut Connection,
    server: &Server,
    case: usize,
    what: &str,
    command: &[Vec<u8>],
) -> Option<Value> {
    match send(c, command) {
        Ok(value) => Some(value),
        Err(err) if err.is_io_error() || err.is_connection_dropped() || err.is_timeout() => {
            panic!(
                "generated case {case} ({what}): the server stopped answering after `{}`: {err}\nPING on a new connection: {}\n{}",
                printable(command),
                answers_ping(&server.url(), Duration::from_secs(5)),
                server.log()
            );
        }
        Err(err) if err.kind() == redis::ErrorKind::ParseError => None,
        Err(_) => Some(Value::Nil),
    }
}

/// An OK reply, or a DAG's array of replies none of which is an error.
fn is_ok(reply: &Option<Value>) -> bool {
    match reply {
        Some(Value::Okay) => true,
        Some(Value::Array(items)) => !items
            .iter()
            .any(|item| matches!(item, Value::ServerError(_))),
        _ => false,
    }
}

fn error_of(reply: &Option<Value>) -> String {
    match reply {
        Some(Value::ServerError(err)) => {
            format!("{} {}", err.code(), err.details().unwrap_or_default())
        }
        other => format!("{other:?}"),
    }
}

/// One generated case: the store command, the run commands (tried when the store was
/// accepted), and the generated item.
struct Case {
    kind: Kind,
    generated: graphs::Generated,
    store: Vec<Vec<u8>>,
    runs: Vec<(Vec<Vec<u8>>, bool)>,
}

/// (Re)sets the keys the generated scripts play with (they delete and overwrite them),
/// and frees the keys the cases store to and run with.
fn reseed(c: &mut Connection) {
    let lines = [
        "SET plain value",
        "SET secret value",
        "SET t2 5",
        "RPUSH tlist a b c",
        "AI.TENSORSET t1 FLOAT 2 VALUES 1 2",
        "AI.TENSORSET o:x FLOAT 1 4 VALUES 1 2 3 4",
    ];
    run_str(
        c,
        "DEL plain secret t1 t2 tlist o:x o:in o:m0 o:s9 o:s0 o:s1 o:s2 o:onnx0 o:onnx1 o:onnx2 o:tf0 o:tf1 o:tf2",
    )
    .expect("DEL");
    if backend_built("redisai_onnxruntime") {
        let mlp = model_bytes("onnx", "mlp.onnx");
        run(
            c,
            &[b"AI.MODELSTORE", b"o:m0", b"ONNX", b"CPU", b"BLOB", &mlp],
        )
        .expect("o:m0");
    }
    if backend_built("redisai_torch") {
        let source = b"def e0(tensors: List[Tensor], keys: List[str], args: List[str]):\n    return tensors[0]\n";
        let store: [&[u8]; 7] = [
            b"AI.SCRIPTSTORE",
            b"o:s9",
            b"CPU",
            b"ENTRY_POINTS",
            b"1",
            b"e0",
            b"SOURCE",
        ];
        let mut store = store.to_vec();
        store.push(source);
        run(c, &store).expect("o:s9");
    }
    for line in lines {
        run_str(c, line).unwrap_or_else(|err| panic!("{line}: {err}"));
    }
}

/// The key words a generated script run declares or passes (`canary` never: no script
/// may reach it).
const RUN_KEYS: &[&str] = &[
    "t1", "t2", "tlist", "o:x", "o:m0", "o:s9", "o:out0", "plain", "secret", "o:new", "tnew",
    "o:new", "tnew", "o:onnx0", "o:tf0",
];

fn generate_case(rng: &mut Rng, kind: Kind) -> Case {
    let slot = rng.below(3);
    let mut runs = Vec::new();
    let (generated, store) = match kind {
        Kind::Onnx | Kind::Tf => {
            let (generated, backend) = if kind == Kind::Onnx {
                (graphs::onnx_model(rng), "ONNX")
            } else {
                (graphs::tf_graph(rng), "TF")
            };
            let key = format!("o:{}{slot}", backend.to_ascii_lowercase());
            let mut store = words(["AI.MODELSTORE", key.as_str(), backend, "CPU"]);
            if kind == Kind::Tf {
                store.extend(words(["INPUTS", "1", "x", "OUTPUTS", "1"]));
                store.push(generated.names[0].as_bytes().to_vec());
            }
            store.push(b"BLOB".to_vec());
            store.push(generated.bytes.clone());
            runs.push((tensorset("o:in", &generated.input), false));
            let mut run = words([
                "AI.MODELEXECUTE",
                key.as_str(),
                "INPUTS",
                "1",
                "o:in",
                "OUTPUTS",
                "1",
                "o:out",
            ]);
            if rng.chance(20) {
                run.extend(words(["TIMEOUT", &(1 + rng.below(500)).to_string()]));
            }
            if rng.chance(20) {
                let mut dag = words(["AI.DAGEXECUTE", "LOAD", "1", "o:in", "|>"]);
                dag.extend(run);
                dag.extend(words(["|>", "AI.TENSORGET", "o:out", "META"]));
                run = dag;
            }
            runs.push((run, false));
            (generated, store)
        }
        Kind::Torch | Kind::Execute => {
            let generated = if kind == Kind::Torch {
                graphs::torch_script(rng)
            } else {
                graphs::execute_script(rng)
            };
            let key = format!("o:s{slot}");
            let mut store = words(["AI.SCRIPTSTORE", key.as_str(), "CPU"]);
            if rng.chance(10) {
                store.extend(words(["TAG", "fuzz"]));
            }
            store.extend(words(["ENTRY_POINTS", &generated.names.len().to_string()]));
            store.extend(words(&generated.names));
            store.push(b"SOURCE".to_vec());
            store.push(generated.bytes.clone());
            runs.push((tensorset("o:in", &generated.input), false));
            for _ in 0..1 + rng.below(2) {
                let entry = rng.pick(&generated.names).clone();
                let must_fail = generated.refused_entries.contains(&entry);
                let mut run = words(["AI.SCRIPTEXECUTE", key.as_str(), entry.as_str()]);
                let n = if kind == Kind::Torch || rng.chance(60) {
                    1
                } else {
                    rng.below(4)
                };
                if n > 0 {
                    run.extend(words(["KEYS", &n.to_string()]));
                    for _ in 0..n {
                        run.push(rng.pick(RUN_KEYS).as_bytes().to_vec());
                    }
                }
                if rng.chance(85) {
                    run.extend(words(["INPUTS", "1", "o:in"]));
                }
                let n = rng.below(4);
                if n > 0 || kind == Kind::Torch {
                    run.extend(words(["ARGS", &n.max(1).to_string()]));
                    for _ in 0..n.max(1) {
                        run.push(match rng.below(10) {
                            0 => {
                                let n = rng.below(12);
                                rng.bytes(n)
                            }
                            1..=3 => graphs::pick_allowed(rng, graphs::SCRIPT_COMMANDS, |c| c)
                                .as_bytes()
                                .to_vec(),
                            4 | 5 => rng.pick(graphs::LOCATIONS).as_bytes().to_vec(),
                            _ => rng.pick(RUN_KEYS).as_bytes().to_vec(),
                        });
                    }
                }
                let outputs = if rng.chance(80) { 1 } else { rng.below(3) };
                if outputs > 0 {
                    run.extend(words(["OUTPUTS", &outputs.to_string()]));
                    for k in 0..outputs {
                        run.push(format!("o:out{k}").into_bytes());
                    }
                }
                if rng.chance(15) {
                    run.extend(words(["TIMEOUT", &(1 + rng.below(500)).to_string()]));
                }
                runs.push((run, must_fail));
            }
            (generated, store)
        }
    };
    Case {
        kind,
        generated,
        store,
        runs,
    }
}

/// Generated models and scripts, stored and run as the default user and as a user
/// without @admin and @dangerous: ONNX models and TF graphs of random real operators
/// (with external data, custom operator domains and file operations now and then), and
/// TorchScript scripts chaining random torch calls (`torch.from_file` now and then) or
/// calling random commands, AI.* and Redis's own, allowed and refused, through
/// `redis.execute`. The server answers PING after every case; a store of anything the
/// backends' sandboxes refuse must fail, and so must a run whose first `redis.execute`
/// names a command scripts may not call; no script reaches a key it did not declare.
///
/// Cases: `REDISAI_LIVE_FUZZ_CASES` (3000 by default); seed: `REDISAI_SEED`;
/// `REDISAI_LIVE_FUZZ_DUMP=<dir>` writes each case there (`case-N.blob`: the model or
/// script, `case-N.txt`: its commands); `REDISAI_LIVE_FUZZ_AVOID=<names>` leaves operators,
/// commands or tags out (see `graphs::avoided`) to look past a known crash.
#[test]
fn generated_graphs_and_scripts_never_crash_the_server() {
    let cases = env_usize("REDISAI_LIVE_FUZZ_CASES", 3000).max(1);
    let mut rng = Rng::from_env("fuzz_live generated");
    let server = Server::start_with(
        ServerConfig::default().module_args(&["MODEL_EXECUTION_TIMEOUT", "2000"]),
    );
    let mut admin = connect(&server);
    // A generated model or script may allocate without bound (a tensor of 2^40 elements
    // got the server OOM-killed, and the machine with it): the server's address space is
    // limited, so such an allocation fails instead (`REDISAI_LIVE_FUZZ_AS_LIMIT_MB`).
    let pid = server_pid(&mut admin);
    let limit_mb = env_usize("REDISAI_LIVE_FUZZ_AS_LIMIT_MB", 8192);
    let limited = std::process::Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--as={}", limit_mb << 20))
        .status()
        .is_ok_and(|status| status.success());
    run_str(&mut admin, FUZZ_USER).expect("ACL SETUSER");
    let mut user = login(&server);
    let mut kinds = Vec::new();
    if backend_built("redisai_onnxruntime") {
        kinds.push(Kind::Onnx);
    }
    if backend_built("redisai_tensorflow") {
        kinds.push(Kind::Tf);
    }
    if backend_built("redisai_torch") {
        kinds.extend([Kind::Torch, Kind::Execute]);
    }
    assert!(!kinds.is_empty(), "no backend is built: nothing to fuzz");
    run_str(&mut admin, "SET canary untouched").expect("canary");
    reseed(&mut admin);
    let config_dir: Value = redis::cmd("CONFIG")
        .arg("GET")
        .arg("dir")
        .query(&mut admin)
        .expect("CONFIG GET dir");
    let written = server
        .dir
        .parent()
        .expect("the data directory's parent")
        .join(graphs::WRITTEN.trim_start_matches("../"));
    let _ = std::fs::remove_file(&written);

    let mut tallies: std::collections::BTreeMap<Kind, Tally> =
        kinds.iter().map(|&k| (k, Tally::default())).collect();
    let mut violations = Vec::new();
    let mut refusals: std::collections::BTreeMap<String, usize> = Default::default();
    let mut run_errors: std::collections::BTreeMap<String, usize> = Default::default();
    // `REDISAI_LIVE_FUZZ_DUMP=<dir>`: write every case there (case-N.blob, case-N.txt).
    let dump = std::env::var_os("REDISAI_LIVE_FUZZ_DUMP");
    let started = std::time::Instant::now();
    for case in 0..cases {
        // One draw of the main generator per case: a case is the same whatever the server
        // replied to the ones before it.
        let mut case_rng = Rng::new(rng.next_u64());
        if case % 50 == 49 {
            reseed(&mut admin);
        }
        let kind = *case_rng.pick(&kinds);
        let as_user = case_rng.chance(30);
        let Case {
            kind,
            generated,
            store,
            runs,
        } = generate_case(&mut case_rng, kind);
        let what = format!("{kind:?}, {}", generated.ops.join(" "));
        let tally = tallies.get_mut(&kind).expect("a tally per kind");
        tally.cases += 1;
        tally.as_user += as_user as usize;
        if let Some(dir) = &dump {
            // Each case's model or script and its commands, to reproduce a failure.
            let path = std::path::Path::new(dir).join(format!("case-{case}"));
            let _ = std::fs::write(path.with_extension("blob"), &generated.bytes);
            let commands: Vec<String> = std::iter::once(&store)
                .chain(runs.iter().map(|(command, _)| command))
                .map(|command| printable(command))
                .collect();
            let _ = std::fs::write(
                path.with_extension("txt"),
                format!("{what}\nas_user: {as_user}\n{}\n", commands.join("\n")),
            );
        }
        let c = if as_user { &mut user } else { &mut admin };
        let reply = send_case(c, &server, case, &what, &store);
        let accepted = is_ok(&reply);
        if accepted {
            tally.accepted += 1;
        } else {
            tally.refused += 1;
            let text = error_of(&reply);
            let short: String = text
                .chars()
                .take(env_usize("REDISAI_LIVE_FUZZ_ERROR_CHARS", 70))
                .collect();
            *refusals.entry(format!("{kind:?}: {short}")).or_default() += 1;
        }
        if let Some(why) = &generated.must_refuse {
            tally.hostile += 1;
            if accepted {
                violations.push(format!(
                    "case {case} ({what}): a store that must be refused ({why}) was accepted{}",
                    if kind == Kind::Torch || kind == Kind::Execute {
                        format!(":\n{}", String::from_utf8_lossy(&generated.bytes))
                    } else {
                        String::new()
                    }
                ));
            } else {
                tally.hostile_refused += 1;
            }
        }
        if !generated.other_file_ops.is_empty() {
            if accepted {
                tally.other_file_ops.1 += 1;
                // The TF sandbox refuses every operation that reaches files (Save, SaveV2,
                // RestoreV2, ImmutableConst, WholeFileReaderV2, PrintV2 to a file) too.
                // (TorchScript drops a from_file call whose result is unused: counted only.)
                if kind == Kind::Tf {
                    violations.push(format!(
                        "case {case} ({what}): a TF graph with {} was accepted",
                        generated.other_file_ops.join(", ")
                    ));
                }
            } else {
                tally.other_file_ops.0 += 1;
            }
        }
        if accepted {
            for (i, (command, must_fail)) in runs.iter().enumerate() {
                let reply = send_case(c, &server, case, &what, command);
                if i == 0 {
                    continue; // The input tensor.
                }
                tally.runs += 1;
                let ok = is_ok(&reply);
                tally.runs_ok += ok as usize;
                if !ok {
                    let short: String = error_of(&reply)
                        .chars()
                        .take(env_usize("REDISAI_LIVE_FUZZ_ERROR_CHARS", 70))
                        .collect();
                    *run_errors.entry(format!("{kind:?}: {short}")).or_default() += 1;
                }
                if *must_fail {
                    if ok {
                        violations.push(format!(
                            "case {case} ({what}): `{}` called a command scripts may not call, and succeeded:\n{}",
                            printable(command),
                            String::from_utf8_lossy(&generated.bytes)
                        ));
                    } else {
                        tally.refused_calls += 1;
                    }
                }
            }
        }
        if reply.is_none() {
            // An error text this client cannot parse: start over on fresh connections.
            admin = connect(&server);
            user = login(&server);
        }
        for (c, is_user) in [(&mut admin, false), (&mut user, true)] {
            match send(c, &[b"PING".to_vec()]) {
                Ok(Value::SimpleString(ref s)) if s == "PONG" => {}
                // Out of step after an unparsable reply: a fresh connection.
                _ => {
                    *c = if is_user {
                        login(&server)
                    } else {
                        connect(&server)
                    }
                }
            }
        }
        assert!(
            answers_ping(&server.url(), Duration::from_secs(10)),
            "generated case {case} ({what}): no PONG after `{}`\n{}",
            printable(&store),
            server.log()
        );
    }
    let elapsed = started.elapsed();

    // Nothing reached what no script, model or user may reach.
    assert_eq!(
        run_str(&mut admin, "GET canary").expect("GET canary"),
        Value::BulkString(b"untouched".to_vec()),
        "a script reached a key it did not declare"
    );
    let dir_now: Value = redis::cmd("CONFIG")
        .arg("GET")
        .arg("dir")
        .query(&mut admin)
        .expect("CONFIG GET dir");
    assert_eq!(dir_now, config_dir, "the server's dir changed");
    if written.exists() {
        violations.push(format!(
            "a stored TF graph wrote {} (WriteFile ran)",
            written.display()
        ));
        let _ = std::fs::remove_file(&written);
    }
    let printed = server.dir.join(graphs::PRINTED).exists();

    let peak = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmPeak:").map(|v| v.trim().to_owned()))
        })
        .unwrap_or_default();
    eprintln!(
        "fuzz_live generated: {cases} cases in {:.1}s; server alive (VmPeak {peak}, address space limited to {limit_mb} MiB: {limited}); PrintV2 wrote a file: {printed}",
        elapsed.as_secs_f64()
    );
    for (kind, t) in &tallies {
        eprintln!(
            "  {kind:?}: {} cases ({} as the non-admin user): stores {} accepted, {} refused; must-refuse {}/{} refused; runs {} ({} OK); refused script calls {}; other file ops refused/accepted {:?}",
            t.cases, t.as_user, t.accepted, t.refused, t.hostile_refused, t.hostile, t.runs, t.runs_ok, t.refused_calls, t.other_file_ops
        );
    }
    for (what, texts) in [("store", refusals), ("run", run_errors)] {
        let mut common: Vec<_> = texts.into_iter().collect();
        common.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
        eprintln!("  the most common {what} errors:");
        for (text, n) in common
            .iter()
            .take(env_usize("REDISAI_LIVE_FUZZ_TOP_ERRORS", 8))
        {
            eprintln!("  {n:5}  {text}");
        }
    }
    assert!(
        violations.is_empty(),
        "{} sandbox violations (REDISAI_SEED above):\n{}",
        violations.len(),
        violations
            .iter()
            .take(env_usize("REDISAI_LIVE_FUZZ_VIOLATIONS", 10))
            .cloned()
            .collect::<Vec<_>>()
            .join("\n\n")
    );
    // No fuzzer that silently does nothing: with enough cases, every kind stored and ran
    // something, and had stores refused.
    for (kind, t) in &tallies {
        assert!(t.cases > 0, "{kind:?}: no case");
        if t.cases >= 40 {
            // Scripts calling commands all compile; their refusals are of the calls.
            let refusals = match kind {
                Kind::Execute => t.refused_calls,
                _ => t.refused.min(t.hostile_refused),
            };
            assert!(
                t.accepted > 0 && t.runs_ok > 0 && refusals > 0,
                "{kind:?}: the generated cases exercised too little: {t:?}"
            );
        }
    }
    rdb_checks_and_reloads(server, &mut admin);
}

/// Regression (found by `scripts/stress --fuzz`): an error text quoting input with a
/// character whose low byte is 0 (U+0100, U+0600, ...) made the `redis-module` crate
/// panic outside any catch, which aborted Redis. Error texts keep the bytes they quote
/// (as RedisAI's did) except line breaks and NUL, which become spaces.
#[test]
fn error_texts_quoting_any_bytes_do_not_crash() {
    let server = Server::start();
    let mut c = connect(&server);
    let odd: [&[u8]; 4] = [
        b"\xc4\x80",
        b"\xd8\x80",
        b"\xf8\xd2c\xd8\x80\x88p{",
        b"\x00\r\n\xff",
    ];
    for bytes in odd {
        let commands: Vec<Vec<&[u8]>> = vec![
            vec![b"AI.DAGEXECUTE_RO", bytes, b"2", b"t1"],
            vec![b"AI.DAGEXECUTE", b"ROUTING", b"r", b"|>", bytes],
            vec![
                b"AI.DAGEXECUTE",
                b"ROUTING",
                b"r",
                b"|>",
                b"AI.TENSORGET",
                bytes,
                b"VALUES",
            ],
            vec![b"AI.TENSORSET", b"k", bytes, b"2"],
            vec![b"AI.TENSORSET", b"k", b"FLOAT", b"1", b"VALUES", bytes],
            vec![b"AI.MODELSTORE", b"m", bytes, b"CPU", b"BLOB", b"x"],
            vec![b"AI.MODELSTORE", b"m", b"ONNX", bytes, b"BLOB", b"x"],
            vec![
                b"AI.MODELEXECUTE",
                bytes,
                b"INPUTS",
                b"1",
                b"a",
                b"OUTPUTS",
                b"1",
                b"b",
            ],
            vec![b"AI.INFO", bytes],
        ];
        for command in commands {
            let owned: Vec<Vec<u8>> = command.iter().map(|a| a.to_vec()).collect();
            match send(&mut c, &owned) {
                Ok(Value::ServerError(err)) => {
                    let text = format!("{} {}", err.code(), err.details().unwrap_or_default());
                    assert!(!text.contains(['\r', '\n', '\0']), "{text:?}");
                }
                Ok(other) => panic!("`{}`: expected an error, got {other:?}", printable(&owned)),
                Err(err) => panic!("`{}`: {err}\n{}", printable(&owned), server.log()),
            }
        }
    }
    assert!(answers_ping(&server.url(), Duration::from_secs(5)));
}
