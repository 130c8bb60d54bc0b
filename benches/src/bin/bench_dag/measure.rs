//! The three paths of one request (unpipelined, pipelined, DAG) for one model, their
//! setup and check, and their measurement at a number of clients.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use redis::{Connection, ConnectionLike, Value};

use super::{Options, MLP_X};
use redisai_benches::shared::*;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Unpipelined,
    Pipelined,
    Dag,
}

impl Variant {
    pub const ALL: [Variant; 3] = [Variant::Unpipelined, Variant::Pipelined, Variant::Dag];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn label(self) -> &'static str {
        match self {
            Variant::Unpipelined => "3 commands, unpipelined",
            Variant::Pipelined => "3 commands, pipelined",
            Variant::Dag => "AI.DAGEXECUTE",
        }
    }

    pub fn round_trips(self) -> u32 {
        match self {
            Variant::Unpipelined => 3,
            Variant::Pipelined | Variant::Dag => 1,
        }
    }
}

/// One model under test.
pub struct Case {
    pub name: String,
    pub model_key: String,
    pub width: usize,
    /// The expected output, when known.
    pub expected: Option<Vec<f32>>,
    /// Bytes of one output (known after `check`).
    pub output_len: usize,
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
pub struct Request {
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
pub fn setup(case: &mut Case, conns: &mut [Connection], blob: &[u8]) -> Result<Vec<Request>> {
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
    ensure!(requests.len() >= conns.len(), "fewer requests than clients");
    closed_loops(conns, duration, |client, con| {
        requests[client]
            .once(con, variant, Some(len))
            .with_context(|| format!("client {client}"))?;
        Ok(())
    })
}

#[derive(Default)]
pub struct Totals {
    rate_sum: f64,
    rounds: u32,
    pub latencies: Vec<u64>,
    pub ops: u64,
    pub wall_s: f64,
    pub server_cpu_s: f64,
    /// What other work took meanwhile.
    pub others: OtherLoad,
}

impl Totals {
    pub fn rate(&self) -> f64 {
        self.rate_sum / f64::from(self.rounds.max(1))
    }
}

/// Measures the three paths at `clients` clients, rotating their order.
pub fn run_cell(
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

pub fn cleanup(case: &Case, con: &mut Connection, clients: usize) -> Result<()> {
    let mut del = redis::cmd("DEL");
    del.arg(&case.model_key);
    for client in 0..clients {
        del.arg(case.x(client)).arg(case.y(client));
    }
    del.query::<i64>(con).context("DEL of the bench keys")?;
    Ok(())
}
