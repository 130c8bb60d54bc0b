//! Part 1 of bench-execute: AI.MODELEXECUTE against the same ONNX model run in this
//! process, one client, for the small and the big MLP; its table and verdict.

use std::path::Path;

use anyhow::{anyhow, ensure, Context, Result};
use redis::{Connection, Value};
use redisai_onnxruntime::{OnnxBackend, RUNTIME_LIB_ENV};
use redisai_plugin_api::sdk::ConfigKey;

use super::onnx_paths::{Call, OverheadCase};
use super::{torch, Options, TARGET_ADDED_P50_US};
use redisai_benches::csv::{num, CsvTable};
use redisai_benches::shared::{close_enough, info_field, read_model};

/// The server's INLINE_EXECUTION_LIMIT_US, turned off for the paths that measure runs on
/// a run-queue thread and restored for the others.
pub(crate) struct InlineLimit(i64);

impl InlineLimit {
    pub(crate) fn read(con: &mut Connection) -> Result<InlineLimit> {
        let limit: i64 = redis::cmd("AI.CONFIG")
            .arg("GET")
            .arg("INLINE_EXECUTION_LIMIT_US")
            .query(con)
            .context("AI.CONFIG GET INLINE_EXECUTION_LIMIT_US")?;
        Ok(InlineLimit(limit))
    }

    pub(crate) fn apply(&self, con: &mut Connection, off: bool) -> Result<()> {
        let value = if off { 0 } else { self.0 };
        redis::cmd("AI.CONFIG")
            .arg("INLINE_EXECUTION_LIMIT_US")
            .arg(value)
            .query::<()>(con)
            .with_context(|| format!("AI.CONFIG INLINE_EXECUTION_LIMIT_US {value}"))
    }
}

/// The `p`-th percentile (0..=1) of sorted samples, in µs.
pub(crate) fn percentile_us(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64 / 1000.0
}

pub(crate) struct Latency {
    pub(crate) p50: f64,
    pub(crate) p99: f64,
    pub(crate) count: usize,
}

pub(crate) fn latency(mut samples: Vec<u64>) -> Latency {
    samples.sort_unstable();
    Latency {
        p50: percentile_us(&samples, 0.50),
        p99: percentile_us(&samples, 0.99),
        count: samples.len(),
    }
}

/// The small MLP's known result for x = [1, 2, 3, 4] (tests/models/README.md).
pub(crate) const MLP_X: [f32; 4] = [1.0, 2.0, 3.0, 4.0];
pub(crate) const MLP_Y: [f32; 3] = [0.421875, 1.8125, 0.015625];

/// Deterministic inputs for the big MLP, in [-0.5, 0.5].
pub(crate) fn big_input(width: usize) -> Vec<f32> {
    (0..width)
        .map(|i| ((i * 37) % 17) as f32 / 16.0 - 0.5)
        .collect()
}

/// What one model's overhead measurement found.
pub(crate) struct CaseResult {
    name: String,
    width: usize,
    /// Indexed by `Call::index`.
    stats: Vec<Latency>,
    /// The module's own timing of the backend call on its worker (AI.INFO), in µs.
    module_run_p50: f64,
    module_run_p99: f64,
}

impl CaseResult {
    fn get(&self, call: Call) -> &Latency {
        &self.stats[call.index()]
    }

    /// `call` minus the direct baseline, at p50 and p99.
    fn added(&self, call: Call) -> (f64, f64) {
        let (s, base) = (self.get(call), self.get(Call::Direct));
        (s.p50 - base.p50, s.p99 - base.p99)
    }
}

/// `duration_p50` and `duration_p99` (µs) of `AI.INFO key`.
pub(crate) fn module_run_percentiles(con: &mut Connection, key: &str) -> Result<(f64, f64)> {
    let reply: Vec<Value> = redis::cmd("AI.INFO")
        .arg(key)
        .query(con)
        .with_context(|| format!("AI.INFO {key}"))?;
    let field = |name: &str| -> Result<f64> {
        reply
            .chunks_exact(2)
            .find_map(|pair| match (&pair[0], &pair[1]) {
                (Value::SimpleString(k), Value::Int(v)) if k == name => Some(*v as f64),
                (Value::BulkString(k), Value::Int(v)) if k.as_slice() == name.as_bytes() => {
                    Some(*v as f64)
                }
                _ => None,
            })
            .with_context(|| format!("AI.INFO {key} has no {name}"))
    };
    Ok((field("duration_p50")?, field("duration_p99")?))
}

/// Measures one model.
pub(crate) fn overhead_case(
    opts: &Options,
    con: &mut Connection,
    in_process: &InProcess,
    name: &str,
    path: &Path,
    input: &[f32],
    expected: Option<&[f32]>,
) -> Result<CaseResult> {
    let blob = read_model(path)?;
    let mut case = OverheadCase::new(con, in_process, name, &blob, input)?;
    let output = case.verify()?;
    if let Some(expected) = expected {
        ensure!(
            output.len() == expected.len()
                && output
                    .iter()
                    .zip(expected)
                    .all(|(a, b)| close_enough(*a, *b)),
            "{name}: output {output:?}, expected {expected:?}"
        );
    }
    eprintln!(
        "==> overhead: {name} ({} s in {} rounds)",
        opts.overhead_seconds, opts.overhead_rounds
    );
    let model_key = format!("bench:{name}");
    let samples = case.measure(opts.overhead_seconds, opts.overhead_rounds)?;
    let (module_run_p50, module_run_p99) = module_run_percentiles(case.con, &model_key)?;
    let mut del = redis::cmd("DEL");
    del.arg(&model_key)
        .arg(format!("{model_key}:x"))
        .arg(format!("{model_key}:y"));
    del.query::<i64>(case.con)
        .context("DEL of the bench keys")?;
    Ok(CaseResult {
        name: name.to_string(),
        width: input.len(),
        stats: samples.into_iter().map(latency).collect(),
        module_run_p50,
        module_run_p99,
    })
}

/// The in-process side of the comparison: the backend, with the server's settings.
pub(crate) struct InProcess {
    pub(crate) backend: OnnxBackend,
    pub(crate) settings: ModuleSettings,
}

/// The module arguments that matter here, as the server reports them (INFO MODULES).
pub(crate) struct ModuleSettings {
    pub(crate) threads_per_queue: i64,
    pub(crate) intra_op: i64,
    pub(crate) inter_op: i64,
}

pub(crate) fn module_settings(con: &mut Connection) -> Result<ModuleSettings> {
    let mut get = |field: &str| -> Result<i64> {
        let value = info_field(con, "modules", field)?;
        value
            .parse()
            .with_context(|| format!("INFO modules {field}: {value:?}"))
    };
    Ok(ModuleSettings {
        threads_per_queue: get("ai_threads_per_queue")?,
        intra_op: get("ai_intra_op_parallelism")?,
        inter_op: get("ai_inter_op_parallelism")?,
    })
}

/// The overhead tables' CSV (ONNX, TF, TFLite and TORCH rows), in `--csv-dir`.
pub(crate) const CSV_NAME: &str = "execute-overhead.csv";
pub(crate) const CSV_COLUMNS: [&str; 8] = [
    "placement",
    "model",
    "path",
    "p50 us",
    "p99 us",
    "added p50 us",
    "added p99 us",
    "ops",
];

/// One row of [`CSV_NAME`]; `added`: over the direct call, where the table has it.
pub(crate) fn csv_row(
    csv: &mut CsvTable,
    placement: &str,
    model: &str,
    path: &str,
    s: &Latency,
    added: Option<(f64, f64)>,
) -> Result<()> {
    let (added_p50, added_p99) = added.unwrap_or((f64::NAN, f64::NAN));
    csv.row(&[
        placement.to_string(),
        model.to_string(),
        path.to_string(),
        num(s.p50, 1),
        num(s.p99, 1),
        num(added_p50, 1),
        num(added_p99, 1),
        s.count.to_string(),
    ])
}

pub(crate) fn run_overhead(opts: &Options, con: &mut Connection, csv: &mut CsvTable) -> Result<()> {
    ensure!(
        std::env::var_os(RUNTIME_LIB_ENV).is_some_and(|p| !p.is_empty()),
        "set {RUNTIME_LIB_ENV} to the path of libonnxruntime.so.1.32.0 (scripts/bench-execute does)"
    );
    // The server's thread settings, so both sides build the same session; no timeout
    // (`Call::DirectAbi` has the module's).
    let settings = module_settings(con)?;
    let (intra, inter) = (settings.intra_op, settings.inter_op);
    let backend = OnnxBackend::new(move |key: ConfigKey| match key {
        ConfigKey::IntraOpParallelism => intra,
        ConfigKey::InterOpParallelism => inter,
        _ => 0,
    })
    .map_err(|err| anyhow!("starting the ONNX backend in process: {err}"))?;
    let in_process = InProcess { backend, settings };

    let mut results = vec![overhead_case(
        opts,
        con,
        &in_process,
        "mlp",
        &opts.mlp,
        &MLP_X,
        Some(&MLP_Y),
    )?];
    if let Some(path) = &opts.mlp_big {
        results.push(overhead_case(
            opts,
            con,
            &in_process,
            "mlp_big",
            path,
            &big_input(512),
            None,
        )?);
    }

    println!(
        "### Overhead: AI.MODELEXECUTE vs a direct in-process run (1 client; {})",
        opts.placement
    );
    println!();
    println!(
        "{} s per model in {} rounds, paths rotating; latency in µs; \"added\" = this path \
         minus the direct baseline at the same percentile. Both sides: \
         INTRA_OP_PARALLELISM {intra}, INTER_OP_PARALLELISM {inter} (0: ONNX Runtime's default).",
        opts.overhead_seconds, opts.overhead_rounds
    );
    println!();
    println!(
        "| model | path | round trips | p50 µs | p99 µs | added p50 µs | added p99 µs | ops |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|---:|");
    for result in &results {
        for call in Call::ALL {
            let s = result.get(call);
            let model = format!("ONNX {} [1, {}]", result.name, result.width);
            let has_added = call.runs_model() && call != Call::Direct;
            let added = has_added.then(|| result.added(call));
            csv_row(csv, &opts.placement, &model, call.short(), s, added)?;
            let (added50, added99) = if has_added {
                let (p50, p99) = result.added(call);
                (format!("{p50:+.1}"), format!("{p99:+.1}"))
            } else {
                (String::new(), String::new())
            };
            println!(
                "| {} [1, {}] | {} | {} | {:.1} | {:.1} | {added50} | {added99} | {} |",
                result.name,
                result.width,
                call.label(),
                call.round_trips(),
                s.p50,
                s.p99,
                s.count
            );
        }
    }
    println!();
    println!("Where the added time goes, at p50 (approximate: percentiles do not add up exactly):");
    println!();
    for result in &results {
        let execute = result.get(Call::Execute).p50;
        let on_worker = result.get(Call::ExecuteOnWorker).p50;
        let ping = result.get(Call::Ping).p50;
        let direct = result.get(Call::Direct).p50;
        let abi = result.get(Call::DirectAbi).p50;
        let rest = execute - ping - result.module_run_p50;
        println!(
            "- {}: AI.MODELEXECUTE {execute:.0} µs = a bare round trip (PING) {ping:.0} µs \
             + the backend call in the module {:.0} µs (AI.INFO duration_p50 over every \
             run, inline or not; p99 {:.0}), where the same call through the ABI takes \
             {abi:.1} µs in process and the plain run {direct:.1} µs, + {rest:.0} µs for the \
             rest (parsing, key lookup, writing the output key, the reply). With every run \
             on a run-queue thread it takes {on_worker:.0} µs: the hand-off to the thread \
             and back costs {:.0} µs.",
            result.name,
            result.module_run_p50,
            result.module_run_p99,
            on_worker - execute
        );
    }
    println!();
    let (p50, p99) = results[0].added(Call::Execute);
    let verdict = if p50 <= TARGET_ADDED_P50_US {
        "met"
    } else {
        "NOT met"
    };
    println!(
        "**target: ≤ {TARGET_ADDED_P50_US} µs added at p50 for the small MLP ({}): {verdict}** \
         (AI.MODELEXECUTE adds {p50:.1} µs at p50, {p99:.1} µs at p99 over the direct run)",
        opts.placement
    );
    match results.get(1) {
        Some(big) => {
            let (p50, p99) = big.added(Call::Execute);
            println!("(mlp_big, for comparison: {p50:.1} µs added at p50, {p99:.1} µs at p99)");
        }
        None => {
            println!("(mlp_big not measured: no model file; run scripts/gen-test-models --bench)")
        }
    }
    println!();
    torch::run_overhead_with_rows(opts, con, &mut |model, path, s, added| {
        csv_row(csv, &opts.placement, model, path, s, added)
    })
}
