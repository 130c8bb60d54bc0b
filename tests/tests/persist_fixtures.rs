//! Files written by this version load in the next one. `tests/fixtures/persist/` keeps,
//! per encoding version of our data types (tensor and model: 100), an RDB file and a
//! rewritten AOF (no RDB preamble) made by `write_fixtures` below:
//!
//! ```sh
//! REDISAI_WRITE_FIXTURES=1 cargo test -p redisai-tests --test persist_fixtures -- --ignored
//! ```
//!
//! Scripts (encoding 100) have their own pair, `script-v100.rdb` / `.aof`, made by
//! `write_script_fixtures` the same way (needs the TORCH plugin in `dist/`).
//!
//! When an encoding changes, bump it in `core/module/src/persist/`, add the new fixtures next to
//! the old ones (never replace them) and keep the old version's loader.

mod common;

use std::path::{Path, PathBuf};

use common::{set_every_dtype, DTYPES};
use redisai_tests::hardening::model_bytes;
use redisai_tests::redis::{Connection, Value};
use redisai_tests::{digest, run, run_str, wait_for_rewrite, Server, ServerConfig};

const ENCODING: u32 = 100;

fn fixture(ext: &str) -> PathBuf {
    redisai_tests::workspace_root()
        .join("tests/fixtures/persist")
        .join(format!("v{ENCODING}.{ext}"))
}

const SCRIPT_ENCODING: u32 = 100;

fn script_fixture(ext: &str) -> PathBuf {
    redisai_tests::workspace_root()
        .join("tests/fixtures/persist")
        .join(format!("script-v{SCRIPT_ENCODING}.{ext}"))
}

const SCRIPT: &str = "def bar(tensors: List[Tensor], keys: List[str], args: List[str]):
    return tensors[0] + tensors[1]

def twice(tensors: List[Tensor], keys: List[str], args: List[str]):
    return [tensors[0] * 2, tensors[0] + float(args[0])]
";

/// The script fixtures' data set: a script with a tag and two entry points, one stored
/// with the deprecated SCRIPTSET (no entry points, no tag), and a tensor to run them on.
fn write_script_data_set(c: &mut Connection) {
    run(
        c,
        &[
            b"AI.SCRIPTSTORE",
            b"s:tagged",
            b"CPU",
            b"TAG",
            b"v\xff1",
            b"ENTRY_POINTS",
            b"2",
            b"bar",
            b"twice",
            b"SOURCE",
            SCRIPT.as_bytes(),
        ],
    )
    .expect("SCRIPTSTORE");
    run(
        c,
        &[
            b"AI.SCRIPTSET",
            b"s:legacy",
            b"CPU",
            b"SOURCE",
            SCRIPT.as_bytes(),
        ],
    )
    .expect("SCRIPTSET");
    run_str(c, "AI.TENSORSET t FLOAT 2 VALUES 1 2").expect("t");
}

fn torch_built() -> bool {
    redisai_tests::hardening::backend_built("redisai_torch")
}

/// The data set in the fixtures: every dtype, a STRING tensor, a model
/// with tag and batching options and one without.
fn write_data_set(c: &mut Connection) {
    set_every_dtype(c);
    run_str(c, "AI.TENSORSET t:neg FLOAT 2 VALUES -1.5 3e-8").expect("neg");
    let add = model_bytes("onnx", "add.onnx");
    run(
        c,
        &[
            b"AI.MODELSTORE",
            b"m:add",
            b"ONNX",
            b"CPU",
            b"TAG",
            b"v1",
            b"BATCHSIZE",
            b"4",
            b"MINBATCHSIZE",
            b"2",
            b"MINBATCHTIMEOUT",
            b"10",
            b"BLOB",
            &add,
        ],
    )
    .expect("add");
    let mlp = model_bytes("onnx", "mlp.onnx");
    run(
        c,
        &[b"AI.MODELSTORE", b"m:mlp", b"ONNX", b"CPU", b"BLOB", &mlp],
    )
    .expect("mlp");
    run_str(c, "SET plain value").expect("plain");
}

/// Writes a data set's RDB and rewritten AOF (no RDB preamble) to the fixture paths
/// `fixture_of("rdb")` and `fixture_of("aof")`, when REDISAI_WRITE_FIXTURES is set.
fn write_fixture_pair(write: fn(&mut Connection), fixture_of: fn(&str) -> PathBuf) {
    if std::env::var_os("REDISAI_WRITE_FIXTURES").is_none() {
        return;
    }
    let server =
        Server::start_with(ServerConfig::default().option("aof-use-rdb-preamble", &["no"]));
    let mut c = server.client();
    write(&mut c);
    run_str(&mut c, "SAVE").expect("SAVE");
    std::fs::copy(server.dir.join("dump.rdb"), fixture_of("rdb")).expect("copy rdb");
    run_str(&mut c, "CONFIG SET appendonly yes").expect("appendonly");
    wait_for_rewrite(&mut c);
    run_str(&mut c, "BGREWRITEAOF").expect("rewrite");
    wait_for_rewrite(&mut c);
    let base = std::fs::read_dir(server.dir.join("appendonlydir"))
        .expect("appendonlydir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".base.aof"))
        .expect("base AOF");
    std::fs::copy(base, fixture_of("aof")).expect("copy aof");
}

#[test]
#[ignore = "writes the fixtures; run with REDISAI_WRITE_FIXTURES=1 when an encoding changes"]
fn write_fixtures() {
    write_fixture_pair(write_data_set, fixture);
}

#[test]
#[ignore = "writes the script fixtures; run with REDISAI_WRITE_FIXTURES=1 when the script encoding changes"]
fn write_script_fixtures() {
    write_fixture_pair(write_script_data_set, script_fixture);
}

fn check_scripts_loaded(loaded: &Server) {
    let mut c = loaded.client();
    let reference = Server::start();
    let mut r = reference.client();
    write_script_data_set(&mut r);
    assert_eq!(digest(&mut c), digest(&mut r));
    for key in ["s:tagged", "s:legacy"] {
        for part in ["META", "SOURCE"] {
            let line = format!("AI.SCRIPTGET {key} {part}");
            assert_eq!(
                run_str(&mut c, &line).expect("loaded"),
                run_str(&mut r, &line).expect("reference"),
                "{line}"
            );
        }
    }
    // Both scripts compiled again and run.
    run_str(
        &mut c,
        "AI.SCRIPTEXECUTE s:tagged twice INPUTS 1 t ARGS 1 10 OUTPUTS 2 a b",
    )
    .expect("twice");
    run_str(&mut c, "AI.SCRIPTRUN s:legacy bar INPUTS t t OUTPUTS c").expect("bar");
    let floats = |values: &[&str]| {
        Value::Array(
            values
                .iter()
                .map(|v| Value::BulkString(v.as_bytes().to_vec()))
                .collect(),
        )
    };
    for (key, expected) in [("a", ["2", "4"]), ("b", ["11", "12"]), ("c", ["2", "4"])] {
        assert_eq!(
            run_str(&mut c, &format!("AI.TENSORGET {key} VALUES")).expect("get"),
            floats(&expected),
            "{key}"
        );
    }
}

#[test]
fn script_rdb_fixture_loads() {
    if !torch_built() {
        eprintln!("the TORCH plugin is not built; skipped");
        return;
    }
    check_fixture(
        &script_fixture("rdb"),
        "dump.rdb",
        &[],
        check_scripts_loaded,
    );
}

#[test]
fn script_aof_fixture_loads() {
    if !torch_built() {
        eprintln!("the TORCH plugin is not built; skipped");
        return;
    }
    check_fixture(
        &script_fixture("aof"),
        "appendonly.aof",
        &[("appendonly", "yes")],
        check_scripts_loaded,
    );
}

#[test]
fn redis_check_rdb_accepts_the_script_fixture() {
    redis_check_rdb_accepts(&script_fixture("rdb"), 3);
}

/// `redis-check-rdb` (where installed) finds `file` well-formed, with `keys` keys. It
/// walks module values by their framing, without the module.
fn redis_check_rdb_accepts(file: &Path, keys: usize) {
    let Ok(output) = std::process::Command::new("redis-check-rdb")
        .arg(file)
        .output()
    else {
        eprintln!("redis-check-rdb is not installed; skipped");
        return;
    };
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && text.contains("RDB looks OK"),
        "{text}"
    );
    assert!(text.contains(&format!("{keys} keys read")), "{text}");
}

/// A server on the fixture `file` (copied in as `name`, with `options`) passes `check`;
/// its folder is removed afterwards.
fn check_fixture(file: &Path, name: &str, options: &[(&str, &str)], check: fn(&Server)) {
    let server = server_with_file(file, name, options);
    check(&server);
    let dir = server.dir.clone();
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
}

fn server_with_file(file: &Path, name: &str, options: &[(&str, &str)]) -> Server {
    // One folder per fixture file: tests of two fixtures with the same `name` run at once.
    let fixture_name = file.file_name().map(|n| n.to_string_lossy().into_owned());
    let dir = std::env::temp_dir().join(format!(
        "redisai-fixture-{}-{}-{name}",
        std::process::id(),
        fixture_name.unwrap_or_default()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::copy(file, dir.join(name)).expect("copy fixture");
    let mut config = ServerConfig {
        data_dir: Some(dir),
        ..ServerConfig::default()
    };
    for (k, v) in options {
        config = config.option(k, &[v]);
    }
    Server::start_with(config)
}

fn check_loaded(loaded: &Server) {
    let mut c = loaded.client();
    // Same content as a server that was given the data set directly.
    let reference = Server::start();
    let mut r = reference.client();
    write_data_set(&mut r);
    assert_eq!(digest(&mut c), digest(&mut r));
    for dtype in DTYPES.iter().chain(["STRING"].iter()) {
        let key = format!("t:{dtype}");
        assert_eq!(
            run_str(&mut c, &format!("AI.TENSORGET {key}")).expect("get"),
            run_str(&mut r, &format!("AI.TENSORGET {key}")).expect("get"),
            "{key}"
        );
    }
    assert_eq!(
        run_str(&mut c, "AI.MODELGET m:add META").expect("meta"),
        run_str(&mut r, "AI.MODELGET m:add META").expect("meta")
    );
    // The models loaded into the backend and run.
    run_str(&mut c, "AI.TENSORSET a FLOAT 2 VALUES 1 2").expect("a");
    run_str(&mut c, "AI.MODELEXECUTE m:add INPUTS 2 a a OUTPUTS 1 b").expect("run");
    assert_eq!(
        run_str(&mut c, "AI.TENSORGET b VALUES").expect("b"),
        Value::Array(vec![
            Value::BulkString(b"2".to_vec()),
            Value::BulkString(b"4".to_vec())
        ])
    );
}

#[test]
fn rdb_fixture_loads() {
    check_fixture(&fixture("rdb"), "dump.rdb", &[], check_loaded);
}

#[test]
fn aof_fixture_loads() {
    // An AOF from before multi-part AOF is upgraded by Redis 7 on load.
    check_fixture(
        &fixture("aof"),
        "appendonly.aof",
        &[("appendonly", "yes")],
        check_loaded,
    );
}

#[test]
fn redis_check_rdb_accepts_the_fixture() {
    redis_check_rdb_accepts(&fixture("rdb"), 14);
}
