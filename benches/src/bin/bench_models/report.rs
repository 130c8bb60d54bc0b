//! The tables (markdown on stdout) and their CSV files.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use anyhow::{Context, Result};

use crate::load::Sample;

pub struct Row {
    pub model: String,
    pub clients: usize,
    pub module: Sample,
    pub in_process: Sample,
}

pub struct BatchRow {
    pub model: String,
    pub batch: usize,
    pub module: Sample,
    /// The runtime's batch call; its latencies are per batch.
    pub in_process: Sample,
}

pub struct CopyRow {
    pub model: String,
    pub output_bytes: usize,
    pub module: Sample,
    /// The module with the input already stored and the output left in the keyspace.
    pub executed: Sample,
    pub copied: Sample,
    pub viewed: Sample,
}

pub struct MemoryRow {
    pub model: String,
    pub blob: u64,
    pub module: u64,
    pub in_process: u64,
}

pub struct ServerRow {
    pub model: String,
    pub clients: usize,
    pub module: Sample,
    pub server: Sample,
}

pub struct Report {
    pub settings: String,
    pub rows: Vec<Row>,
    pub batches: Vec<BatchRow>,
    pub copy: Option<CopyRow>,
    pub memory: Vec<MemoryRow>,
    pub server: Vec<ServerRow>,
    pub notes: Vec<String>,
    target_ratio: f64,
    target_p99: f64,
    target_batch: f64,
    target_memory: f64,
    target_server_mlp: f64,
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

fn met(ok: bool) -> &'static str {
    if ok {
        "yes"
    } else {
        "**no**"
    }
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

impl MemoryRow {
    fn allowed(&self, factor: f64) -> f64 {
        factor * self.in_process as f64 + self.blob as f64
    }
}

impl Report {
    pub fn new(ratio: f64, p99: f64, batch: f64, memory: f64, server_mlp: f64) -> Self {
        Report {
            settings: String::new(),
            rows: Vec::new(),
            batches: Vec::new(),
            copy: None,
            memory: Vec::new(),
            server: Vec::new(),
            notes: Vec::new(),
            target_ratio: ratio,
            target_p99: p99,
            target_batch: batch,
            target_memory: memory,
            target_server_mlp: server_mlp,
        }
    }

    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let w = &mut out;
        let _ = writeln!(w, "Settings: {}.\n", self.settings);
        let _ = writeln!(
            w,
            "### Through the module vs the runtime in process\n\n\
             A module request is AI.TENSORSET + AI.MODELEXECUTE + AI.TENSORGET pipelined (one \
             connection and key pair per client); in process, the plugin is called through its \
             ABI by a run queue with the module's worker count, the output copied out once. \
             Targets: throughput >= {}x, p99 <= {}x.\n",
            self.target_ratio, self.target_p99
        );
        let _ = writeln!(
            w,
            "| model | clients | module inf/s | in-process inf/s | ratio | module p50 ms | in-process p50 ms | module p99 ms | in-process p99 ms | p99 ratio | met |\n\
             |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        );
        for r in &self.rows {
            let (m, p) = (&r.module, &r.in_process);
            let throughput = ratio(m.rate(), p.rate());
            let p99 = ratio(m.percentile_ms(99.0), p.percentile_ms(99.0));
            let _ = writeln!(
                w,
                "| {} | {} | {:.1} | {:.1} | {:.3} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} |",
                r.model,
                r.clients,
                m.rate(),
                p.rate(),
                throughput,
                m.percentile_ms(50.0),
                p.percentile_ms(50.0),
                m.percentile_ms(99.0),
                p.percentile_ms(99.0),
                p99,
                met(throughput >= self.target_ratio && p99 <= self.target_p99)
            );
        }
        if !self.batches.is_empty() {
            let _ = writeln!(
                w,
                "\n### BATCHSIZE vs the runtime's own batched call\n\n\
                 The model stored with BATCHSIZE N and N clients sending one item each, against \
                 one thread calling the runtime on N items at a time. Target: >= {}x.\n",
                self.target_batch
            );
            let _ = writeln!(
                w,
                "| model | BATCHSIZE (clients) | module inf/s | runtime batch inf/s | ratio | module p50 ms | module p99 ms | runtime p50 ms per batch | met |\n\
                 |---|---:|---:|---:|---:|---:|---:|---:|---|"
            );
            for r in &self.batches {
                let throughput = ratio(r.module.rate(), r.in_process.rate());
                let _ = writeln!(
                    w,
                    "| {} | {} | {:.1} | {:.1} | {:.3} | {:.1} | {:.1} | {:.1} | {} |",
                    r.model,
                    r.batch,
                    r.module.rate(),
                    r.in_process.rate(),
                    throughput,
                    r.module.percentile_ms(50.0),
                    r.module.percentile_ms(99.0),
                    r.in_process.percentile_ms(50.0),
                    met(throughput >= self.target_batch)
                );
            }
        }
        if let Some(c) = &self.copy {
            let added = c.module.percentile_ms(50.0) - c.viewed.percentile_ms(50.0);
            let _ = writeln!(
                w,
                "\n### Large output ({:.1} MiB), one client\n\n\
                 The runtime called in process with its output copied out once, and only looked \
                 at (no copy); the module's request also carries the input in and the output out; \
                 MODELEXECUTE only: the input stored once, the output left in the keyspace.\n",
                c.output_bytes as f64 / (1 << 20) as f64
            );
            let _ = writeln!(
                w,
                "| model | module p50 ms | module p50 ms, MODELEXECUTE only | in-process p50 ms, copied | in-process p50 ms, no copy | module - no copy, ms | module inf/s | module inf/s, MODELEXECUTE only | in-process inf/s, no copy |\n\
                 |---|---:|---:|---:|---:|---:|---:|---:|---:|\n\
                 | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} | {:.1} | {:.1} |",
                c.model,
                c.module.percentile_ms(50.0),
                c.executed.percentile_ms(50.0),
                c.copied.percentile_ms(50.0),
                c.viewed.percentile_ms(50.0),
                added,
                c.module.rate(),
                c.executed.rate(),
                c.viewed.rate()
            );
        }
        if !self.memory.is_empty() {
            let _ = writeln!(
                w,
                "\n### Memory\n\n\
                 RSS added to redis-server by AI.MODELSTORE (backend loaded beforehand, MEMORY \
                 PURGE before each reading) vs a fresh process loading the model through the same \
                 plugin. Target: module <= {}x in-process + the blob.\n",
                self.target_memory
            );
            let _ = writeln!(
                w,
                "| model | blob MB | module MB | in-process MB | module / in-process | allowed MB | met |\n\
                 |---|---:|---:|---:|---:|---:|---|"
            );
            for r in &self.memory {
                let allowed = r.allowed(self.target_memory);
                let _ = writeln!(
                    w,
                    "| {} | {:.1} | {:.1} | {:.1} | {:.2} | {:.1} | {} |",
                    r.model,
                    mb(r.blob),
                    mb(r.module),
                    mb(r.in_process),
                    ratio(r.module as f64, r.in_process as f64),
                    allowed / 1e6,
                    met(r.module as f64 <= allowed)
                );
            }
        }
        if !self.server.is_empty() {
            let _ = writeln!(
                w,
                "\n### The module vs a Python model server (FastAPI + uvicorn + onnxruntime)\n\n\
                 Raw float32 bytes both ways on both sides: the module's BLOB arguments and replies, \
                 the server's application/octet-stream bodies (HTTP/1.1 keep-alive, one connection \
                 per client). Target for the MLP: >= {}x.\n",
                self.target_server_mlp
            );
            let _ = writeln!(
                w,
                "| model | clients | module inf/s | server inf/s | ratio | module p50 ms | server p50 ms | module p99 ms | server p99 ms |\n\
                 |---|---:|---:|---:|---:|---:|---:|---:|---:|"
            );
            for r in &self.server {
                let _ = writeln!(
                    w,
                    "| {} | {} | {:.1} | {:.1} | {:.2} | {:.3} | {:.3} | {:.3} | {:.3} |",
                    r.model,
                    r.clients,
                    r.module.rate(),
                    r.server.rate(),
                    ratio(r.module.rate(), r.server.rate()),
                    r.module.percentile_ms(50.0),
                    r.server.percentile_ms(50.0),
                    r.module.percentile_ms(99.0),
                    r.server.percentile_ms(99.0)
                );
            }
        }
        for note in &self.notes {
            let _ = writeln!(w, "\nNote: {note}");
        }
        out
    }

    pub fn print(&self) {
        println!("{}", self.markdown());
    }

    pub fn write_csv(&self, dir: &Path) -> Result<()> {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let write = |name: &str, text: String| -> Result<()> {
            let path = dir.join(name);
            fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
        };
        let mut main = String::from(
            "model,clients,batch,module inf/s,in-process inf/s,throughput ratio,module p50 ms,in-process p50 ms,module p99 ms,in-process p99 ms,p99 ratio\n",
        );
        for r in &self.rows {
            let (m, p) = (&r.module, &r.in_process);
            let _ = writeln!(
                main,
                "{},{},0,{:.2},{:.2},{:.4},{:.3},{:.3},{:.3},{:.3},{:.4}",
                r.model,
                r.clients,
                m.rate(),
                p.rate(),
                ratio(m.rate(), p.rate()),
                m.percentile_ms(50.0),
                p.percentile_ms(50.0),
                m.percentile_ms(99.0),
                p.percentile_ms(99.0),
                ratio(m.percentile_ms(99.0), p.percentile_ms(99.0))
            );
        }
        for r in &self.batches {
            let (m, p) = (&r.module, &r.in_process);
            // The runtime's latencies are per batch call: no p99 ratio.
            let _ = writeln!(
                main,
                "{},{},{},{:.2},{:.2},{:.4},{:.3},{:.3},{:.3},{:.3},",
                r.model,
                r.batch,
                r.batch,
                m.rate(),
                p.rate(),
                ratio(m.rate(), p.rate()),
                m.percentile_ms(50.0),
                p.percentile_ms(50.0),
                m.percentile_ms(99.0),
                p.percentile_ms(99.0)
            );
        }
        write("bench-models.csv", main)?;
        if let Some(c) = &self.copy {
            write(
                "bench-models-copy.csv",
                format!(
                    "model,output bytes,module p50 ms,module p50 ms execute only,in-process p50 ms copied,in-process p50 ms no copy,module inf/s,module inf/s execute only,in-process inf/s no copy\n\
                     {},{},{:.3},{:.3},{:.3},{:.3},{:.2},{:.2},{:.2}\n",
                    c.model,
                    c.output_bytes,
                    c.module.percentile_ms(50.0),
                    c.executed.percentile_ms(50.0),
                    c.copied.percentile_ms(50.0),
                    c.viewed.percentile_ms(50.0),
                    c.module.rate(),
                    c.executed.rate(),
                    c.viewed.rate()
                ),
            )?;
        }
        if !self.memory.is_empty() {
            let mut text = String::from("model,blob MB,module MB,in-process MB,ratio,allowed MB\n");
            for r in &self.memory {
                let _ = writeln!(
                    text,
                    "{},{:.2},{:.2},{:.2},{:.4},{:.2}",
                    r.model,
                    mb(r.blob),
                    mb(r.module),
                    mb(r.in_process),
                    ratio(r.module as f64, r.in_process as f64),
                    r.allowed(self.target_memory) / 1e6
                );
            }
            write("bench-models-memory.csv", text)?;
        }
        if !self.server.is_empty() {
            let mut text = String::from(
                "model,clients,module inf/s,server inf/s,ratio,module p50 ms,server p50 ms,module p99 ms,server p99 ms\n",
            );
            for r in &self.server {
                let _ = writeln!(
                    text,
                    "{},{},{:.2},{:.2},{:.4},{:.4},{:.4},{:.4},{:.4}",
                    r.model,
                    r.clients,
                    r.module.rate(),
                    r.server.rate(),
                    ratio(r.module.rate(), r.server.rate()),
                    r.module.percentile_ms(50.0),
                    r.server.percentile_ms(50.0),
                    r.module.percentile_ms(99.0),
                    r.server.percentile_ms(99.0)
                );
            }
            write("bench-models-server.csv", text)?;
        }
        write("bench-models-tables.md", self.markdown())?;
        Ok(())
    }
}
