//! What running a model inside Redis costs, and what it saves, measured against a server
//! that is already running with the RedisAI module (see `scripts/bench-execute`).
//!
//! 1. Overhead: the latency of `AI.MODELEXECUTE m INPUTS 1 x OUTPUTS 1 y` (the input set
//!    once beforehand), alone and followed by `AI.TENSORGET y BLOB`, against calling the
//!    same ONNX model on the same input in this process through the ONNX backend
//!    (`OnnxBackend::run`). One client; every path is measured in each of several
//!    rounds, in a rotating order, so drift and noise hit them alike.
//! 2. Data locality: a model that updates a 1 MiB state tensor kept in Redis. The module
//!    runs `AI.MODELEXECUTE upd INPUTS 1 state OUTPUTS 1 state` in place; the
//!    client-side service (`benches/python/client_side_state.py`, in Python worker
//!    processes) GETs the state, runs the model with onnxruntime and SETs it back.
//!    Throughput at several client counts, interleaved in rounds like the above, and the
//!    CPU time each op costs (server plus clients).

use std::path::PathBuf;
use std::process::ExitCode;
use std::thread;

use anyhow::{bail, ensure, Context, Result};
use redis::{Connection, Value};

use redisai_benches::csv::CsvTable;
// frameworks.rs and torch.rs take these from here, as `super::...`.
use redisai_benches::shared::{
    close_enough, connect, expect_blob, expect_ok, f32_bytes, f32_values, info_field, load_average,
    parse_positive, repo_root, total_cores,
};

mod client_side;
mod frameworks;
mod locality;
mod onnx_paths;
mod overhead;
mod torch;
use locality::{run_locality, Server};
use overhead::{latency, module_settings, run_overhead, InlineLimit, Latency};

const USAGE: &str = "\
usage: bench-execute --port P [options]

  --port P              port of the running server (required), default settings
  --host H              host of the servers (default 127.0.0.1)
  --alt PORT=LABEL      another server, whose module arguments differ as LABEL
                        says (e.g. 6380=THREADS_PER_QUEUE 2): adds columns to the
                        data-locality table; may be repeated
  --mlp PATH            the small MLP (default tests/models/onnx/mlp.onnx)
  --mlp-big PATH        the bigger MLP of `scripts/gen-test-models --bench`
                        (default .cache/models/mlp_big.onnx when it exists;
                        `none` skips it)
  --state-model PATH    default tests/models/onnx/state_update.onnx
  --python PATH         python with onnxruntime, numpy and redis: without it the
                        client-side service is not measured
  --helper PATH         default benches/python/client_side_state.py
  --py-intra-threads N  intra_op_num_threads of each Python worker's session
                        (default 1: one process per client does the parallelism)
  --overhead-seconds S  seconds per model, split over its paths (default 8)
  --overhead-rounds R   rounds per model (default 8)
  --locality-seconds S  seconds per variant and client count (default 4)
  --locality-rounds R   rounds per client count (default 3)
  --clients LIST        client counts of the data-locality table (default 1,8,32)
  --no-meta             skip the MODELEXECUTE + TENSORGET META variant
  --only WHAT           overhead or locality: run that part only
  --placement TEXT      where this process runs relative to the server, for the
                        overhead table's title (default: not said)
  --no-header           do not print the first line (server and cores)
  --csv-dir DIR         also write the tables to DIR/execute-overhead.csv and
                        DIR/execute-locality.csv (appended)
  -h, --help            print this help

The in-process ONNX backend loads the runtime library from $REDISAI_ONNXRUNTIME_LIB.";

/// Acceptance targets.
const TARGET_ADDED_P50_US: f64 = 30.0;
const TARGET_LOCALITY_RATIO: f64 = 3.0;
const TARGET_LOCALITY_MIN_CLIENTS: usize = 8;
/// The state tensor of `state_update.onnx`: FLOAT [1, 262144].
const STATE_ELEMENTS: usize = 262_144;
const STATE_INITIAL: f32 = 2.0;

struct Options {
    host: String,
    port: u16,
    /// Other servers: port, and how their module arguments differ.
    alts: Vec<(u16, String)>,
    mlp: PathBuf,
    mlp_big: Option<PathBuf>,
    state_model: PathBuf,
    python: Option<PathBuf>,
    helper: PathBuf,
    py_intra_threads: u32,
    overhead_seconds: f64,
    overhead_rounds: u32,
    locality_seconds: f64,
    locality_rounds: u32,
    clients: Vec<usize>,
    meta: bool,
    overhead: bool,
    locality: bool,
    placement: String,
    header: bool,
    csv_dir: Option<PathBuf>,
}

/// Fails early, with a hint, when the server has no RedisAI model commands.
fn check_module(con: &mut Connection) -> Result<()> {
    let info: Vec<Value> = redis::cmd("COMMAND")
        .arg("INFO")
        .arg("AI.MODELSTORE")
        .arg("AI.MODELEXECUTE")
        .query(con)
        .context("COMMAND INFO")?;
    ensure!(
        info.iter().all(|c| *c != Value::Nil),
        "the server does not know AI.MODELSTORE/AI.MODELEXECUTE: is the RedisAI module loaded?"
    );
    Ok(())
}

fn store_model(con: &mut Connection, key: &str, blob: &[u8]) -> Result<()> {
    let reply = redis::cmd("AI.MODELSTORE")
        .arg(key)
        .arg("ONNX")
        .arg("CPU")
        .arg("BLOB")
        .arg(blob)
        .query::<Value>(con)
        .with_context(|| format!("AI.MODELSTORE {key}"))?;
    expect_ok(reply).with_context(|| format!("AI.MODELSTORE {key}"))
}

/// `None` means `--help` was asked for.
fn parse_args() -> Result<Option<Options>> {
    let root = repo_root();
    let cache = std::env::var_os("REDISAI_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join(".cache"));
    let default_big = cache.join("models/mlp_big.onnx");
    let mut opts = Options {
        host: "127.0.0.1".into(),
        port: 0,
        alts: Vec::new(),
        mlp: root.join("tests/models/onnx/mlp.onnx"),
        mlp_big: default_big.is_file().then_some(default_big),
        state_model: root.join("tests/models/onnx/state_update.onnx"),
        python: None,
        helper: root.join("benches/python/client_side_state.py"),
        py_intra_threads: 1,
        overhead_seconds: 8.0,
        overhead_rounds: 8,
        locality_seconds: 4.0,
        locality_rounds: 3,
        clients: vec![1, 8, 32],
        meta: true,
        overhead: true,
        locality: true,
        placement: "client placement not given".into(),
        header: true,
        csv_dir: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--no-meta" => {
                opts.meta = false;
                continue;
            }
            "--no-header" => {
                opts.header = false;
                continue;
            }
            _ if !flag.starts_with("--") || !USAGE.contains(&format!("  {flag} ")) => {
                bail!("unknown option {flag:?}\n\n{USAGE}")
            }
            _ => {}
        }
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        let bad = || format!("bad value for {flag}: {value:?}");
        match flag.as_str() {
            "--host" => opts.host = value.clone(),
            "--port" => opts.port = parse_positive(&value).with_context(bad)?,
            "--alt" => {
                let (port, label) = value.split_once('=').with_context(bad)?;
                let port = parse_positive(port).with_context(bad)?;
                opts.alts.push((port, label.trim().to_string()));
            }
            "--placement" => opts.placement = value.clone(),
            "--csv-dir" => opts.csv_dir = Some(value.into()),
            "--mlp" => opts.mlp = value.into(),
            "--mlp-big" if value == "none" => opts.mlp_big = None,
            "--mlp-big" => opts.mlp_big = Some(value.into()),
            "--state-model" => opts.state_model = value.into(),
            "--python" => opts.python = Some(value.into()),
            "--helper" => opts.helper = value.into(),
            "--py-intra-threads" => {
                opts.py_intra_threads = value.parse().with_context(bad)?;
            }
            "--overhead-seconds" => {
                opts.overhead_seconds = parse_positive(&value).with_context(bad)?
            }
            "--overhead-rounds" => {
                opts.overhead_rounds = parse_positive(&value).with_context(bad)?
            }
            "--locality-seconds" => {
                opts.locality_seconds = parse_positive(&value).with_context(bad)?
            }
            "--locality-rounds" => {
                opts.locality_rounds = parse_positive(&value).with_context(bad)?
            }
            "--clients" => {
                opts.clients = value
                    .split(',')
                    .map(parse_positive)
                    .collect::<Result<Vec<usize>>>()
                    .with_context(bad)?;
            }
            "--only" => match value.as_str() {
                "overhead" => opts.locality = false,
                "locality" => opts.overhead = false,
                _ => bail!("{}: use overhead or locality", bad()),
            },
            _ => bail!("unknown option {flag:?}\n\n{USAGE}"),
        }
    }
    ensure!(opts.port != 0, "--port is required\n\n{USAGE}");
    ensure!(
        opts.overhead_seconds.is_finite() && opts.locality_seconds.is_finite(),
        "durations must be finite"
    );
    Ok(Some(opts))
}

fn run(opts: &Options) -> Result<()> {
    let max_clients = opts.clients.iter().copied().max().unwrap_or(1);
    let conns = if opts.locality { max_clients } else { 1 };
    let mut servers = vec![Server {
        label: String::new(),
        conns: connect(&opts.host, opts.port, conns)?,
    }];
    if opts.locality {
        for (port, label) in &opts.alts {
            servers.push(Server {
                label: label.clone(),
                conns: connect(&opts.host, *port, conns)?,
            });
        }
    }
    for server in &mut servers {
        check_module(&mut server.conns[0])?;
    }
    let version = info_field(&mut servers[0].conns[0], "server", "redis_version")?;
    if opts.header {
        println!(
            "## bench-execute: redis {version} at {}:{}, {} core(s) on this machine, \
             load average at the start {}",
            opts.host,
            opts.port,
            total_cores(),
            load_average()
        );
        println!();
    }
    let cores = thread::available_parallelism().map_or(0, |n| n.get());
    eprintln!("==> bench-execute: this process may use {cores} core(s)");
    let csv_dir = opts.csv_dir.as_deref();
    if opts.overhead {
        let mut csv = CsvTable::in_dir(csv_dir, overhead::CSV_NAME, &overhead::CSV_COLUMNS)?;
        run_overhead(opts, &mut servers[0].conns[0], &mut csv)?;
        let settings = module_settings(&mut servers[0].conns[0])?;
        frameworks::run_with_rows(
            &mut servers[0].conns[0],
            opts.overhead_seconds,
            opts.overhead_rounds,
            settings.intra_op,
            settings.inter_op,
            &mut |model, path, s, added| {
                overhead::csv_row(&mut csv, &opts.placement, model, path, s, added)
            },
        )?;
    }
    if opts.locality {
        let mut csv = CsvTable::in_dir(csv_dir, locality::CSV_NAME, &locality::CSV_COLUMNS)?;
        run_locality(opts, &mut servers, &mut csv)?;
    }
    Ok(())
}

fn main() -> ExitCode {
    redisai_benches::shared::run_main("bench-execute", USAGE, parse_args, run)
}
