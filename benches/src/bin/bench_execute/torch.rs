//! The TORCH rows of the overhead table: `tests/models/torch/mlp.pt` (a [1, 4] -> [1, 3]
//! MLP) through `AI.MODELEXECUTE` against the same model run in this process through
//! the TORCH plugin's C ABI, the module's exact backend call. The plugin is not linked
//! (building it needs libtorch): it is opened with dlopen from the dist folder
//! (`$REDISAI_TORCH_BACKEND`, default dist/backends/redisai_torch/redisai_torch.so), as
//! the module opens it; without it the rows are skipped with a note.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use redis::{Connection, ConnectionLike, Value};

use super::frameworks::RowSink;
use redisai_benches::plugin::{self, Plugin};

use super::{
    expect_blob, expect_ok, f32_bytes, f32_values, latency, module_settings, repo_root,
    InlineLimit, Latency, Options, TARGET_ADDED_P50_US,
};

/// The MLP's result for x = [1, 2, 3, 4] (its weights are exact in binary).
const X: [f32; 4] = [1.0, 2.0, 3.0, 4.0];
const Y: [f32; 3] = [-0.78125, 0.75, -0.25];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Path {
    Direct,
    Execute,
    ExecuteOnWorker,
    ExecuteGet,
    Ping,
}

const PATHS: [Path; 5] = [
    Path::Direct,
    Path::Execute,
    Path::ExecuteOnWorker,
    Path::ExecuteGet,
    Path::Ping,
];

impl Path {
    fn label(self) -> &'static str {
        match self {
            Path::Direct => "direct through the TORCH plugin's C ABI, in process (baseline)",
            Path::Execute => "`AI.MODELEXECUTE`",
            Path::ExecuteOnWorker => {
                "`AI.MODELEXECUTE` with every run on a run-queue thread \
                 (INLINE_EXECUTION_LIMIT_US 0)"
            }
            Path::ExecuteGet => "`AI.MODELEXECUTE`, then `AI.TENSORGET y BLOB`",
            Path::Ping => "`PING` (a bare round trip, for reference)",
        }
    }

    /// The path's name in the CSV, shared with the other overhead tables.
    fn short(self) -> &'static str {
        match self {
            Path::Direct => "in process",
            Path::Execute => "AI.MODELEXECUTE",
            Path::ExecuteOnWorker => "AI.MODELEXECUTE on a worker",
            Path::ExecuteGet => "+ AI.TENSORGET",
            Path::Ping => "PING",
        }
    }
}

/// Measures the TORCH MLP and prints its table; skipped (with a note) when the plugin
/// has not been built.
// bench-execute calls run_overhead_with_rows; this is the entry point for the binaries
// that include this file with #[path] and keep no CSV.
#[allow(dead_code)]
pub(crate) fn run_overhead(opts: &Options, con: &mut Connection) -> Result<()> {
    run_overhead_with_rows(opts, con, &mut |_, _, _, _| Ok(()))
}

/// [`run_overhead`], handing each row of the table to `row` too: model, path, latency
/// and the added p50 and p99 over the direct call (µs) where the table has them.
pub(crate) fn run_overhead_with_rows(
    opts: &Options,
    con: &mut Connection,
    row: RowSink<'_>,
) -> Result<()> {
    let plugin = std::env::var_os("REDISAI_TORCH_BACKEND")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("dist/backends/redisai_torch/redisai_torch.so"));
    if !plugin.is_file() {
        println!(
            "(TORCH not measured: no {}; run scripts/build-backend-torch)",
            plugin.display()
        );
        println!();
        return Ok(());
    }
    let blob = std::fs::read(repo_root().join("tests/models/torch/mlp.pt")).context("mlp.pt")?;
    let settings = module_settings(con)?;
    let (intra, inter) = (settings.intra_op, settings.inter_op);
    plugin::set_thread_settings(intra, inter);
    let direct = Plugin::open(&plugin)?
        .load(&blob, &[], &[])
        .context("loading mlp.pt through the TORCH plugin")?;
    let shape = [1i64, 4];
    let input = f32_bytes(&X);
    let (key, x, y) = ("bench:torch:mlp", "bench:torch:mlp:x", "bench:torch:mlp:y");
    let store = redis::cmd("AI.MODELSTORE")
        .arg(key)
        .arg("TORCH")
        .arg("CPU")
        .arg("BLOB")
        .arg(&blob)
        .query::<Value>(con)?;
    expect_ok(store).context("AI.MODELSTORE of mlp.pt")?;
    let set = redis::cmd("AI.TENSORSET")
        .arg(x)
        .arg("FLOAT")
        .arg(1)
        .arg(4)
        .arg("BLOB")
        .arg(&input)
        .query::<Value>(con)?;
    expect_ok(set)?;
    let execute = redis::cmd("AI.MODELEXECUTE")
        .arg(key)
        .arg("INPUTS")
        .arg(1)
        .arg(x)
        .arg("OUTPUTS")
        .arg(1)
        .arg(y)
        .get_packed_command();
    let get = redis::cmd("AI.TENSORGET")
        .arg(y)
        .arg("BLOB")
        .get_packed_command();
    let ping = redis::cmd("PING").get_packed_command();

    // Both sides compute the known result.
    ensure!(
        f32_values(&direct.run_float(&shape, &input)?) == Y,
        "direct TORCH run: wrong output"
    );
    expect_ok(con.req_packed_command(&execute)?)?;
    ensure!(
        f32_values(&expect_blob(con.req_packed_command(&get)?, 12)?) == Y,
        "AI.MODELEXECUTE of mlp.pt: wrong output"
    );

    let inline_limit = InlineLimit::read(con)?;
    let once = |con: &mut Connection, path: Path| -> Result<()> {
        match path {
            Path::Direct => {
                direct.run_float(&shape, &input)?;
            }
            Path::Execute | Path::ExecuteOnWorker => expect_ok(con.req_packed_command(&execute)?)?,
            Path::ExecuteGet => {
                expect_ok(con.req_packed_command(&execute)?)?;
                expect_blob(con.req_packed_command(&get)?, 12)?;
            }
            Path::Ping => {
                con.req_packed_command(&ping)?.extract_error()?;
            }
        }
        Ok(())
    };
    eprintln!(
        "==> overhead: torch mlp ({} s in {} rounds)",
        opts.overhead_seconds, opts.overhead_rounds
    );
    let per_path = Duration::from_secs_f64(
        opts.overhead_seconds / f64::from(opts.overhead_rounds) / PATHS.len() as f64,
    );
    let mut samples = vec![Vec::new(); PATHS.len()];
    for round in 0..opts.overhead_rounds as usize {
        for i in 0..PATHS.len() {
            let index = (i + round) % PATHS.len();
            let path = PATHS[index];
            inline_limit.apply(con, path == Path::ExecuteOnWorker)?;
            // Warm-up runs after a change of the limit (a model runs inline only after
            // some fast runs), not counted.
            for _ in 0..50 {
                once(con, path)?;
            }
            let start = Instant::now();
            loop {
                let t0 = Instant::now();
                once(con, path)?;
                samples[index].push(t0.elapsed().as_nanos() as u64);
                if start.elapsed() >= per_path {
                    break;
                }
            }
        }
    }
    inline_limit.apply(con, false)?;
    let _ = redis::cmd("DEL").arg(key).arg(x).arg(y).query::<i64>(con);
    let stats: Vec<Latency> = samples.into_iter().map(latency).collect();

    println!(
        "### Overhead, TORCH: AI.MODELEXECUTE of tests/models/torch/mlp.pt vs the same call in \
         process (1 client; {})",
        opts.placement
    );
    println!();
    println!(
        "libtorch 2.13 on both sides, INTRA_OP_PARALLELISM {intra}, INTER_OP_PARALLELISM {inter} \
         (0: libtorch's default); latency in µs."
    );
    println!();
    println!("| model | path | p50 µs | p99 µs | added p50 µs | added p99 µs | ops |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    let base = &stats[0];
    for (path, s) in PATHS.iter().zip(&stats) {
        let runs_in_redis = matches!(
            path,
            Path::Execute | Path::ExecuteOnWorker | Path::ExecuteGet
        );
        let added_us = runs_in_redis.then_some((s.p50 - base.p50, s.p99 - base.p99));
        row("TORCH mlp.pt [1, 4]", path.short(), s, added_us)?;
        let added = match path {
            Path::Execute | Path::ExecuteOnWorker | Path::ExecuteGet => (
                format!("{:+.1}", s.p50 - base.p50),
                format!("{:+.1}", s.p99 - base.p99),
            ),
            _ => (String::new(), String::new()),
        };
        println!(
            "| mlp.pt (TORCH) [1, 4] | {} | {:.1} | {:.1} | {} | {} | {} |",
            path.label(),
            s.p50,
            s.p99,
            added.0,
            added.1,
            s.count
        );
    }
    println!();
    let at = |path: Path| &stats[PATHS.iter().position(|p| *p == path).unwrap_or(0)];
    let (execute, on_worker, ping) = (
        at(Path::Execute).p50,
        at(Path::ExecuteOnWorker).p50,
        at(Path::Ping).p50,
    );
    let added = execute - base.p50;
    println!(
        "- TORCH mlp: AI.MODELEXECUTE {execute:.0} µs = a bare round trip (PING) {ping:.0} µs \
         + the backend call ({:.1} µs in process) + {:.0} µs for the module's own work \
         (parsing, key lookup, writing the output key, the reply). With every run on a \
         run-queue thread it takes {on_worker:.0} µs: the hand-off to the thread and back \
         costs {:.0} µs.",
        base.p50,
        execute - ping - base.p50,
        on_worker - execute
    );
    println!();
    let verdict = if added <= TARGET_ADDED_P50_US {
        "met"
    } else {
        "NOT met"
    };
    println!(
        "**target: ≤ {TARGET_ADDED_P50_US} µs added at p50 for the TORCH MLP ({}): {verdict}** \
         (AI.MODELEXECUTE adds {added:.1} µs at p50)",
        opts.placement
    );
    println!();
    Ok(())
}
