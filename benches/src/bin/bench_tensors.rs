//! Compares `AI.TENSORSET key UINT8 <n> BLOB <bytes>` / `AI.TENSORGET key BLOB`
//! with plain `SET` / `GET` of the same bytes, on a server that is already
//! running with the RedisAI module loaded (see `scripts/bench-tensors`).
//!
//! For every (payload size, client count) cell it measures four rates, plain
//! and tensor writes and reads, each client on its own connection and key. The
//! plain and tensor measurements of a cell are interleaved over several rounds,
//! alternating which kind goes first, so that drift and noise hit both alike.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use redis::{Cmd, Connection, ConnectionLike, Value};

use redisai_benches::csv::{num, CsvTable};

const USAGE: &str = "\
usage: bench-tensors --port P [options]

  --port P          port of the running server (required)
  --host H          host of the running server (default 127.0.0.1)
  --seconds S       seconds measured for each rate of a cell, split over the
                    rounds (default 3; a cell has four rates: plain and tensor,
                    SET and GET)
  --rounds R        rounds per cell; plain and tensor alternate which runs
                    first in each round (default 12)
  --sizes LIST      payload sizes, e.g. 1K,64K,1M,8M (default 1K,64K,1M,8M)
  --clients LIST    client counts, e.g. 1,16 (default 1,16)
  --csv-dir DIR     also write the table to DIR/tensors.csv (appended)
  -h, --help        print this help";

/// The acceptance target: tensor rate / plain rate, in every cell and direction.
const TARGET_RATIO: f64 = 0.9;

struct Options {
    host: String,
    port: u16,
    seconds: f64,
    rounds: u32,
    sizes: Vec<usize>,
    clients: Vec<usize>,
    csv_dir: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Plain,
    Tensor,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Write,
    Read,
}

impl Kind {
    fn index(self) -> usize {
        self as usize
    }

    fn key(self, client: usize) -> String {
        match self {
            Kind::Plain => format!("bench:plain:{client}"),
            Kind::Tensor => format!("bench:tensor:{client}"),
        }
    }

    fn command(self, op: Op, key: &str, payload: &[u8]) -> Cmd {
        let mut cmd;
        match (self, op) {
            (Kind::Plain, Op::Write) => {
                cmd = redis::cmd("SET");
                cmd.arg(key).arg(payload);
            }
            (Kind::Plain, Op::Read) => {
                cmd = redis::cmd("GET");
                cmd.arg(key);
            }
            (Kind::Tensor, Op::Write) => {
                cmd = redis::cmd("AI.TENSORSET");
                cmd.arg(key)
                    .arg("UINT8")
                    .arg(payload.len())
                    .arg("BLOB")
                    .arg(payload);
            }
            (Kind::Tensor, Op::Read) => {
                cmd = redis::cmd("AI.TENSORGET");
                cmd.arg(key).arg("BLOB");
            }
        }
        cmd
    }

    fn name(self, op: Op) -> &'static str {
        match (self, op) {
            (Kind::Plain, Op::Write) => "SET",
            (Kind::Plain, Op::Read) => "GET",
            (Kind::Tensor, Op::Write) => "AI.TENSORSET",
            (Kind::Tensor, Op::Read) => "AI.TENSORGET",
        }
    }
}

impl Op {
    fn index(self) -> usize {
        self as usize
    }
}

/// Runs `cmd` (already packed) and checks the reply's shape: `OK` for writes,
/// a blob of `len` bytes for reads. Returns the blob for reads.
fn request(con: &mut Connection, packed: &[u8], op: Op, len: usize) -> Result<Option<Vec<u8>>> {
    let reply = con.req_packed_command(packed)?.extract_error()?;
    match op {
        Op::Write => {
            ensure!(reply == Value::Okay, "expected OK, got {reply:?}");
            Ok(None)
        }
        Op::Read => {
            let blob = into_blob(reply)?;
            ensure!(
                blob.len() == len,
                "expected {len} bytes, got {}",
                blob.len()
            );
            Ok(Some(blob))
        }
    }
}

/// The bytes of a GET or TENSORGET BLOB reply: a bulk string, or (should the
/// module answer with META-style fields) the value that follows `blob`.
fn into_blob(reply: Value) -> Result<Vec<u8>> {
    let is_blob = |v: &Value| match v {
        Value::BulkString(b) => b.eq_ignore_ascii_case(b"blob"),
        Value::SimpleString(s) => s.eq_ignore_ascii_case("blob"),
        _ => false,
    };
    match reply {
        Value::BulkString(bytes) => Ok(bytes),
        Value::Map(fields) => match fields.into_iter().find(|(k, _)| is_blob(k)) {
            Some((_, v)) => into_blob(v),
            None => bail!("reply map has no blob field"),
        },
        Value::Array(items) => {
            let mut items = items.into_iter();
            while let Some(item) = items.next() {
                if is_blob(&item) {
                    return into_blob(items.next().context("blob field without a value")?);
                }
            }
            bail!("reply array has no blob field")
        }
        other => bail!("expected a blob, got {other:?}"),
    }
}

/// Writes `payload` under every client's key and reads it back, comparing the
/// bytes. Doubles as the warm-up for the cell.
fn verify(conns: &mut [Connection], kind: Kind, payload: &[u8]) -> Result<()> {
    for (client, con) in conns.iter_mut().enumerate() {
        let key = kind.key(client);
        for op in [Op::Write, Op::Read] {
            let packed = kind.command(op, &key, payload).get_packed_command();
            let blob = request(con, &packed, op, payload.len())
                .with_context(|| format!("{} {key} ({} bytes)", kind.name(op), payload.len()))?;
            if let Some(blob) = blob {
                ensure!(
                    blob == payload,
                    "{} {key} returned different bytes than were written",
                    kind.name(op)
                );
            }
        }
    }
    Ok(())
}

/// Runs `kind`/`op` on every connection concurrently for `duration` and
/// returns the aggregate rate in ops/s (the sum of each client's own rate,
/// each measured over its own start-to-last-reply window).
fn measure(
    conns: &mut [Connection],
    kind: Kind,
    op: Op,
    payload: &[u8],
    duration: Duration,
) -> Result<f64> {
    let barrier = Barrier::new(conns.len());
    let rates = thread::scope(|scope| {
        let handles: Vec<_> = conns
            .iter_mut()
            .enumerate()
            .map(|(client, con)| {
                let packed = kind
                    .command(op, &kind.key(client), payload)
                    .get_packed_command();
                let barrier = &barrier;
                scope.spawn(move || -> Result<f64> {
                    barrier.wait();
                    let start = Instant::now();
                    let mut ops = 0u64;
                    loop {
                        request(con, &packed, op, payload.len())
                            .with_context(|| format!("{} (client {client})", kind.name(op)))?;
                        ops += 1;
                        let elapsed = start.elapsed();
                        if elapsed >= duration {
                            return Ok(ops as f64 / elapsed.as_secs_f64());
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
            .collect::<Result<Vec<f64>>>()
    })?;
    Ok(rates.iter().sum())
}

/// Mean rates of one cell, indexed `[kind][op]`.
type CellRates = [[f64; 2]; 2];

fn run_cell(
    conns: &mut [Connection],
    payload: &[u8],
    opts: &Options,
    plain_first: bool,
) -> Result<CellRates> {
    for kind in [Kind::Plain, Kind::Tensor] {
        verify(conns, kind, payload)?;
    }
    let per_round = Duration::from_secs_f64(opts.seconds / f64::from(opts.rounds));
    let mut sums = [[0.0; 2]; 2];
    for round in 0..opts.rounds {
        let order = if plain_first == (round % 2 == 0) {
            [Kind::Plain, Kind::Tensor]
        } else {
            [Kind::Tensor, Kind::Plain]
        };
        for op in [Op::Write, Op::Read] {
            for kind in order {
                sums[kind.index()][op.index()] += measure(conns, kind, op, payload, per_round)?;
            }
        }
    }
    let mut del = redis::cmd("DEL");
    for client in 0..conns.len() {
        del.arg(Kind::Plain.key(client))
            .arg(Kind::Tensor.key(client));
    }
    del.query::<i64>(&mut conns[0])
        .context("DEL of the bench keys")?;
    Ok(sums.map(|per_op| per_op.map(|sum| sum / f64::from(opts.rounds))))
}

/// Deterministic, incompressible-looking bytes (xorshift64).
fn make_payload(len: usize) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ len as u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        })
        .collect()
}

fn parse_size(s: &str) -> Result<usize> {
    let s = s.trim();
    let (digits, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, ""),
    };
    let n: usize = digits.parse().with_context(|| format!("bad size {s:?}"))?;
    let mult = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        _ => bail!("bad size unit in {s:?} (use K or M)"),
    };
    ensure!(n > 0, "size must be positive: {s:?}");
    Ok(n * mult)
}

fn format_size(n: usize) -> String {
    if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} B")
    }
}

fn parse_list<T>(s: &str, parse: impl Fn(&str) -> Result<T>) -> Result<Vec<T>> {
    let items = s.split(',').map(parse).collect::<Result<Vec<T>>>()?;
    ensure!(!items.is_empty(), "empty list");
    Ok(items)
}

/// `None` means `--help` was asked for.
fn parse_args() -> Result<Option<Options>> {
    let mut opts = Options {
        host: "127.0.0.1".into(),
        port: 0,
        seconds: 3.0,
        rounds: 12,
        sizes: vec![1 << 10, 64 << 10, 1 << 20, 8 << 20],
        clients: vec![1, 16],
        csv_dir: None,
    };
    let Some(pairs) = redisai_benches::shared::flag_value_pairs()? else {
        return Ok(None);
    };
    for (flag, value) in pairs {
        let bad = || format!("bad value for {flag}: {value:?}");
        match flag.as_str() {
            "--host" => opts.host = value.clone(),
            "--port" => opts.port = value.parse().with_context(bad)?,
            "--seconds" => opts.seconds = value.parse().with_context(bad)?,
            "--rounds" => opts.rounds = value.parse().with_context(bad)?,
            "--csv-dir" => opts.csv_dir = Some(value.into()),
            "--sizes" => opts.sizes = parse_list(&value, parse_size).with_context(bad)?,
            "--clients" => {
                opts.clients = parse_list(&value, |s| {
                    let n: usize = s.trim().parse()?;
                    ensure!(n > 0, "client count must be positive");
                    Ok(n)
                })
                .with_context(bad)?
            }
            _ => bail!("unknown option {flag:?}\n\n{USAGE}"),
        }
    }
    ensure!(opts.port != 0, "--port is required\n\n{USAGE}");
    ensure!(
        opts.seconds.is_finite() && opts.seconds > 0.0,
        "--seconds must be positive"
    );
    ensure!(opts.rounds > 0, "--rounds must be positive");
    Ok(Some(opts))
}

fn server_version(con: &mut Connection) -> Result<String> {
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query(con)
        .context("INFO server")?;
    Ok(info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap_or("unknown")
        .trim()
        .to_string())
}

/// Fails early, with a hint, when the server has no RedisAI commands.
fn check_module(con: &mut Connection) -> Result<()> {
    let info: Vec<Value> = redis::cmd("COMMAND")
        .arg("INFO")
        .arg("AI.TENSORSET")
        .arg("AI.TENSORGET")
        .query(con)
        .context("COMMAND INFO")?;
    ensure!(
        info.iter().all(|c| *c != Value::Nil),
        "the server does not know AI.TENSORSET/AI.TENSORGET: is the RedisAI module loaded?"
    );
    Ok(())
}

fn run(opts: &Options) -> Result<()> {
    let max_clients = opts.clients.iter().copied().max().unwrap_or(1);
    let mut conns = redisai_benches::shared::connect(&opts.host, opts.port, max_clients)?;
    check_module(&mut conns[0])?;
    let version = server_version(&mut conns[0])?;

    println!(
        "AI.TENSORSET/AI.TENSORGET BLOB vs SET/GET: redis {version} at {}:{}, \
         {} s per rate in {} rounds, ops/s (one op = one write or one read)",
        opts.host, opts.port, opts.seconds, opts.rounds
    );
    println!();
    println!(
        "| size | clients | plain SET ops/s | tensor SET ops/s | ratio \
         | plain GET ops/s | tensor GET ops/s | ratio |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut csv = CsvTable::in_dir(
        opts.csv_dir.as_deref(),
        "tensors.csv",
        &[
            "size",
            "bytes",
            "clients",
            "SET ops/s",
            "AI.TENSORSET ops/s",
            "AI.TENSORSET / SET",
            "GET ops/s",
            "AI.TENSORGET BLOB ops/s",
            "AI.TENSORGET / GET",
        ],
    )?;

    let mut worst: Option<(f64, String)> = None;
    let mut cell = 0usize;
    for &size in &opts.sizes {
        let payload = make_payload(size);
        for &clients in &opts.clients {
            let plain_first = cell.is_multiple_of(2);
            cell += 1;
            eprintln!(
                "==> {} x {clients} client(s), {} first",
                format_size(size),
                if plain_first { "plain" } else { "tensor" }
            );
            let rates = run_cell(&mut conns[..clients], &payload, opts, plain_first)
                .with_context(|| format!("{} with {clients} client(s)", format_size(size)))?;
            let mut row = format!("| {} | {clients} ", format_size(size));
            let mut cells = vec![format_size(size), size.to_string(), clients.to_string()];
            for op in [Op::Write, Op::Read] {
                let plain = rates[Kind::Plain.index()][op.index()];
                let tensor = rates[Kind::Tensor.index()][op.index()];
                let ratio = tensor / plain;
                row += &format!("| {plain:.0} | {tensor:.0} | {ratio:.2} ");
                cells.extend([num(plain, 0), num(tensor, 0), num(ratio, 3)]);
                if worst.as_ref().is_none_or(|(w, _)| ratio < *w) {
                    let what = format!(
                        "{} {} x {clients}",
                        Kind::Tensor.name(op),
                        format_size(size)
                    );
                    worst = Some((ratio, what));
                }
            }
            println!("{row}|");
            csv.row(&cells)?;
        }
    }

    println!();
    println!("target: ratio >= {TARGET_RATIO} everywhere");
    if let Some((ratio, what)) = worst {
        let verdict = if ratio >= TARGET_RATIO {
            "met"
        } else {
            "NOT met"
        };
        println!("result: {verdict} (lowest ratio {ratio:.2}, {what})");
    }
    Ok(())
}

fn main() -> ExitCode {
    redisai_benches::shared::run_main("bench-tensors", USAGE, parse_args, run)
}
