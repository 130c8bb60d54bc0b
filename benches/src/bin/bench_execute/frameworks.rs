//! The TF and TFLite rows of the overhead table: the same small MLP run through Redis
//! (`AI.MODELEXECUTE`, alone and pipelined with `AI.TENSORGET ... BLOB`) and in this
//! process through the same plugin, opened from its backend folder and called through its
//! C ABI on this thread with no cancel flag and no timeout (`redisai_benches::plugin`): the
//! runtime call itself. TF's direct call includes the hand-off to one of the plugin's
//! `tf-call` threads (TensorFlow runs in a link namespace of its own and is only ever
//! called on its threads), as in the server. A bare round trip (PING) is measured
//! alongside.
//!
//! Models: `tests/models/tf/mlp.pb` (`x` [1, 4] -> `y` [1, 3]) and
//! `tests/models/tflite/mlp.tflite` (same shapes, other weights); input [1, 2, 3, 4].
//! The plugins are `dist/backends/redisai_tensorflow/` and `dist/backends/redisai_tflite/`
//! (`scripts/bench-execute` builds them); a backend whose folder is missing is skipped
//! with a note.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use redis::{Connection, ConnectionLike};

use super::{close_enough, expect_blob, expect_ok, f32_bytes, f32_values, latency, Latency};
use redisai_benches::plugin::{self, Model, Plugin};

const X: [f32; 4] = [1.0, 2.0, 3.0, 4.0];
const SHAPE: [i64; 2] = [1, 4];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Path {
    Direct,
    Execute,
    ExecuteGet,
    Ping,
}

impl Path {
    const ALL: [Path; 4] = [Path::Direct, Path::Execute, Path::ExecuteGet, Path::Ping];

    fn label(self) -> String {
        match self {
            Path::Direct => "direct: the plugin's run, in process (baseline)".into(),
            Path::Execute => "AI.MODELEXECUTE".into(),
            Path::ExecuteGet => "AI.MODELEXECUTE + AI.TENSORGET BLOB, pipelined".into(),
            Path::Ping => "PING (a bare round trip)".into(),
        }
    }

    /// The path's name in the CSV, shared with the other overhead tables.
    fn short(self) -> &'static str {
        match self {
            Path::Direct => "in process",
            Path::Execute => "AI.MODELEXECUTE",
            Path::ExecuteGet => "+ AI.TENSORGET, pipelined",
            Path::Ping => "PING",
        }
    }
}

/// One backend's model, loaded in process and stored in the server.
struct Case<'a> {
    backend: &'a str,
    model: Model,
    con: &'a mut Connection,
    execute: Vec<u8>,
    execute_get: Vec<u8>,
    ping: Vec<u8>,
}

impl Case<'_> {
    fn direct(&self) -> Result<Vec<u8>> {
        self.model.run_float(&SHAPE, &f32_bytes(&X))
    }

    fn once(&mut self, path: Path, output_len: usize) -> Result<()> {
        match path {
            Path::Direct => {
                self.direct()?;
            }
            Path::Execute => expect_ok(self.con.req_packed_command(&self.execute)?)?,
            Path::ExecuteGet => {
                let mut replies = self.con.req_packed_commands(&self.execute_get, 0, 2)?;
                ensure!(replies.len() == 2, "{} replies", replies.len());
                let blob = replies.swap_remove(1);
                expect_ok(replies.swap_remove(0))?;
                expect_blob(blob, output_len)?;
            }
            Path::Ping => {
                self.con.req_packed_command(&self.ping)?;
            }
        }
        Ok(())
    }

    /// Checks that the module's output is the direct run's, then measures every path in
    /// `rounds` rounds of `seconds / rounds` in all, the paths' order rotating.
    fn measure(&mut self, seconds: f64, rounds: u32) -> Result<Vec<Latency>> {
        let direct = self.direct()?;
        expect_ok(self.con.req_packed_command(&self.execute)?)
            .with_context(|| format!("AI.MODELEXECUTE on {}", self.backend))?;
        let mut replies = self.con.req_packed_commands(&self.execute_get, 0, 2)?;
        let module = expect_blob(replies.swap_remove(1), direct.len())?;
        let (a, b) = (f32_values(&direct), f32_values(&module));
        ensure!(
            a.iter().zip(&b).all(|(x, y)| close_enough(*x, *y)),
            "{}: the module's output {b:?} differs from the direct run's {a:?}",
            self.backend
        );
        let slice = Duration::from_secs_f64(seconds / f64::from(rounds) / Path::ALL.len() as f64);
        let mut samples: Vec<Vec<u64>> = vec![Vec::new(); Path::ALL.len()];
        for round in 0..rounds as usize {
            for k in 0..Path::ALL.len() {
                let i = (round + k) % Path::ALL.len();
                let path = Path::ALL[i];
                // Warm-up, unmeasured.
                self.once(path, direct.len())?;
                let until = Instant::now() + slice;
                while Instant::now() < until {
                    let started = Instant::now();
                    self.once(path, direct.len())?;
                    samples[i].push(started.elapsed().as_nanos() as u64);
                }
            }
        }
        Ok(samples.into_iter().map(latency).collect())
    }
}

fn packed(words: &[&[u8]]) -> Vec<u8> {
    let mut cmd = redis::cmd(std::str::from_utf8(words[0]).unwrap_or("PING"));
    for word in &words[1..] {
        cmd.arg(*word);
    }
    cmd.get_packed_command()
}

fn store(con: &mut Connection, words: &[&[u8]]) -> Result<()> {
    expect_ok(con.req_packed_command(&packed(words))?).context("AI.MODELSTORE")
}

/// Stores the input, returns the packed commands of the measured paths.
fn commands(con: &mut Connection, key: &str) -> Result<(Vec<u8>, Vec<u8>, Vec<u8>)> {
    let x = format!("{key}:x");
    let y = format!("{key}:y");
    let data = f32_bytes(&X);
    expect_ok(con.req_packed_command(&packed(&[
        b"AI.TENSORSET",
        x.as_bytes(),
        b"FLOAT",
        b"1",
        b"4",
        b"BLOB",
        &data,
    ]))?)?;
    let execute = packed(&[
        b"AI.MODELEXECUTE",
        key.as_bytes(),
        b"INPUTS",
        b"1",
        x.as_bytes(),
        b"OUTPUTS",
        b"1",
        y.as_bytes(),
    ]);
    let get = packed(&[b"AI.TENSORGET", y.as_bytes(), b"BLOB"]);
    let execute_get = [execute.clone(), get].concat();
    Ok((execute, execute_get, packed(&[b"PING"])))
}

fn model(file: &str) -> Result<Vec<u8>> {
    let path = super::repo_root().join("tests/models").join(file);
    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
}

/// Where [`run_with_rows`] hands each row of its table: model, path, latency and, for the
/// paths that run the model through Redis, the added p50 and p99 over the direct call (µs).
pub type RowSink<'a> = &'a mut dyn FnMut(&str, &str, &Latency, Option<(f64, f64)>) -> Result<()>;

/// Measures the TF and TFLite rows and prints their table. `intra`, `inter`: the server's
/// thread settings, given to the in-process plugins too.
// bench-execute calls run_with_rows; this is the entry point for the binaries that include
// this file with #[path] and keep no CSV.
#[allow(dead_code)]
pub fn run(con: &mut Connection, seconds: f64, rounds: u32, intra: i64, inter: i64) -> Result<()> {
    run_with_rows(con, seconds, rounds, intra, inter, &mut |_, _, _, _| Ok(()))
}

/// [`run`], handing each row of the table to `row` too (bench-execute's CSV).
pub fn run_with_rows(
    con: &mut Connection,
    seconds: f64,
    rounds: u32,
    intra: i64,
    inter: i64,
    row: RowSink<'_>,
) -> Result<()> {
    let backends = super::repo_root().join("dist/backends");
    let mut results: Vec<(String, Vec<Latency>)> = Vec::new();
    let mut notes = Vec::new();
    for case in CASES {
        let plugin_path = backends
            .join(case.folder)
            .join(format!("{}.so", case.folder));
        if !plugin_path.is_file() {
            notes.push(format!(
                "{} skipped: no {}",
                case.backend,
                plugin_path.display()
            ));
            continue;
        }
        plugin::set_thread_settings(intra, inter);
        let plugin = Plugin::open(&plugin_path)?;
        let blob = model(case.file)?;
        let model = plugin
            .load(&blob, case.inputs, case.outputs)
            .with_context(|| format!("{}: loading {} in process", case.backend, case.file))?;
        let n_in = case.inputs.len().to_string();
        let n_out = case.outputs.len().to_string();
        let mut words: Vec<&[u8]> = vec![
            b"AI.MODELSTORE",
            case.key.as_bytes(),
            case.backend.as_bytes(),
            b"CPU",
        ];
        if !case.inputs.is_empty() {
            words.extend([b"INPUTS".as_slice(), n_in.as_bytes()]);
            words.extend(case.inputs.iter().map(|s| s.as_bytes()));
            words.extend([b"OUTPUTS".as_slice(), n_out.as_bytes()]);
            words.extend(case.outputs.iter().map(|s| s.as_bytes()));
        }
        words.extend([b"BLOB".as_slice(), &blob]);
        store(con, &words)?;
        let (execute, execute_get, ping) = commands(con, case.key)?;
        let mut measured = Case {
            backend: case.backend,
            model,
            con: &mut *con,
            execute,
            execute_get,
            ping,
        };
        let stats = measured.measure(seconds, rounds)?;
        results.push((case.label.to_owned(), stats));
    }

    println!("#### TF and TFLite: AI.MODELEXECUTE vs the same plugin's runtime call in process");
    println!();
    println!(
        "The small MLP of each backend's test models, x [1, 4] -> y [1, 3]; {seconds} s per \
         model in {rounds} rounds, paths rotating; latency in µs; \"added\" = this path minus \
         the direct baseline at the same percentile."
    );
    println!();
    println!("| model | path | p50 µs | p99 µs | added p50 µs | added p99 µs | ops |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    for (name, stats) in &results {
        let base = &stats[0];
        for (path, s) in Path::ALL.iter().zip(stats) {
            let added = matches!(path, Path::Execute | Path::ExecuteGet);
            let added_us = added.then_some((s.p50 - base.p50, s.p99 - base.p99));
            row(name, path.short(), s, added_us)?;
            let (a50, a99) = if added {
                (
                    format!("{:+.1}", s.p50 - base.p50),
                    format!("{:+.1}", s.p99 - base.p99),
                )
            } else {
                (String::new(), String::new())
            };
            println!(
                "| {name} | {} | {:.1} | {:.1} | {a50} | {a99} | {} |",
                path.label(),
                s.p50,
                s.p99,
                s.count
            );
        }
    }
    for note in notes {
        println!();
        println!("({note})");
    }
    println!();
    Ok(())
}

/// A model of one backend, as measured.
struct CaseSpec {
    backend: &'static str,
    label: &'static str,
    /// The backend folder and plugin name under dist/backends/.
    folder: &'static str,
    /// Under tests/models/.
    file: &'static str,
    inputs: &'static [&'static str],
    outputs: &'static [&'static str],
    key: &'static str,
}

const CASES: [CaseSpec; 2] = [
    CaseSpec {
        backend: "TF",
        label: "TF 2.21 mlp.pb",
        folder: "redisai_tensorflow",
        file: "tf/mlp.pb",
        inputs: &["x"],
        outputs: &["y"],
        key: "bench:tf",
    },
    CaseSpec {
        backend: "TFLITE",
        label: "TFLite (LiteRT 2.3) mlp.tflite",
        folder: "redisai_tflite",
        file: "tflite/mlp.tflite",
        inputs: &[],
        outputs: &[],
        key: "bench:tflite",
    },
];
