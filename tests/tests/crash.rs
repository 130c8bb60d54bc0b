//! Crash consistency: with `appendonly yes` and `appendfsync always`, acknowledged
//! writes (TENSORSET, MODELEXECUTE outputs, DAG PERSIST; and, when the TORCH plugin is
//! built, SCRIPTSTORE and SCRIPTEXECUTE outputs) survive `kill -9` at random points:
//! after each restart every acknowledged write is there and reads back (a script: its
//! META and a run).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use redisai_tests::hardening::{backend_built, env_usize, model_bytes, Rng};
use redisai_tests::redis::{self, Connection, Value};
use redisai_tests::{run, run_str, Server, ServerConfig};

/// What an acknowledged write left: key and the FLOAT value it must read back (for a
/// script key: NaN, and the script must still be there and run).
#[derive(Debug, Clone)]
struct Acked {
    key: String,
    value: f32,
}

const SCRIPT: &str = r#"
def bar(tensors: List[Tensor], keys: List[str], args: List[str]):
    return tensors[0] + tensors[1]
"#;

fn store_script(c: &mut Connection, key: &str, tag: &str) -> redis::RedisResult<Value> {
    run(
        c,
        &[
            b"AI.SCRIPTSTORE",
            key.as_bytes(),
            b"CPU",
            b"TAG",
            tag.as_bytes(),
            b"ENTRY_POINTS",
            b"1",
            b"bar",
            b"SOURCE",
            SCRIPT.as_bytes(),
        ],
    )
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
fn write_until_killed(
    url: &str,
    first: usize,
    limit: usize,
    stop: &AtomicBool,
    scripts: bool,
) -> Vec<Acked> {
    let mut acked = Vec::new();
    let Some(mut c) = connect(url) else {
        return acked;
    };
    let kinds = if scripts { 5 } else { 3 };
    for i in first..first + limit {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let v = (i % 1000) as f32;
        // A script store every 20 writes (each restart compiles them all again).
        if i % kinds == 3 && (i / kinds) % 4 == 0 {
            let key = format!("script:{i}");
            match store_script(&mut c, &key, &i.to_string()) {
                Ok(_) => acked.push(Acked {
                    key,
                    value: f32::NAN,
                }),
                Err(_) => break,
            }
            continue;
        }
        let (line, key, value) = match i % kinds {
            4 => (
                format!("AI.SCRIPTEXECUTE sc bar INPUTS 2 base base OUTPUTS 1 sexec:{i}"),
                format!("sexec:{i}"),
                2.0,
            ),
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

/// A stored script came back: its tag (the write's number) and it runs.
fn script_kept(c: &mut Connection, key: &str) -> bool {
    let tag = key.trim_start_matches("script:");
    let Ok(Value::Array(meta)) = run_str(c, &format!("AI.SCRIPTGET {key} META")) else {
        return false;
    };
    let tagged = meta.windows(2).any(|pair| {
        matches!(&pair[0], Value::SimpleString(name) if name == "tag")
            && pair[1] == Value::BulkString(tag.as_bytes().to_vec())
    });
    tagged
        && run_str(
            c,
            &format!("AI.SCRIPTEXECUTE {key} bar INPUTS 2 base base OUTPUTS 1 probe"),
        )
        .is_ok()
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
    let scripts = backend_built("redisai_torch");
    if scripts {
        store_script(&mut c, "sc", "v0").expect("script");
    }

    let mut all_acked: Vec<Acked> = Vec::new();
    let mut next = 0;
    let mut killed = 0;
    for round in 0..kills {
        let url = server.url();
        let stop = Arc::new(AtomicBool::new(false));
        let writer_stop = Arc::clone(&stop);
        let first = next;
        let writer = thread::spawn(move || {
            write_until_killed(&url, first, 1_000_000, &writer_stop, scripts)
        });
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
            let kept = if write.value.is_nan() {
                script_kept(&mut c, &write.key)
            } else {
                read_f32(&mut c, &write.key) == Some(write.value)
            };
            if !kept {
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
        if scripts {
            run_str(
                &mut c,
                "AI.SCRIPTEXECUTE sc bar INPUTS 2 base base OUTPUTS 1 probe",
            )
            .expect("script run");
        }
    }
    let count = |prefix: &str| {
        all_acked
            .iter()
            .filter(|w| w.key.starts_with(prefix))
            .count()
    };
    eprintln!(
        "crash: {killed} kill -9 survived, {} acknowledged writes checked ({} SCRIPTSTORE, {} SCRIPTEXECUTE outputs), 0 lost",
        all_acked.len(),
        count("script:"),
        count("sexec:")
    );
    if scripts {
        assert!(count("sexec:") > 0, "script runs were acknowledged");
    }
    assert!(!all_acked.is_empty(), "the writer got writes acknowledged");
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
