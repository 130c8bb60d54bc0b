//! BACKEND_MEMORY_LIMIT bounds what each backend allocates while it runs: with
//! `BACKEND_MEMORY_LIMIT 256` (MB) a run whose intermediate tensor is 2 GB fails with an
//! error reply in ONNX (Expand then ReduceSum), TORCH (a script: expand, contiguous, sum)
//! and TF (BroadcastTo then Sum), a 40 MB one passes, the server stays up and its RSS does
//! not grow. Run as a non-admin user: a 10-byte argument must not buy 2 GB of memory.

mod common;

use std::path::PathBuf;

use common::{app_user, call, call_str, client, pong, rss_settles};
use redisai_plugin_testkit::graph_def::{
    attr_type, field_varint, graph, node, placeholder, DT_FLOAT, DT_INT32,
};
use redisai_plugin_testkit::Pb;
use redisai_tests::redis::{self, Connection, Value};
use redisai_tests::{error_text, Server, ServerConfig};

const HUGE: i64 = 1 << 29; // 2^29 floats: 2 GiB
const FITS: i64 = 10_000_000; // 40 MB

fn plugin(name: &str) -> PathBuf {
    redisai_tests::workspace_root().join(format!("dist/backends/{name}/{name}.so"))
}

// ---- the two graphs, on the tests' protobuf writer ----

/// ONNX ValueInfoProto: name, tensor of `elem` with shape [1].
fn onnx_value(name: &str, elem: i64) -> Pb {
    let shape = Pb::default().msg(1, Pb::default().int(1, 1));
    let tensor = Pb::default().int(1, elem).msg(2, shape);
    Pb::default()
        .str(1, name)
        .msg(2, Pb::default().msg(1, tensor))
}

fn onnx_node(op: &str, inputs: &[&str], output: &str) -> Pb {
    let node = inputs
        .iter()
        .fold(Pb::default(), |node, input| node.str(1, input));
    node.str(2, output).str(3, output).str(4, op)
}

/// y = ReduceSum(Expand(x, shape)): x FLOAT [1], shape INT64 [1], y FLOAT [1].
fn onnx_expand_sum() -> Vec<u8> {
    let graph = Pb::default()
        .msg(1, onnx_node("Expand", &["x", "shape"], "big"))
        .msg(1, onnx_node("ReduceSum", &["big"], "y"))
        .str(2, "g")
        .msg(11, onnx_value("x", 1))
        .msg(11, onnx_value("shape", 7))
        .msg(12, onnx_value("y", 1));
    let opset = Pb::default().str(1, "").int(2, 17);
    Pb::default().int(1, 8).msg(7, graph).msg(8, opset).0
}

/// y = Sum(BroadcastTo(x, shape), axis): x FLOAT, shape and axis INT32.
fn tf_broadcast_sum() -> Vec<u8> {
    let (float, int32) = (attr_type(DT_FLOAT), attr_type(DT_INT32));
    let nodes = [
        placeholder("x", DT_FLOAT),
        placeholder("shape", DT_INT32),
        placeholder("axis", DT_INT32),
        node(
            "big",
            "BroadcastTo",
            &["x", "shape"],
            &[("T", float.clone()), ("Tidx", int32.clone())],
        ),
        node(
            "y",
            "Sum",
            &["big", "axis"],
            &[
                ("T", float),
                ("Tidx", int32),
                ("keep_dims", field_varint(5, 0)),
            ],
        ),
    ];
    graph(&nodes, &[])
}

const SCRIPT: &str = r#"
def big(tensors: List[Tensor], keys: List[str], args: List[str]):
    return tensors[0].expand([int(args[0])]).contiguous().sum().reshape([1])
"#;

fn value_of(c: &mut Connection, key: &str) -> String {
    let reply = call_str(c, &format!("AI.TENSORGET {key} VALUES")).expect("TENSORGET");
    format!("{reply:?}")
}

#[test]
fn a_2gb_intermediate_fails_under_256_mb_in_every_backend() {
    for name in ["redisai_onnxruntime", "redisai_torch", "redisai_tensorflow"] {
        assert!(
            plugin(name).exists(),
            "build the {name} plugin first (scripts/test)"
        );
    }
    let server =
        Server::start_with(ServerConfig::default().module_args(&["BACKEND_MEMORY_LIMIT", "256"]));
    let mut admin = client(&server);
    let mut app = app_user(&server);
    let ok = |reply: redis::RedisResult<Value>, what: &str| {
        assert_eq!(
            reply.unwrap_or_else(|e| panic!("{what}: {e}")),
            Value::Okay,
            "{what}"
        );
    };

    call_str(&mut app, "AI.TENSORSET app1:x FLOAT 1 VALUES 1").expect("x");
    for (key, n) in [("huge", HUGE), ("fits", FITS)] {
        ok(
            call_str(
                &mut app,
                &format!("AI.TENSORSET app1:{key}64 INT64 1 VALUES {n}"),
            ),
            key,
        );
        ok(
            call_str(
                &mut app,
                &format!("AI.TENSORSET app1:{key}32 INT32 1 VALUES {n}"),
            ),
            key,
        );
    }
    call_str(&mut app, "AI.TENSORSET app1:axis INT32 1 VALUES 0").expect("axis");

    // Store everything and run what fits once, so that the runtimes are loaded and warm.
    let onnx = onnx_expand_sum();
    ok(
        call(
            &mut app,
            &[
                b"AI.MODELSTORE",
                b"app1:onnx",
                b"ONNX",
                b"CPU",
                b"BLOB",
                &onnx,
            ],
        ),
        "ONNX MODELSTORE",
    );
    let tf = tf_broadcast_sum();
    ok(
        call(
            &mut app,
            &[
                b"AI.MODELSTORE",
                b"app1:tf",
                b"TF",
                b"CPU",
                b"INPUTS",
                b"3",
                b"x",
                b"shape",
                b"axis",
                b"OUTPUTS",
                b"1",
                b"y",
                b"BLOB",
                &tf,
            ],
        ),
        "TF MODELSTORE",
    );
    ok(
        call(
            &mut app,
            &[
                b"AI.SCRIPTSTORE",
                b"app1:s",
                b"CPU",
                b"ENTRY_POINTS",
                b"1",
                b"big",
                b"SOURCE",
                SCRIPT.as_bytes(),
            ],
        ),
        "SCRIPTSTORE",
    );
    let onnx_run =
        |n: &str| format!("AI.MODELEXECUTE app1:onnx INPUTS 2 app1:x app1:{n}64 OUTPUTS 1 app1:y1");
    let tf_run = |n: &str| {
        format!("AI.MODELEXECUTE app1:tf INPUTS 3 app1:x app1:{n}32 app1:axis OUTPUTS 1 app1:y2")
    };
    let torch_run = |n: i64| {
        format!("AI.SCRIPTEXECUTE app1:s big INPUTS 1 app1:x ARGS 1 {n} OUTPUTS 1 app1:y3")
    };
    let warm = |app: &mut Connection| {
        ok(call_str(app, &onnx_run("fits")), "ONNX 40 MB");
        ok(call_str(app, &tf_run("fits")), "TF 40 MB");
        ok(call_str(app, &torch_run(FITS)), "TORCH 40 MB");
        for key in ["app1:y1", "app1:y2", "app1:y3"] {
            let value = value_of(app, key);
            assert!(value.contains("10000000"), "{key}: {value}");
        }
    };
    // Three times: the plugins take their own buffers from glibc (see
    // sdk::SystemAllocator and the TORCH allocator), which serves a second 40 MB request
    // from its heap and keeps it for the next, where the first was mapped and unmapped,
    // and each worker thread may get an arena of its own: the baseline is the steady
    // state, not the first run's.
    for _ in 0..3 {
        warm(&mut app);
    }
    let baseline = rss_settles(&mut admin, 0, u64::MAX);

    let onnx_err = error_text(call_str(&mut app, &onnx_run("huge")));
    assert!(
        onnx_err.contains("Onnxruntime memory limit exceeded") && onnx_err.contains("256 MB"),
        "{onnx_err}"
    );
    let torch_err = error_text(call_str(&mut app, &torch_run(HUGE)));
    assert!(
        torch_err.contains("TORCH memory limit exceeded") && torch_err.contains("256 MB"),
        "{torch_err}"
    );
    let tf_err = error_text(call_str(&mut app, &tf_run("huge")));
    assert!(
        tf_err.contains("TF memory limit exceeded") && tf_err.contains("OOM when allocating"),
        "{tf_err}"
    );
    eprintln!("ONNX: {onnx_err}\nTORCH: {torch_err}\nTF: {tf_err}");

    // The server lives, the backends still run what fits, and nothing was kept.
    pong(&mut app);
    warm(&mut app);
    let rss = rss_settles(&mut admin, baseline, 50 << 20);
    eprintln!("RSS: {baseline} warm, {rss} after the refused runs");
    assert!(
        rss <= baseline + (50 << 20),
        "RSS {rss} did not stay within 50 MB of {baseline}"
    );
    pong(&mut app);
}

/// `held=` of `ai_<backend>_memory` in INFO MODULES (0 before the backend is loaded).
fn held(c: &mut Connection, backend: &str) -> u64 {
    let info: String = redis::cmd("INFO").arg("MODULES").query(c).expect("INFO");
    info.lines()
        .find_map(|line| line.strip_prefix(&format!("ai_{backend}_memory:held=")))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn memory_figures_follow_models_in_and_out() {
    let server =
        Server::start_with(ServerConfig::default().module_args(&["BACKEND_MEMORY_LIMIT", "256"]));
    let mut c = client(&server);
    let models = [
        ("onnx", "ONNX", "onnx/mlp.onnx"),
        ("torch", "TORCH", "torch/mlp.pt"),
    ];
    for (backend, name, file) in models {
        let blob = std::fs::read(
            redisai_tests::workspace_root()
                .join("tests/models")
                .join(file),
        )
        .expect("model");
        // Load the backend with one model, then measure a second one in and out.
        for key in ["first", "second"] {
            let before = held(&mut c, backend);
            let reply = call(
                &mut c,
                &[
                    b"AI.MODELSTORE",
                    key.as_bytes(),
                    name.as_bytes(),
                    b"CPU",
                    b"BLOB",
                    &blob,
                ],
            );
            assert_eq!(reply.expect("MODELSTORE"), Value::Okay, "{name} {key}");
            let after = held(&mut c, backend);
            if key == "second" {
                assert!(
                    after > before,
                    "{name}: held {before} -> {after} after a store"
                );
                // AI.INFO's figure is what the backend holds for the model, and MEMORY
                // USAGE counts it besides the blob.
                let info = call_str(&mut c, &format!("AI.INFO {key}")).expect("AI.INFO");
                let Value::Array(fields) = info else {
                    panic!("{info:?}")
                };
                let memory = fields
                    .chunks(2)
                    .find(|pair| {
                        matches!(&pair[0], Value::SimpleString(s) if s == "memory")
                            || matches!(&pair[0], Value::BulkString(s) if s == b"memory")
                    })
                    .map(|pair| pair[1].clone());
                let Some(Value::Int(model_bytes)) = memory else {
                    panic!("{name}: {fields:?}")
                };
                assert!(model_bytes > 0, "{name}: AI.INFO memory {model_bytes}");
                let usage = call_str(&mut c, &format!("MEMORY USAGE {key}")).expect("MEMORY USAGE");
                let Value::Int(usage) = usage else {
                    panic!("{usage:?}")
                };
                assert!(
                    usage as usize > blob.len() + model_bytes as usize - 1,
                    "{name}: {usage}"
                );
                call_str(&mut c, &format!("AI.MODELDEL {key}")).expect("MODELDEL");
                assert_eq!(held(&mut c, backend), before, "{name}: held after MODELDEL");
            }
        }
        call_str(&mut c, "AI.MODELDEL first").expect("MODELDEL");
    }
    pong(&mut c);
}
