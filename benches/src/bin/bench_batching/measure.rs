//! The measurement: both copies of the model on one server, every client sending batch-1
//! requests in a loop, and the module's own counts of calls and samples.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use redis::{Connection, ConnectionLike, Value};

use super::Options;
use redisai_benches::shared::*;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Unbatched,
    Batched,
}

impl Mode {
    pub const BOTH: [Mode; 2] = [Mode::Unbatched, Mode::Batched];

    fn index(self) -> usize {
        self as usize
    }

    pub fn model_key(self) -> &'static str {
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

    pub fn name(self) -> &'static str {
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
pub struct Server {
    /// How its module arguments differ from the first server's ("" for that one).
    pub label: String,
    /// THREADS_PER_QUEUE etc. as the server reports them.
    pub settings: String,
    pub conns: Vec<Connection>,
    /// Bytes of one client's output.
    pub output_len: usize,
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
pub fn setup(server: &mut Server, blob: &[u8], opts: &Options) -> Result<()> {
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
    let packed: Vec<Vec<u8>> = (0..conns.len())
        .map(|client| mode.execute(client))
        .collect();
    closed_loops(conns, duration, |client, con| {
        expect_ok(con.req_packed_command(&packed[client])?)
            .with_context(|| format!("AI.MODELEXECUTE {} (client {client})", mode.model_key()))
    })
}

/// One model's results at one client count.
#[derive(Default)]
pub struct Totals {
    rate_sum: f64,
    rounds: u32,
    pub latencies: Vec<u64>,
    pub calls: u64,
    pub samples: u64,
    ops: u64,
    pub wall_s: f64,
    server_cpu_s: f64,
    /// What other work took meanwhile.
    pub others: OtherLoad,
}

impl Totals {
    /// "µs/op (cores)": the server's CPU time per request, and how many cores' worth of
    /// time it used while measured.
    pub fn cpu_cell(&self) -> String {
        format!(
            "{:.0} ({:.2})",
            self.server_cpu_us_per_op(),
            self.server_cpu_s / self.wall_s.max(1e-9)
        )
    }

    pub fn server_cpu_us_per_op(&self) -> f64 {
        self.server_cpu_s * 1e6 / self.ops.max(1) as f64
    }

    pub fn rate(&self) -> f64 {
        self.rate_sum / f64::from(self.rounds.max(1))
    }

    pub fn avg_batch(&self) -> f64 {
        self.samples as f64 / self.calls.max(1) as f64
    }
}

/// Measures both models at `clients` clients, alternating which goes first.
pub fn run_row(
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

pub fn cleanup(server: &mut Server) -> Result<()> {
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
