//! Part 2 of bench-execute: a 1 MiB state updated in place by AI.MODELEXECUTE against a
//! client-side service (GET, run, SET), at several client counts; its table and verdict.

use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use redis::{Connection, ConnectionLike, Value};

use super::client_side::ClientSide;
use super::{
    module_settings, store_model, Options, STATE_ELEMENTS, STATE_INITIAL,
    TARGET_LOCALITY_MIN_CLIENTS, TARGET_LOCALITY_RATIO,
};
use redisai_benches::csv::{num, CsvTable};
use redisai_benches::shared::{
    close_enough, expect_blob, expect_ok, f32_bytes, f32_values, own_cpu, read_model, server_cpu,
    server_thread_cpus, tensorset_f32,
};

/// One way of doing the state update, a column group of the table.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Variant {
    /// `AI.MODELEXECUTE upd INPUTS 1 state OUTPUTS 1 state` on server `server` (0: the
    /// one with the plain settings), pipelined with `AI.TENSORGET state META` if `meta`.
    Module { server: usize, meta: bool },
    /// The Python service: GET, onnxruntime, SET, against server 0.
    ClientSide,
}

/// A server the module variants run on, with Rust client connections to it.
pub(crate) struct Server {
    /// How its module arguments differ from server 0's ("" for server 0).
    pub(crate) label: String,
    pub(crate) conns: Vec<Connection>,
}

/// Rate and CPU of one measurement.
#[derive(Clone, Copy, Default)]
pub(crate) struct Sample {
    pub(crate) rate: f64,
    pub(crate) ops: u64,
    pub(crate) server_cpu_s: f64,
    pub(crate) client_cpu_s: f64,
}

#[derive(Clone, Copy, Default)]
pub(crate) struct Totals {
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

    fn server_cpu_us_per_op(&self) -> f64 {
        self.server_cpu_s * 1e6 / self.ops.max(1) as f64
    }

    fn client_cpu_us_per_op(&self) -> f64 {
        self.client_cpu_s * 1e6 / self.ops.max(1) as f64
    }

    /// "total (server + client)" CPU µs per op.
    fn cpu_cell(&self) -> String {
        format!(
            "{:.0} ({:.0} + {:.0})",
            self.cpu_us_per_op(),
            self.server_cpu_us_per_op(),
            self.client_cpu_us_per_op()
        )
    }
}

pub(crate) fn state_key(client: usize) -> String {
    format!("bench:state:{client}")
}

pub(crate) const UPDATE_MODEL_KEY: &str = "bench:upd";

/// The packed op of client `client`: execute, optionally pipelined with META.
pub(crate) fn state_op(client: usize, meta: bool) -> (Vec<u8>, usize) {
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

pub(crate) fn check_state_replies(replies: Vec<Value>) -> Result<()> {
    let mut replies = replies.into_iter();
    expect_ok(replies.next().context("no reply")?)?;
    if let Some(meta) = replies.next() {
        expect_float_meta(meta)?;
    }
    Ok(())
}

/// Sets every client's state to the initial value, runs one update and checks the
/// result, then warms up.
pub(crate) fn prepare_states(conns: &mut [Connection]) -> Result<()> {
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
pub(crate) fn measure_module(
    conns: &mut [Connection],
    meta: bool,
    duration: Duration,
) -> Result<Sample> {
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

pub(crate) fn delete_states(con: &mut Connection, clients: usize) -> Result<()> {
    let mut del = redis::cmd("DEL");
    for client in 0..clients {
        del.arg(state_key(client));
    }
    del.query::<i64>(con).context("DEL of the state keys")?;
    Ok(())
}

/// `AI.TENSORGET key META`: checks that the state is still a FLOAT tensor.
pub(crate) fn expect_float_meta(reply: Value) -> Result<()> {
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

/// Measures every variant at `clients` clients, in rotating order over the rounds.
pub(crate) fn locality_row(
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

/// The data-locality table's CSV, in `--csv-dir`: one row per client count and variant.
pub(crate) const CSV_NAME: &str = "execute-locality.csv";
pub(crate) const CSV_COLUMNS: [&str; 6] = [
    "clients",
    "variant",
    "ops/s",
    "CPU us/op",
    "server CPU us/op",
    "client CPU us/op",
];

pub(crate) fn run_locality(
    opts: &Options,
    servers: &mut [Server],
    csv: &mut CsvTable,
) -> Result<()> {
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
    let mut names = Vec::new();
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
        names.push(name);
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
        for (name, t) in names.iter().zip(totals) {
            csv.row(&[
                clients.to_string(),
                name.clone(),
                num(t.rate(), 1),
                num(t.cpu_us_per_op(), 0),
                num(t.server_cpu_us_per_op(), 0),
                num(t.client_cpu_us_per_op(), 0),
            ])?;
        }
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
