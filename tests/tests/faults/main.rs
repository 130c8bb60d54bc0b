//! Concurrency and faults: 200 clients executing, storing and deleting the same models;
//! clients that disconnect while blocked; a backend that fails every call, panics in
//! Rust, or has its C++ runtime throw (`plugins/faults`). The server stays up and every
//! live client gets a reply.

mod scripts;

use std::io::Write;
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use redisai_tests::hardening::{
    answers_ping, backend_built, env_usize, info_field, model_bytes, wait_until, Rng,
};
use redisai_tests::redis::{self, Connection, Value};
use redisai_tests::{error_text, run, run_str, Server, ServerConfig};

/// The faults plugin, built beside this test binary (a dev-dependency of the tests).
fn faults_plugin() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary");
    let dir = exe.parent().expect("deps dir");
    let path = dir.join("libredisai_faults.so");
    assert!(path.exists(), "{} is missing", path.display());
    path
}

fn server() -> Server {
    let server = Server::start_with(ServerConfig::default().module_args(&[
        "THREADS_PER_QUEUE",
        "2",
        "MODEL_EXECUTION_TIMEOUT",
        "20000",
    ]));
    let mut c = server.client();
    run_str(
        &mut c,
        &format!("AI.CONFIG LOADBACKEND FAULTS {}", faults_plugin().display()),
    )
    .expect("LOADBACKEND FAULTS");
    for fault in ["echo", "error", "panic", "cpp", "slow:200"] {
        let key = fault.replace(':', "");
        run_str(
            &mut c,
            &format!("AI.MODELSTORE {key} FAULTS CPU BLOB {fault}"),
        )
        .unwrap_or_else(|err| panic!("{fault}: {err}"));
    }
    run_str(&mut c, "AI.TENSORSET x FLOAT 2 VALUES 1 2").expect("x");
    server
}

fn connect(server: &Server) -> Connection {
    let c = server.client();
    c.set_read_timeout(Some(Duration::from_secs(120)))
        .expect("timeout");
    c
}

/// Runs `work` on `clients` threads at once (they start together, after a barrier), each
/// with its id and its own connection; their results, in id order. A thread that panics
/// (a client that got no reply) fails the test.
fn on_clients<T: Send + 'static>(
    server: &Server,
    clients: usize,
    work: impl Fn(usize, &mut Connection) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let barrier = Arc::new(Barrier::new(clients));
    let work = Arc::new(work);
    let workers: Vec<_> = (0..clients)
        .map(|id| {
            let url = server.url();
            let (barrier, work) = (Arc::clone(&barrier), Arc::clone(&work));
            thread::spawn(move || {
                let client = redis::Client::open(url).expect("client");
                let mut c = client
                    .get_connection_with_timeout(Duration::from_secs(30))
                    .expect("connect");
                c.set_read_timeout(Some(Duration::from_secs(120)))
                    .expect("timeout");
                barrier.wait();
                work(id, &mut c)
            })
        })
        .collect();
    workers
        .into_iter()
        .map(|worker| worker.join().expect("a client got no reply"))
        .collect()
}

/// Whether `reply` is one (an error reply counts); a lost connection or a timeout fails
/// the test, naming the client and what it sent.
fn replied(reply: &redis::RedisResult<Value>, id: usize, line: &dyn std::fmt::Debug) -> bool {
    match reply {
        Err(err) if err.is_io_error() || err.is_timeout() || err.is_connection_dropped() => {
            panic!("client {id}: no reply to `{line:?}`: {err}")
        }
        _ => true,
    }
}

/// Waits until INFO's `clients` section says `field` is `value` (at most `within`).
fn wait_for_clients(c: &mut Connection, field: &str, value: i64, within: Duration) {
    assert!(
        wait_until(within, || info_field(c, "clients", field) == Some(value)),
        "{field} did not reach {value} within {within:?}"
    );
}

/// Sends `command` (RESP, possibly cut short) and, on some, a PING, then hangs up.
fn send_and_hang_up(server: &Server, command: &str, ping: bool) {
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    let _ = stream.write_all(command.as_bytes());
    if ping {
        let _ = stream.write_all(b"*1\r\n$4\r\nPING\r\n");
    }
}

#[test]
fn a_failing_panicking_or_throwing_backend_is_an_error_reply() {
    let server = server();
    let mut c = server.client();
    for (model, expected) in [
        ("error", "faults: this backend fails every run"),
        ("panic", "faults: panic inside run"),
        ("cpp", "faults: the C++ runtime threw std::runtime_error"),
    ] {
        let err = error_text(run_str(
            &mut c,
            &format!("AI.MODELEXECUTE {model} INPUTS 1 x OUTPUTS 1 y"),
        ));
        assert!(err.contains(expected), "{model}: {err}");
        // Inside a DAG the failure is that op's reply; the next op is skipped.
        let reply = redisai_tests::run_nested(
            &mut c,
            &format!("AI.DAGEXECUTE LOAD 1 x |> AI.MODELEXECUTE {model} INPUTS 1 x OUTPUTS 1 y |> AI.TENSORGET y VALUES"),
        )
        .expect("DAG reply");
        let text = format!("{reply:?}");
        assert!(text.contains(expected), "{model} in a DAG: {text}");
        // The run counts as an error in the model's statistics.
        let Value::Array(info) = run_str(&mut c, &format!("AI.INFO {model}")).expect("info") else {
            panic!("AI.INFO")
        };
        let errors = info
            .iter()
            .position(|v| {
                *v == Value::BulkString(b"errors".to_vec())
                    || *v == Value::SimpleString("errors".into())
            })
            .and_then(|i| info.get(i + 1).cloned());
        assert_eq!(errors, Some(Value::Int(2)), "{model}: {info:?}");
    }
    for (fault, expected) in [
        ("panic-load", "faults: panic while loading a model"),
        ("error-load", "faults: refusing to load this model"),
    ] {
        let err = error_text(run_str(
            &mut c,
            &format!("AI.MODELSTORE bad FAULTS CPU BLOB {fault}"),
        ));
        assert!(err.contains(expected), "{fault}: {err}");
    }
    // A real runtime's C++ failure path: damaged TFLite and ONNX models.
    for (dir, name, backend, installed) in [
        (
            "tflite",
            "mlp.tflite",
            "TFLITE",
            backend_built("redisai_tflite"),
        ),
        (
            "onnx",
            "mlp.onnx",
            "ONNX",
            backend_built("redisai_onnxruntime"),
        ),
    ] {
        if !installed {
            continue;
        }
        let blob = model_bytes(dir, name);
        let mut damaged = blob.clone();
        for i in (8..damaged.len()).step_by(7) {
            damaged[i] ^= 0x5a;
        }
        for bad in [&blob[..blob.len() / 3], &damaged[..]] {
            let reply = run(
                &mut c,
                &[
                    b"AI.MODELSTORE",
                    b"damaged",
                    backend.as_bytes(),
                    b"CPU",
                    b"BLOB",
                    bad,
                ],
            );
            if let Err(err) = reply {
                assert!(err.code().is_some(), "{backend}: {err}");
            }
        }
    }
    assert!(answers_ping(&server.url(), Duration::from_secs(5)));
    // And the backend still serves good models.
    run_str(&mut c, "AI.MODELEXECUTE echo INPUTS 1 x OUTPUTS 1 y").expect("echo");
}

#[test]
fn two_hundred_clients_execute_store_and_delete_the_same_models() {
    let clients = env_usize("REDISAI_CLIENTS", 200);
    let rounds = env_usize("REDISAI_CLIENT_ROUNDS", 10);
    let server = server();
    let onnx = backend_built("redisai_onnxruntime").then(|| model_bytes("onnx", "add.onnx"));
    if let Some(blob) = &onnx {
        let mut c = server.client();
        run(
            &mut c,
            &[b"AI.MODELSTORE", b"add", b"ONNX", b"CPU", b"BLOB", blob],
        )
        .expect("add");
    }
    let seed = Rng::from_env("faults").next_u64();
    let model = onnx.clone();
    let replies = on_clients(&server, clients, move |id, c| {
        let mut rng = Rng::new(seed ^ id as u64);
        let mut replies = 0;
        for round in 0..rounds {
            let line = match rng.below(9) {
                0 => "AI.MODELSTORE shared FAULTS CPU BLOB echo".to_owned(),
                1 => "AI.MODELDEL shared".to_owned(),
                2 => format!("AI.MODELEXECUTE shared INPUTS 1 x OUTPUTS 1 out:{id}"),
                3 => format!("AI.MODELEXECUTE slow200 INPUTS 1 x OUTPUTS 1 out:{id} TIMEOUT {}", 50 + rng.below(300)),
                4 => format!("AI.MODELEXECUTE {} INPUTS 1 x OUTPUTS 1 out:{id}", rng.pick(&["error", "panic", "cpp"])),
                5 => format!("AI.DAGEXECUTE LOAD 1 x PERSIST 1 dag:{id} |> AI.MODELEXECUTE shared INPUTS 1 x OUTPUTS 1 dag:{id}"),
                6 => format!("AI.TENSORSET in:{id} FLOAT 2 VALUES {round} {id}"),
                7 if model.is_some() => format!("AI.MODELEXECUTE add INPUTS 2 x x OUTPUTS 1 sum:{id}"),
                _ => "DEL shared".to_owned(),
            };
            replies += usize::from(replied(&run_str(c, &line), id, &line));
            // Replace the ONNX model under running clients now and then.
            if let (Some(blob), true) = (&model, rng.chance(5)) {
                let _ = run(
                    c,
                    &[b"AI.MODELSTORE", b"add", b"ONNX", b"CPU", b"BLOB", blob],
                );
            }
        }
        replies
    });
    let total: usize = replies.iter().sum();
    assert_eq!(total, clients * rounds, "every command got a reply");
    eprintln!("faults: {clients} clients x {rounds} commands, all replied");
    let mut c = server.client();
    wait_for_clients(&mut c, "blocked_clients", 0, Duration::from_secs(30));
    assert!(answers_ping(&server.url(), Duration::from_secs(5)));
}

fn resp(args: &[&str]) -> String {
    let mut out = format!("*{}\r\n", args.len());
    for arg in args {
        out.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    out
}

#[test]
fn clients_that_disconnect_while_blocked() {
    let server = server();
    let clients = env_usize("REDISAI_GONE_CLIENTS", 40);
    // Blocked runs whose clients go away: raw sockets closed right after sending.
    for i in 0..clients {
        let output = format!("gone{i}");
        let args: [&str; 8] = [
            "AI.MODELEXECUTE",
            "slow200",
            "INPUTS",
            "1",
            "x",
            "OUTPUTS",
            "1",
            &output,
        ];
        // A partial command on some, a full one on the others.
        let bytes = if i % 4 == 0 {
            resp(&args[..6])
        } else {
            resp(&args)
        };
        send_and_hang_up(&server, &bytes, i % 2 == 0);
    }
    // A live client queued behind them still gets its reply, and nothing stays blocked.
    let mut c = connect(&server);
    run_str(&mut c, "AI.MODELEXECUTE echo INPUTS 1 x OUTPUTS 1 live").expect("live client");
    run_str(&mut c, "AI.MODELEXECUTE slow200 INPUTS 1 x OUTPUTS 1 live2")
        .expect("live slow client");
    wait_for_clients(&mut c, "blocked_clients", 0, Duration::from_secs(60));
    wait_for_clients(&mut c, "connected_clients", 1, Duration::from_secs(30));
    assert!(answers_ping(&server.url(), Duration::from_secs(5)));
}
