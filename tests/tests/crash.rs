//! Crash consistency: with `appendonly yes` and `appendfsync always`, acknowledged
//! writes (TENSORSET, MODELEXECUTE outputs, DAG PERSIST) survive `kill -9` at random
//! points: after each restart every acknowledged write is there and reads back.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use redisai_tests::hardening::{env_usize, model_bytes, Rng};
use redisai_tests::redis::{self, Connection, Value};
use redisai_tests::{run, run_str, Server, ServerConfig};

/// What an acknowledged write left: key and the FLOAT value it must read back.
#[derive(Debug, Clone)]
struct Acked {
    key: String,
    value: f32,
}

fn connect(url: &str) -> Option<Connection> {
    let client = redis::Client::open(url).ok()?;
    let connection = client
        .get_connection_with_timeout(Duration::from_secs(5))
        .ok()?;
    connection
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    Some(connection)
}

/// Writes until the server goes away (or `limit` writes); returns what was acknowledged.
fn write_until_killed(url: &str, first: usize, limit: usize, stop: &AtomicBool) -> Vec<Acked> {
    let mut acked = Vec::new();
    let Some(mut c) = connect(url) else {
        return acked;
    };
    for i in first..first + limit {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let v = (i % 1000) as f32;
        let (line, key, value) = match i % 3 {
            0 => (
                format!("AI.TENSORSET set:{i} FLOAT 1 VALUES {v}"),
                format!("set:{i}"),
                v,
            ),
            1 => (
                format!("AI.MODELEXECUTE add INPUTS 2 base base OUTPUTS 1 exec:{i}"),
                format!("exec:{i}"),
                2.0,
            ),
            _ => (
                format!(
                    "AI.DAGEXECUTE PERSIST 1 dag:{i} |> AI.TENSORSET x FLOAT 1 VALUES {v} |> AI.MODELEXECUTE add INPUTS 2 x x OUTPUTS 1 dag:{i}"
                ),
                format!("dag:{i}"),
                2.0 * v,
            ),
        };
        match run_str(&mut c, &line) {
            Ok(_) => acked.push(Acked { key, value }),
            Err(_) => break,
        }
    }
    acked
}

fn read_f32(c: &mut Connection, key: &str) -> Option<f32> {
    match run_str(c, &format!("AI.TENSORGET {key} VALUES")) {
        Ok(Value::Array(values)) => match values.first() {
            Some(Value::BulkString(bytes)) => std::str::from_utf8(bytes).ok()?.parse().ok(),
            _ => None,
        },
        _ => None,
    }
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let kills = env_usize("REDISAI_CRASH_KILLS", 10);
    let mut rng = Rng::from_env("crash");
    let dir = std::env::temp_dir().join(format!("redisai-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = ServerConfig {
        data_dir: Some(dir.clone()),
        ..ServerConfig::default()
    }
    .option("appendonly", &["yes"])
    .option("appendfsync", &["always"]);
    let mut server = Server::start_with(config);
    let mut c = server.client();
    let add = model_bytes("onnx", "add.onnx");
    run(
        &mut c,
        &[b"AI.MODELSTORE", b"add", b"ONNX", b"CPU", b"BLOB", &add],
    )
    .expect("store");
    run_str(&mut c, "AI.TENSORSET base FLOAT 1 VALUES 1").expect("base");

    let mut all_acked: Vec<Acked> = Vec::new();
    let mut next = 0;
    let mut killed = 0;
    for round in 0..kills {
        let url = server.url();
        let stop = Arc::new(AtomicBool::new(false));
        let writer_stop = Arc::clone(&stop);
        let first = next;
        let writer =
            thread::spawn(move || write_until_killed(&url, first, 1_000_000, &writer_stop));
        thread::sleep(Duration::from_millis(50 + rng.below(400) as u64));
        server.kill();
        killed += 1;
        stop.store(true, Ordering::Relaxed);
        let acked = writer.join().expect("writer");
        next += acked.len() + 1; // the write in flight at the kill may or may not be there
        all_acked.extend(acked);

        server.restart();
        let mut c = server.client();
        let mut lost = Vec::new();
        for write in &all_acked {
            if read_f32(&mut c, &write.key) != Some(write.value) {
                lost.push(write.key.clone());
            }
        }
        assert!(
            lost.is_empty(),
            "round {round}: {} of {} acknowledged writes lost: {:?}\n{}",
            lost.len(),
            all_acked.len(),
            &lost[..lost.len().min(20)],
            server.log()
        );
        // The model survived too and still runs.
        run_str(
            &mut c,
            "AI.MODELEXECUTE add INPUTS 2 base base OUTPUTS 1 probe",
        )
        .expect("run");
    }
    eprintln!(
        "crash: {killed} kill -9 survived, {} acknowledged writes checked, 0 lost",
        all_acked.len()
    );
    assert!(!all_acked.is_empty(), "the writer got writes acknowledged");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
