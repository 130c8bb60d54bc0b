//! Real-size models through the module against the same runtime in process, and against a
//! Python model server (see `scripts/bench-models`, which starts the servers).
//!
//! For each model of `scripts/gen-bench-models` and each client count: inferences/s and
//! p50/p99 of a request through the module (AI.TENSORSET + AI.MODELEXECUTE +
//! AI.TENSORGET pipelined, one connection and one pair of keys per client) against the
//! model's backend plugin loaded in this process and called through its ABI by a run
//! queue of THREADS_PER_QUEUE workers, with the module's thread settings; then with
//! BATCHSIZE 16 (16 clients) against the runtime's own batch-16 call. The module and the
//! in-process runs alternate in rounds, so drift and the machine's other load hit both.
//! Then the RSS each model adds to redis-server against a fresh process holding it, and
//! the model-server table.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use redisai_benches::plugin;
use redisai_benches::shared::repo_root;

mod clients;
mod load;
mod manifest;
mod measure;
mod memory;
mod model_server;
mod report;
mod server;

use measure::{measure_model, Backends};
use model_server::measure_server;
use report::Report;
use server::{connect_one, delete_keys};

const USAGE: &str = "\
usage: bench-models --port P --models-dir DIR [options]

  --port P              port of the redis-server with the module (required)
  --models-dir DIR      the models of scripts/gen-bench-models (required)
  --models LIST         the models to measure, comma-separated (default: all)
  --backends DIR        the plugins, as the module loads them (default dist/backends)
  --clients LIST        client counts (default 1,4,16)
  --batch N             BATCHSIZE of the batched rows, and their client count
                        (default 16; 0: no batched rows)
  --seconds S           seconds per window (default 2)
  --rounds R            windows per side and cell, alternating (default 3)
  --threads-per-queue W the module's THREADS_PER_QUEUE: the in-process run queue's
                        workers (default 1)
  --intra-op N          the module's INTRA_OP_PARALLELISM (default 0)
  --inter-op N          the module's INTER_OP_PARALLELISM (default 0)
  --no-memory           skip the RSS table
  --server-python PATH  python with fastapi, uvicorn and onnxruntime: adds the model
                        server table (benches/python/model_server.py)
  --mlp PATH            the server table's small model (default tests/models/onnx/mlp.onnx)
  --out DIR             where the CSV files go (default: none written)
  -h, --help            print this help";

const TARGET_RATIO: f64 = 0.95;
const TARGET_P99_RATIO: f64 = 1.2;
const TARGET_BATCH_RATIO: f64 = 0.9;
const TARGET_MEMORY_RATIO: f64 = 1.2;
const TARGET_SERVER_MLP_RATIO: f64 = 3.0;

pub struct Options {
    port: u16,
    models_dir: PathBuf,
    models: Vec<String>,
    backends: PathBuf,
    clients: Vec<usize>,
    batch: usize,
    window: Duration,
    rounds: u32,
    workers: usize,
    intra_op: i64,
    inter_op: i64,
    memory: bool,
    server_python: Option<PathBuf>,
    mlp: PathBuf,
    out: Option<PathBuf>,
    rss_probe: Option<String>,
}

fn parse_args() -> Result<Option<Options>> {
    let mut opts = Options {
        port: 0,
        models_dir: PathBuf::new(),
        models: Vec::new(),
        backends: repo_root().join("dist/backends"),
        clients: vec![1, 4, 16],
        batch: 16,
        window: Duration::from_secs(2),
        rounds: 3,
        workers: 1,
        intra_op: 0,
        inter_op: 0,
        memory: true,
        server_python: None,
        mlp: repo_root().join("tests/models/onnx/mlp.onnx"),
        out: None,
        rss_probe: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--port" => opts.port = value()?.parse().context("--port")?,
            "--models-dir" => opts.models_dir = value()?.into(),
            "--models" => {
                opts.models = value()?
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            }
            "--backends" => opts.backends = value()?.into(),
            "--clients" => {
                opts.clients = value()?
                    .split(',')
                    .map(|c| c.trim().parse::<usize>().context("--clients"))
                    .collect::<Result<_>>()?;
                ensure!(
                    opts.clients.iter().all(|&c| c > 0),
                    "--clients: counts must be positive"
                );
            }
            "--batch" => opts.batch = value()?.parse().context("--batch")?,
            "--seconds" => {
                let seconds: f64 = value()?.parse().context("--seconds")?;
                ensure!(seconds > 0.0, "--seconds must be positive");
                opts.window = Duration::from_secs_f64(seconds);
            }
            "--rounds" => opts.rounds = value()?.parse().context("--rounds")?,
            "--threads-per-queue" => {
                opts.workers = value()?.parse().context("--threads-per-queue")?
            }
            "--intra-op" => opts.intra_op = value()?.parse().context("--intra-op")?,
            "--inter-op" => opts.inter_op = value()?.parse().context("--inter-op")?,
            "--no-memory" => opts.memory = false,
            "--server-python" => opts.server_python = Some(value()?.into()),
            "--mlp" => opts.mlp = value()?.into(),
            "--out" => opts.out = Some(value()?.into()),
            "--rss-probe" => opts.rss_probe = Some(value()?),
            other => bail!("unknown argument {other}\n\n{USAGE}"),
        }
    }
    ensure!(
        !opts.models_dir.as_os_str().is_empty(),
        "--models-dir is required\n\n{USAGE}"
    );
    ensure!(
        opts.rss_probe.is_some() || opts.port != 0,
        "--port is required\n\n{USAGE}"
    );
    ensure!(
        opts.rounds > 0 && opts.workers > 0,
        "--rounds and --threads-per-queue must be positive"
    );
    Ok(Some(opts))
}

// ---------------------------------------------------------------------------------------

/// A long error (a TorchScript traceback) cut to its first and last lines.
fn short_error(text: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    match lines.as_slice() {
        [] => String::new(),
        [one] => (*one).to_string(),
        [first, .., last] => format!("{first} ... {last}"),
    }
}

fn run(opts: &Options) -> Result<()> {
    plugin::set_thread_settings(opts.intra_op, opts.inter_op);
    let models = manifest::read_models(&opts.models_dir, &opts.models)?;
    if let Some(name) = &opts.rss_probe {
        let spec = models
            .iter()
            .find(|m| &m.name == name)
            .with_context(|| format!("no model {name}"))?;
        return memory::probe(spec, &opts.backends);
    }
    let mut con = connect_one(opts.port)?;
    let mut backends = Backends::new(opts.backends.clone());
    let mut report = Report::new(
        TARGET_RATIO,
        TARGET_P99_RATIO,
        TARGET_BATCH_RATIO,
        TARGET_MEMORY_RATIO,
        TARGET_SERVER_MLP_RATIO,
    );
    report.settings = format!(
        "THREADS_PER_QUEUE {}, INTRA_OP_PARALLELISM {}, INTER_OP_PARALLELISM {}; {} rounds of {:.1} s per side and cell",
        opts.workers,
        opts.intra_op,
        opts.inter_op,
        opts.rounds,
        opts.window.as_secs_f64()
    );
    for spec in &models {
        eprintln!(
            "==> {} ({}, {:.1} MB)",
            spec.name,
            spec.backend,
            spec.blob_bytes as f64 / 1e6
        );
        // One model failing (a runtime refusing an op, say) does not void the others.
        if let Err(err) = measure_model(opts, spec, &mut con, &mut backends, &mut report) {
            let text = short_error(&format!("{err:#}"));
            eprintln!("bench-models: {}: {text}", spec.name);
            report
                .notes
                .push(format!("{}: not measured: {text}", spec.name));
            let _ = delete_keys(&mut con, &[&format!("bm:{}", spec.name)]);
            let _ = delete_keys(&mut con, &[&format!("bm:{}:batch", spec.name)]);
        }
    }
    if let Some(python) = &opts.server_python {
        if let Err(err) = measure_server(opts, python, &models, &mut report) {
            let text = short_error(&format!("{err:#}"));
            eprintln!("bench-models: the model server table: {text}");
            report
                .notes
                .push(format!("the model server table is incomplete: {text}"));
        }
    }
    report.print();
    if let Some(dir) = &opts.out {
        report.write_csv(dir)?;
    }
    Ok(())
}

fn main() -> ExitCode {
    redisai_benches::shared::run_main("bench-models", USAGE, parse_args, run)
}
