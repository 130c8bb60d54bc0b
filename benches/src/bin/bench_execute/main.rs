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

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitCode, Stdio};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use redis::{Connection, ConnectionLike, Value};
use redisai_onnxruntime::{OnnxBackend, OnnxModel, RUNTIME_LIB_ENV};
use redisai_plugin_api::sdk::{ConfigKey, DType, Device, DeviceKind, TensorRef};

mod frameworks;
mod loaded_plugin;
mod plugin_call;
mod torch;
use plugin_call::PluginCall;

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
  -h, --help            print this help

The in-process ONNX backend loads the runtime library from $REDISAI_ONNXRUNTIME_LIB.";

/// Acceptance targets.
const TARGET_ADDED_P50_US: f64 = 30.0;
const TARGET_LOCALITY_RATIO: f64 = 3.0;
const TARGET_LOCALITY_MIN_CLIENTS: usize = 8;
/// Generous: 32 clients queueing 1 MiB model runs behind one another on one core.
const IO_TIMEOUT: Duration = Duration::from_secs(60);
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
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

// ---------------------------------------------------------------------------------------
// Replies, connections, CPU time

fn expect_ok(reply: Value) -> Result<()> {
    let reply = reply.extract_error()?;
    ensure!(reply == Value::Okay, "expected OK, got {reply:?}");
    Ok(())
}

fn expect_blob(reply: Value, len: usize) -> Result<Vec<u8>> {
    match reply.extract_error()? {
        Value::BulkString(bytes) => {
            ensure!(
                bytes.len() == len,
                "expected {len} bytes, got {}",
                bytes.len()
            );
            Ok(bytes)
        }
        other => bail!("expected a blob, got {other:?}"),
    }
}

/// `AI.TENSORGET key META`: checks that the state is still a FLOAT tensor.
fn expect_float_meta(reply: Value) -> Result<()> {
    let is_float = |v: &Value| match v {
        Value::BulkString(b) => b.as_slice() == b"FLOAT",
        Value::SimpleString(s) => s == "FLOAT",
        _ => false,
    };
    match reply.extract_error()? {
        Value::Array(items) if items.iter().any(is_float) => Ok(()),
        Value::Map(fields) if fields.iter().any(|(_, v)| is_float(v)) => Ok(()),
        other => bail!("expected META of a FLOAT tensor, got {other:?}"),
    }
}

fn connect(host: &str, port: u16, count: usize) -> Result<Vec<Connection>> {
    let url = format!("redis://{host}:{port}/");
    let client = redis::Client::open(url.as_str()).with_context(|| format!("bad url {url}"))?;
    (0..count)
        .map(|_| {
            let con = client
                .get_connection()
                .with_context(|| format!("connecting to {url}"))?;
            con.set_read_timeout(Some(IO_TIMEOUT))?;
            con.set_write_timeout(Some(IO_TIMEOUT))?;
            Ok(con)
        })
        .collect()
}

fn info_field(con: &mut Connection, section: &str, field: &str) -> Result<String> {
    let info: String = redis::cmd("INFO")
        .arg(section)
        .query(con)
        .with_context(|| format!("INFO {section}"))?;
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
        .with_context(|| format!("INFO {section} has no {field}"))
}

/// CPU seconds the server process has used (all its threads).
fn server_cpu(con: &mut Connection) -> Result<f64> {
    let mut total = 0.0;
    for field in ["used_cpu_user", "used_cpu_sys"] {
        let value = info_field(con, "cpu", field)?;
        total += value
            .parse::<f64>()
            .with_context(|| format!("INFO cpu {field}: {value:?}"))?;
    }
    Ok(total)
}

/// CPU seconds this process has used (all its threads).
fn own_cpu() -> Result<f64> {
    // SAFETY: an all-zero rusage is a valid value; getrusage fills the one we own.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: RUSAGE_SELF with a valid pointer.
    let status = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    ensure!(
        status == 0,
        "getrusage: {}",
        std::io::Error::last_os_error()
    );
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok(secs(usage.ru_utime) + secs(usage.ru_stime))
}

/// Which CPUs the server's threads may run on, as "list: n threads" entries, when the
/// server runs on this machine (read from /proc; `None` when it cannot be read).
/// ONNX Runtime may set its pool threads' affinity itself, past the server's taskset.
fn server_thread_cpus(con: &mut Connection) -> Result<Option<String>> {
    let pid = info_field(con, "server", "process_id")?;
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Ok(None);
    };
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for task in tasks.flatten() {
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
            continue;
        };
        if let Some(cpus) = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        {
            *counts.entry(cpus.trim().to_string()).or_default() += 1;
        }
    }
    if counts.is_empty() {
        return Ok(None);
    }
    let entries: Vec<String> = counts
        .iter()
        .map(|(cpus, n)| format!("CPUs {cpus}: {n} thread(s)"))
        .collect();
    Ok(Some(entries.join(", ")))
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

fn tensorset_f32(con: &mut Connection, key: &str, shape: &[i64], data: &[u8]) -> Result<()> {
    let mut cmd = redis::cmd("AI.TENSORSET");
    cmd.arg(key).arg("FLOAT");
    for dim in shape {
        cmd.arg(*dim);
    }
    cmd.arg("BLOB").arg(data);
    expect_ok(cmd.query::<Value>(con)?).with_context(|| format!("AI.TENSORSET {key}"))
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn f32_values(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn close_enough(a: f32, b: f32) -> bool {
    (a - b).abs() <= 1e-4 * (1.0 + a.abs().max(b.abs()))
}

fn read_model(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

// ---------------------------------------------------------------------------------------
// Part 1: overhead

/// The ways one model run is made, measured side by side.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Call {
    Direct,
    DirectAbi,
    Execute,
    ExecuteOnWorker,
    ExecuteGet,
    ExecuteGetPipelined,
    Ping,
}

impl Call {
    const ALL: [Call; 7] = [
        Call::Direct,
        Call::DirectAbi,
        Call::Execute,
        Call::ExecuteOnWorker,
        Call::ExecuteGet,
        Call::ExecuteGetPipelined,
        Call::Ping,
    ];

    fn index(self) -> usize {
        self as usize
    }

    fn label(self) -> &'static str {
        match self {
            Call::Direct => "direct `OnnxBackend::run`, in process (baseline)",
            Call::DirectAbi => {
                "direct through the plugin's C ABI, with a cancel flag and a 5000 ms \
                 timeout (the module's exact backend call), in process"
            }
            Call::Execute => "`AI.MODELEXECUTE`",
            Call::ExecuteOnWorker => {
                "`AI.MODELEXECUTE` with every run on a run-queue thread \
                 (INLINE_EXECUTION_LIMIT_US 0)"
            }
            Call::ExecuteGet => "`AI.MODELEXECUTE`, then `AI.TENSORGET y BLOB`",
            Call::ExecuteGetPipelined => "`AI.MODELEXECUTE` + `AI.TENSORGET y BLOB`, pipelined",
            Call::Ping => "`PING` (a bare round trip, for reference)",
        }
    }

    fn round_trips(self) -> u32 {
        match self {
            Call::Direct | Call::DirectAbi => 0,
            Call::ExecuteGet => 2,
            Call::Execute | Call::ExecuteOnWorker | Call::ExecuteGetPipelined | Call::Ping => 1,
        }
    }

    /// Whether "added" (over the direct baseline) means something for this row.
    fn runs_model(self) -> bool {
        self != Call::Ping
    }
}

/// One MLP case: its model in Redis and in process, and the packed commands.
struct OverheadCase<'a> {
    con: &'a mut Connection,
    backend: &'a OnnxBackend,
    model: OnnxModel,
    /// The same model loaded through the plugin's ABI.
    plugin: PluginCall,
    shape: [i64; 2],
    input: Vec<u8>,
    output_len: usize,
    execute: Vec<u8>,
    get: Vec<u8>,
    execute_get: Vec<u8>,
    ping: Vec<u8>,
}

impl<'a> OverheadCase<'a> {
    fn new(
        con: &'a mut Connection,
        in_process: &'a InProcess,
        name: &str,
        blob: &[u8],
        input_values: &[f32],
    ) -> Result<Self> {
        let backend = &in_process.backend;
        let model = backend
            .load(blob)
            .map_err(|err| anyhow!("loading {name} in process: {}", err.0))?;
        let settings = &in_process.settings;
        let plugin = PluginCall::load(settings.intra_op, settings.inter_op, blob)
            .with_context(|| format!("loading {name} through the plugin ABI"))?;
        let model_key = format!("bench:{name}");
        let (x, y) = (format!("bench:{name}:x"), format!("bench:{name}:y"));
        let shape = [1, input_values.len() as i64];
        let input = f32_bytes(input_values);
        store_model(con, &model_key, blob)?;
        tensorset_f32(con, &x, &shape, &input)?;
        let mut execute = redis::cmd("AI.MODELEXECUTE");
        execute
            .arg(&model_key)
            .arg("INPUTS")
            .arg(1)
            .arg(&x)
            .arg("OUTPUTS")
            .arg(1)
            .arg(&y);
        let execute = execute.get_packed_command();
        let get = redis::cmd("AI.TENSORGET")
            .arg(&y)
            .arg("BLOB")
            .get_packed_command();
        let execute_get = [execute.as_slice(), get.as_slice()].concat();
        let mut case = OverheadCase {
            con,
            backend,
            model,
            plugin,
            shape,
            input,
            output_len: 0,
            execute,
            get,
            execute_get,
            ping: redis::cmd("PING").get_packed_command(),
        };
        case.output_len = case.direct()?.len();
        Ok(case)
    }

    fn input(&self) -> TensorRef<'_> {
        TensorRef {
            dtype: DType::Float,
            device: Device {
                kind: DeviceKind::Cpu,
                id: 0,
            },
            shape: &self.shape,
            data: &self.input,
        }
    }

    /// Runs the model in process; returns the output's bytes.
    fn direct(&self) -> Result<Vec<u8>> {
        let mut outputs = self
            .backend
            .run(&self.model, 0, &[self.input()], 1)
            .map_err(|err| anyhow!("direct run: {}", err.0))?;
        ensure!(
            outputs.len() == 1,
            "direct run: {} outputs, expected 1",
            outputs.len()
        );
        Ok(outputs.swap_remove(0).data)
    }

    /// Checks that the module and the direct call compute the same output, and
    /// returns it.
    fn verify(&mut self) -> Result<Vec<f32>> {
        let direct = f32_values(&self.direct()?);
        let abi_len = self.plugin.run(&self.shape, &self.input)?;
        ensure!(
            abi_len == self.output_len,
            "the run through the plugin ABI gave {abi_len} bytes, expected {}",
            self.output_len
        );
        expect_ok(self.con.req_packed_command(&self.execute)?).context("AI.MODELEXECUTE")?;
        let module = f32_values(&expect_blob(
            self.con.req_packed_command(&self.get)?,
            self.output_len,
        )?);
        ensure!(
            direct.len() == module.len()
                && direct
                    .iter()
                    .zip(&module)
                    .all(|(a, b)| close_enough(*a, *b)),
            "the module's output differs from the direct run's"
        );
        Ok(direct)
    }

    fn once(&mut self, call: Call) -> Result<()> {
        match call {
            Call::Direct => {
                self.direct()?;
            }
            Call::DirectAbi => {
                let len = self.plugin.run(&self.shape, &self.input)?;
                ensure!(len == self.output_len, "ABI run: {len} bytes");
            }
            Call::Execute | Call::ExecuteOnWorker => {
                expect_ok(self.con.req_packed_command(&self.execute)?)?
            }
            Call::ExecuteGet => {
                expect_ok(self.con.req_packed_command(&self.execute)?)?;
                expect_blob(self.con.req_packed_command(&self.get)?, self.output_len)?;
            }
            Call::ExecuteGetPipelined => {
                let mut replies = self
                    .con
                    .req_packed_commands(&self.execute_get, 0, 2)?
                    .into_iter();
                let (Some(first), Some(second)) = (replies.next(), replies.next()) else {
                    bail!("expected two replies");
                };
                expect_ok(first)?;
                expect_blob(second, self.output_len)?;
            }
            Call::Ping => {
                let reply = self.con.req_packed_command(&self.ping)?.extract_error()?;
                ensure!(
                    matches!(&reply, Value::SimpleString(s) if s == "PONG"),
                    "expected PONG, got {reply:?}"
                );
            }
        }
        Ok(())
    }

    /// Latencies (ns) of every path, over `rounds` rounds in a rotating order.
    fn measure(&mut self, seconds: f64, rounds: u32) -> Result<Vec<Vec<u64>>> {
        let inline_limit = InlineLimit::read(self.con)?;
        for call in Call::ALL {
            inline_limit.apply(self.con, call == Call::ExecuteOnWorker)?;
            for _ in 0..50 {
                self.once(call)?;
            }
        }
        let per_call =
            Duration::from_secs_f64(seconds / f64::from(rounds) / Call::ALL.len() as f64);
        let mut samples = vec![Vec::new(); Call::ALL.len()];
        for round in 0..rounds as usize {
            for i in 0..Call::ALL.len() {
                let call = Call::ALL[(i + round) % Call::ALL.len()];
                inline_limit.apply(self.con, call == Call::ExecuteOnWorker)?;
                // Warm-up runs after a change of the limit (a model runs inline only
                // after some fast runs), not counted.
                for _ in 0..20 {
                    self.once(call)?;
                }
                let into = &mut samples[call.index()];
                let start = Instant::now();
                loop {
                    let t0 = Instant::now();
                    self.once(call)?;
                    into.push(t0.elapsed().as_nanos() as u64);
                    if start.elapsed() >= per_call {
                        break;
                    }
                }
            }
        }
        inline_limit.apply(self.con, false)?;
        Ok(samples)
    }
}

/// The server's INLINE_EXECUTION_LIMIT_US, turned off for the paths that measure runs on
/// a run-queue thread and restored for the others.
pub(crate) struct InlineLimit(i64);

impl InlineLimit {
    pub(crate) fn read(con: &mut Connection) -> Result<InlineLimit> {
        let limit: i64 = redis::cmd("AI.CONFIG")
            .arg("GET")
            .arg("INLINE_EXECUTION_LIMIT_US")
            .query(con)
            .context("AI.CONFIG GET INLINE_EXECUTION_LIMIT_US")?;
        Ok(InlineLimit(limit))
    }

    pub(crate) fn apply(&self, con: &mut Connection, off: bool) -> Result<()> {
        let value = if off { 0 } else { self.0 };
        redis::cmd("AI.CONFIG")
            .arg("INLINE_EXECUTION_LIMIT_US")
            .arg(value)
            .query::<()>(con)
            .with_context(|| format!("AI.CONFIG INLINE_EXECUTION_LIMIT_US {value}"))
    }
}

/// The `p`-th percentile (0..=1) of sorted samples, in µs.
fn percentile_us(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64 / 1000.0
}

struct Latency {
    p50: f64,
    p99: f64,
    count: usize,
}

fn latency(mut samples: Vec<u64>) -> Latency {
    samples.sort_unstable();
    Latency {
        p50: percentile_us(&samples, 0.50),
        p99: percentile_us(&samples, 0.99),
        count: samples.len(),
    }
}

/// The small MLP's known result for x = [1, 2, 3, 4] (tests/models/README.md).
const MLP_X: [f32; 4] = [1.0, 2.0, 3.0, 4.0];
const MLP_Y: [f32; 3] = [0.421875, 1.8125, 0.015625];

/// Deterministic inputs for the big MLP, in [-0.5, 0.5].
fn big_input(width: usize) -> Vec<f32> {
    (0..width)
        .map(|i| ((i * 37) % 17) as f32 / 16.0 - 0.5)
        .collect()
}

/// What one model's overhead measurement found.
struct CaseResult {
    name: String,
    width: usize,
    /// Indexed by `Call::index`.
    stats: Vec<Latency>,
    /// The module's own timing of the backend call on its worker (AI.INFO), in µs.
    module_run_p50: f64,
    module_run_p99: f64,
}

impl CaseResult {
    fn get(&self, call: Call) -> &Latency {
        &self.stats[call.index()]
    }

    /// `call` minus the direct baseline, at p50 and p99.
    fn added(&self, call: Call) -> (f64, f64) {
        let (s, base) = (self.get(call), self.get(Call::Direct));
        (s.p50 - base.p50, s.p99 - base.p99)
    }
}

/// `duration_p50` and `duration_p99` (µs) of `AI.INFO key`.
fn module_run_percentiles(con: &mut Connection, key: &str) -> Result<(f64, f64)> {
    let reply: Vec<Value> = redis::cmd("AI.INFO")
        .arg(key)
        .query(con)
        .with_context(|| format!("AI.INFO {key}"))?;
    let field = |name: &str| -> Result<f64> {
        reply
            .chunks_exact(2)
            .find_map(|pair| match (&pair[0], &pair[1]) {
                (Value::SimpleString(k), Value::Int(v)) if k == name => Some(*v as f64),
                (Value::BulkString(k), Value::Int(v)) if k.as_slice() == name.as_bytes() => {
                    Some(*v as f64)
                }
                _ => None,
            })
            .with_context(|| format!("AI.INFO {key} has no {name}"))
    };
    Ok((field("duration_p50")?, field("duration_p99")?))
}

/// Measures one model.
fn overhead_case(
    opts: &Options,
    con: &mut Connection,
    in_process: &InProcess,
    name: &str,
    path: &Path,
    input: &[f32],
    expected: Option<&[f32]>,
) -> Result<CaseResult> {
    let blob = read_model(path)?;
    let mut case = OverheadCase::new(con, in_process, name, &blob, input)?;
    let output = case.verify()?;
    if let Some(expected) = expected {
        ensure!(
            output.len() == expected.len()
                && output
                    .iter()
                    .zip(expected)
                    .all(|(a, b)| close_enough(*a, *b)),
            "{name}: output {output:?}, expected {expected:?}"
        );
    }
    eprintln!(
        "==> overhead: {name} ({} s in {} rounds)",
        opts.overhead_seconds, opts.overhead_rounds
    );
    let model_key = format!("bench:{name}");
    let samples = case.measure(opts.overhead_seconds, opts.overhead_rounds)?;
    let (module_run_p50, module_run_p99) = module_run_percentiles(case.con, &model_key)?;
    let mut del = redis::cmd("DEL");
    del.arg(&model_key)
        .arg(format!("{model_key}:x"))
        .arg(format!("{model_key}:y"));
    del.query::<i64>(case.con)
        .context("DEL of the bench keys")?;
    Ok(CaseResult {
        name: name.to_string(),
        width: input.len(),
        stats: samples.into_iter().map(latency).collect(),
        module_run_p50,
        module_run_p99,
    })
}

/// The in-process side of the comparison: the backend, with the server's settings.
struct InProcess {
    backend: OnnxBackend,
    settings: ModuleSettings,
}

/// The module arguments that matter here, as the server reports them (INFO MODULES).
struct ModuleSettings {
    threads_per_queue: i64,
    intra_op: i64,
    inter_op: i64,
}

fn module_settings(con: &mut Connection) -> Result<ModuleSettings> {
    let mut get = |field: &str| -> Result<i64> {
        let value = info_field(con, "modules", field)?;
        value
            .parse()
            .with_context(|| format!("INFO modules {field}: {value:?}"))
    };
    Ok(ModuleSettings {
        threads_per_queue: get("ai_threads_per_queue")?,
        intra_op: get("ai_intra_op_parallelism")?,
        inter_op: get("ai_inter_op_parallelism")?,
    })
}

fn run_overhead(opts: &Options, con: &mut Connection) -> Result<()> {
    ensure!(
        std::env::var_os(RUNTIME_LIB_ENV).is_some_and(|p| !p.is_empty()),
        "set {RUNTIME_LIB_ENV} to the path of libonnxruntime.so.1.32.0 (scripts/bench-execute does)"
    );
    // The server's thread settings, so both sides build the same session; no timeout
    // (`Call::DirectAbi` has the module's).
    let settings = module_settings(con)?;
    let (intra, inter) = (settings.intra_op, settings.inter_op);
    let backend = OnnxBackend::new(move |key: ConfigKey| match key {
        ConfigKey::IntraOpParallelism => intra,
        ConfigKey::InterOpParallelism => inter,
        _ => 0,
    })
    .map_err(|err| anyhow!("starting the ONNX backend in process: {}", err.0))?;
    let in_process = InProcess { backend, settings };

    let mut results = vec![overhead_case(
        opts,
        con,
        &in_process,
        "mlp",
        &opts.mlp,
        &MLP_X,
        Some(&MLP_Y),
    )?];
    if let Some(path) = &opts.mlp_big {
        results.push(overhead_case(
            opts,
            con,
            &in_process,
            "mlp_big",
            path,
            &big_input(512),
            None,
        )?);
    }

    println!(
        "### Overhead: AI.MODELEXECUTE vs a direct in-process run (1 client; {})",
        opts.placement
    );
    println!();
    println!(
        "{} s per model in {} rounds, paths rotating; latency in µs; \"added\" = this path \
         minus the direct baseline at the same percentile. Both sides: \
         INTRA_OP_PARALLELISM {intra}, INTER_OP_PARALLELISM {inter} (0: ONNX Runtime's default).",
        opts.overhead_seconds, opts.overhead_rounds
    );
    println!();
    println!(
        "| model | path | round trips | p50 µs | p99 µs | added p50 µs | added p99 µs | ops |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for result in &results {
        for call in Call::ALL {
            let s = result.get(call);
            let (added50, added99) = if call.runs_model() && call != Call::Direct {
                let (p50, p99) = result.added(call);
                (format!("{p50:+.1}"), format!("{p99:+.1}"))
            } else {
                (String::new(), String::new())
            };
            println!(
                "| {} [1, {}] | {} | {} | {:.1} | {:.1} | {added50} | {added99} | {} |",
                result.name,
                result.width,
                call.label(),
                call.round_trips(),
                s.p50,
                s.p99,
                s.count
            );
        }
    }
    println!();
    println!("Where the added time goes, at p50 (approximate: percentiles do not add up exactly):");
    println!();
    for result in &results {
        let execute = result.get(Call::Execute).p50;
        let on_worker = result.get(Call::ExecuteOnWorker).p50;
        let ping = result.get(Call::Ping).p50;
        let direct = result.get(Call::Direct).p50;
        let abi = result.get(Call::DirectAbi).p50;
        let rest = execute - ping - result.module_run_p50;
        println!(
            "- {}: AI.MODELEXECUTE {execute:.0} µs = a bare round trip (PING) {ping:.0} µs \
             + the backend call in the module {:.0} µs (AI.INFO duration_p50 over every \
             run, inline or not; p99 {:.0}), where the same call through the ABI takes \
             {abi:.1} µs in process and the plain run {direct:.1} µs, + {rest:.0} µs for the \
             rest (parsing, key lookup, writing the output key, the reply). With every run \
             on a run-queue thread it takes {on_worker:.0} µs: the hand-off to the thread \
             and back costs {:.0} µs.",
            result.name,
            result.module_run_p50,
            result.module_run_p99,
            on_worker - execute
        );
    }
    println!();
    let (p50, p99) = results[0].added(Call::Execute);
    let verdict = if p50 <= TARGET_ADDED_P50_US {
        "met"
    } else {
        "NOT met"
    };
    println!(
        "**target: ≤ {TARGET_ADDED_P50_US} µs added at p50 for the small MLP ({}): {verdict}** \
         (AI.MODELEXECUTE adds {p50:.1} µs at p50, {p99:.1} µs at p99 over the direct run)",
        opts.placement
    );
    match results.get(1) {
        Some(big) => {
            let (p50, p99) = big.added(Call::Execute);
            println!("(mlp_big, for comparison: {p50:.1} µs added at p50, {p99:.1} µs at p99)");
        }
        None => {
            println!("(mlp_big not measured: no model file; run scripts/gen-test-models --bench)")
        }
    }
    println!();
    torch::run_overhead(opts, con)
}

// ---------------------------------------------------------------------------------------
// Part 2: data locality

/// One way of doing the state update, a column group of the table.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// `AI.MODELEXECUTE upd INPUTS 1 state OUTPUTS 1 state` on server `server` (0: the
    /// one with the plain settings), pipelined with `AI.TENSORGET state META` if `meta`.
    Module { server: usize, meta: bool },
    /// The Python service: GET, onnxruntime, SET, against server 0.
    ClientSide,
}

/// A server the module variants run on, with Rust client connections to it.
struct Server {
    /// How its module arguments differ from server 0's ("" for server 0).
    label: String,
    conns: Vec<Connection>,
}

/// Rate and CPU of one measurement.
#[derive(Clone, Copy, Default)]
struct Sample {
    rate: f64,
    ops: u64,
    server_cpu_s: f64,
    client_cpu_s: f64,
}

#[derive(Clone, Copy, Default)]
struct Totals {
    rate_sum: f64,
    rounds: u32,
    ops: u64,
    server_cpu_s: f64,
    client_cpu_s: f64,
}

impl Totals {
    fn add(&mut self, sample: Sample) {
        self.rate_sum += sample.rate;
        self.rounds += 1;
        self.ops += sample.ops;
        self.server_cpu_s += sample.server_cpu_s;
        self.client_cpu_s += sample.client_cpu_s;
    }

    fn rate(&self) -> f64 {
        self.rate_sum / f64::from(self.rounds.max(1))
    }

    fn cpu_us_per_op(&self) -> f64 {
        (self.server_cpu_s + self.client_cpu_s) * 1e6 / self.ops.max(1) as f64
    }

    /// "total (server + client)" CPU µs per op.
    fn cpu_cell(&self) -> String {
        let per_op = |s: f64| s * 1e6 / self.ops.max(1) as f64;
        format!(
            "{:.0} ({:.0} + {:.0})",
            self.cpu_us_per_op(),
            per_op(self.server_cpu_s),
            per_op(self.client_cpu_s)
        )
    }
}

fn state_key(client: usize) -> String {
    format!("bench:state:{client}")
}

const UPDATE_MODEL_KEY: &str = "bench:upd";

/// The packed op of client `client`: execute, optionally pipelined with META.
fn state_op(client: usize, meta: bool) -> (Vec<u8>, usize) {
    let key = state_key(client);
    let mut execute = redis::cmd("AI.MODELEXECUTE");
    execute
        .arg(UPDATE_MODEL_KEY)
        .arg("INPUTS")
        .arg(1)
        .arg(&key)
        .arg("OUTPUTS")
        .arg(1)
        .arg(&key);
    let mut packed = execute.get_packed_command();
    if meta {
        packed.extend(
            redis::cmd("AI.TENSORGET")
                .arg(&key)
                .arg("META")
                .get_packed_command(),
        );
        (packed, 2)
    } else {
        (packed, 1)
    }
}

fn check_state_replies(replies: Vec<Value>) -> Result<()> {
    let mut replies = replies.into_iter();
    expect_ok(replies.next().context("no reply")?)?;
    if let Some(meta) = replies.next() {
        expect_float_meta(meta)?;
    }
    Ok(())
}

/// Sets every client's state to the initial value, runs one update and checks the
/// result, then warms up.
fn prepare_states(conns: &mut [Connection]) -> Result<()> {
    let initial = f32_bytes(&vec![STATE_INITIAL; STATE_ELEMENTS]);
    let expected = STATE_INITIAL * 0.99 + 0.01;
    for (client, con) in conns.iter_mut().enumerate() {
        let key = state_key(client);
        tensorset_f32(con, &key, &[1, STATE_ELEMENTS as i64], &initial)?;
        let (op, n) = state_op(client, false);
        check_state_replies(con.req_packed_commands(&op, 0, n)?)
            .with_context(|| format!("AI.MODELEXECUTE on {key}"))?;
        let get = redis::cmd("AI.TENSORGET")
            .arg(&key)
            .arg("BLOB")
            .get_packed_command();
        let state = f32_values(&expect_blob(
            con.req_packed_command(&get)?,
            STATE_ELEMENTS * 4,
        )?);
        ensure!(
            state.iter().all(|v| close_enough(*v, expected)),
            "{key}: the state was not updated to {expected} (first value {:?})",
            state.first()
        );
        for _ in 0..3 {
            check_state_replies(con.req_packed_commands(&op, 0, n)?)?;
        }
    }
    Ok(())
}

/// Runs the module's state update on every connection concurrently for `duration`.
/// The rate is the sum of each client's own rate; the CPU is the server's and this
/// process's.
fn measure_module(conns: &mut [Connection], meta: bool, duration: Duration) -> Result<Sample> {
    let server_before = server_cpu(&mut conns[0])?;
    let own_before = own_cpu()?;
    let barrier = Barrier::new(conns.len());
    let results = thread::scope(|scope| {
        let handles: Vec<_> = conns
            .iter_mut()
            .enumerate()
            .map(|(client, con)| {
                let (op, n) = state_op(client, meta);
                let barrier = &barrier;
                scope.spawn(move || -> Result<(u64, f64)> {
                    barrier.wait();
                    let start = Instant::now();
                    let mut ops = 0u64;
                    loop {
                        check_state_replies(con.req_packed_commands(&op, 0, n)?)
                            .with_context(|| format!("state update (client {client})"))?;
                        ops += 1;
                        let elapsed = start.elapsed();
                        if elapsed >= duration {
                            return Ok((ops, ops as f64 / elapsed.as_secs_f64()));
                        }
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| bail!("a client thread panicked"))
            })
            .collect::<Result<Vec<(u64, f64)>>>()
    })?;
    Ok(Sample {
        rate: results.iter().map(|r| r.1).sum(),
        ops: results.iter().map(|r| r.0).sum(),
        server_cpu_s: server_cpu(&mut conns[0])? - server_before,
        client_cpu_s: own_cpu()? - own_before,
    })
}

fn delete_states(con: &mut Connection, clients: usize) -> Result<()> {
    let mut del = redis::cmd("DEL");
    for client in 0..clients {
        del.arg(state_key(client));
    }
    del.query::<i64>(con).context("DEL of the state keys")?;
    Ok(())
}

/// The Python client-side service (benches/python/client_side_state.py), driven over
/// its stdin/stdout. Killed when dropped before `quit`.
struct ClientSide {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    versions: serde_json::Value,
}

impl ClientSide {
    fn start(opts: &Options, python: &Path, port: u16, workers: usize) -> Result<Self> {
        let mut child = Command::new(python)
            .arg(&opts.helper)
            .args(["--host", &opts.host])
            .args(["--port", &port.to_string()])
            .arg("--model")
            .arg(&opts.state_model)
            .args(["--workers", &workers.to_string()])
            .args(["--intra-threads", &opts.py_intra_threads.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {} {}", python.display(), opts.helper.display()))?;
        let stdin = child.stdin.take().context("helper stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("helper stdout")?);
        let mut helper = ClientSide {
            child,
            stdin,
            stdout,
            versions: serde_json::Value::Null,
        };
        let ready = helper.reply()?;
        ensure!(
            ready["ready"] == true,
            "unexpected first line from the helper: {ready}"
        );
        helper.versions = ready;
        Ok(helper)
    }

    fn reply(&mut self) -> Result<serde_json::Value> {
        let mut line = String::new();
        let n = self
            .stdout
            .read_line(&mut line)
            .context("reading from the helper")?;
        ensure!(n > 0, "the Python helper exited early (its error is above)");
        serde_json::from_str(&line).with_context(|| format!("bad line from the helper: {line:?}"))
    }

    fn measure(&mut self, con: &mut Connection, duration: Duration) -> Result<Sample> {
        let server_before = server_cpu(con)?;
        let own_before = own_cpu()?;
        writeln!(self.stdin, "run {}", duration.as_secs_f64())?;
        self.stdin.flush()?;
        let reply = self.reply()?;
        let number = |field: &str| {
            reply[field]
                .as_f64()
                .with_context(|| format!("helper reply has no {field}: {reply}"))
        };
        let (rate, ops, workers_cpu) = (number("rate")?, number("ops")?, number("cpu_s")?);
        Ok(Sample {
            rate,
            ops: ops as u64,
            server_cpu_s: server_cpu(con)? - server_before,
            client_cpu_s: workers_cpu + own_cpu()? - own_before,
        })
    }

    fn quit(mut self) -> Result<()> {
        writeln!(self.stdin, "quit")?;
        self.stdin.flush()?;
        let status = self.child.wait()?;
        ensure!(status.success(), "the Python helper failed: {status}");
        Ok(())
    }
}

impl Drop for ClientSide {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Measures every variant at `clients` clients, in rotating order over the rounds.
fn locality_row(
    opts: &Options,
    servers: &mut [Server],
    variants: &[Variant],
    clients: usize,
) -> Result<(Vec<Totals>, Option<serde_json::Value>)> {
    for server in servers.iter_mut() {
        prepare_states(&mut server.conns[..clients])?;
    }
    let mut helper = match &opts.python {
        Some(python) if variants.contains(&Variant::ClientSide) => {
            eprintln!("==> locality: starting {clients} Python worker(s)");
            Some(ClientSide::start(opts, python, opts.port, clients)?)
        }
        _ => None,
    };
    eprintln!(
        "==> locality: {clients} client(s), {} s per variant in {} rounds",
        opts.locality_seconds, opts.locality_rounds
    );
    let per_round =
        Duration::from_secs_f64(opts.locality_seconds / f64::from(opts.locality_rounds));
    let mut totals = vec![Totals::default(); variants.len()];
    for round in 0..opts.locality_rounds as usize {
        for i in 0..variants.len() {
            let index = (i + round) % variants.len();
            let sample = match variants[index] {
                Variant::Module { server, meta } => {
                    measure_module(&mut servers[server].conns[..clients], meta, per_round)?
                }
                Variant::ClientSide => match helper.as_mut() {
                    Some(helper) => helper.measure(&mut servers[0].conns[0], per_round)?,
                    None => bail!("no Python helper"),
                },
            };
            totals[index].add(sample);
        }
    }
    let versions = match helper {
        Some(helper) => {
            let versions = helper.versions.clone();
            helper.quit()?;
            Some(versions)
        }
        None => None,
    };
    for server in servers.iter_mut() {
        delete_states(&mut server.conns[0], clients)?;
    }
    Ok((totals, versions))
}

fn run_locality(opts: &Options, servers: &mut [Server]) -> Result<()> {
    let blob = read_model(&opts.state_model)?;
    for server in servers.iter_mut() {
        store_model(&mut server.conns[0], UPDATE_MODEL_KEY, &blob)?;
    }
    let mut variants = vec![Variant::Module {
        server: 0,
        meta: false,
    }];
    if opts.meta {
        variants.push(Variant::Module {
            server: 0,
            meta: true,
        });
    }
    variants.extend((1..servers.len()).map(|server| Variant::Module {
        server,
        meta: false,
    }));
    if opts.python.is_some() {
        variants.push(Variant::ClientSide);
    }
    let mut rows = Vec::new();
    let mut versions = None;
    for &clients in &opts.clients {
        let (totals, v) = locality_row(opts, servers, &variants, clients)
            .with_context(|| format!("data locality with {clients} client(s)"))?;
        rows.push((clients, totals));
        versions = versions.or(v);
    }
    // While the model is loaded: its session's threads are there.
    let mut thread_cpus = Vec::new();
    for server in servers.iter_mut() {
        if let Some(cpus) = server_thread_cpus(&mut server.conns[0])? {
            let name = if server.label.is_empty() {
                "plain settings".to_string()
            } else {
                server.label.clone()
            };
            thread_cpus.push(format!(
                "- CPUs the server's threads may use ({name}): {cpus}"
            ));
        }
    }
    for server in servers.iter_mut() {
        redis::cmd("DEL")
            .arg(UPDATE_MODEL_KEY)
            .query::<i64>(&mut server.conns[0])?;
    }
    let settings = module_settings(&mut servers[0].conns[0])?;

    println!("### Data locality: a 1 MiB state updated in place vs GET, run, SET from a client");
    println!();
    println!(
        "`state_update.onnx` (FLOAT [1, 262144] -> state * 0.99 + 0.01), each client its own \
         key; {} s per variant and client count in {} rounds, variants rotating; ops/s is the \
         sum of the clients' rates. module: Rust clients (one thread and connection each), \
         `AI.MODELEXECUTE upd INPUTS 1 state:i OUTPUTS 1 state:i`; server with \
         THREADS_PER_QUEUE {}, INTRA_OP_PARALLELISM {}, INTER_OP_PARALLELISM {} unless a \
         column says otherwise. client-side: Python worker processes, each with its own \
         connection and InferenceSession (intra_op_num_threads {}, inter_op_num_threads 1): \
         GET, np.frombuffer, session.run, SET of a plain string key. CPU µs/op: CPU time of \
         the server and of the clients, per op.",
        opts.locality_seconds,
        opts.locality_rounds,
        settings.threads_per_queue,
        settings.intra_op,
        settings.inter_op,
        opts.py_intra_threads
    );
    if let Some(v) = &versions {
        println!();
        println!(
            "Python side: onnxruntime {}, numpy {}, redis-py {} (hiredis parser: {}).",
            v["onnxruntime"], v["numpy"], v["redis"], v["hiredis"]
        );
    }
    println!();
    let mut header = "| clients |".to_string();
    let mut align = "|---:|".to_string();
    for variant in &variants {
        let (name, cpu) = match *variant {
            Variant::Module { server: 0, meta } => {
                if meta {
                    ("module + META".to_string(), false)
                } else {
                    ("module".to_string(), true)
                }
            }
            Variant::Module { server, .. } => (format!("module, {}", servers[server].label), true),
            Variant::ClientSide => ("client-side".to_string(), true),
        };
        header += &format!(" {name} ops/s |");
        align += "---:|";
        if cpu {
            header += &format!(" {name} CPU µs/op (server + clients) |");
            align += "---:|";
        }
    }
    let client_side = variants.iter().position(|v| *v == Variant::ClientSide);
    if client_side.is_some() {
        header += " ratio (ops/s) | ratio (CPU/op) |";
        align += "---:|---:|";
    }
    println!("{header}");
    println!("{align}");
    let mut worst: Option<(f64, usize)> = None;
    for (clients, totals) in &rows {
        let mut line = format!("| {clients} |");
        for (variant, t) in variants.iter().zip(totals) {
            line += &format!(" {:.0} |", t.rate());
            if *variant
                != (Variant::Module {
                    server: 0,
                    meta: true,
                })
            {
                line += &format!(" {} |", t.cpu_cell());
            }
        }
        if let Some(index) = client_side {
            let (module, client) = (&totals[0], &totals[index]);
            let ratio = module.rate() / client.rate();
            line += &format!(
                " {ratio:.2} | {:.2} |",
                client.cpu_us_per_op() / module.cpu_us_per_op()
            );
            if *clients >= TARGET_LOCALITY_MIN_CLIENTS && worst.is_none_or(|(w, _)| ratio < w) {
                worst = Some((ratio, *clients));
            }
        }
        println!("{line}");
    }
    println!();
    if !thread_cpus.is_empty() {
        println!(
            "Thread placement, read from /proc with the model loaded (with INTRA_OP_PARALLELISM \
             0, ONNX Runtime sets the affinity of its own intra-op pool threads, whatever \
             taskset gave the server):"
        );
        println!();
        for line in &thread_cpus {
            println!("{line}");
        }
        println!();
    }
    if client_side.is_some() {
        println!(
            "ratio (ops/s) = module ops/s ÷ client-side ops/s; ratio (CPU/op) = client-side \
             CPU per op ÷ module CPU per op (module = the plain-settings server, no META)."
        );
        println!();
    }
    let target = format!(
        "≥ {TARGET_LOCALITY_RATIO}x module/client-side throughput at \
         {TARGET_LOCALITY_MIN_CLIENTS}+ clients"
    );
    match worst {
        Some((ratio, clients)) => {
            let verdict = if ratio >= TARGET_LOCALITY_RATIO {
                "met"
            } else {
                "NOT met"
            };
            println!(
                "**target: {target}: {verdict}** (lowest ratio {ratio:.2}, at {clients} clients)"
            );
        }
        None => println!(
            "**target: {target}: not measured** (needs --python and a client count ≥ \
             {TARGET_LOCALITY_MIN_CLIENTS})"
        ),
    }
    println!();
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Options and main

fn parse_positive<T: std::str::FromStr + PartialOrd + Default>(s: &str) -> Result<T> {
    let value: T = s.trim().parse().map_err(|_| anyhow!("not a number"))?;
    ensure!(value > T::default(), "must be positive");
    Ok(value)
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

/// Cores online, whatever this process's affinity.
fn total_cores() -> libc::c_long {
    // SAFETY: sysconf only reads a system setting.
    unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }
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
            std::fs::read_to_string("/proc/loadavg")
                .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
                .unwrap_or_else(|_| "unknown".into())
        );
        println!();
    }
    let cores = thread::available_parallelism().map_or(0, |n| n.get());
    eprintln!("==> bench-execute: this process may use {cores} core(s)");
    if opts.overhead {
        run_overhead(opts, &mut servers[0].conns[0])?;
        let settings = module_settings(&mut servers[0].conns[0])?;
        frameworks::run(
            &mut servers[0].conns[0],
            opts.overhead_seconds,
            opts.overhead_rounds,
            settings.intra_op,
            settings.inter_op,
        )?;
    }
    if opts.locality {
        run_locality(opts, &mut servers)?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let result = parse_args().and_then(|opts| match opts {
        Some(opts) => run(&opts),
        None => {
            println!("{USAGE}");
            Ok(())
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("bench-execute: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
