//! The module's side: connections to redis-server, model stores and keys.

use std::path::Path;

use anyhow::{ensure, Context, Result};
use redis::{Connection, Value};

use crate::clients::IO_TIMEOUT;
use crate::manifest::ModelSpec;

pub(crate) fn connect(port: u16, count: usize) -> Result<Vec<Connection>> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?;
    (0..count)
        .map(|_| {
            let con = client
                .get_connection()
                .with_context(|| format!("connecting to redis-server on port {port}"))?;
            con.set_read_timeout(Some(IO_TIMEOUT))?;
            con.set_write_timeout(Some(IO_TIMEOUT))?;
            Ok(con)
        })
        .collect()
}

pub(crate) fn connect_one(port: u16) -> Result<Connection> {
    connect(port, 1)?.pop().context("no connection was made")
}

pub(crate) fn server_pid(con: &mut Connection) -> Result<u32> {
    let info: String = redis::cmd("INFO").arg("server").query(con)?;
    info.lines()
        .find_map(|l| l.strip_prefix("process_id:"))
        .and_then(|v| v.trim().parse().ok())
        .context("INFO server: no process_id")
}

/// AI.MODELSTORE of `spec` under `key`, with BATCHSIZE `batch` unless 0.
pub(crate) fn store_model(
    con: &mut Connection,
    key: &str,
    spec: &ModelSpec,
    batch: usize,
) -> Result<()> {
    let blob = spec.read_blob()?;
    let mut cmd = redis::cmd("AI.MODELSTORE");
    cmd.arg(key).arg(&spec.backend).arg("CPU");
    if batch > 0 {
        cmd.arg("BATCHSIZE").arg(batch);
    }
    let (inputs, outputs) = spec.node_names();
    if !inputs.is_empty() {
        cmd.arg("INPUTS").arg(inputs.len()).arg(&inputs);
        cmd.arg("OUTPUTS").arg(outputs.len()).arg(&outputs);
    }
    cmd.arg("BLOB").arg(blob);
    let reply: Value = cmd.query(con)?;
    let reply = reply
        .extract_error()
        .with_context(|| format!("AI.MODELSTORE {} ({})", spec.name, spec.backend))?;
    ensure!(reply == Value::Okay, "AI.MODELSTORE: {reply:?}");
    Ok(())
}

pub(crate) fn delete_keys(con: &mut Connection, keys: &[&str]) -> Result<()> {
    let _: Value = redis::cmd("DEL").arg(keys).query(con)?;
    Ok(())
}

/// Loads the model's backend into the server ahead of the first store, so that the
/// store's RSS figure is the model's and not the runtime library's.
pub(crate) fn load_backend(con: &mut Connection, spec: &ModelSpec, backends: &Path) -> Result<()> {
    let path = spec.plugin_path(backends)?;
    let reply: redis::RedisResult<Value> = redis::cmd("AI.CONFIG")
        .arg("LOADBACKEND")
        .arg(&spec.backend)
        .arg(path.to_string_lossy().as_ref())
        .query(con);
    match reply {
        Err(err) if !err.to_string().contains("already loaded") => {
            Err(err).with_context(|| format!("AI.CONFIG LOADBACKEND {}", spec.backend))
        }
        _ => Ok(()),
    }
}
