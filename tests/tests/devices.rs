//! Devices and their run queues, on machines without a GPU: each device (`CPU:0`,
//! `CPU:1`, ...) has its own queue, shown in INFO MODULES, and a run on one device does
//! not wait for a run on another. `CPU` and `CPU:0` share one queue, as `GPU` and
//! `GPU:0` do. Nothing here measures time: the checks are about which reply can come
//! before which.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::thread::sleep;
use std::time::{Duration, Instant};

use redisai_tests::redis::{self, Connection, Value};
use redisai_tests::{error_text, run, run_str, Server, ServerConfig};

fn model_bytes(name: &str) -> Vec<u8> {
    let path: PathBuf = redisai_tests::workspace_root()
        .join("tests/models/onnx")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

fn store(c: &mut Connection, key: &str, model: &str, device: &str) {
    let blob = model_bytes(model);
    let reply = run(
        c,
        &[
            b"AI.MODELSTORE",
            key.as_bytes(),
            b"ONNX",
            device.as_bytes(),
            b"BLOB",
            &blob,
        ],
    );
    assert_eq!(reply.expect("MODELSTORE"), Value::Okay, "{key} on {device}");
}

fn info_modules(c: &mut Connection) -> String {
    redis::cmd("INFO")
        .arg("modules")
        .query(c)
        .expect("INFO MODULES")
}

/// The value of `ai_<field>:` in INFO MODULES, if present.
fn info_field(c: &mut Connection, field: &str) -> Option<String> {
    let prefix = format!("ai_{field}:");
    info_modules(c)
        .lines()
        .find_map(|line| line.strip_prefix(&prefix).map(|v| v.trim().to_owned()))
}

/// Waits (bounded, generously) until `ready` holds; panics with `what` otherwise.
fn wait_for(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(Instant::now() < deadline, "gave up waiting until {what}");
        sleep(Duration::from_millis(20));
    }
}

/// A raw connection that sends one command and reads its reply later.
struct Pending {
    stream: TcpStream,
}

impl Pending {
    fn send(server: &Server, words: &[&str]) -> Pending {
        let mut stream = TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
        let mut request = format!("*{}\r\n", words.len());
        for word in words {
            request.push_str(&format!("${}\r\n{word}\r\n", word.len()));
        }
        stream.write_all(request.as_bytes()).expect("send");
        Pending { stream }
    }

    /// Whether a reply has arrived, without waiting for one.
    fn has_reply(&mut self) -> bool {
        self.stream.set_nonblocking(true).expect("nonblocking");
        let mut byte = [0u8; 1];
        let answered = match self.stream.peek(&mut byte) {
            Ok(n) => n > 0,
            Err(err) if err.kind() == ErrorKind::WouldBlock => false,
            Err(err) => panic!("peek: {err}"),
        };
        self.stream.set_nonblocking(false).expect("blocking");
        answered
    }

    /// Waits for the reply and returns its first line.
    fn reply_line(mut self) -> String {
        self.stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while !line.ends_with(b"\r\n") {
            let n = self.stream.read(&mut byte).expect("reply");
            assert!(n > 0, "connection closed before the reply");
            line.push(byte[0]);
        }
        String::from_utf8_lossy(&line).trim_end().to_owned()
    }
}

#[test]
fn each_device_has_its_own_queue_and_runs_alongside_the_others() {
    // Runs stop only when their client leaves: the loop below holds CPU:0 meanwhile.
    let server = Server::start_with(
        ServerConfig::default().module_args(&["MODEL_EXECUTION_TIMEOUT", "600000"]),
    );
    let mut c = server.client();
    store(&mut c, "loop", "endless_loop.onnx", "CPU");
    store(&mut c, "add0", "add.onnx", "CPU:0");
    store(&mut c, "add1", "add.onnx", "CPU:1");
    run_str(&mut c, "AI.TENSORSET x FLOAT 1").expect("x");
    run_str(&mut c, "AI.TENSORSET a FLOAT 2 VALUES 1 2").expect("a");
    run_str(&mut c, "AI.TENSORSET b FLOAT 2 VALUES 3 4").expect("b");
    assert_eq!(
        info_field(&mut c, "count").as_deref(),
        Some("0"),
        "queues start on first use"
    );

    // The CPU:0 queue's only worker is taken by the endless loop ...
    let mut looping = Pending::send(
        &server,
        &[
            "AI.MODELEXECUTE",
            "loop",
            "INPUTS",
            "1",
            "x",
            "OUTPUTS",
            "1",
            "y",
        ],
    );
    wait_for("the loop runs", || {
        info_field(&mut c, "queue_cpu_0").is_some_and(|q| q.contains("pending=0"))
    });
    // ... so another CPU:0 run waits in that queue ...
    let mut waiting = Pending::send(
        &server,
        &[
            "AI.MODELEXECUTE",
            "add0",
            "INPUTS",
            "2",
            "a",
            "b",
            "OUTPUTS",
            "1",
            "s0",
        ],
    );
    wait_for("the second CPU:0 run is queued", || {
        info_field(&mut c, "queue_cpu_0").is_some_and(|q| q.contains("pending=1"))
    });
    // ... while a CPU:1 run completes on its own queue.
    assert_eq!(
        run_str(&mut c, "AI.MODELEXECUTE add1 INPUTS 2 a b OUTPUTS 1 s1").expect("CPU:1 run"),
        Value::Okay
    );
    assert_eq!(
        run_str(&mut c, "AI.TENSORGET s1 VALUES").expect("s1"),
        Value::Array(vec![
            Value::BulkString(b"4".to_vec()),
            Value::BulkString(b"6".to_vec())
        ])
    );
    assert!(!looping.has_reply(), "the CPU:0 loop is still running");
    assert!(
        !waiting.has_reply(),
        "the CPU:0 run is still queued behind it"
    );
    let cpu0 = info_field(&mut c, "queue_cpu_0").expect("CPU:0 queue");
    assert!(cpu0.starts_with("threads=1,pending=1,"), "{cpu0}");
    // The worker counts a run as done just after its reply is sent.
    wait_for("the CPU:1 queue counts its run", || {
        info_field(&mut c, "queue_cpu_1").is_some_and(|q| q.contains("pending=0,done=1,"))
    });
    assert_eq!(
        info_field(&mut c, "count").as_deref(),
        Some("2"),
        "CPU and CPU:0 share a queue"
    );

    // The loop's client leaves: its run is stopped and the queued CPU:0 run goes ahead.
    drop(looping);
    assert_eq!(waiting.reply_line(), "+OK");
    assert_eq!(
        run_str(&mut c, "PING").expect("alive"),
        Value::SimpleString("PONG".into())
    );
}

#[test]
fn devices_are_kept_as_given_and_gpus_without_a_gpu_backend_are_refused() {
    let server = Server::start();
    let mut c = server.client();
    store(&mut c, "m", "add.onnx", "cpu:1");
    let Value::Array(meta) = run_str(&mut c, "AI.MODELGET m META").expect("meta") else {
        panic!("MODELGET META is an array")
    };
    assert_eq!(meta[3], Value::BulkString(b"cpu:1".to_vec()), "as given");
    let blob = model_bytes("add.onnx");
    for device in ["GPU", "GPU:0", "gpu:7"] {
        let text = error_text(run(
            &mut c,
            &[
                b"AI.MODELSTORE",
                b"g",
                b"ONNX",
                device.as_bytes(),
                b"BLOB",
                &blob,
            ],
        ));
        assert!(
            text.contains(&device.to_ascii_uppercase()) && text.contains("CPU only"),
            "says which device and why: {text}"
        );
    }
    for bad in ["TPU", "GPU:", "CPU:x", "GPU:123456"] {
        let text = error_text(run(
            &mut c,
            &[
                b"AI.MODELSTORE",
                b"g",
                b"ONNX",
                bad.as_bytes(),
                b"BLOB",
                &blob,
            ],
        ));
        assert!(text.starts_with("ERR"), "{bad}: {text}");
    }
    assert_eq!(run_str(&mut c, "EXISTS g").expect("exists"), Value::Int(0));
}

#[test]
fn both_variants_of_a_backend_show_in_info() {
    use redisai_example_c_plugins::{EXAMPLE_ADD_BACKEND, EXAMPLE_ADD_PLUGIN};
    // A copy of the C example plugin whose file name makes it the GPU variant.
    let dir = std::env::temp_dir().join(format!("redisai-variants-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let gpu_copy = dir.join("example_add_gpu.so");
    std::fs::copy(EXAMPLE_ADD_PLUGIN, &gpu_copy).expect("copy the plugin");
    let server = Server::start();
    let mut c = server.client();
    for path in [EXAMPLE_ADD_PLUGIN, &gpu_copy.to_string_lossy()] {
        let line = format!("AI.CONFIG LOADBACKEND {EXAMPLE_ADD_BACKEND} {path}");
        assert_eq!(
            run_str(&mut c, &line).expect("LOADBACKEND"),
            Value::Okay,
            "{path}"
        );
    }
    let name = EXAMPLE_ADD_BACKEND.to_ascii_lowercase();
    let cpu = info_field(&mut c, &name).expect("the default variant is listed");
    let gpu = info_field(&mut c, &format!("{name}_gpu")).expect("the GPU variant is listed");
    assert!(cpu.ends_with(EXAMPLE_ADD_PLUGIN), "{cpu}");
    assert!(gpu.ends_with("example_add_gpu.so"), "{gpu}");
    // Neither declares a GPU: a GPU model is refused with both reasons, never run on the CPU.
    let text = error_text(run_str(
        &mut c,
        &format!("AI.MODELSTORE m {EXAMPLE_ADD_BACKEND} GPU:1 BLOB add"),
    ));
    assert!(
        text.contains("GPU:1") && text.contains("CPU only"),
        "{text}"
    );
    assert_eq!(
        run_str(
            &mut c,
            &format!("AI.MODELSTORE m {EXAMPLE_ADD_BACKEND} CPU BLOB add")
        )
        .expect("CPU"),
        Value::Okay
    );
    let _ = std::fs::remove_dir_all(&dir);
}
