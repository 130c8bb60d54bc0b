//! Runs of tiny models on Redis's main thread (INLINE_EXECUTION_LIMIT_US): every backend
//! gives the same outputs inline as on a worker, the outputs replicate, the setting
//! turns it off, and a model whose run turns slow goes back to a worker while Redis keeps
//! answering. INFO's `inline=` counter of the queue tells where runs went.

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::{call, call_str, client, get, info_modules, model_bytes, pong, set_blob, set_f32};
use redisai_tests::redis::{Connection, Value};
use redisai_tests::{digest, error_text, Server, ServerConfig};

/// Enough runs for a model to warm up (8 fast runs on a worker) and then run inline.
const RUNS: usize = 30;

/// A limit every small test model meets even on a busy machine, so that the tests do
/// not depend on how fast this machine is.
const GENEROUS_LIMIT: &str = "10000";

fn server(limit_us: &str) -> Server {
    Server::start_with(
        ServerConfig::default().module_args(&["INLINE_EXECUTION_LIMIT_US", limit_us]),
    )
}

/// The `inline=` count of the CPU queue (0 before the queue exists).
fn inline_runs(c: &mut Connection) -> u64 {
    info_modules(c)
        .lines()
        .find_map(|line| line.strip_prefix("ai_queue_cpu_0:"))
        .and_then(|fields| {
            fields
                .split(',')
                .find_map(|field| field.strip_prefix("inline="))
        })
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

fn store(c: &mut Connection, key: &str, backend: &str, dir: &str, file: &str, io: &[&str]) {
    let blob = model_bytes(dir, file);
    let mut args: Vec<&[u8]> = vec![b"AI.MODELSTORE", key.as_bytes(), backend.as_bytes(), b"CPU"];
    args.extend(io.iter().map(|word| word.as_bytes()));
    args.extend([b"BLOB".as_slice(), &blob]);
    assert_eq!(call(c, &args).expect("MODELSTORE"), Value::Okay, "{file}");
}

fn execute(c: &mut Connection, line: &str) {
    assert_eq!(call_str(c, line).expect(line), Value::Okay, "{line}");
}

/// Runs `model` RUNS times on x, writing y<i>, and checks every output equals the first
/// run's (which ran on a worker, as models are never inline on their first runs).
fn runs_agree(c: &mut Connection, model: &str) {
    runs_agree_on(c, model, "x");
}

fn runs_agree_on(c: &mut Connection, model: &str, input: &str) {
    let run = |c: &mut Connection, output: &str| {
        execute(
            c,
            &format!("AI.MODELEXECUTE {model} INPUTS 1 {input} OUTPUTS 1 {output}"),
        )
    };
    run(c, "y_first");
    let first = get(c, "y_first");
    for i in 0..RUNS {
        run(c, &format!("y{i}"));
        assert_eq!(get(c, &format!("y{i}")), first, "{model}: run {i}");
    }
}

#[test]
fn every_backend_gives_the_same_outputs_inline() {
    let server = server(GENEROUS_LIMIT);
    let mut c = client(&server);
    set_f32(&mut c, "x", &[1, 4], &[1.0, 2.0, -3.0, 0.5]);
    // (key, backend, folder, file, INPUTS/OUTPUTS, whether its runs may go inline):
    // libtorch cannot stop a run at its deadline, so the TORCH plugin does not declare
    // RAI_PLUGIN_FLAG_INTERRUPTIBLE_RUN and its runs never hold the main thread.
    type Case<'a> = (&'a str, &'a str, &'a str, &'a str, &'a [&'a str], bool);
    let models: [Case; 4] = [
        ("onnx", "ONNX", "onnx", "mlp.onnx", &[], true),
        ("tflite", "TFLITE", "tflite", "mlp.tflite", &[], true),
        ("torch", "TORCH", "torch", "mlp.pt", &[], false),
        (
            "tf",
            "TF",
            "tf",
            "mlp.pb",
            &["INPUTS", "1", "x", "OUTPUTS", "1", "y"],
            true,
        ),
    ];
    for (key, backend, dir, file, io, may_go_inline) in models {
        store(&mut c, key, backend, dir, file, io);
        let before = inline_runs(&mut c);
        runs_agree(&mut c, key);
        let inline = inline_runs(&mut c) - before;
        if may_go_inline {
            assert!(
                inline > 0,
                "{backend}: no run went inline in {} runs",
                RUNS + 1
            );
        } else {
            assert_eq!(
                inline, 0,
                "{backend}: a run that cannot be stopped went inline"
            );
        }
        assert_eq!(
            ai_info(&mut c, key, "calls"),
            RUNS as i64 + 1,
            "{backend}: AI.INFO counts every run, inline or not"
        );
    }
    pong(&mut c);
}

#[test]
fn dag_model_ops_run_inline_and_hand_the_rest_to_a_worker() {
    let (server, mut c) = server_with_faults();
    set_f32(&mut c, "x", &[1, 4], &[1.0, 2.0, -3.0, 0.5]);
    store(&mut c, "m", "ONNX", "onnx", "mlp.onnx", &[]);
    runs_agree(&mut c, "m");
    let expected = get(&mut c, "y_first");

    // All in one go on the main thread: the DAG's outputs are the model's.
    let before = inline_runs(&mut c);
    let dag = "AI.DAGEXECUTE LOAD 1 x PERSIST 1 dag_y |> \
               AI.MODELEXECUTE m INPUTS 1 x OUTPUTS 1 t |> \
               AI.MODELEXECUTE m INPUTS 1 x OUTPUTS 1 dag_y |> AI.TENSORGET t META";
    let reply = format!("{:?}", call_str(&mut c, dag).expect("DAG"));
    assert!(reply.contains("FLOAT"), "{reply}");
    assert_eq!(get(&mut c, "dag_y"), expected);
    assert_eq!(inline_runs(&mut c) - before, 2, "both model ops ran inline");

    // A DAG whose second op must go to a worker (a 1 s run that the inline cap stops
    // and hands over): the first op ran inline, the client waits for the rest, and the
    // server answers others meanwhile.
    execute(&mut c, "AI.MODELSTORE sleepy FAULTS CPU BLOB sleep-input");
    set_i64(&mut c, "zero", 0);
    runs_agree_on(&mut c, "sleepy", "zero");
    set_i64(&mut c, "second", 1000);
    let before = inline_runs(&mut c);
    let finished = Arc::new(AtomicBool::new(false));
    let runner = {
        let mut a = client(&server);
        let finished = Arc::clone(&finished);
        thread::spawn(move || {
            let reply = call_str(
                &mut a,
                "AI.DAGEXECUTE LOAD 2 x second PERSIST 2 dag_y2 slept |> \
                 AI.MODELEXECUTE m INPUTS 1 x OUTPUTS 1 dag_y2 |> \
                 AI.MODELEXECUTE sleepy INPUTS 1 second OUTPUTS 1 slept",
            );
            finished.store(true, Ordering::SeqCst);
            reply
        })
    };
    thread::sleep(Duration::from_millis(100));
    pong(&mut c);
    assert!(
        !finished.load(Ordering::SeqCst),
        "the DAG held the main thread"
    );
    let reply = runner.join().expect("runner").expect("DAG");
    assert_eq!(reply, Value::Array(vec![Value::Okay, Value::Okay]));
    assert_eq!(get(&mut c, "dag_y2"), expected);
    assert_eq!(get(&mut c, "slept"), get(&mut c, "second"));
    assert_eq!(
        inline_runs(&mut c) - before,
        1,
        "only the first op ran inline"
    );
}

#[test]
fn a_limit_of_zero_keeps_every_run_on_the_workers_and_config_changes_it() {
    let server = server("0");
    let mut c = client(&server);
    assert_eq!(
        call_str(&mut c, "AI.CONFIG GET INLINE_EXECUTION_LIMIT_US").expect("GET"),
        Value::Int(0)
    );
    assert!(info_modules(&mut c).contains("ai_inline_execution_limit_us:0"));
    set_f32(&mut c, "x", &[1, 4], &[1.0, 2.0, -3.0, 0.5]);
    store(&mut c, "m", "ONNX", "onnx", "mlp.onnx", &[]);
    runs_agree(&mut c, "m");
    assert_eq!(inline_runs(&mut c), 0);

    execute(
        &mut c,
        &format!("AI.CONFIG INLINE_EXECUTION_LIMIT_US {GENEROUS_LIMIT}"),
    );
    assert_eq!(
        call_str(&mut c, "AI.CONFIG GET INLINE_EXECUTION_LIMIT_US").expect("GET"),
        Value::Int(10_000)
    );
    runs_agree(&mut c, "m");
    assert!(inline_runs(&mut c) > 0);

    for bad in ["-1", "10001", "fast"] {
        let err = error_text(call_str(
            &mut c,
            &format!("AI.CONFIG INLINE_EXECUTION_LIMIT_US {bad}"),
        ));
        assert!(
            err.contains("INLINE_EXECUTION_LIMIT_US must be an integer from 0 to 10000"),
            "{bad}: {err}"
        );
    }
    // It decides how long Redis may answer nobody: an admin setting.
    call_str(
        &mut c,
        "ACL SETUSER app on >pw ~* +@all -@admin -@dangerous",
    )
    .expect("ACL");
    let mut app = client(&server);
    call_str(&mut app, "AUTH app pw").expect("AUTH");
    let err = error_text(call_str(&mut app, "AI.CONFIG INLINE_EXECUTION_LIMIT_US 0"));
    assert!(err.contains("NOPERM"), "{err}");
    assert!(err.contains("INLINE_EXECUTION_LIMIT_US"), "{err}");
}

#[test]
fn load_time_limit_out_of_range_refuses_to_load() {
    let started = Server::try_start(
        ServerConfig::default().module_args(&["INLINE_EXECUTION_LIMIT_US", "20000"]),
    );
    assert!(
        started.is_err(),
        "the module loaded with a limit over 10000"
    );
}

#[test]
fn inline_outputs_replicate_and_transactions_still_refuse_runs() {
    let master = server(GENEROUS_LIMIT);
    let replica = master.start_replica();
    let mut c = client(&master);
    set_f32(&mut c, "x", &[1, 4], &[1.0, 2.0, -3.0, 0.5]);
    store(&mut c, "m", "ONNX", "onnx", "mlp.onnx", &[]);
    runs_agree(&mut c, "m");
    assert!(inline_runs(&mut c) > 0);
    replica.wait_for_sync(&master);
    let mut r = client(&replica);
    assert_eq!(
        get(&mut r, &format!("y{}", RUNS - 1)),
        get(&mut c, "y_first")
    );
    assert_eq!(digest(&mut r), digest(&mut c));

    // A model that would run inline is still refused inside MULTI, as every run is.
    call_str(&mut c, "MULTI").expect("MULTI");
    call_str(&mut c, "AI.MODELEXECUTE m INPUTS 1 x OUTPUTS 1 in_multi").expect("queued");
    let exec = format!("{:?}", call_str(&mut c, "EXEC"));
    assert!(
        exec.contains("Cannot run RedisAI command within a transaction"),
        "{exec}"
    );
}

/// The faults plugin, built beside this test binary (a dev-dependency of the tests).
fn faults_plugin() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary");
    let path = exe.parent().expect("deps dir").join("libredisai_faults.so");
    assert!(path.exists(), "{} is missing", path.display());
    path
}

/// A server with a generous inline limit and the test-only FAULTS backend loaded.
fn server_with_faults() -> (Server, Connection) {
    let server = server(GENEROUS_LIMIT);
    let mut c = client(&server);
    call_str(
        &mut c,
        &format!("AI.CONFIG LOADBACKEND FAULTS {}", faults_plugin().display()),
    )
    .expect("LOADBACKEND");
    (server, c)
}

fn set_i64(c: &mut Connection, key: &str, value: i64) {
    set_blob(c, key, "INT64", &[1], &value.to_le_bytes());
}

#[test]
fn a_run_that_turns_slow_goes_to_a_worker_while_redis_answers() {
    let (server, mut c) = server_with_faults();
    // A model whose run time is its input: 0 ms, until it is 2 s.
    execute(&mut c, "AI.MODELSTORE sleepy FAULTS CPU BLOB sleep-input");
    set_i64(&mut c, "x", 0);
    runs_agree(&mut c, "sleepy");
    let inline_before = inline_runs(&mut c);
    assert!(inline_before > 0, "the fast runs did not go inline");

    // Same input size, but 2 s of work: the inline attempt is stopped at its cap and the
    // run goes to a worker, so other clients are served meanwhile.
    set_i64(&mut c, "slow", 2000);
    let finished = Arc::new(AtomicBool::new(false));
    let runner = {
        let mut a = client(&server);
        let finished = Arc::clone(&finished);
        thread::spawn(move || {
            let reply = call_str(&mut a, "AI.MODELEXECUTE sleepy INPUTS 1 slow OUTPUTS 1 out");
            finished.store(true, Ordering::SeqCst);
            reply
        })
    };
    thread::sleep(Duration::from_millis(100));
    pong(&mut c);
    assert!(
        !finished.load(Ordering::SeqCst),
        "the 2 s run finished before PING was answered: it held the main thread"
    );
    assert_eq!(
        runner.join().expect("runner").expect("slow run"),
        Value::Okay
    );
    assert_eq!(
        get(&mut c, "out"),
        get(&mut c, "slow"),
        "echoed after the retry"
    );
    assert_eq!(
        inline_runs(&mut c),
        inline_before,
        "the slow run did not count as inline"
    );

    // The model is back on the workers until it has been fast for a while again.
    execute(&mut c, "AI.MODELEXECUTE sleepy INPUTS 1 x OUTPUTS 1 y");
    assert_eq!(inline_runs(&mut c), inline_before);
    assert_eq!(
        ai_info(&mut c, "sleepy", "errors"),
        0,
        "the interrupted attempt is not an error"
    );
    assert_eq!(ai_info(&mut c, "sleepy", "calls"), RUNS as i64 + 3);
}

/// A numeric field of `AI.INFO key`.
fn ai_info(c: &mut Connection, key: &str, field: &str) -> i64 {
    let reply = call_str(c, &format!("AI.INFO {key}")).expect("AI.INFO");
    let Value::Array(items) = reply else {
        panic!("AI.INFO {key}: {reply:?}")
    };
    let name_is = |item: &Value| match item {
        Value::BulkString(b) => b.as_slice() == field.as_bytes(),
        Value::SimpleString(s) => s == field,
        _ => false,
    };
    let position = items
        .iter()
        .position(name_is)
        .unwrap_or_else(|| panic!("AI.INFO {key} has no {field}: {items:?}"));
    match &items[position + 1] {
        Value::Int(n) => *n,
        other => panic!("AI.INFO {key} {field}: {other:?}"),
    }
}
