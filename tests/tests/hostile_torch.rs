//! A stored TorchScript model or script is hostile input. As a user without @admin or
//! @dangerous (who may write only `app1:*`), AI.SCRIPTSTORE / AI.SCRIPTSET of a script
//! and AI.MODELSTORE / AI.MODELSET of a model that call `torch.from_file` (which would
//! return /etc/passwd's bytes, or with `shared=True` create files) are refused with the
//! TORCH backend's sandbox error, wherever the call hides (an if-branch, a helper, a
//! submodule, a `__setstate__` libtorch runs while loading); nothing is stored or
//! written, no file content comes back, and the server goes on. The models are
//! tests/models/torch/hostile_*.pt (plugins/torch/src/bin/gen-torch-models.rs). Needs
//! dist/backends/redisai_torch (scripts/build-backend-torch).

mod common;

use common::app_user;
use std::path::{Path, PathBuf};

use redisai_tests::redis::{Connection, Value};
use redisai_tests::{error_text, run, run_str, Server, ServerConfig};

const SCRIPT_REFUSED: &str = "ERR script uses a forbidden operation: aten::from_file (file access)";
const MODEL_REFUSED: &str = "ERR model uses a forbidden operation: aten::from_file (file access)";

/// What the plugin's test models would create (hostile_setstate.pt).
const SETSTATE_FILE: &str = "/tmp/redisai-hostile-setstate";

fn torch_built() -> bool {
    redisai_tests::hardening::backend_built("redisai_torch")
}

/// A server, and a connection as `app1`: all commands but @admin and @dangerous, keys
/// `app1:*` only.
fn setup() -> (Server, Connection) {
    let server = Server::start();
    let app = app_user(&server);
    (server, app)
}

fn pong(c: &mut Connection) {
    assert_eq!(
        run_str(c, "PING").expect("alive"),
        Value::SimpleString("PONG".into())
    );
}

fn exists(c: &mut Connection, key: &str) -> i64 {
    redisai_tests::redis::cmd("EXISTS")
        .arg(key)
        .query(c)
        .expect("EXISTS")
}

/// The first line of /etc/passwd: what must never come back.
fn passwd_start() -> String {
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|text| text.lines().next().map(str::to_owned))
        .unwrap_or_else(|| "root:x:0:0".into())
}

/// A refused store: the exact error, no key, no file content, the server still answers.
fn assert_refused(u: &mut Connection, key: &str, args: &[&[u8]], expected: &str) {
    let text = error_text(run(u, args));
    assert_eq!(text, expected, "{}", String::from_utf8_lossy(args[0]));
    let start = passwd_start();
    assert!(!text.contains(&start[..start.len().min(8)]), "{text}");
    assert_eq!(exists(u, key), 0, "{key}");
    pong(u);
}

fn model_bytes(name: &str) -> Vec<u8> {
    let path: PathBuf = redisai_tests::workspace_root()
        .join("tests/models/torch")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

const FROM_FILE: &str = "def f(tensors: List[Tensor], keys: List[str], args: List[str]):\n    return torch.from_file(args[0], False, int(args[1]), dtype=torch.uint8)\n";

#[test]
fn scripts_reading_or_creating_files_are_refused() {
    if !torch_built() {
        eprintln!("skipped: dist/backends/redisai_torch is not built");
        return;
    }
    let (_server, mut u) = setup();
    let created = std::env::temp_dir().join(format!("redisai-hostile-{}", std::process::id()));
    let _ = std::fs::remove_file(&created);
    let sources = [
        FROM_FILE.to_owned(),
        // shared=True creates the file.
        format!(
            "def f(tensors: List[Tensor], keys: List[str], args: List[str]):\n    return torch.from_file(\"{}\", True, 64, dtype=torch.uint8)\n",
            created.display()
        ),
        // In an if-branch.
        "def f(tensors: List[Tensor], keys: List[str], args: List[str]):\n    if len(args) == 2:\n        return torch.from_file(args[0], False, int(args[1]), dtype=torch.uint8)\n    return tensors[0]\n".to_owned(),
        // In a helper the entry point calls.
        "def read(path: str, n: int):\n    return torch.from_file(path, False, n, dtype=torch.uint8)\n\ndef f(tensors: List[Tensor], keys: List[str], args: List[str]):\n    return read(args[0], int(args[1]))\n".to_owned(),
    ];
    for source in &sources {
        assert_refused(
            &mut u,
            "app1:s",
            &[
                b"AI.SCRIPTSTORE",
                b"app1:s",
                b"CPU",
                b"ENTRY_POINTS",
                b"1",
                b"f",
                b"SOURCE",
                source.as_bytes(),
            ],
            SCRIPT_REFUSED,
        );
        // The deprecated AI.SCRIPTSET (no entry points) goes through the same load.
        assert_refused(
            &mut u,
            "app1:s",
            &[
                b"AI.SCRIPTSET",
                b"app1:s",
                b"CPU",
                b"SOURCE",
                source.as_bytes(),
            ],
            SCRIPT_REFUSED,
        );
    }
    assert!(!created.exists(), "{} was created", created.display());
    // Running it: there is nothing to run, and nothing of the file comes back.
    let text = error_text(run_str(
        &mut u,
        "AI.SCRIPTEXECUTE app1:s f ARGS 2 /etc/passwd 64 OUTPUTS 1 app1:out",
    ));
    assert!(!text.contains("root:"), "{text}");
    assert_eq!(exists(&mut u, "app1:out"), 0);
    // The same user still stores and runs a harmless script.
    let harmless = "def f(tensors: List[Tensor], keys: List[str], args: List[str]):\n    return tensors[0] + 1\n";
    assert_eq!(
        run(
            &mut u,
            &[
                b"AI.SCRIPTSTORE",
                b"app1:ok",
                b"CPU",
                b"ENTRY_POINTS",
                b"1",
                b"f",
                b"SOURCE",
                harmless.as_bytes(),
            ],
        )
        .expect("harmless script"),
        Value::Okay
    );
    run_str(&mut u, "AI.TENSORSET app1:x FLOAT 1 VALUES 1").expect("x");
    run_str(
        &mut u,
        "AI.SCRIPTEXECUTE app1:ok f INPUTS 1 app1:x OUTPUTS 1 app1:y",
    )
    .expect("run");
    pong(&mut u);
}

#[test]
fn models_reading_or_creating_files_are_refused() {
    if !torch_built() {
        eprintln!("skipped: dist/backends/redisai_torch is not built");
        return;
    }
    let (_server, mut u) = setup();
    for name in [
        "hostile_from_file.pt",
        "hostile_submodule.pt",
        "hostile_setstate.pt",
    ] {
        let blob = model_bytes(name);
        assert_refused(
            &mut u,
            "app1:m",
            &[
                b"AI.MODELSTORE",
                b"app1:m",
                b"TORCH",
                b"CPU",
                b"BLOB",
                &blob,
            ],
            MODEL_REFUSED,
        );
        assert_refused(
            &mut u,
            "app1:m",
            &[b"AI.MODELSET", b"app1:m", b"TORCH", b"CPU", b"BLOB", &blob],
            MODEL_REFUSED,
        );
    }
    assert!(
        !Path::new(SETSTATE_FILE).exists(),
        "{SETSTATE_FILE} was created"
    );
    run_str(&mut u, "AI.TENSORSET app1:x UINT8 64").expect("x");
    let text = error_text(run_str(
        &mut u,
        "AI.MODELEXECUTE app1:m INPUTS 1 app1:x OUTPUTS 1 app1:y",
    ));
    assert!(!text.contains("root:"), "{text}");
    // A harmless model still stores and runs.
    let blob = model_bytes("add.pt");
    assert_eq!(
        run(
            &mut u,
            &[
                b"AI.MODELSTORE",
                b"app1:add",
                b"TORCH",
                b"CPU",
                b"BLOB",
                &blob
            ]
        )
        .expect("add.pt"),
        Value::Okay
    );
    run_str(
        &mut u,
        "AI.MODELEXECUTE app1:add INPUTS 2 app1:x app1:x OUTPUTS 1 app1:y",
    )
    .expect("run");
    pong(&mut u);
}

/// One command in RESP, as an AOF holds it.
fn resp(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// An AOF written elsewhere (by hand here) that stores a hostile script and model is
/// loaded through the same plugin load: the core keeps the keys (as it keeps any whose
/// backend refused them at load) but they answer with the refusal, the script's file is
/// not created, and the server's log names the refusals.
#[test]
fn an_aof_with_a_hostile_script_and_model_does_not_run_them() {
    if !torch_built() {
        eprintln!("skipped: dist/backends/redisai_torch is not built");
        return;
    }
    let created = std::env::temp_dir().join(format!("redisai-hostile-aof-{}", std::process::id()));
    let _ = std::fs::remove_file(&created);
    let source = format!(
        "def f(tensors: List[Tensor], keys: List[str], args: List[str]):\n    return torch.from_file(\"{}\", True, 64, dtype=torch.uint8)\n",
        created.display()
    );
    let model = model_bytes("hostile_from_file.pt");
    let mut aof = resp(&[b"SELECT", b"0"]);
    aof.extend(resp(&[
        b"AI.SCRIPTSTORE",
        b"app1:s",
        b"CPU",
        b"ENTRY_POINTS",
        b"1",
        b"f",
        b"SOURCE",
        source.as_bytes(),
    ]));
    aof.extend(resp(&[
        b"AI.MODELSTORE",
        b"app1:m",
        b"TORCH",
        b"CPU",
        b"BLOB",
        &model,
    ]));
    aof.extend(resp(&[b"SET", b"app1:after", b"1"]));
    let dir =
        std::env::temp_dir().join(format!("redisai-hostile-torch-aof-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("appendonly.aof"), &aof).expect("aof");
    let config = ServerConfig {
        data_dir: Some(dir.clone()),
        ..ServerConfig::default()
    }
    .option("appendonly", &["yes"]);
    match Server::try_start(config) {
        Ok(server) => {
            let mut c = server.client();
            // The core keeps what a file holds, but the keys only answer with the
            // refusal: nothing of them runs.
            assert_eq!(exists(&mut c, "app1:after"), 1);
            run_str(&mut c, "AI.TENSORSET app1:x UINT8 64").expect("x");
            let script = error_text(run_str(
                &mut c,
                "AI.SCRIPTEXECUTE app1:s f INPUTS 1 app1:x OUTPUTS 1 app1:y",
            ));
            eprintln!("SCRIPTEXECUTE: {script}");
            assert!(
                script.contains(SCRIPT_REFUSED.trim_start_matches("ERR ")),
                "{script}"
            );
            let model = error_text(run_str(
                &mut c,
                "AI.MODELEXECUTE app1:m INPUTS 1 app1:x OUTPUTS 1 app1:y",
            ));
            eprintln!("MODELEXECUTE: {model}");
            assert!(
                model.contains(MODEL_REFUSED.trim_start_matches("ERR ")),
                "{model}"
            );
            assert_eq!(exists(&mut c, "app1:y"), 0);
            pong(&mut c);
            let log = server.log();
            assert!(
                log.contains(SCRIPT_REFUSED.trim_start_matches("ERR ")),
                "{log}"
            );
            assert!(
                log.contains(MODEL_REFUSED.trim_start_matches("ERR ")),
                "{log}"
            );
        }
        Err(err) => {
            // Refusing to load the file at all is as safe; it must say why.
            assert!(
                err.log.contains(SCRIPT_REFUSED.trim_start_matches("ERR ")),
                "{}",
                err.log
            );
        }
    }
    assert!(!created.exists(), "{} was created", created.display());
    let _ = std::fs::remove_dir_all(&dir);
}
