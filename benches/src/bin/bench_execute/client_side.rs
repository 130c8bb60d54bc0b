//! The Python client-side service of the data-locality part
//! (benches/python/client_side_state.py), driven over its stdin/stdout.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use redis::Connection;

use super::locality::Sample;
use super::Options;
use redisai_benches::shared::{own_cpu, server_cpu};

/// The Python client-side service (benches/python/client_side_state.py), driven over
/// its stdin/stdout. Killed when dropped before `quit`.
pub(crate) struct ClientSide {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    pub(crate) versions: serde_json::Value,
}

impl ClientSide {
    pub(crate) fn start(opts: &Options, python: &Path, port: u16, workers: usize) -> Result<Self> {
        let mut child = Command::new(python)
            .arg(&opts.helper)
            .args(["--host", &opts.host])
            .args(["--port", &port.to_string()])
            .arg("--model")
            .arg(&opts.state_model)
            .args(["--workers", &workers.to_string()])
            .args(["--intra-threads", &opts.py_intra_threads.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {} {}", python.display(), opts.helper.display()))?;
        let stdin = child.stdin.take().context("helper stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("helper stdout")?);
        let mut helper = ClientSide {
            child,
            stdin,
            stdout,
            versions: serde_json::Value::Null,
        };
        let ready = helper.reply()?;
        ensure!(
            ready["ready"] == true,
            "unexpected first line from the helper: {ready}"
        );
        helper.versions = ready;
        Ok(helper)
    }

    fn reply(&mut self) -> Result<serde_json::Value> {
        let mut line = String::new();
        let n = self
            .stdout
            .read_line(&mut line)
            .context("reading from the helper")?;
        ensure!(n > 0, "the Python helper exited early (its error is above)");
        serde_json::from_str(&line).with_context(|| format!("bad line from the helper: {line:?}"))
    }

    pub(crate) fn measure(&mut self, con: &mut Connection, duration: Duration) -> Result<Sample> {
        let server_before = server_cpu(con)?;
        let own_before = own_cpu()?;
        writeln!(self.stdin, "run {}", duration.as_secs_f64())?;
        self.stdin.flush()?;
        let reply = self.reply()?;
        let number = |field: &str| {
            reply[field]
                .as_f64()
                .with_context(|| format!("helper reply has no {field}: {reply}"))
        };
        let (rate, ops, workers_cpu) = (number("rate")?, number("ops")?, number("cpu_s")?);
        Ok(Sample {
            rate,
            ops: ops as u64,
            server_cpu_s: server_cpu(con)? - server_before,
            client_cpu_s: workers_cpu + own_cpu()? - own_before,
        })
    }

    pub(crate) fn quit(mut self) -> Result<()> {
        writeln!(self.stdin, "quit")?;
        self.stdin.flush()?;
        let status = self.child.wait()?;
        ensure!(status.success(), "the Python helper failed: {status}");
        Ok(())
    }
}

impl Drop for ClientSide {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
