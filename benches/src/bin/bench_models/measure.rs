//! The measurements of one model: the module against its runtime in process, with and
//! without BATCHSIZE, the large-output copy row and the memory row.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use redis::{Connection, Value};
use redisai_benches::plugin::{Model, Plugin};

use crate::clients::{DirectClient, ModuleClient, OwnedInput, RunQueue};
use crate::load::{closed_loop, Client, Sample};
use crate::manifest::{ModelSpec, LARGE_OUTPUT_MODEL};
use crate::report::{BatchRow, CopyRow, MemoryRow, Report, Row};
use crate::server::{connect_one, delete_keys, load_backend, server_pid, store_model};
use crate::{memory, short_error, Options};

/// Runs `module` and `in_process` alternately, `rounds` windows each (the first after a
/// warm-up call per client).
pub(crate) fn alternate<A: Client, B: Client>(
    opts: &Options,
    module: &mut [A],
    module_per_call: u64,
    in_process: &mut [B],
    in_process_per_call: u64,
) -> Result<(Sample, Sample)> {
    let (mut m, mut p) = (Sample::default(), Sample::default());
    for round in 0..opts.rounds {
        let warm_up = round == 0;
        m.add(
            closed_loop(module, opts.window, module_per_call, warm_up)
                .context("through the module")?,
        );
        p.add(closed_loop(
            in_process,
            opts.window,
            in_process_per_call,
            warm_up,
        )?);
    }
    Ok((m, p))
}

pub(crate) fn f32s(bytes: &[u8]) -> impl Iterator<Item = f32> + '_ {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
}

/// Compares the module's output with the in-process one (same runtime, same input):
/// the largest difference relative to the output's scale.
pub(crate) fn output_difference(module: &[u8], direct: &[u8]) -> f64 {
    if module.len() != direct.len() {
        return f64::INFINITY;
    }
    let scale = f32s(direct).fold(0f32, |m, v| m.max(v.abs())).max(1e-6) as f64;
    f32s(module)
        .zip(f32s(direct))
        .map(|(a, b)| ((a - b).abs() as f64) / scale)
        .fold(0.0, f64::max)
}

/// The plugins of the backends folder, each opened once, on first use.
pub(crate) struct Backends {
    dir: PathBuf,
    opened: HashMap<String, Plugin>,
}

impl Backends {
    pub(crate) fn new(dir: PathBuf) -> Self {
        Backends {
            dir,
            opened: HashMap::new(),
        }
    }

    fn load(&mut self, spec: &ModelSpec) -> Result<Arc<Model>> {
        if !self.opened.contains_key(&spec.backend) {
            let plugin = Plugin::open(&spec.plugin_path(&self.dir)?)?;
            self.opened.insert(spec.backend.clone(), plugin);
        }
        let plugin = &self.opened[&spec.backend];
        let blob = spec.read_blob()?;
        let (inputs, outputs) = spec.node_names();
        Ok(Arc::new(
            plugin
                .load(&blob, &inputs, &outputs)
                .with_context(|| format!("loading {} in process", spec.name))?,
        ))
    }
}

pub(crate) fn measure_model(
    opts: &Options,
    spec: &ModelSpec,
    con: &mut Connection,
    backends: &mut Backends,
    report: &mut Report,
) -> Result<()> {
    let key = format!("bm:{}", spec.name);
    let started = Instant::now();
    if opts.memory {
        let pid = server_pid(con)?;
        load_backend(con, spec, &backends.dir)?;
        let before = memory::server_rss(con, pid)?;
        store_model(con, &key, spec, 0)?;
        let module = memory::server_rss(con, pid)?.saturating_sub(before);
        match memory::probe_in_fresh_process(&probe_args(opts), spec, opts.intra_op, opts.inter_op)
        {
            Ok((in_process, warning)) => {
                report
                    .notes
                    .extend(warning.map(|w| format!("{}: {w}", spec.name)));
                report.memory.push(MemoryRow {
                    model: spec.name.clone(),
                    blob: spec.blob_bytes,
                    module,
                    in_process,
                });
            }
            // The probe is another process: its failure leaves this one sound.
            Err(err) => report.notes.push(format!(
                "{}: no memory row: {}",
                spec.name,
                short_error(&format!("{err:#}"))
            )),
        }
    } else {
        store_model(con, &key, spec, 0)?;
    }
    let model = backends.load(spec)?;
    let input = Arc::new(OwnedInput::new(spec, 1)?);

    // The same answer both ways, or the comparison is void.
    let mut direct = Vec::new();
    model.run(&input.view(), Some(&mut direct))?;
    let through_module = ModuleClient::new(connect_one(opts.port)?, spec, &key, 0)
        .call_output()
        .with_context(|| format!("{} through the module", spec.name))?;
    let difference = output_difference(&through_module, &direct);
    if difference > 1e-3 {
        report.notes.push(format!(
            "{}: the module's output differs from the in-process one by {difference:.2e} (relative to its largest value)",
            spec.name
        ));
    }

    let max_clients = opts
        .clients
        .iter()
        .copied()
        .chain([opts.batch])
        .max()
        .unwrap_or(1);
    for &n in &opts.clients {
        let mut module: Vec<ModuleClient> = (0..n)
            .map(|i| Ok(ModuleClient::new(connect_one(opts.port)?, spec, &key, i)))
            .collect::<Result<_>>()?;
        let queue = RunQueue::start(model.clone(), input.clone(), opts.workers);
        let mut in_process: Vec<_> = (0..n).map(|_| queue.client()).collect();
        let (m, p) = alternate(opts, &mut module, 1, &mut in_process, 1)?;
        drop(in_process);
        drop(queue);
        eprintln!(
            "    {} clients {n}: module {:.1}/s, in process {:.1}/s",
            spec.name,
            m.rate(),
            p.rate()
        );
        report.rows.push(Row {
            model: spec.name.clone(),
            clients: n,
            module: m,
            in_process: p,
        });
    }

    if spec.name == LARGE_OUTPUT_MODEL {
        report.copy = Some(measure_copy(opts, spec, &key, &model)?);
    }

    delete_keys(con, &[&key])?;
    if opts.batch > 0 {
        let batch_key = format!("{key}:batch");
        if let Err(err) = store_model(con, &batch_key, spec, opts.batch) {
            if !format!("{err:#}").contains("not supported") {
                return Err(err);
            }
            report
                .notes
                .push(format!("{}: no BATCHSIZE row: {err:#}", spec.name));
            return finish(con, spec, max_clients, started);
        }
        let mut module: Vec<ModuleClient> = (0..opts.batch)
            .map(|i| {
                Ok(ModuleClient::new(
                    connect_one(opts.port)?,
                    spec,
                    &batch_key,
                    i,
                ))
            })
            .collect::<Result<_>>()?;
        let mut direct = [DirectClient {
            model: model.clone(),
            input: OwnedInput::new(spec, opts.batch)?,
            output: Vec::new(),
            copy: true,
        }];
        let (m, p) = alternate(opts, &mut module, 1, &mut direct, opts.batch as u64)?;
        eprintln!(
            "    {} BATCHSIZE {}: module {:.1}/s, runtime's batch call {:.1}/s",
            spec.name,
            opts.batch,
            m.rate(),
            p.rate()
        );
        report.batches.push(BatchRow {
            model: spec.name.clone(),
            batch: opts.batch,
            module: m,
            in_process: p,
        });
        delete_keys(con, &[&batch_key])?;
    }
    finish(con, spec, max_clients, started)
}

/// Deletes the clients' tensors.
pub(crate) fn finish(
    con: &mut Connection,
    spec: &ModelSpec,
    clients: usize,
    started: Instant,
) -> Result<()> {
    let mut cleanup = redis::cmd("DEL");
    for i in 0..clients {
        cleanup.arg(format!("bm:in:{i}")).arg(format!("bm:out:{i}"));
    }
    let _: Value = cleanup.query(con)?;
    eprintln!(
        "==> {} done in {:.0} s",
        spec.name,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The large-output row: one client, the module against the runtime's call with its
/// output copied out once (as the module's core copies it today) and with no copy (the
/// runtime's memory only looked at): what handing the output over would save.
pub(crate) fn measure_copy(
    opts: &Options,
    spec: &ModelSpec,
    key: &str,
    model: &Arc<Model>,
) -> Result<CopyRow> {
    let mut module = [ModuleClient::new(connect_one(opts.port)?, spec, key, 0)];
    let mut executed = [ModuleClient::execute_only(
        connect_one(opts.port)?,
        spec,
        key,
        1,
    )?];
    let direct = |copy| -> Result<DirectClient> {
        Ok(DirectClient {
            model: model.clone(),
            input: OwnedInput::new(spec, 1)?,
            output: Vec::new(),
            copy,
        })
    };
    let mut copied = [direct(true)?];
    let mut viewed = [direct(false)?];
    let (mut m, mut e, mut c, mut v) = <(Sample, Sample, Sample, Sample)>::default();
    for round in 0..opts.rounds * 2 {
        let warm_up = round == 0;
        m.add(closed_loop(&mut module, opts.window, 1, warm_up)?);
        e.add(closed_loop(&mut executed, opts.window, 1, warm_up)?);
        c.add(closed_loop(&mut copied, opts.window, 1, warm_up)?);
        v.add(closed_loop(&mut viewed, opts.window, 1, warm_up)?);
    }
    Ok(CopyRow {
        model: spec.name.clone(),
        output_bytes: spec.output.byte_len(),
        module: m,
        executed: e,
        copied: c,
        viewed: v,
    })
}

pub(crate) fn probe_args(opts: &Options) -> Vec<String> {
    vec![
        "--models-dir".into(),
        opts.models_dir.display().to_string(),
        "--backends".into(),
        opts.backends.display().to_string(),
    ]
}
