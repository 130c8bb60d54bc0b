//! Helpers shared by the bench binaries: connections, reply checks, model and tensor
//! setup, latency percentiles, option parsing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, ensure, Context, Result};
use redis::{Connection, Value};

/// Generous: 32 clients queueing model runs behind one another on one core.
pub const IO_TIMEOUT: Duration = Duration::from_secs(60);

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `$REDISAI_CACHE_DIR/models/mlp_big.onnx` (default `.cache/`), when it exists.
pub fn default_mlp_big() -> Option<PathBuf> {
    let cache = std::env::var_os("REDISAI_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".cache"));
    let path = cache.join("models/mlp_big.onnx");
    path.is_file().then_some(path)
}

pub fn connect(host: &str, port: u16, count: usize) -> Result<Vec<Connection>> {
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

pub fn expect_ok(reply: Value) -> Result<()> {
    let reply = reply.extract_error()?;
    ensure!(reply == Value::Okay, "expected OK, got {reply:?}");
    Ok(())
}

pub fn expect_blob(reply: Value, len: usize) -> Result<Vec<u8>> {
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

pub fn info_field(con: &mut Connection, section: &str, field: &str) -> Result<String> {
    let info: String = redis::cmd("INFO")
        .arg(section)
        .query(con)
        .with_context(|| format!("INFO {section}"))?;
    info.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
        .with_context(|| format!("INFO {section} has no {field}"))
}

/// Fails early, with a hint, when the server lacks one of `commands`.
pub fn check_commands(con: &mut Connection, commands: &[&str]) -> Result<()> {
    let mut cmd = redis::cmd("COMMAND");
    cmd.arg("INFO");
    for name in commands {
        cmd.arg(*name);
    }
    let info: Vec<Value> = cmd.query(con).context("COMMAND INFO")?;
    ensure!(
        info.iter().all(|c| *c != Value::Nil),
        "the server does not know {}: is the RedisAI module loaded?",
        commands.join("/")
    );
    Ok(())
}

/// The module arguments that matter for these benches, as INFO MODULES reports them.
pub fn module_settings(con: &mut Connection) -> Result<String> {
    let mut parts = Vec::new();
    for (field, name) in [
        ("ai_threads_per_queue", "THREADS_PER_QUEUE"),
        ("ai_intra_op_parallelism", "INTRA_OP_PARALLELISM"),
        ("ai_inter_op_parallelism", "INTER_OP_PARALLELISM"),
    ] {
        parts.push(format!("{name} {}", info_field(con, "modules", field)?));
    }
    Ok(parts.join(", "))
}

/// Which CPUs the server's threads may run on, as "CPUs list: n thread(s)" entries, when
/// the server runs on this machine (read from /proc; `None` when it cannot be read).
/// ONNX Runtime may set its pool threads' affinity itself, past the server's taskset.
pub fn server_thread_cpus(con: &mut Connection) -> Result<Option<String>> {
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

/// `AI.MODELSTORE key ONNX CPU [NAME value ...] BLOB blob`, e.g. with
/// `[("BATCHSIZE", 32)]`.
pub fn store_onnx_model(
    con: &mut Connection,
    key: &str,
    batching: &[(&str, u32)],
    blob: &[u8],
) -> Result<()> {
    let mut cmd = redis::cmd("AI.MODELSTORE");
    cmd.arg(key).arg("ONNX").arg("CPU");
    for (name, value) in batching {
        cmd.arg(*name).arg(*value);
    }
    cmd.arg("BLOB").arg(blob);
    let reply = cmd
        .query::<Value>(con)
        .with_context(|| format!("AI.MODELSTORE {key}"))?;
    expect_ok(reply).with_context(|| format!("AI.MODELSTORE {key}"))
}

/// CPU seconds the server process has used (all its threads), from INFO cpu.
pub fn server_cpu(con: &mut Connection) -> Result<f64> {
    let mut total = 0.0;
    for field in ["used_cpu_user", "used_cpu_sys"] {
        let value = info_field(con, "cpu", field)?;
        total += value
            .parse::<f64>()
            .with_context(|| format!("INFO cpu {field}: {value:?}"))?;
    }
    Ok(total)
}

pub fn tensorset_f32(con: &mut Connection, key: &str, shape: &[i64], data: &[u8]) -> Result<()> {
    let mut cmd = redis::cmd("AI.TENSORSET");
    cmd.arg(key).arg("FLOAT");
    for dim in shape {
        cmd.arg(*dim);
    }
    cmd.arg("BLOB").arg(data);
    expect_ok(cmd.query::<Value>(con)?).with_context(|| format!("AI.TENSORSET {key}"))
}

pub fn tensorget_blob(con: &mut Connection, key: &str, len: usize) -> Result<Vec<u8>> {
    let reply = redis::cmd("AI.TENSORGET")
        .arg(key)
        .arg("BLOB")
        .query::<Value>(con)
        .with_context(|| format!("AI.TENSORGET {key} BLOB"))?;
    expect_blob(reply, len).with_context(|| format!("AI.TENSORGET {key} BLOB"))
}

pub fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

pub fn f32_values(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

pub fn close_enough(a: f32, b: f32) -> bool {
    (a - b).abs() <= 1e-4 * (1.0 + a.abs().max(b.abs()))
}

pub fn all_close(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| close_enough(*x, *y))
}

pub fn read_model(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// Deterministic inputs for the big MLP, in [-0.5, 0.5); `seed` varies them per client.
pub fn big_input(width: usize, seed: usize) -> Vec<f32> {
    (0..width)
        .map(|i| ((i * 37 + seed * 11) % 17) as f32 / 16.0 - 0.5)
        .collect()
}

/// Latency percentiles of a set of samples (ns in, µs out).
#[derive(Clone, Copy)]
pub struct Latency {
    pub p50: f64,
    pub p99: f64,
}

pub fn latency(samples: &mut [u64]) -> Latency {
    samples.sort_unstable();
    let at = |p: f64| {
        if samples.is_empty() {
            return f64::NAN;
        }
        let rank = ((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
        samples[rank - 1] as f64 / 1000.0
    };
    Latency {
        p50: at(0.50),
        p99: at(0.99),
    }
}

/// What one client did in one measurement: ops, its own rate, and every op's latency (ns).
pub struct ClientRun {
    pub ops: u64,
    pub rate: f64,
    pub latencies: Vec<u64>,
}

/// Every connection's client (one thread each, starting together) calls
/// `once(client, connection)` back to back until `duration` has passed; their counts,
/// rates and latencies (ns).
pub fn closed_loops(
    conns: &mut [Connection],
    duration: Duration,
    once: impl Fn(usize, &mut Connection) -> Result<()> + Sync,
) -> Result<Vec<ClientRun>> {
    let barrier = std::sync::Barrier::new(conns.len());
    std::thread::scope(|scope| {
        let handles: Vec<_> = conns
            .iter_mut()
            .enumerate()
            .map(|(client, con)| {
                let (barrier, once) = (&barrier, &once);
                scope.spawn(move || closed_loop(barrier, duration, || once(client, con)))
            })
            .collect();
        join_all(handles)
    })
}

/// One client's closed loop: waits at `barrier` for the others, then calls `once` back to
/// back until `duration` has passed.
fn closed_loop(
    barrier: &std::sync::Barrier,
    duration: Duration,
    mut once: impl FnMut() -> Result<()>,
) -> Result<ClientRun> {
    let mut latencies = Vec::with_capacity(4096);
    barrier.wait();
    let start = std::time::Instant::now();
    loop {
        let t0 = std::time::Instant::now();
        once()?;
        latencies.push(t0.elapsed().as_nanos() as u64);
        let elapsed = start.elapsed();
        if elapsed >= duration {
            let ops = latencies.len() as u64;
            return Ok(ClientRun {
                ops,
                rate: ops as f64 / elapsed.as_secs_f64(),
                latencies,
            });
        }
    }
}

/// Joins the client threads of a `thread::scope`, turning a panic into an error.
pub fn join_all<T>(handles: Vec<std::thread::ScopedJoinHandle<'_, Result<T>>>) -> Result<Vec<T>> {
    handles
        .into_iter()
        .map(|h| {
            h.join()
                .unwrap_or_else(|_| bail!("a client thread panicked"))
        })
        .collect()
}

pub fn parse_positive<T: std::str::FromStr + PartialOrd + Default>(s: &str) -> Result<T> {
    let value: T = s.trim().parse().map_err(|_| anyhow!("not a number"))?;
    ensure!(value > T::default(), "must be positive");
    Ok(value)
}

pub fn parse_list<T: std::str::FromStr + PartialOrd + Default>(s: &str) -> Result<Vec<T>> {
    let items = s
        .split(',')
        .map(parse_positive)
        .collect::<Result<Vec<T>>>()?;
    ensure!(!items.is_empty(), "empty list");
    Ok(items)
}

/// CPU time counters, to tell how much of the machine other work took meanwhile.
#[derive(Clone, Copy)]
pub struct CpuSnapshot {
    /// Busy time of all cores (/proc/stat: user, nice, system, irq, softirq), seconds;
    /// NaN where it cannot be read.
    machine_s: f64,
    /// Time the hypervisor gave this machine's cores to others (/proc/stat steal).
    steal_s: f64,
    /// This process's CPU time.
    own_s: f64,
    /// The server's CPU time (INFO cpu).
    pub server_s: f64,
}

/// What other work took from the machine between two snapshots, in CPU seconds.
#[derive(Clone, Copy, Default)]
pub struct OtherLoad {
    /// Busy time that neither this process nor the server used: other processes, and
    /// interrupt work not charged to either.
    pub procs_s: f64,
    /// Steal: time the hypervisor ran something else on this machine's cores.
    pub steal_s: f64,
}

impl OtherLoad {
    pub fn add(&mut self, other: OtherLoad) {
        self.procs_s += other.procs_s;
        self.steal_s += other.steal_s;
    }

    /// "procs + steal" in cores, over `wall_s` seconds.
    pub fn cell(&self, wall_s: f64) -> String {
        let wall_s = wall_s.max(1e-9);
        format!(
            "{:.2} + {:.2}",
            self.procs_s / wall_s,
            self.steal_s / wall_s
        )
    }
}

impl CpuSnapshot {
    pub fn take(con: &mut Connection) -> Result<CpuSnapshot> {
        let (machine_s, steal_s) = machine_busy_s().unwrap_or((f64::NAN, f64::NAN));
        Ok(CpuSnapshot {
            machine_s,
            steal_s,
            own_s: own_cpu()?,
            server_s: server_cpu(con)?,
        })
    }

    /// What other work took since `earlier` (NaN if /proc/stat is unreadable).
    pub fn others_since(&self, earlier: &CpuSnapshot) -> OtherLoad {
        let machine = self.machine_s - earlier.machine_s;
        let ours = (self.own_s - earlier.own_s) + (self.server_s - earlier.server_s);
        OtherLoad {
            procs_s: (machine - ours).max(0.0),
            steal_s: self.steal_s - earlier.steal_s,
        }
    }
}

/// Busy and steal CPU seconds of the whole machine since boot, from the first line of
/// /proc/stat.
fn machine_busy_s() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let fields: Vec<f64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is inside user).
    let busy: f64 = [0, 1, 2, 5, 6].iter().filter_map(|&i| fields.get(i)).sum();
    let steal = fields.get(7).copied().unwrap_or(0.0);
    // SAFETY: sysconf only reads a system setting.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (ticks > 0).then(|| (busy / ticks as f64, steal / ticks as f64))
}

/// CPU seconds this process has used (all its threads).
pub fn own_cpu() -> Result<f64> {
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

/// "1 2 3" of /proc/loadavg, or "unknown".
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Cores online, whatever this process's affinity.
pub fn total_cores() -> libc::c_long {
    // SAFETY: sysconf only reads a system setting.
    unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }
}

/// A bench binary's `main`: prints `usage` when `parse` answers `None` (`--help`), runs the
/// bench otherwise, and reports an error as `NAME: error: ...` with a failing status.
pub fn run_main<O>(
    name: &str,
    usage: &str,
    parse: impl FnOnce() -> Result<Option<O>>,
    run: impl FnOnce(&O) -> Result<()>,
) -> std::process::ExitCode {
    let result = parse().and_then(|opts| match opts {
        Some(opts) => run(&opts),
        None => {
            println!("{usage}");
            Ok(())
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{name}: error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The command line as `--flag value` pairs, for binaries whose every option takes a
/// value; `None` when `-h` or `--help` comes first among the flags.
pub fn flag_value_pairs() -> Result<Option<Vec<(String, String)>>> {
    let mut pairs = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            return Ok(None);
        }
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        pairs.push((flag, value));
    }
    Ok(Some(pairs))
}
