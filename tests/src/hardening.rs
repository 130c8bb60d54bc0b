//! Helpers shared by the hardening tests (ACL, cluster, replication, crash, fuzz,
//! concurrency, memory): a seeded random generator, INFO fields, model files, and
//! bounded knobs read from the environment.

use std::time::{Duration, Instant};

use redis::{Connection, Value};

/// A small seeded generator (SplitMix64): reproducible runs without a dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// A seed from `$REDISAI_SEED`, else from the clock; printed so a failure can be rerun.
    pub fn from_env(what: &str) -> Rng {
        let seed = std::env::var("REDISAI_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(7, |d| d.as_nanos() as u64)
            });
        eprintln!("{what}: REDISAI_SEED={seed}");
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

/// A bounded knob: `$name` parsed as a number, else `default`.
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The bytes of a test model, `tests/models/<dir>/<name>`.
pub fn model_bytes(dir: &str, name: &str) -> Vec<u8> {
    let path = crate::workspace_root()
        .join("tests/models")
        .join(dir)
        .join(name);
    std::fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// Whether the ONNX and TFLite backends were built into `dist/backends/`.
pub fn backend_built(dir: &str) -> bool {
    crate::module_path()
        .parent()
        .map(|dist| dist.join("backends").join(dir).is_dir())
        .unwrap_or(false)
}

/// A numeric field of `INFO <section>`.
pub fn info_field(connection: &mut Connection, section: &str, name: &str) -> Option<i64> {
    let info: String = redis::cmd("INFO")
        .arg(section)
        .query(connection)
        .unwrap_or_default();
    info.lines()
        .find_map(|line| line.strip_prefix(&format!("{name}:")))
        .and_then(|value| value.trim().parse().ok())
}

/// The process id of the server behind `connection`.
pub fn server_pid(connection: &mut Connection) -> u32 {
    info_field(connection, "server", "process_id").expect("process_id") as u32
}

/// Resident set size of a process in KiB (from /proc).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

pub fn exists(connection: &mut Connection, key: &str) -> bool {
    redis::cmd("EXISTS")
        .arg(key)
        .query::<i64>(connection)
        .is_ok_and(|n| n == 1)
}

/// PING answers PONG within `limit` (the server is alive and not stuck).
pub fn answers_ping(url: &str, limit: Duration) -> bool {
    let Ok(client) = redis::Client::open(url) else {
        return false;
    };
    let Ok(mut connection) = client.get_connection_with_timeout(limit) else {
        return false;
    };
    let _ = connection.set_read_timeout(Some(limit));
    matches!(
        redis::cmd("PING").query::<Value>(&mut connection),
        Ok(Value::SimpleString(ref s)) if s == "PONG"
    )
}

/// Waits until `check` holds, up to `limit`; returns whether it did.
pub fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Little-endian bytes of f32 values.
pub fn f32_blob(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}
