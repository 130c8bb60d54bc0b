//! Resident memory: what storing a model adds to redis-server, and what the runtime alone
//! needs to hold the same model (this binary run again as `--rss-probe`, in a fresh
//! process: the plugin opened, the model loaded through it).

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use redis::Connection;

use crate::manifest::ModelSpec;
use redisai_benches::plugin::Plugin;

/// VmRSS of a process, in bytes.
pub fn rss_bytes(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .with_context(|| format!("{path}: no VmRSS"))?;
    Ok(kib * 1024)
}

/// redis-server's RSS after MEMORY PURGE (jemalloc returns its dirty pages) and a pause
/// for the module's threads to settle.
pub fn server_rss(con: &mut Connection, pid: u32) -> Result<u64> {
    // Not every allocator has MEMORY PURGE; without it the figure is a little higher.
    let _: redis::RedisResult<redis::Value> = redis::cmd("MEMORY").arg("PURGE").query(con);
    thread::sleep(Duration::from_millis(300));
    rss_bytes(pid)
}

fn own_rss_trimmed() -> Result<u64> {
    // SAFETY: malloc_trim only returns free heap memory to the system.
    unsafe { libc::malloc_trim(0) };
    thread::sleep(Duration::from_millis(300));
    rss_bytes(std::process::id())
}

/// The probe's side (`--rss-probe`): opens the plugin, loads the model, and prints
/// `rss_added_bytes N`, the RSS the loaded model adds (the blob read from the file is
/// freed before the second reading, as the module's command arguments are).
pub fn probe(spec: &ModelSpec, backends_dir: &Path) -> Result<()> {
    let plugin = Plugin::open(&spec.plugin_path(backends_dir)?)?;
    let before = own_rss_trimmed()?;
    let blob = spec.read_blob()?;
    let (inputs, outputs) = spec.node_names();
    let model = plugin.load(&blob, &inputs, &outputs)?;
    drop(blob);
    let after = own_rss_trimmed()?;
    println!("rss_added_bytes {}", after.saturating_sub(before));
    // Printed before the model is freed: a failure past this point is told apart.
    std::io::stdout().flush()?;
    drop(model);
    Ok(())
}

/// Runs the probe for `spec` in a fresh process of this binary and returns its figure,
/// with a warning when the probe failed after printing it (freeing the model, exiting).
pub fn probe_in_fresh_process(
    spec_args: &[String],
    spec: &ModelSpec,
    intra_op: i64,
    inter_op: i64,
) -> Result<(u64, Option<String>)> {
    let exe = std::env::current_exe().context("finding this binary")?;
    let output = Command::new(exe)
        .args(spec_args)
        .arg("--intra-op")
        .arg(intra_op.to_string())
        .arg("--inter-op")
        .arg(inter_op.to_string())
        .arg("--rss-probe")
        .arg(&spec.name)
        .output()
        .context("starting the RSS probe")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last_error_line = stderr.lines().rev().find(|l| !l.trim().is_empty());
    let figure = stdout
        .lines()
        .find_map(|l| l.strip_prefix("rss_added_bytes "))
        .and_then(|v| v.trim().parse().ok());
    match (figure, output.status.success()) {
        (Some(figure), true) => Ok((figure, None)),
        (Some(figure), false) => Ok((
            figure,
            Some(format!(
                "the RSS probe failed after measuring, while freeing the model or exiting ({}): {}",
                output.status,
                last_error_line.unwrap_or("")
            )),
        )),
        (None, _) => bail!(
            "the RSS probe of {} failed ({}): {}",
            spec.name,
            output.status,
            last_error_line.unwrap_or("no message")
        ),
    }
}
