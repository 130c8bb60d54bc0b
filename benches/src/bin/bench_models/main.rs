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

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use redis::{Connection, Value};

mod clients;
mod load;
mod manifest;
mod memory;
mod report;

use clients::{DirectClient, HttpClient, ModuleClient, OwnedInput, RunQueue, IO_TIMEOUT};
use load::{closed_loop, Client, Sample};
use manifest::{ModelSpec, TensorSpec, LARGE_OUTPUT_MODEL};
use redisai_benches::plugin::{self, Model, Plugin};
use report::{BatchRow, CopyRow, MemoryRow, Report, Row, ServerRow};

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

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
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
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(None);
            }
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
// The server

fn connect(port: u16, count: usize) -> Result<Vec<Connection>> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?;
    (0..count)
        .map(|_| {
            let con = client
                .get_connection()
                .with_context(|| format!("connecting to redis-server on port {port}"))?;
            con.set_read_timeout(Some(IO_TIMEOUT))?;
            con.set_write_timeout(Some(IO_TIMEOUT))?;
            Ok(con)
        })
        .collect()
}

fn connect_one(port: u16) -> Result<Connection> {
    connect(port, 1)?.pop().context("no connection was made")
}

fn server_pid(con: &mut Connection) -> Result<u32> {
    let info: String = redis::cmd("INFO").arg("server").query(con)?;
    info.lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .and_then(|v| v.trim().parse().ok())
        .context("INFO server: no process_id")
}

/// AI.MODELSTORE of `spec` under `key`, with BATCHSIZE `batch` unless 0.
fn store_model(con: &mut Connection, key: &str, spec: &ModelSpec, batch: usize) -> Result<()> {
    let blob = spec.read_blob()?;
    let mut cmd = redis::cmd("AI.MODELSTORE");
    cmd.arg(key).arg(&spec.backend).arg("CPU");
    if batch > 0 {
        cmd.arg("BATCHSIZE").arg(batch);
    }
    let (inputs, outputs) = spec.node_names();
    if !inputs.is_empty() {
        cmd.arg("INPUTS").arg(inputs.len()).arg(&inputs);
        cmd.arg("OUTPUTS").arg(outputs.len()).arg(&outputs);
    }
    cmd.arg("BLOB").arg(blob);
    let reply: Value = cmd.query(con)?;
    let reply = reply
        .extract_error()
        .with_context(|| format!("AI.MODELSTORE {} ({})", spec.name, spec.backend))?;
    ensure!(reply == Value::Okay, "AI.MODELSTORE: {reply:?}");
    Ok(())
}

fn delete_keys(con: &mut Connection, keys: &[&str]) -> Result<()> {
    let _: Value = redis::cmd("DEL").arg(keys).query(con)?;
    Ok(())
}

/// Loads the model's backend into the server ahead of the first store, so that the
/// store's RSS figure is the model's and not the runtime library's.
fn load_backend(con: &mut Connection, spec: &ModelSpec, backends: &Path) -> Result<()> {
    let path = spec.plugin_path(backends)?;
    let reply: redis::RedisResult<Value> = redis::cmd("AI.CONFIG")
        .arg("LOADBACKEND")
        .arg(&spec.backend)
        .arg(path.to_string_lossy().as_ref())
        .query(con);
    match reply {
        Err(err) if !err.to_string().contains("already loaded") => {
            Err(err).with_context(|| format!("AI.CONFIG LOADBACKEND {}", spec.backend))
        }
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------
// Measuring

/// Runs `module` and `in_process` alternately, `rounds` windows each (the first after a
/// warm-up call per client).
fn alternate<A: Client, B: Client>(
    opts: &Options,
    module: &mut [A],
    module_per_call: u64,
    in_process: &mut [B],
    in_process_per_call: u64,
) -> Result<(Sample, Sample)> {
    let (mut m, mut p) = (Sample::default(), Sample::default());
    for round in 0..opts.rounds {
        let warm_up = round == 0;
        m.add(
            closed_loop(module, opts.window, module_per_call, warm_up)
                .context("through the module")?,
        );
        p.add(closed_loop(
            in_process,
            opts.window,
            in_process_per_call,
            warm_up,
        )?);
    }
    Ok((m, p))
}

fn f32s(bytes: &[u8]) -> impl Iterator<Item = f32> + '_ {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
}

/// Compares the module's output with the in-process one (same runtime, same input):
/// the largest difference relative to the output's scale.
fn output_difference(module: &[u8], direct: &[u8]) -> f64 {
    if module.len() != direct.len() {
        return f64::INFINITY;
    }
    let scale = f32s(direct).fold(0f32, |m, v| m.max(v.abs())).max(1e-6) as f64;
    f32s(module)
        .zip(f32s(direct))
        .map(|(a, b)| ((a - b).abs() as f64) / scale)
        .fold(0.0, f64::max)
}

struct Backends {
    dir: PathBuf,
    opened: HashMap<String, Plugin>,
}

impl Backends {
    fn load(&mut self, spec: &ModelSpec) -> Result<Arc<Model>> {
        if !self.opened.contains_key(&spec.backend) {
            let plugin = Plugin::open(&spec.plugin_path(&self.dir)?)?;
            self.opened.insert(spec.backend.clone(), plugin);
        }
        let plugin = &self.opened[&spec.backend];
        let blob = spec.read_blob()?;
        let (inputs, outputs) = spec.node_names();
        Ok(Arc::new(
            plugin
                .load(&blob, &inputs, &outputs)
                .with_context(|| format!("loading {} in process", spec.name))?,
        ))
    }
}

fn measure_model(
    opts: &Options,
    spec: &ModelSpec,
    con: &mut Connection,
    backends: &mut Backends,
    report: &mut Report,
) -> Result<()> {
    let key = format!("bm:{}", spec.name);
    let started = Instant::now();
    if opts.memory {
        let pid = server_pid(con)?;
        load_backend(con, spec, &backends.dir)?;
        let before = memory::server_rss(con, pid)?;
        store_model(con, &key, spec, 0)?;
        let module = memory::server_rss(con, pid)?.saturating_sub(before);
        match memory::probe_in_fresh_process(&probe_args(opts), spec, opts.intra_op, opts.inter_op)
        {
            Ok((in_process, warning)) => {
                report
                    .notes
                    .extend(warning.map(|w| format!("{}: {w}", spec.name)));
                report.memory.push(MemoryRow {
                    model: spec.name.clone(),
                    blob: spec.blob_bytes,
                    module,
                    in_process,
                });
            }
            // The probe is another process: its failure leaves this one sound.
            Err(err) => report.notes.push(format!(
                "{}: no memory row: {}",
                spec.name,
                short_error(&format!("{err:#}"))
            )),
        }
    } else {
        store_model(con, &key, spec, 0)?;
    }
    let model = backends.load(spec)?;
    let input = Arc::new(OwnedInput::new(spec, 1)?);

    // The same answer both ways, or the comparison is void.
    let mut direct = Vec::new();
    model.run(&input.view(), Some(&mut direct))?;
    let through_module = ModuleClient::new(connect_one(opts.port)?, spec, &key, 0)
        .call_output()
        .with_context(|| format!("{} through the module", spec.name))?;
    let difference = output_difference(&through_module, &direct);
    if difference > 1e-3 {
        report.notes.push(format!(
            "{}: the module's output differs from the in-process one by {difference:.2e} (relative to its largest value)",
            spec.name
        ));
    }

    let max_clients = opts
        .clients
        .iter()
        .copied()
        .chain([opts.batch])
        .max()
        .unwrap_or(1);
    for &n in &opts.clients {
        let mut module: Vec<ModuleClient> = (0..n)
            .map(|i| Ok(ModuleClient::new(connect_one(opts.port)?, spec, &key, i)))
            .collect::<Result<_>>()?;
        let queue = RunQueue::start(model.clone(), input.clone(), opts.workers);
        let mut in_process: Vec<_> = (0..n).map(|_| queue.client()).collect();
        let (m, p) = alternate(opts, &mut module, 1, &mut in_process, 1)?;
        drop(in_process);
        drop(queue);
        eprintln!(
            "    {} clients {n}: module {:.1}/s, in process {:.1}/s",
            spec.name,
            m.rate(),
            p.rate()
        );
        report.rows.push(Row {
            model: spec.name.clone(),
            clients: n,
            module: m,
            in_process: p,
        });
    }

    if spec.name == LARGE_OUTPUT_MODEL {
        report.copy = Some(measure_copy(opts, spec, &key, &model)?);
    }

    delete_keys(con, &[&key])?;
    if opts.batch > 0 {
        let batch_key = format!("{key}:batch");
        if let Err(err) = store_model(con, &batch_key, spec, opts.batch) {
            if !format!("{err:#}").contains("not supported") {
                return Err(err);
            }
            report
                .notes
                .push(format!("{}: no BATCHSIZE row: {err:#}", spec.name));
            return finish(con, spec, max_clients, started);
        }
        let mut module: Vec<ModuleClient> = (0..opts.batch)
            .map(|i| {
                Ok(ModuleClient::new(
                    connect_one(opts.port)?,
                    spec,
                    &batch_key,
                    i,
                ))
            })
            .collect::<Result<_>>()?;
        let mut direct = [DirectClient {
            model: model.clone(),
            input: OwnedInput::new(spec, opts.batch)?,
            output: Vec::new(),
            copy: true,
        }];
        let (m, p) = alternate(opts, &mut module, 1, &mut direct, opts.batch as u64)?;
        eprintln!(
            "    {} BATCHSIZE {}: module {:.1}/s, runtime's batch call {:.1}/s",
            spec.name,
            opts.batch,
            m.rate(),
            p.rate()
        );
        report.batches.push(BatchRow {
            model: spec.name.clone(),
            batch: opts.batch,
            module: m,
            in_process: p,
        });
        delete_keys(con, &[&batch_key])?;
    }
    finish(con, spec, max_clients, started)
}

/// Deletes the clients' tensors.
fn finish(con: &mut Connection, spec: &ModelSpec, clients: usize, started: Instant) -> Result<()> {
    let mut cleanup = redis::cmd("DEL");
    for i in 0..clients {
        cleanup.arg(format!("bm:in:{i}")).arg(format!("bm:out:{i}"));
    }
    let _: Value = cleanup.query(con)?;
    eprintln!(
        "==> {} done in {:.0} s",
        spec.name,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The large-output row: one client, the module against the runtime's call with its
/// output copied out once (as the module's core copies it today) and with no copy (the
/// runtime's memory only looked at): what handing the output over would save.
fn measure_copy(
    opts: &Options,
    spec: &ModelSpec,
    key: &str,
    model: &Arc<Model>,
) -> Result<CopyRow> {
    let mut module = [ModuleClient::new(connect_one(opts.port)?, spec, key, 0)];
    let direct = |copy| -> Result<DirectClient> {
        Ok(DirectClient {
            model: model.clone(),
            input: OwnedInput::new(spec, 1)?,
            output: Vec::new(),
            copy,
        })
    };
    let mut copied = [direct(true)?];
    let mut viewed = [direct(false)?];
    let (mut m, mut c, mut v) = (Sample::default(), Sample::default(), Sample::default());
    for round in 0..opts.rounds * 2 {
        let warm_up = round == 0;
        m.add(closed_loop(&mut module, opts.window, 1, warm_up)?);
        c.add(closed_loop(&mut copied, opts.window, 1, warm_up)?);
        v.add(closed_loop(&mut viewed, opts.window, 1, warm_up)?);
    }
    Ok(CopyRow {
        model: spec.name.clone(),
        output_bytes: spec.output.byte_len(),
        module: m,
        copied: c,
        viewed: v,
    })
}

fn probe_args(opts: &Options) -> Vec<String> {
    vec![
        "--models-dir".into(),
        opts.models_dir.display().to_string(),
        "--backends".into(),
        opts.backends.display().to_string(),
    ]
}

// ---------------------------------------------------------------------------------------
// The Python model server

struct ModelServer {
    child: Child,
    port: u16,
}

impl ModelServer {
    fn start(python: &Path, models: &[(&str, &Path)], intra_op: i64) -> Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let script = repo_root().join("benches/python/model_server.py");
        let mut cmd = Command::new(python);
        cmd.arg(&script)
            .arg("--port")
            .arg(port.to_string())
            .arg("--intra-op")
            .arg(intra_op.to_string())
            .stdout(Stdio::null());
        for (name, path) in models {
            cmd.arg(format!("{name}={}", path.display()));
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", script.display()))?;
        let mut server = ModelServer { child, port };
        let deadline = Instant::now() + Duration::from_secs(120);
        let health = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
        loop {
            if let Some(status) = server.child.try_wait()? {
                bail!("the model server exited ({status}) before answering");
            }
            if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                use std::io::{Read, Write};
                let mut answer = [0u8; 12];
                if stream.write_all(health).is_ok()
                    && stream.read_exact(&mut answer).is_ok()
                    && answer.ends_with(b"200")
                {
                    return Ok(server);
                }
            }
            ensure!(
                Instant::now() < deadline,
                "the model server did not answer in 120 s"
            );
            thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for ModelServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn measure_server(
    opts: &Options,
    python: &Path,
    models: &[ModelSpec],
    report: &mut Report,
) -> Result<()> {
    let mlp = ModelSpec::onnx_fixed(
        "mlp",
        opts.mlp.clone(),
        TensorSpec {
            name: "x".into(),
            dtype: "FLOAT".into(),
            shape: vec![1, 4],
        },
        TensorSpec {
            name: "y".into(),
            dtype: "FLOAT".into(),
            shape: vec![1, 3],
        },
    );
    let mut served = vec![mlp];
    served.extend(models.iter().filter(|m| m.name == "resnet50_onnx").cloned());
    let paths: Vec<(&str, &Path)> = served
        .iter()
        .map(|m| (m.name.as_str(), m.path.as_path()))
        .collect();
    eprintln!("==> starting the Python model server");
    let server = ModelServer::start(python, &paths, opts.intra_op)?;
    let mut con = connect_one(opts.port)?;
    for spec in &served {
        let key = format!("bm:{}", spec.name);
        store_model(&mut con, &key, spec, 0)?;
        let request = Arc::new(HttpClient::request(spec, &spec.name));
        for &n in &opts.clients {
            let mut module: Vec<ModuleClient> = (0..n)
                .map(|i| Ok(ModuleClient::new(connect_one(opts.port)?, spec, &key, i)))
                .collect::<Result<_>>()?;
            let mut http: Vec<HttpClient> = (0..n)
                .map(|_| HttpClient::connect(server.port, request.clone(), spec.output.byte_len()))
                .collect::<Result<_>>()?;
            let (m, s) = alternate(opts, &mut module, 1, &mut http, 1)?;
            eprintln!(
                "    {} clients {n}: module {:.1}/s, model server {:.1}/s",
                spec.name,
                m.rate(),
                s.rate()
            );
            report.server.push(ServerRow {
                model: spec.name.clone(),
                clients: n,
                module: m,
                server: s,
            });
        }
        delete_keys(&mut con, &[&key])?;
    }
    Ok(())
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
    let mut backends = Backends {
        dir: opts.backends.clone(),
        opened: HashMap::new(),
    };
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
    let result = parse_args().and_then(|opts| match opts {
        Some(opts) => run(&opts),
        None => Ok(()),
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bench-models: {err:#}");
            ExitCode::FAILURE
        }
    }
}
