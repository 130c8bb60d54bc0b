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
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use redis::{Connection, ConnectionLike, Value};

#[path = "../shared.rs"]
mod shared;
use shared::*;

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
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    Unpipelined,
    Pipelined,
    Dag,
}

impl Variant {
    const ALL: [Variant; 3] = [Variant::Unpipelined, Variant::Pipelined, Variant::Dag];

    fn index(self) -> usize {
        self as usize
    }

    fn label(self) -> &'static str {
        match self {
            Variant::Unpipelined => "3 commands, unpipelined",
            Variant::Pipelined => "3 commands, pipelined",
            Variant::Dag => "AI.DAGEXECUTE",
        }
    }

    fn round_trips(self) -> u32 {
        match self {
            Variant::Unpipelined => 3,
            Variant::Pipelined | Variant::Dag => 1,
        }
    }
}

/// One model under test.
struct Case {
    name: String,
    model_key: String,
    width: usize,
    /// The expected output, when known.
    expected: Option<Vec<f32>>,
    /// Bytes of one output (known after `check`).
    output_len: usize,
}

impl Case {
    fn input(&self, client: usize) -> Vec<f32> {
        if self.expected.is_some() {
            MLP_X.to_vec()
        } else {
            big_input(self.width, client)
        }
    }

    fn x(&self, client: usize) -> String {
        format!("bench:dag:{}:x:{client}", self.name)
    }

    fn y(&self, client: usize) -> String {
        format!("bench:dag:{}:y:{client}", self.name)
    }
}

/// Client `client`'s packed commands.
struct Request {
    /// TENSORSET, MODELEXECUTE, TENSORGET, each packed.
    separate: [Vec<u8>; 3],
    /// The same three, back to back.
    pipelined: Vec<u8>,
    dag: Vec<u8>,
}

impl Request {
    fn new(case: &Case, client: usize) -> Request {
        let input = f32_bytes(&case.input(client));
        let (x, y) = (case.x(client), case.y(client));
        let mut set = redis::cmd("AI.TENSORSET");
        set.arg(&x)
            .arg("FLOAT")
            .arg(1)
            .arg(case.width)
            .arg("BLOB")
            .arg(&input);
        let mut execute = redis::cmd("AI.MODELEXECUTE");
        execute
            .arg(&case.model_key)
            .arg("INPUTS")
            .arg(1)
            .arg(&x)
            .arg("OUTPUTS")
            .arg(1)
            .arg(&y);
        let mut get = redis::cmd("AI.TENSORGET");
        get.arg(&y).arg("BLOB");
        let separate = [
            set.get_packed_command(),
            execute.get_packed_command(),
            get.get_packed_command(),
        ];
        let pipelined = separate.concat();
        let mut dag = redis::cmd("AI.DAGEXECUTE");
        dag.arg("ROUTING")
            .arg(&x)
            .arg("|>")
            .arg("AI.TENSORSET")
            .arg("x")
            .arg("FLOAT")
            .arg(1)
            .arg(case.width)
            .arg("BLOB")
            .arg(&input)
            .arg("|>")
            .arg("AI.MODELEXECUTE")
            .arg(&case.model_key)
            .arg("INPUTS")
            .arg(1)
            .arg("x")
            .arg("OUTPUTS")
            .arg(1)
            .arg("y")
            .arg("|>")
            .arg("AI.TENSORGET")
            .arg("y")
            .arg("BLOB");
        Request {
            separate,
            pipelined,
            dag: dag.get_packed_command(),
        }
    }

    /// The replies of TENSORSET, MODELEXECUTE and TENSORGET (or of the DAG's three ops):
    /// OK, OK, the output's blob, which is returned. `len` None: any length.
    fn check(replies: Vec<Value>, len: Option<usize>) -> Result<Vec<u8>> {
        let [set, execute, get]: [Value; 3] = replies
            .try_into()
            .map_err(|r: Vec<Value>| anyhow::anyhow!("expected 3 replies, got {}", r.len()))?;
        expect_ok(set).context("TENSORSET")?;
        expect_ok(execute).context("MODELEXECUTE")?;
        match len {
            Some(len) => expect_blob(get, len).context("TENSORGET"),
            None => match get.extract_error()? {
                Value::BulkString(bytes) => Ok(bytes),
                other => bail!("TENSORGET: expected a blob, got {other:?}"),
            },
        }
    }

    /// Runs the request once along `variant`; returns the output's bytes.
    fn once(&self, con: &mut Connection, variant: Variant, len: Option<usize>) -> Result<Vec<u8>> {
        let replies = match variant {
            Variant::Unpipelined => self
                .separate
                .iter()
                .map(|cmd| con.req_packed_command(cmd))
                .collect::<redis::RedisResult<Vec<Value>>>()?,
            Variant::Pipelined => con.req_packed_commands(&self.pipelined, 0, 3)?,
            Variant::Dag => match con.req_packed_command(&self.dag)?.extract_error()? {
                Value::Array(items) => items,
                other => bail!("AI.DAGEXECUTE: expected an array, got {other:?}"),
            },
        };
        Self::check(replies, len).with_context(|| variant.label())
    }
}

/// Stores the model and checks, for every client, that the three paths agree (and give
/// the known output where there is one); notes the output's size.
fn setup(case: &mut Case, conns: &mut [Connection], blob: &[u8]) -> Result<Vec<Request>> {
    store_onnx_model(&mut conns[0], &case.model_key, &[], blob)?;
    let mut requests = Vec::new();
    for (client, con) in conns.iter_mut().enumerate() {
        let request = Request::new(case, client);
        let mut outputs = Vec::new();
        for variant in Variant::ALL {
            outputs.push(f32_values(&request.once(con, variant, None)?));
        }
        let reference = case.expected.clone().unwrap_or_else(|| outputs[0].clone());
        for (variant, output) in Variant::ALL.iter().zip(&outputs) {
            ensure!(
                !output.is_empty() && all_close(output, &reference),
                "{} (client {client}): output {:?}..., expected {:?}...",
                variant.label(),
                &output[..output.len().min(4)],
                &reference[..reference.len().min(4)]
            );
        }
        case.output_len = reference.len() * 4;
        requests.push(request);
    }
    Ok(requests)
}

/// Every client runs `variant` in a loop for `duration`.
fn measure(
    conns: &mut [Connection],
    requests: &[Request],
    variant: Variant,
    len: usize,
    duration: Duration,
) -> Result<Vec<ClientRun>> {
    let barrier = Barrier::new(conns.len());
    thread::scope(|scope| {
        let handles: Vec<_> = conns
            .iter_mut()
            .zip(requests)
            .enumerate()
            .map(|(client, (con, request))| {
                let barrier = &barrier;
                scope.spawn(move || -> Result<ClientRun> {
                    let mut latencies = Vec::with_capacity(4096);
                    barrier.wait();
                    let start = Instant::now();
                    loop {
                        let t0 = Instant::now();
                        request
                            .once(con, variant, Some(len))
                            .with_context(|| format!("client {client}"))?;
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

#[derive(Default)]
struct Totals {
    rate_sum: f64,
    rounds: u32,
    latencies: Vec<u64>,
    ops: u64,
    wall_s: f64,
    server_cpu_s: f64,
    /// What other work took meanwhile.
    others: OtherLoad,
}

impl Totals {
    fn rate(&self) -> f64 {
        self.rate_sum / f64::from(self.rounds.max(1))
    }
}

/// Measures the three paths at `clients` clients, rotating their order.
fn run_cell(
    case: &Case,
    conns: &mut [Connection],
    requests: &[Request],
    cell: usize,
    opts: &Options,
) -> Result<Vec<Totals>> {
    let len = case.output_len;
    if opts.warmup > 0.0 {
        for variant in Variant::ALL {
            measure(
                conns,
                requests,
                variant,
                len,
                Duration::from_secs_f64(opts.warmup),
            )?;
        }
    }
    let per_round = Duration::from_secs_f64(opts.seconds / f64::from(opts.rounds));
    let mut totals: Vec<Totals> = Variant::ALL.iter().map(|_| Totals::default()).collect();
    for round in 0..opts.rounds as usize {
        for i in 0..Variant::ALL.len() {
            let variant = Variant::ALL[(i + round + cell) % Variant::ALL.len()];
            let cpu_before = CpuSnapshot::take(&mut conns[0])?;
            let start = Instant::now();
            let runs = measure(conns, requests, variant, len, per_round)?;
            let wall_s = start.elapsed().as_secs_f64();
            let cpu_after = CpuSnapshot::take(&mut conns[0])?;
            let t = &mut totals[variant.index()];
            t.wall_s += wall_s;
            t.server_cpu_s += cpu_after.server_s - cpu_before.server_s;
            t.others.add(cpu_after.others_since(&cpu_before));
            t.ops += runs.iter().map(|r| r.ops).sum::<u64>();
            t.rate_sum += runs.iter().map(|r| r.rate).sum::<f64>();
            t.rounds += 1;
            for run in runs {
                t.latencies.extend(run.latencies);
            }
        }
    }
    Ok(totals)
}

fn cleanup(case: &Case, con: &mut Connection, clients: usize) -> Result<()> {
    let mut del = redis::cmd("DEL");
    del.arg(&case.model_key);
    for client in 0..clients {
        del.arg(case.x(client)).arg(case.y(client));
    }
    del.query::<i64>(con).context("DEL of the bench keys")?;
    Ok(())
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
            "--mlp" => opts.mlp = value.into(),
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
                    totals[i].server_cpu_s * 1e6 / totals[i].ops.max(1) as f64,
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
            eprintln!("bench-dag: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
