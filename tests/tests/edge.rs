//! The edge install: `dist-edge/` (built by `scripts/build-edge`) holds `redisai.so` and
//! `backends/redisai_tflite/` only. Each test copies the bundle into a fresh temporary
//! folder, so that no other backend folder can be reached from it, starts redis-server
//! with that copy's `redisai.so` and no `LD_LIBRARY_PATH`, and runs TFLite models from
//! `tests/models/tflite` (expected values from that folder's README). Other backends must
//! fail cleanly: the server keeps answering.
//!
//! `REDISAI_EDGE_DIR` points the tests at another bundle than `dist-edge/`.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;

use redisai_plugin_api::abi::{RAI_PLUGIN_ABI_MAJOR, RAI_PLUGIN_ABI_MINOR};
mod common;

use common::{client, get, get_f32, model_bytes, pong, replied, set_blob, set_f32};
use redisai_tests::redis::{self, Connection, Value};
use redisai_tests::{error_text, run, run_str, Server, ServerConfig};

/// Environment variables that could make the server find a library outside the bundle.
const FOREIGN_ENV: [&str; 4] = [
    "LD_LIBRARY_PATH",
    "REDISAI_LITERT_LIB",
    "REDISAI_ONNXRUNTIME_LIB",
    "REDISAI_TENSORFLOW_LIB",
];

fn edge_dir() -> PathBuf {
    let dir = std::env::var_os("REDISAI_EDGE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| redisai_tests::workspace_root().join("dist-edge"));
    assert!(
        dir.join("redisai.so").is_file(),
        "the edge bundle {} is missing (no redisai.so in it): run scripts/build-edge first \
         (scripts/test builds it), or set REDISAI_EDGE_DIR",
        dir.display()
    );
    dir
}

/// The server inherits this process's environment: clear what could point it elsewhere,
/// once, before any test of this binary starts a server (`Once` makes the other tests
/// wait until it is done, so no spawn reads the environment while it changes).
fn clean_environment() {
    static CLEAN: Once = Once::new();
    CLEAN.call_once(|| {
        for name in FOREIGN_ENV {
            std::env::remove_var(name);
        }
    });
}

/// A private copy of the bundle, removed on drop unless the test failed.
struct EdgeCopy {
    root: PathBuf,
}

impl EdgeCopy {
    fn new() -> EdgeCopy {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let root = std::env::temp_dir().join(format!("redisai-edge-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        copy_dir(&edge_dir(), &root);
        let mut backends: Vec<String> = fs::read_dir(root.join("backends"))
            .expect("the bundle has backends/")
            .map(|entry| {
                entry
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        backends.sort();
        assert_eq!(backends, ["redisai_tflite"], "the edge bundle's backends");
        EdgeCopy { root }
    }

    fn module(&self) -> PathBuf {
        self.root.join("redisai.so")
    }
}

impl Drop for EdgeCopy {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.root);
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap_or_else(|err| panic!("{}: {err}", to.display()));
    for entry in fs::read_dir(from).unwrap_or_else(|err| panic!("{}: {err}", from.display())) {
        let entry = entry.expect("entry");
        let kind = entry.file_type().expect("file type");
        let target = to.join(entry.file_name());
        if kind.is_dir() {
            copy_dir(&entry.path(), &target);
        } else if kind.is_symlink() {
            let link = fs::read_link(entry.path()).expect("link");
            std::os::unix::fs::symlink(link, &target).expect("symlink");
        } else {
            fs::copy(entry.path(), &target).unwrap_or_else(|err| {
                panic!("{} -> {}: {err}", entry.path().display(), target.display())
            });
        }
    }
}

/// The models are tiny: a reply that takes longer than this means the server is stuck,
/// and the test fails instead of waiting for ever.
/// A server running the bundle's copy, checked to have none of [`FOREIGN_ENV`].
fn edge_server(copy: &EdgeCopy) -> Server {
    clean_environment();
    let server = Server::start_with(ServerConfig {
        module: Some(copy.module()),
        ..ServerConfig::default()
    });
    let environ = fs::read(format!("/proc/{}/environ", server_pid(&server))).expect("environ");
    for variable in environ.split(|&b| b == 0) {
        let variable = String::from_utf8_lossy(variable);
        for name in FOREIGN_ENV {
            assert!(
                !variable.starts_with(&format!("{name}=")),
                "the server's environment has {variable}"
            );
        }
    }
    server
}

fn server_pid(server: &Server) -> u32 {
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query(&mut client(server))
        .expect("INFO server");
    info.lines()
        .find_map(|line| line.strip_prefix("process_id:"))
        .and_then(|pid| pid.trim().parse().ok())
        .unwrap_or_else(|| panic!("no process_id in INFO server:\n{info}"))
}

fn store_tflite(c: &mut Connection, key: &str, model: &str) {
    let blob = model_bytes("tflite", model);
    let reply = run(
        c,
        &[
            b"AI.MODELSTORE",
            key.as_bytes(),
            b"TFLITE",
            b"CPU",
            b"BLOB",
            &blob,
        ],
    );
    let reply = replied(reply, &format!("MODELSTORE {key} TFLITE ({model})"));
    assert_eq!(reply.expect("MODELSTORE"), Value::Okay, "{model}");
}

fn info_modules(c: &mut Connection) -> String {
    redis::cmd("INFO")
        .arg("modules")
        .query(c)
        .expect("INFO modules")
}

/// The libraries the server has mapped whose file name contains `pattern`.
fn mapped(server: &Server, pattern: &str) -> Vec<String> {
    let maps = fs::read_to_string(format!("/proc/{}/maps", server_pid(server))).expect("maps");
    let mut paths: Vec<String> = maps
        .lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .filter(|path| path.contains(pattern))
        .map(str::to_owned)
        .collect();
    paths.sort();
    paths.dedup();
    paths
}

#[test]
fn float_and_quantized_tflite_models_run_from_a_copy_of_the_bundle() {
    let copy = EdgeCopy::new();
    let server = edge_server(&copy);
    let mut c = client(&server);

    let backends_path: String = redis::cmd("AI.CONFIG")
        .arg("GET")
        .arg("BACKENDSPATH")
        .query(&mut c)
        .expect("BACKENDSPATH");
    assert_eq!(
        fs::canonicalize(&backends_path).expect("BACKENDSPATH exists"),
        fs::canonicalize(copy.root.join("backends")).expect("backends/"),
        "the default BACKENDSPATH is backends/ beside the copy's redisai.so"
    );
    assert!(
        info_modules(&mut c).contains("ai_loaded:0"),
        "no backend before MODELSTORE"
    );

    // add.tflite: float, a = [1, 2], b = [3, 4] -> [4, 6]; 2x2 -> [[11, 22], [33, 44]].
    store_tflite(&mut c, "add", "add.tflite");
    let info = info_modules(&mut c);
    let tflite_so = copy.root.join("backends/redisai_tflite/redisai_tflite.so");
    assert!(
        info.contains(&format!(
            "ai_tflite:runtime=2.3.0,abi={RAI_PLUGIN_ABI_MAJOR}.{RAI_PLUGIN_ABI_MINOR},devices=CPU,path={}",
            tflite_so.display()
        )),
        "the TFLite backend of the copy is loaded:\n{info}"
    );
    assert!(info.contains("ai_loaded:1"), "{info}");
    // LiteRT itself is the copy's, found beside the plugin.
    let litert = copy.root.join("backends/redisai_tflite/libLiteRt.so");
    assert_eq!(mapped(&server, "libLiteRt"), [litert.display().to_string()]);

    set_f32(&mut c, "a", &[2], &[1.0, 2.0]);
    set_f32(&mut c, "b", &[2], &[3.0, 4.0]);
    assert_eq!(
        run_str(&mut c, "AI.MODELEXECUTE add INPUTS 2 a b OUTPUTS 1 c").expect("run add"),
        Value::Okay
    );
    assert_eq!(get_f32(&mut c, "c"), (vec![2], vec![4.0, 6.0]));
    set_f32(&mut c, "a", &[2, 2], &[1.0, 2.0, 3.0, 4.0]);
    set_f32(&mut c, "b", &[2, 2], &[10.0, 20.0, 30.0, 40.0]);
    run_str(&mut c, "AI.MODELEXECUTE add INPUTS 2 a b OUTPUTS 1 c").expect("run add 2x2");
    assert_eq!(
        get_f32(&mut c, "c"),
        (vec![2, 2], vec![11.0, 22.0, 33.0, 44.0])
    );

    // mlp.tflite: two FULLY_CONNECTED, a batch of two rows; exact in float32.
    store_tflite(&mut c, "mlp", "mlp.tflite");
    set_f32(
        &mut c,
        "x",
        &[2, 4],
        &[1.0, 2.0, 3.0, 4.0, -1.0, 0.5, 0.0, 2.0],
    );
    run_str(&mut c, "AI.MODELEXECUTE mlp INPUTS 1 x OUTPUTS 1 y").expect("run mlp");
    assert_eq!(
        get_f32(&mut c, "y"),
        (
            vec![2, 3],
            vec![2.046875, 0.8125, -0.40625, 0.6171875, 0.2265625, -0.1875]
        )
    );

    // fc_int8.tflite: quantized FULLY_CONNECTED; the 127 is saturated.
    store_tflite(&mut c, "fc", "fc_int8.tflite");
    let x: [i8; 8] = [0, 2, 4, 6, -2, 10, -10, 100];
    set_blob(
        &mut c,
        "q",
        "INT8",
        &[2, 4],
        &x.iter().map(|v| *v as u8).collect::<Vec<u8>>(),
    );
    run_str(&mut c, "AI.MODELEXECUTE fc INPUTS 1 q OUTPUTS 1 r").expect("run fc_int8");
    let (_, shape, blob) = get(&mut c, "r");
    let r: Vec<i8> = blob.iter().map(|b| *b as i8).collect();
    assert_eq!((shape, r), (vec![2, 3], vec![21, 43, 15, -39, 127, 58]));

    // add_uint8.tflite: quantized ADD of tensors with different scales.
    store_tflite(&mut c, "addq", "add_uint8.tflite");
    set_blob(&mut c, "ua", "UINT8", &[4], &[10, 12, 30, 200]);
    set_blob(&mut c, "ub", "UINT8", &[4], &[0, 4, 8, 255]);
    run_str(&mut c, "AI.MODELEXECUTE addq INPUTS 2 ua ub OUTPUTS 1 uc").expect("run add_uint8");
    assert_eq!(
        get(&mut c, "uc"),
        ("UINT8".to_owned(), vec![4], vec![20, 22, 32, 179])
    );

    assert!(
        mapped(&server, "onnxruntime").is_empty(),
        "no ONNX Runtime in the process"
    );
    pong(&mut c);
}

#[test]
fn other_backends_fail_cleanly_and_tflite_still_works() {
    let copy = EdgeCopy::new();
    let server = edge_server(&copy);
    let mut c = client(&server);

    let onnx = model_bytes("onnx", "add.onnx");
    for _ in 0..2 {
        // Not cached as loaded: a second try fails the same way.
        let reply = run(
            &mut c,
            &[b"AI.MODELSTORE", b"m", b"ONNX", b"CPU", b"BLOB", &onnx],
        );
        let text = error_text(replied(reply, "MODELSTORE m ONNX"));
        assert!(
            text.starts_with("ERR Could not load backend"),
            "MODELSTORE ONNX on the edge bundle: {text}"
        );
        pong(&mut c);
    }
    assert_eq!(run_str(&mut c, "EXISTS m").expect("EXISTS"), Value::Int(0));
    assert!(info_modules(&mut c).contains("ai_loaded:0"));
    assert!(
        mapped(&server, "onnxruntime").is_empty(),
        "no ONNX Runtime in the process"
    );

    // The TFLite backend loads after the failure and runs.
    store_tflite(&mut c, "add", "add.tflite");
    set_f32(&mut c, "a", &[2], &[1.0, 2.0]);
    set_f32(&mut c, "b", &[2], &[3.0, 4.0]);
    run_str(&mut c, "AI.MODELEXECUTE add INPUTS 2 a b OUTPUTS 1 c").expect("run add");
    assert_eq!(get_f32(&mut c, "c"), (vec![2], vec![4.0, 6.0]));

    let reply = run(
        &mut c,
        &[b"AI.MODELSTORE", b"m", b"ONNX", b"CPU", b"BLOB", &onnx],
    );
    assert!(
        error_text(replied(reply, "MODELSTORE m ONNX")).starts_with("ERR Could not load backend")
    );
    // TF is not in the bundle either.
    let graph = model_bytes("tf", "mul.pb");
    let reply = run(
        &mut c,
        &[
            b"AI.MODELSTORE",
            b"m",
            b"TF",
            b"CPU",
            b"INPUTS",
            b"2",
            b"a",
            b"b",
            b"OUTPUTS",
            b"1",
            b"mul",
            b"BLOB",
            &graph,
        ],
    );
    let text = error_text(replied(reply, "MODELSTORE m TF"));
    assert!(text.starts_with("ERR Could not load backend"), "{text}");
    assert!(
        mapped(&server, "tensorflow").is_empty(),
        "no TensorFlow in the process"
    );
    pong(&mut c);
}

#[test]
fn tflite_refuses_auto_batching() {
    let copy = EdgeCopy::new();
    let server = edge_server(&copy);
    let mut c = client(&server);
    let blob = model_bytes("tflite", "add.tflite");
    let reply = run(
        &mut c,
        &[
            b"AI.MODELSTORE",
            b"x",
            b"TFLITE",
            b"CPU",
            b"BATCHSIZE",
            b"2",
            b"BLOB",
            &blob,
        ],
    );
    assert_eq!(
        error_text(replied(reply, "MODELSTORE x TFLITE BATCHSIZE 2")),
        "ERR Auto-batching not supported by the TFLITE backend"
    );
    assert_eq!(run_str(&mut c, "EXISTS x").expect("EXISTS"), Value::Int(0));
    pong(&mut c);
}
