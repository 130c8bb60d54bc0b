//! What autobatching buys: the same model stored twice on a server that is already
//! running with the RedisAI module (see `scripts/bench-batching`), once with
//! `BATCHSIZE 0` (unbatched) and once with `BATCHSIZE n` (no MINBATCHSIZE unless asked
//! for), driven by 1 to 32 concurrent clients that each send batch-1 requests: their
//! own input key `[1, width]`, set once, then `AI.MODELEXECUTE m INPUTS 1 x:i OUTPUTS 1
//! y:i` in a loop.
//!
//! For every client count, the two models are measured in alternating order over a few
//! rounds, so drift and noise hit both alike; the table has throughput, p50/p99 latency,
//! the batched/unbatched throughput ratio and the average batch the module formed
//! (`samples / calls` of `AI.INFO` over the measured windows), and the server's CPU time
//! per request (INFO cpu), which shows where the ceiling is. After each client count,
//! every client's two outputs are compared, which checks that batched runs were split
//! back correctly. Other servers (`--alt`) add rows, with their module arguments.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use redis::{Connection, ConnectionLike, Value};

#[path = "../shared.rs"]
mod shared;
use shared::*;

const USAGE: &str = "\
usage: bench-batching --port P [options]

  --port P          port of the running server (required)
  --host H          host of the servers (default 127.0.0.1)
  --alt PORT=LABEL  another server, whose module arguments differ as LABEL says
                    (e.g. 6380=INTRA_OP_PARALLELISM 1): adds rows; may be repeated
  --model PATH      the model (default .cache/models/mlp_big.onnx): FLOAT
                    [N, width] in, one output
  --width W         the model's input width (default 512)
  --batchsize N     BATCHSIZE of the batched copy (default 32)
  --minbatchsize M  also MINBATCHSIZE M for the batched copy (default: none)
  --minbatchtimeout T
                    also MINBATCHTIMEOUT T (ms) for the batched copy (default:
                    none; needs --minbatchsize)
  --clients LIST    client counts (default 1,2,4,8,16,32)
  --seconds S       seconds measured per model and client count, split over the
                    rounds (default 3)
  --rounds R        rounds per client count; the models alternate which runs
                    first (default 4)
  --warmup S        unmeasured seconds per model before each client count
                    (default 0.3)
  -h, --help        print this help";

/// The acceptance target: batched / unbatched throughput at this many clients and more.
const TARGET_RATIO: f64 = 2.0;
const TARGET_MIN_CLIENTS: usize = 16;

impl Options {
    /// The batched copy's MODELSTORE arguments.
    fn batching(&self) -> Vec<(&'static str, u32)> {
        let mut args = vec![("BATCHSIZE", self.batch_size)];
        if let Some(min) = self.min_batch_size {
            args.push(("MINBATCHSIZE", min));
        }
        if let Some(timeout) = self.min_batch_timeout {
            args.push(("MINBATCHTIMEOUT", timeout));
        }
        args
    }

    /// "BATCHSIZE 32 MINBATCHSIZE 8", or with "(no MINBATCHSIZE)".
    fn batching_text(&self) -> String {
        let text: Vec<String> = self
            .batching()
            .iter()
            .map(|(name, value)| format!("{name} {value}"))
            .collect();
        let mut text = format!("`{}`", text.join(" "));
        if self.min_batch_size.is_none() {
            text += " (no MINBATCHSIZE)";
        }
        text
    }
}

struct Options {
    host: String,
    port: u16,
    alts: Vec<(u16, String)>,
    model: Option<PathBuf>,
    width: usize,
    batch_size: u32,
    min_batch_size: Option<u32>,
    min_batch_timeout: Option<u32>,
    clients: Vec<usize>,
    seconds: f64,
    rounds: u32,
    warmup: f64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Unbatched,
    Batched,
}

impl Mode {
    const BOTH: [Mode; 2] = [Mode::Unbatched, Mode::Batched];

    fn index(self) -> usize {
        self as usize
    }

    fn model_key(self) -> &'static str {
        match self {
            Mode::Unbatched => "bench:batching:off",
            Mode::Batched => "bench:batching:on",
        }
    }

    fn output_key(self, client: usize) -> String {
        match self {
            Mode::Unbatched => format!("bench:batching:y:off:{client}"),
            Mode::Batched => format!("bench:batching:y:on:{client}"),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Mode::Unbatched => "unbatched",
            Mode::Batched => "batched",
        }
    }

    /// `AI.MODELEXECUTE` of client `client`, packed.
    fn execute(self, client: usize) -> Vec<u8> {
        redis::cmd("AI.MODELEXECUTE")
            .arg(self.model_key())
            .arg("INPUTS")
            .arg(1)
            .arg(input_key(client))
            .arg("OUTPUTS")
            .arg(1)
            .arg(self.output_key(client))
            .get_packed_command()
    }
}

fn input_key(client: usize) -> String {
    format!("bench:batching:x:{client}")
}

/// A server under test, with one connection per client.
struct Server {
    /// How its module arguments differ from the first server's ("" for that one).
    label: String,
    /// THREADS_PER_QUEUE etc. as the server reports them.
    settings: String,
    conns: Vec<Connection>,
    /// Bytes of one client's output.
    output_len: usize,
}

/// `calls` and `samples` of `AI.INFO key`.
fn run_counts(con: &mut Connection, key: &str) -> Result<(u64, u64)> {
    let reply: Vec<Value> = redis::cmd("AI.INFO")
        .arg(key)
        .query(con)
        .with_context(|| format!("AI.INFO {key}"))?;
    let field = |name: &str| -> Result<u64> {
        reply
            .chunks_exact(2)
            .find_map(|pair| match (&pair[0], &pair[1]) {
                (Value::SimpleString(k), Value::Int(v)) if k == name => Some(*v as u64),
                (Value::BulkString(k), Value::Int(v)) if k.as_slice() == name.as_bytes() => {
                    Some(*v as u64)
                }
                _ => None,
            })
            .with_context(|| format!("AI.INFO {key} has no {name}"))
    };
    Ok((field("calls")?, field("samples")?))
}

/// Stores both copies of the model and every client's input; checks that one run of
/// each gives the same output, and notes the output's size.
fn setup(server: &mut Server, blob: &[u8], opts: &Options) -> Result<()> {
    let con = &mut server.conns[0];
    store_onnx_model(con, Mode::Unbatched.model_key(), &[("BATCHSIZE", 0)], blob)?;
    store_onnx_model(con, Mode::Batched.model_key(), &opts.batching(), blob)?;
    for client in 0..server.conns.len() {
        let input = f32_bytes(&big_input(opts.width, client));
        tensorset_f32(
            &mut server.conns[0],
            &input_key(client),
            &[1, opts.width as i64],
            &input,
        )?;
    }
    let con = &mut server.conns[0];
    let mut outputs = Vec::new();
    for mode in Mode::BOTH {
        expect_ok(con.req_packed_command(&mode.execute(0))?)
            .with_context(|| format!("AI.MODELEXECUTE {}", mode.model_key()))?;
        let reply = redis::cmd("AI.TENSORGET")
            .arg(mode.output_key(0))
            .arg("BLOB")
            .query::<Value>(con)?
            .extract_error()?;
        let Value::BulkString(bytes) = reply else {
            bail!("AI.TENSORGET {} BLOB: expected a blob", mode.output_key(0));
        };
        outputs.push(f32_values(&bytes));
    }
    ensure!(
        !outputs[0].is_empty() && all_close(&outputs[0], &outputs[1]),
        "the two copies of the model give different outputs"
    );
    server.output_len = outputs[0].len() * 4;
    Ok(())
}

/// Every client runs `mode` in a loop for `duration`; their rates and latencies.
fn measure(conns: &mut [Connection], mode: Mode, duration: Duration) -> Result<Vec<ClientRun>> {
    let barrier = Barrier::new(conns.len());
    thread::scope(|scope| {
        let handles: Vec<_> = conns
            .iter_mut()
            .enumerate()
            .map(|(client, con)| {
                let packed = mode.execute(client);
                let barrier = &barrier;
                scope.spawn(move || -> Result<ClientRun> {
                    let mut latencies = Vec::with_capacity(4096);
                    barrier.wait();
                    let start = Instant::now();
                    loop {
                        let t0 = Instant::now();
                        expect_ok(con.req_packed_command(&packed)?).with_context(|| {
                            format!("AI.MODELEXECUTE {} (client {client})", mode.model_key())
                        })?;
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
                })
            })
            .collect();
        join_all(handles)
    })
}

/// One model's results at one client count.
#[derive(Default)]
struct Totals {
    rate_sum: f64,
    rounds: u32,
    latencies: Vec<u64>,
    calls: u64,
    samples: u64,
    ops: u64,
    wall_s: f64,
    server_cpu_s: f64,
    /// What other work took meanwhile.
    others: OtherLoad,
}

impl Totals {
    /// "µs/op (cores)": the server's CPU time per request, and how many cores' worth of
    /// time it used while measured.
    fn cpu_cell(&self) -> String {
        format!(
            "{:.0} ({:.2})",
            self.server_cpu_s * 1e6 / self.ops.max(1) as f64,
            self.server_cpu_s / self.wall_s.max(1e-9)
        )
    }

    fn rate(&self) -> f64 {
        self.rate_sum / f64::from(self.rounds.max(1))
    }

    fn avg_batch(&self) -> f64 {
        self.samples as f64 / self.calls.max(1) as f64
    }
}

/// Measures both models at `clients` clients, alternating which goes first.
fn run_row(
    server: &mut Server,
    clients: usize,
    unbatched_first: bool,
    opts: &Options,
) -> Result<[Totals; 2]> {
    let conns = &mut server.conns[..clients];
    if opts.warmup > 0.0 {
        for mode in Mode::BOTH {
            measure(conns, mode, Duration::from_secs_f64(opts.warmup))?;
        }
    }
    let per_round = Duration::from_secs_f64(opts.seconds / f64::from(opts.rounds));
    let mut totals = [Totals::default(), Totals::default()];
    for round in 0..opts.rounds {
        let order = if unbatched_first == (round % 2 == 0) {
            [Mode::Unbatched, Mode::Batched]
        } else {
            [Mode::Batched, Mode::Unbatched]
        };
        for mode in order {
            let before = run_counts(&mut conns[0], mode.model_key())?;
            let cpu_before = CpuSnapshot::take(&mut conns[0])?;
            let start = Instant::now();
            let runs = measure(conns, mode, per_round)?;
            let wall_s = start.elapsed().as_secs_f64();
            let cpu_after = CpuSnapshot::take(&mut conns[0])?;
            let after = run_counts(&mut conns[0], mode.model_key())?;
            let t = &mut totals[mode.index()];
            t.wall_s += wall_s;
            t.server_cpu_s += cpu_after.server_s - cpu_before.server_s;
            t.others.add(cpu_after.others_since(&cpu_before));
            t.rate_sum += runs.iter().map(|r| r.rate).sum::<f64>();
            t.rounds += 1;
            t.calls += after.0 - before.0;
            t.samples += after.1 - before.1;
            let ops: u64 = runs.iter().map(|r| r.ops).sum();
            t.ops += ops;
            ensure!(
                after.1 - before.1 == ops,
                "{}: AI.INFO counted {} samples, the clients {ops} requests",
                mode.model_key(),
                after.1 - before.1
            );
            for run in runs {
                t.latencies.extend(run.latencies);
            }
        }
    }
    // The last output of every client, batched and not: the same input, so the same
    // values, which checks that the batched runs were split back to the right clients.
    for (client, con) in conns.iter_mut().enumerate() {
        let off = f32_values(&tensorget_blob(
            con,
            &Mode::Unbatched.output_key(client),
            server.output_len,
        )?);
        let on = f32_values(&tensorget_blob(
            con,
            &Mode::Batched.output_key(client),
            server.output_len,
        )?);
        ensure!(
            all_close(&off, &on),
            "client {client}: the batched output differs from the unbatched one"
        );
    }
    Ok(totals)
}

fn cleanup(server: &mut Server) -> Result<()> {
    let mut del = redis::cmd("DEL");
    for mode in Mode::BOTH {
        del.arg(mode.model_key());
        for client in 0..server.conns.len() {
            del.arg(mode.output_key(client));
        }
    }
    for client in 0..server.conns.len() {
        del.arg(input_key(client));
    }
    del.query::<i64>(&mut server.conns[0])
        .context("DEL of the bench keys")?;
    Ok(())
}

/// `None` means `--help` was asked for.
fn parse_args() -> Result<Option<Options>> {
    let mut opts = Options {
        host: "127.0.0.1".into(),
        port: 0,
        alts: Vec::new(),
        model: default_mlp_big(),
        width: 512,
        batch_size: 32,
        min_batch_size: None,
        min_batch_timeout: None,
        clients: vec![1, 2, 4, 8, 16, 32],
        seconds: 3.0,
        rounds: 4,
        warmup: 0.3,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "-h" || flag == "--help" {
            return Ok(None);
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
            "--model" => opts.model = Some(value.into()),
            "--width" => opts.width = parse_positive(&value).with_context(bad)?,
            "--batchsize" => opts.batch_size = parse_positive(&value).with_context(bad)?,
            "--minbatchsize" => {
                opts.min_batch_size = Some(parse_positive(&value).with_context(bad)?)
            }
            "--minbatchtimeout" => {
                opts.min_batch_timeout = Some(parse_positive(&value).with_context(bad)?)
            }
            "--clients" => opts.clients = parse_list(&value).with_context(bad)?,
            "--seconds" => opts.seconds = parse_positive(&value).with_context(bad)?,
            "--rounds" => opts.rounds = parse_positive(&value).with_context(bad)?,
            "--warmup" => {
                opts.warmup = value.parse().with_context(bad)?;
                ensure!(opts.warmup >= 0.0, "{}", bad());
            }
            _ => bail!("unknown option {flag:?}\n\n{USAGE}"),
        }
    }
    ensure!(opts.port != 0, "--port is required\n\n{USAGE}");
    ensure!(opts.seconds.is_finite(), "--seconds must be finite");
    ensure!(
        opts.min_batch_timeout.is_none() || opts.min_batch_size.is_some(),
        "--minbatchtimeout needs --minbatchsize"
    );
    Ok(Some(opts))
}

fn run(opts: &Options) -> Result<()> {
    let model = opts.model.as_ref().context(
        "no model: .cache/models/mlp_big.onnx is missing (run scripts/gen-test-models --bench) \
         and --model was not given",
    )?;
    let blob = read_model(model)?;
    let max_clients = opts.clients.iter().copied().max().unwrap_or(1);
    let mut servers = Vec::new();
    for (port, label) in std::iter::once((opts.port, String::new())).chain(opts.alts.clone()) {
        let mut conns = connect(&opts.host, port, max_clients)?;
        check_commands(
            &mut conns[0],
            &["AI.MODELSTORE", "AI.MODELEXECUTE", "AI.INFO"],
        )?;
        let settings = module_settings(&mut conns[0])?;
        servers.push(Server {
            label,
            settings,
            conns,
            output_len: 0,
        });
    }
    let version = info_field(&mut servers[0].conns[0], "server", "redis_version")?;
    let model_name = model.file_name().map_or_else(
        || model.display().to_string(),
        |n| n.to_string_lossy().into(),
    );

    println!(
        "## bench-batching: redis {version} at {}:{}, {} core(s) on this machine, load \
         average at the start {}",
        opts.host,
        opts.port,
        total_cores(),
        load_average()
    );
    println!();
    println!(
        "`{model_name}` stored twice: `BATCHSIZE 0` (unbatched) and, batched, {}; every \
         client sends batch-1 requests (its own input key [1, {}], set once; \
         `AI.MODELEXECUTE` in a loop into its own output key), one thread and connection \
         each. {} s per model and client count in {} rounds, the models alternating; ops/s \
         is the sum of the clients' rates; latency is per request, in µs. server CPU: the \
         redis-server process's CPU time (INFO cpu, all threads) per request, and in \
         brackets how many cores' worth it used while measured. avg batch = AI.INFO samples \
         ÷ calls of the batched model over the measured windows (the unbatched one's is 1 \
         by construction, and checked). other load, while the row was measured, in cores \
         (/proc/stat): busy time that neither the server nor this bench was charged for \
         (other processes, interrupts): the higher, the less the row can be trusted; + \
         steal (the hypervisor not running these cores while they had work: other \
         tenants, but on a VM also the wake-ups of idle cores that a round-trip-bound \
         workload causes itself).",
        opts.batching_text(),
        opts.width,
        opts.seconds,
        opts.rounds
    );
    println!();
    println!(
        "| module args | clients | unbatched ops/s | batched ops/s | ratio | unbatched p50 µs \
         | unbatched p99 µs | batched p50 µs | batched p99 µs | unbatched server CPU µs/op \
         (cores) | batched server CPU µs/op (cores) | batched: AI.INFO samples / calls = avg \
         batch | other load (cores): procs + steal |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");

    let mut verdicts = Vec::new();
    let mut placements = Vec::new();
    let mut cell = 0usize;
    for server in &mut servers {
        setup(server, &blob, opts).with_context(|| format!("setting up ({})", server.settings))?;
        let settings = if server.label.is_empty() {
            "defaults".to_string()
        } else {
            server.label.clone()
        };
        let mut worst: Option<(f64, usize)> = None;
        for &clients in &opts.clients {
            let unbatched_first = cell.is_multiple_of(2);
            cell += 1;
            let first = if unbatched_first {
                Mode::Unbatched
            } else {
                Mode::Batched
            };
            eprintln!(
                "==> {settings}: {clients} client(s), {} first",
                first.name()
            );
            let mut totals = run_row(server, clients, unbatched_first, opts)
                .with_context(|| format!("{settings}, {clients} client(s)"))?;
            let [off, on] = &mut totals;
            ensure!(
                off.calls == off.samples,
                "the unbatched model ran {} calls for {} samples",
                off.calls,
                off.samples
            );
            let ratio = on.rate() / off.rate();
            let mut others = off.others;
            others.add(on.others);
            let (l_off, l_on) = (latency(&mut off.latencies), latency(&mut on.latencies));
            println!(
                "| {settings} | {clients} | {:.0} | {:.0} | {ratio:.2} | {:.0} | {:.0} | {:.0} \
                 | {:.0} | {} | {} | {} / {} = {:.1} | {} |",
                off.rate(),
                on.rate(),
                l_off.p50,
                l_off.p99,
                l_on.p50,
                l_on.p99,
                off.cpu_cell(),
                on.cpu_cell(),
                on.samples,
                on.calls,
                on.avg_batch(),
                others.cell(off.wall_s + on.wall_s)
            );
            if clients >= TARGET_MIN_CLIENTS && worst.is_none_or(|(w, _)| ratio < w) {
                worst = Some((ratio, clients));
            }
        }
        let cpus = server_thread_cpus(&mut server.conns[0])?
            .map_or_else(String::new, |cpus| format!("; threads: {cpus}"));
        placements.push(format!("- {settings}: {}{cpus}", server.settings));
        cleanup(server)?;
        verdicts.push((settings, worst));
    }
    println!();
    println!(
        "The servers' settings (INFO MODULES) and thread placement (read from /proc with the \
         models loaded; the script pins the servers to core 0 and this bench to the other \
         cores, but ONNX Runtime may set the affinity of its intra-op pool threads itself):"
    );
    println!();
    for line in &placements {
        println!("{line}");
    }
    println!();
    let target =
        format!("≥ {TARGET_RATIO}x batched/unbatched throughput at {TARGET_MIN_CLIENTS}+ clients");
    for (settings, worst) in verdicts {
        match worst {
            Some((ratio, clients)) => {
                let verdict = if ratio >= TARGET_RATIO {
                    "met"
                } else {
                    "NOT met"
                };
                println!(
                    "**target: {target}, {settings}: {verdict}** (lowest ratio {ratio:.2}, at \
                     {clients} clients)"
                );
            }
            None => println!(
                "**target: {target}, {settings}: not measured** (needs a client count ≥ \
                 {TARGET_MIN_CLIENTS})"
            ),
        }
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
            eprintln!("bench-batching: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
