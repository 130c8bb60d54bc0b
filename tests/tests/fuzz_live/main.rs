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

mod classic;
mod generated;

use std::time::Duration;

use redisai_example_c_plugins::{EXAMPLE_ADD_BACKEND, EXAMPLE_ADD_PLUGIN};
use redisai_tests::graphs;
use redisai_tests::hardening::{
    answers_ping, backend_built, env_usize, model_bytes, server_pid, Rng,
};
use redisai_tests::redis::{self, Connection, ConnectionLike, Value};
use redisai_tests::{run, run_str, Server, ServerConfig};

use classic::*;
use generated::*;

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
