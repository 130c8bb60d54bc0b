//! One `AI.DAGEXECUTE` round trip against the same three commands sent separately, on a
//! server that is already running with the RedisAI module (see `scripts/bench-dag`).
//!
//! One op is a whole request: set the input, run the model, read the output. Three paths:
//! - unpipelined: `AI.TENSORSET x:i`, `AI.MODELEXECUTE m INPUTS 1 x:i OUTPUTS 1 y:i`,
//!   `AI.TENSORGET y:i BLOB`, each waiting for its reply (3 round trips);
//! - pipelined: the same three commands written at once (1 round trip);
//! - DAG: `AI.DAGEXECUTE ROUTING x:i |> AI.TENSORSET x ... |> AI.MODELEXECUTE m INPUTS 1
//!   x OUTPUTS 1 y |> AI.TENSORGET y BLOB` (1 round trip; x and y live only in the DAG).
//!
//! For each model and client count the paths are measured in a rotating order over a few
//! rounds, so drift and noise hit them alike. Before measuring, every client's three
//! paths are checked to give the same output (and, for the small MLP, the known one).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, ensure, Context, Result};

use redisai_benches::shared::*;

use redisai_benches::csv::{num, CsvTable};

mod measure;
use measure::{cleanup, run_cell, setup, Case, Variant};

const USAGE: &str = "\
usage: bench-dag --port P [options]

  --port P          port of the running server (required)
  --host H          host of the server (default 127.0.0.1)
  --mlp PATH        the small MLP (default tests/models/onnx/mlp.onnx)
  --mlp-big PATH    the bigger MLP of `scripts/gen-test-models --bench` (default
                    .cache/models/mlp_big.onnx when it exists; `none` skips it)
  --clients LIST    client counts (default 1,8)
  --seconds S       seconds per path, model and client count, split over the
                    rounds (default 3)
  --rounds R        rounds per model and client count; the paths rotate which
                    runs first (default 6)
  --warmup S        unmeasured seconds per path before each cell (default 0.2)
  --csv-dir DIR     also write the table to DIR/dag.csv (appended)
  -h, --help        print this help";

/// The targets this bench checks (the brief gives none; these state what a DAG is for).
/// The DAG saves two round trips over unpipelined commands: faster in every cell.
const TARGET_VS_UNPIPELINED: f64 = 1.0;
/// Its own machinery (parsing, planning, DAG-local tensors) should cost no more than
/// pipelining the same commands does, within this fraction.
const TARGET_VS_PIPELINED: f64 = 0.9;

/// The small MLP's known result for x = [1, 2, 3, 4] (tests/models/README.md).
const MLP_X: [f32; 4] = [1.0, 2.0, 3.0, 4.0];
const MLP_Y: [f32; 3] = [0.421875, 1.8125, 0.015625];

struct Options {
    host: String,
    port: u16,
    mlp: PathBuf,
    mlp_big: Option<PathBuf>,
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
        mlp: repo_root().join("tests/models/onnx/mlp.onnx"),
        mlp_big: default_mlp_big(),
        clients: vec![1, 8],
        seconds: 3.0,
        rounds: 6,
        warmup: 0.2,
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
            "--mlp" => opts.mlp = value.into(),
            "--csv-dir" => opts.csv_dir = Some(value.into()),
            "--mlp-big" if value == "none" => opts.mlp_big = None,
            "--mlp-big" => opts.mlp_big = Some(value.into()),
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
    Ok(Some(opts))
}

fn run(opts: &Options) -> Result<()> {
    let max_clients = opts.clients.iter().copied().max().unwrap_or(1);
    let mut conns = connect(&opts.host, opts.port, max_clients)?;
    check_commands(
        &mut conns[0],
        &[
            "AI.MODELSTORE",
            "AI.MODELEXECUTE",
            "AI.DAGEXECUTE",
            "AI.TENSORSET",
        ],
    )?;
    let version = info_field(&mut conns[0], "server", "redis_version")?;
    let settings = module_settings(&mut conns[0])?;

    let mut models = vec![(
        Case {
            name: "mlp".into(),
            model_key: "bench:dag:mlp".into(),
            width: MLP_X.len(),
            expected: Some(MLP_Y.to_vec()),
            output_len: 0,
        },
        opts.mlp.clone(),
    )];
    if let Some(path) = &opts.mlp_big {
        models.push((
            Case {
                name: "mlp_big".into(),
                model_key: "bench:dag:mlp_big".into(),
                width: 512,
                expected: None,
                output_len: 0,
            },
            path.clone(),
        ));
    }

    println!(
        "## bench-dag: redis {version} at {}:{} ({settings}), {} core(s) on this machine, \
         load average at the start {}",
        opts.host,
        opts.port,
        total_cores(),
        load_average()
    );
    println!();
    println!(
        "One op = one whole request: set a [1, width] input, run the model, read the output \
         blob. Each client has its own keys, one thread and connection. {} s per path, model \
         and client count in {} rounds, paths rotating; ops/s is the sum of the clients' \
         rates; latency per op in µs; the ratios are against the unpipelined commands \
         (ops/s: higher is better; p50: lower is better). server CPU: the redis-server \
         process's CPU time (INFO cpu, all threads) per op. other load, in cores \
         (/proc/stat): busy time that neither the server nor this bench was charged for \
         (other processes, interrupts): the higher, the less the row can be trusted; + \
         steal (the hypervisor not running these cores while they had work: other \
         tenants, but on a VM also the wake-ups of idle cores that a round-trip-bound \
         workload causes itself).",
        opts.seconds, opts.rounds
    );
    println!();
    println!(
        "| model | clients | path | round trips | ops/s | p50 µs | p99 µs | ops/s ÷ unpipelined \
         | p50 ÷ unpipelined | server CPU µs/op | other load (cores): procs + steal |"
    );
    println!("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut csv = CsvTable::in_dir(
        opts.csv_dir.as_deref(),
        "dag.csv",
        &[
            "model",
            "clients",
            "path",
            "round trips",
            "ops/s",
            "p50 us",
            "p99 us",
            "ops/s / unpipelined",
            "p50 / unpipelined",
            "server CPU us/op",
            "other procs (cores)",
            "steal (cores)",
        ],
    )?;

    // (ratio, where) of the worst cell, for each target.
    let mut worst_unpipelined: Option<(f64, String)> = None;
    let mut worst_pipelined: Option<(f64, String)> = None;
    let mut cell = 0usize;
    let mut placement = None;
    for (case, path) in &mut models {
        let blob = read_model(path)?;
        let requests = setup(case, &mut conns, &blob).with_context(|| case.name.clone())?;
        for &clients in &opts.clients {
            eprintln!("==> {}: {clients} client(s)", case.name);
            let mut totals = run_cell(
                case,
                &mut conns[..clients],
                &requests[..clients],
                cell,
                opts,
            )
            .with_context(|| format!("{} with {clients} client(s)", case.name))?;
            cell += 1;
            let lat: Vec<Latency> = totals
                .iter_mut()
                .map(|t| latency(&mut t.latencies))
                .collect();
            let base = Variant::Unpipelined.index();
            for variant in Variant::ALL {
                let i = variant.index();
                let t = &totals[i];
                let server_cpu_us = t.server_cpu_s * 1e6 / t.ops.max(1) as f64;
                let wall_s = t.wall_s.max(1e-9);
                csv.row(&[
                    format!("{} [1, {}]", case.name, case.width),
                    clients.to_string(),
                    variant.label().to_string(),
                    variant.round_trips().to_string(),
                    num(t.rate(), 0),
                    num(lat[i].p50, 1),
                    num(lat[i].p99, 1),
                    num(t.rate() / totals[base].rate(), 3),
                    num(lat[i].p50 / lat[base].p50, 3),
                    num(server_cpu_us, 1),
                    num(t.others.procs_s / wall_s, 2),
                    num(t.others.steal_s / wall_s, 2),
                ])?;
                println!(
                    "| {} [1, {}] | {clients} | {} | {} | {:.0} | {:.0} | {:.0} | {:.2} | {:.2} \
                     | {:.0} | {} |",
                    case.name,
                    case.width,
                    variant.label(),
                    variant.round_trips(),
                    totals[i].rate(),
                    lat[i].p50,
                    lat[i].p99,
                    totals[i].rate() / totals[base].rate(),
                    lat[i].p50 / lat[base].p50,
                    server_cpu_us,
                    totals[i].others.cell(totals[i].wall_s)
                );
            }
            let dag = totals[Variant::Dag.index()].rate();
            let where_ = format!("{}, {clients} client(s)", case.name);
            let vs_unpipelined = dag / totals[base].rate();
            let vs_pipelined = dag / totals[Variant::Pipelined.index()].rate();
            if worst_unpipelined
                .as_ref()
                .is_none_or(|(w, _)| vs_unpipelined < *w)
            {
                worst_unpipelined = Some((vs_unpipelined, where_.clone()));
            }
            if worst_pipelined
                .as_ref()
                .is_none_or(|(w, _)| vs_pipelined < *w)
            {
                worst_pipelined = Some((vs_pipelined, where_));
            }
        }
        if case.name == "mlp_big" {
            placement = server_thread_cpus(&mut conns[0])?;
        }
        cleanup(case, &mut conns[0], max_clients)?;
    }
    println!();
    if let Some(cpus) = placement {
        println!(
            "Thread placement of the server, read from /proc with mlp_big loaded (the script \
             pins the server to core 0 and this bench to the others; ONNX Runtime may set the \
             affinity of its intra-op pool threads itself): {cpus}"
        );
        println!();
    }
    let targets = [
        (
            format!(
                "DAG throughput > {TARGET_VS_UNPIPELINED}x the unpipelined commands' in every cell"
            ),
            worst_unpipelined.map(|(r, w)| (r > TARGET_VS_UNPIPELINED, r, w)),
        ),
        (
            format!(
                "DAG throughput ≥ {TARGET_VS_PIPELINED}x the pipelined commands' in every cell"
            ),
            worst_pipelined.map(|(r, w)| (r >= TARGET_VS_PIPELINED, r, w)),
        ),
    ];
    for (target, worst) in targets {
        if let Some((met, ratio, where_)) = worst {
            let verdict = if met { "met" } else { "NOT met" };
            println!("**target: {target}: {verdict}** (lowest ratio {ratio:.2}, {where_})");
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    redisai_benches::shared::run_main("bench-dag", USAGE, parse_args, run)
}
