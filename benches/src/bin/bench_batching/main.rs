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

use anyhow::{bail, ensure, Context, Result};

use redisai_benches::shared::*;

use redisai_benches::csv::{num, CsvTable};

mod measure;
use measure::{cleanup, run_row, setup, Mode, Server};

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
  --csv-dir DIR     also write the table to DIR/batching.csv (appended)
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
    csv_dir: Option<PathBuf>,
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
        csv_dir: None,
    };
    let Some(pairs) = flag_value_pairs()? else {
        return Ok(None);
    };
    for (flag, value) in pairs {
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
            "--csv-dir" => opts.csv_dir = Some(value.into()),
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
    let mut csv = CsvTable::in_dir(
        opts.csv_dir.as_deref(),
        "batching.csv",
        &[
            "module args",
            "clients",
            "unbatched ops/s",
            "batched ops/s",
            "batched / unbatched",
            "unbatched p50 us",
            "unbatched p99 us",
            "batched p50 us",
            "batched p99 us",
            "unbatched server CPU us/op",
            "batched server CPU us/op",
            "avg batch",
            "other procs (cores)",
            "steal (cores)",
        ],
    )?;

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
            let wall_s = (off.wall_s + on.wall_s).max(1e-9);
            csv.row(&[
                settings.clone(),
                clients.to_string(),
                num(off.rate(), 0),
                num(on.rate(), 0),
                num(ratio, 3),
                num(l_off.p50, 0),
                num(l_off.p99, 0),
                num(l_on.p50, 0),
                num(l_on.p99, 0),
                num(off.server_cpu_us_per_op(), 0),
                num(on.server_cpu_us_per_op(), 0),
                num(on.avg_batch(), 2),
                num(others.procs_s / wall_s, 2),
                num(others.steal_s / wall_s, 2),
            ])?;
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
    redisai_benches::shared::run_main("bench-batching", USAGE, parse_args, run)
}
