//! The second test's cases: generated models and scripts (`redisai_tests::graphs`), the
//! user they run as, and what each kind of case did.

use super::*;

/// The non-admin user of the generated cases: it may write only `t*` and `o*` keys.
pub(super) const FUZZ_USER: &str =
    "ACL SETUSER fuzz on >pw resetkeys ~t* ~o* +@all -@admin -@dangerous";

/// The kinds of generated cases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Kind {
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
pub(super) struct Tally {
    pub(super) cases: usize,
    pub(super) as_user: usize,
    pub(super) accepted: usize,
    pub(super) refused: usize,
    /// Cases that must be refused (external data, file operations, from_file), and how
    /// many of them were.
    pub(super) hostile: usize,
    pub(super) hostile_refused: usize,
    pub(super) runs: usize,
    pub(super) runs_ok: usize,
    /// Runs that had to fail (a refused command called from a script), and did.
    pub(super) refused_calls: usize,
    /// Other file operations (TF): stores of graphs with them refused / accepted.
    pub(super) other_file_ops: (usize, usize),
}

pub(super) fn login(server: &Server) -> Connection {
    let mut c = connect(server);
    run_str(&mut c, "AUTH fuzz pw").expect("AUTH fuzz");
    c
}

pub(super) fn words<I: IntoIterator<Item = S>, S: AsRef<[u8]>>(items: I) -> Vec<Vec<u8>> {
    items.into_iter().map(|s| s.as_ref().to_vec()).collect()
}

/// `AI.TENSORSET key dtype dims... VALUES values...`
pub(super) fn tensorset(key: &str, input: &(&str, Vec<usize>, Vec<String>)) -> Vec<Vec<u8>> {
    let (dtype, dims, values) = input;
    let mut command = words(["AI.TENSORSET", key, dtype]);
    command.extend(dims.iter().map(|d| d.to_string().into_bytes()));
    command.push(b"VALUES".to_vec());
    command.extend(values.iter().map(|v| v.as_bytes().to_vec()));
    command
}

/// Sends `command`: the reply, or None when a reply could not be parsed (the caller
/// reconnects). A server that stops answering fails the test.
pub(super) fn send_case(
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
pub(super) fn is_ok(reply: &Option<Value>) -> bool {
    match reply {
        Some(Value::Okay) => true,
        Some(Value::Array(items)) => !items
            .iter()
            .any(|item| matches!(item, Value::ServerError(_))),
        _ => false,
    }
}

pub(super) fn error_of(reply: &Option<Value>) -> String {
    match reply {
        Some(Value::ServerError(err)) => {
            format!("{} {}", err.code(), err.details().unwrap_or_default())
        }
        other => format!("{other:?}"),
    }
}

/// One generated case: the store command, the run commands (tried when the store was
/// accepted), and the generated item.
pub(super) struct Case {
    pub(super) kind: Kind,
    pub(super) generated: graphs::Generated,
    pub(super) store: Vec<Vec<u8>>,
    pub(super) runs: Vec<(Vec<Vec<u8>>, bool)>,
}

/// (Re)sets the keys the generated scripts play with (they delete and overwrite them),
/// and frees the keys the cases store to and run with.
pub(super) fn reseed(c: &mut Connection) {
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
pub(super) const RUN_KEYS: &[&str] = &[
    "t1", "t2", "tlist", "o:x", "o:m0", "o:s9", "o:out0", "plain", "secret", "o:new", "tnew",
    "o:new", "tnew", "o:onnx0", "o:tf0",
];

pub(super) fn generate_case(rng: &mut Rng, kind: Kind) -> Case {
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
