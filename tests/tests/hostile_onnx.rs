//! A stored ONNX model is hostile input. As a user without @admin or @dangerous (who may
//! write only `app1:*`), AI.MODELSTORE and AI.MODELSET of a model whose tensors take their
//! data from a file (ONNX Runtime would read it relative to the server's working
//! directory: dump.rdb, the AOF, nodes.conf) get RedisAI's error, as does a model with a
//! custom operator domain; nothing is written and the server goes on. The models are
//! written here, protobuf by hand (the ONNX backend's own tests show that ONNX Runtime
//! alone does read such files).

mod common;

use common::app_user;
use redisai_tests::protobuf::Pb as Msg;
use redisai_tests::redis::{Connection, Value};
use redisai_tests::{error_text, run, run_str, Server};

const EXTERNAL_DATA: &str = "ERR Initializer tensors with external data is not allowed.";

const FLOAT: i64 = 1;
const BOOL: i64 = 9;

/// TensorProto: FLOAT [4] named `name`, data in the file `location` (data_location
/// EXTERNAL, external_data entries).
fn external_tensor(name: &str, location: &str) -> Msg {
    let entry = |k: &str, v: &str| Msg::default().str(1, k).str(2, v);
    Msg::default()
        .int(1, 4)
        .int(2, FLOAT)
        .str(8, name)
        .msg(13, entry("location", location))
        .msg(13, entry("length", "16"))
        .int(14, 1)
}

/// TensorProto: FLOAT [4] zeros, in the model.
fn inline_tensor(name: &str) -> Msg {
    Msg::default()
        .int(1, 4)
        .int(2, FLOAT)
        .str(8, name)
        .bytes(9, &[0; 16])
}

fn value_info(name: &str, elem_type: i64, dims: &[i64]) -> Msg {
    let mut shape = Msg::default();
    for &d in dims {
        shape = shape.msg(1, Msg::default().int(1, d));
    }
    let tensor = Msg::default().int(1, elem_type).msg(2, shape);
    Msg::default()
        .str(1, name)
        .msg(2, Msg::default().msg(1, tensor))
}

fn node(op: &str, domain: &str, inputs: &[&str], outputs: &[&str]) -> Msg {
    let mut n = Msg::default();
    for i in inputs {
        n = n.str(1, i);
    }
    for o in outputs {
        n = n.str(2, o);
    }
    n = n.str(4, op);
    if !domain.is_empty() {
        n = n.str(7, domain);
    }
    n
}

fn constant(tensor: Msg, output: &str) -> Msg {
    let attr = Msg::default().str(1, "value").int(20, 4).msg(5, tensor);
    node("Constant", "", &[], &[output]).msg(5, attr)
}

/// ModelProto (IR 8, opset 17) around `graph`, with `extra` fields appended.
fn model(graph: Msg, extra: Msg) -> Vec<u8> {
    let mut m = Msg::default()
        .int(1, 8)
        .msg(7, graph)
        .msg(8, Msg::default().str(1, "").int(2, 17));
    m.0.extend_from_slice(&extra.0);
    m.0
}

fn graph(nodes: &[Msg], initializers: &[Msg], inputs: &[Msg], y: bool) -> Msg {
    let mut g = Msg::default();
    for n in nodes {
        g = g.msg(1, n.clone());
    }
    g = g.str(2, "g");
    for t in initializers {
        g = g.msg(5, t.clone());
    }
    for i in inputs {
        g = g.msg(11, i.clone());
    }
    if y {
        g = g.msg(12, value_info("y", FLOAT, &[4]));
    }
    g
}

/// The hostile models, by name.
fn hostile_models(location: &str) -> Vec<(&'static str, Vec<u8>)> {
    let x = value_info("x", FLOAT, &[4]);
    let initializer = model(
        graph(
            &[node("Add", "", &["x", "w"], &["y"])],
            &[external_tensor("w", location)],
            &[x],
            true,
        ),
        Msg::default(),
    );
    let constant_attr = model(
        graph(
            &[constant(external_tensor("w", location), "y")],
            &[],
            &[],
            true,
        ),
        Msg::default(),
    );
    let branch = |name: &str, tensor: Msg| {
        let out = format!("{name}_out");
        let mut g = graph(&[constant(tensor, &out)], &[], &[], false);
        g = g.msg(12, value_info(&out, FLOAT, &[4]));
        Msg::default().str(1, name).int(20, 5).msg(6, g)
    };
    let if_node = node("If", "", &["cond"], &["y"])
        .msg(5, branch("then_branch", external_tensor("w", location)))
        .msg(5, branch("else_branch", inline_tensor("z")));
    let if_subgraph = model(
        graph(&[if_node], &[], &[value_info("cond", BOOL, &[])], true),
        Msg::default(),
    );
    let function = Msg::default()
        .str(1, "Leak")
        .str(5, "out")
        .msg(7, constant(external_tensor("w", location), "out"))
        .msg(9, Msg::default().str(1, "").int(2, 17))
        .str(10, "local.fn");
    let local_function = model(
        graph(&[node("Leak", "local.fn", &[], &["y"])], &[], &[], true),
        Msg::default()
            .msg(8, Msg::default().str(1, "local.fn").int(2, 1))
            .msg(25, function),
    );
    vec![
        ("initializer", initializer),
        ("Constant attribute", constant_attr),
        ("If subgraph", if_subgraph),
        ("local function", local_function),
    ]
}

fn custom_domain_model() -> Vec<u8> {
    model(
        graph(
            &[node("Evil", "com.example", &["x"], &["y"])],
            &[],
            &[value_info("x", FLOAT, &[4])],
            true,
        ),
        Msg::default().msg(8, Msg::default().str(1, "com.example").int(2, 1)),
    )
}

/// A server with key `app1:m` free and a connection as app1 (no @admin, no @dangerous).
fn setup() -> (Server, Connection) {
    let server = Server::start();
    let app = app_user(&server);
    (server, app)
}

fn store(c: &mut Connection, command: &[u8], key: &str, blob: &[u8]) -> String {
    error_text(run(
        c,
        &[command, key.as_bytes(), b"ONNX", b"CPU", b"BLOB", blob],
    ))
}

fn alive_and_absent(c: &mut Connection, key: &str) {
    assert_eq!(
        run_str(c, "PING").expect("PING"),
        Value::SimpleString("PONG".into())
    );
    assert_eq!(
        run_str(c, &format!("EXISTS {key}")).expect("EXISTS"),
        Value::Int(0),
        "{key} was written"
    );
}

#[test]
fn models_with_external_data_are_refused() {
    let (_server, mut c) = setup();
    for location in [
        "dump.rdb",
        "appendonlydir/appendonly.aof.1.incr.aof",
        "nodes.conf",
        "../../../../etc/passwd",
    ] {
        for (name, blob) in hostile_models(location) {
            for command in [&b"AI.MODELSTORE"[..], b"AI.MODELSET"] {
                let text = store(&mut c, command, "app1:m", &blob);
                assert_eq!(text, EXTERNAL_DATA, "{name}, {location}");
                alive_and_absent(&mut c, "app1:m");
            }
        }
    }
}

#[test]
fn a_refused_model_leaves_the_stored_one_in_place() {
    let (_server, mut c) = setup();
    let good = model(
        graph(
            &[node("Add", "", &["x", "w"], &["y"])],
            &[inline_tensor("w")],
            &[value_info("x", FLOAT, &[4])],
            true,
        ),
        Msg::default(),
    );
    assert_eq!(
        run(
            &mut c,
            &[
                b"AI.MODELSTORE",
                b"app1:m",
                b"ONNX",
                b"CPU",
                b"TAG",
                b"good",
                b"BLOB",
                &good
            ]
        )
        .expect("a plain model"),
        Value::Okay
    );
    let (_, hostile) = hostile_models("dump.rdb").remove(1);
    assert_eq!(
        store(&mut c, b"AI.MODELSTORE", "app1:m", &hostile),
        EXTERNAL_DATA
    );
    run_str(&mut c, "AI.TENSORSET app1:x FLOAT 4 VALUES 1 2 3 4").expect("TENSORSET");
    run_str(
        &mut c,
        "AI.MODELEXECUTE app1:m INPUTS 1 app1:x OUTPUTS 1 app1:y",
    )
    .expect("the first model still runs");
    let meta = run_str(&mut c, "AI.MODELGET app1:m META").expect("MODELGET");
    assert!(format!("{meta:?}").contains("good"), "{meta:?}");
}

#[test]
fn custom_operator_domains_are_refused() {
    let (_server, mut c) = setup();
    let text = store(&mut c, b"AI.MODELSTORE", "app1:m", &custom_domain_model());
    assert_eq!(
        text,
        "ERR model uses a forbidden operation: com.example.Evil (custom operator domain)"
    );
    alive_and_absent(&mut c, "app1:m");
}

/// `a` and `b`, each padded with a doc_string (ModelProto field 6) to the same length.
fn same_length(a: Vec<u8>, b: Vec<u8>) -> (Vec<u8>, Vec<u8>) {
    let target = a.len().max(b.len()) + 200;
    let pad = |bytes: Vec<u8>| {
        (0..target)
            .map(|n| {
                let mut padded = bytes.clone();
                padded.extend_from_slice(&Msg::default().bytes(6, &vec![b'.'; n]).0);
                padded
            })
            .find(|padded| padded.len() == target)
            .expect("a padding that fits")
    };
    (pad(a), pad(b))
}

/// The RDB path (RDB loads, replicas, RESTORE) goes through the same check: a model whose
/// bytes were swapped for a hostile model's inside a DUMP payload is restored without a
/// runtime (the core keeps models that their backend refuses when it loads a data set),
/// and its runs fail with the policy's text; the file is never read.
#[test]
fn a_hostile_model_restored_from_a_dump_payload_never_runs() {
    let server = Server::start();
    let mut c = server.client();
    std::fs::write(server.dir.join("secret.bin"), [7u8; 16]).expect("secret.bin");
    run_str(&mut c, "CONFIG SET rdbcompression no").expect("rdbcompression");
    let x = value_info("x", FLOAT, &[4]);
    let good = model(
        graph(
            &[node("Add", "", &["x", "w"], &["y"])],
            &[inline_tensor("w")],
            &[x],
            true,
        ),
        Msg::default(),
    );
    let (_, bad) = hostile_models("secret.bin").remove(0);
    let (good, bad) = same_length(good, bad);
    let reply = run(
        &mut c,
        &[b"AI.MODELSTORE", b"good", b"ONNX", b"CPU", b"BLOB", &good],
    );
    assert_eq!(reply.expect("MODELSTORE"), Value::Okay);
    let Value::BulkString(mut payload) = run_str(&mut c, "DUMP good").expect("DUMP") else {
        panic!("DUMP gave no payload");
    };
    let at = payload
        .windows(good.len())
        .position(|w| w == good.as_slice())
        .expect("the model's bytes in the payload");
    payload[at..at + bad.len()].copy_from_slice(&bad);
    run_str(&mut c, "DEBUG SET-SKIP-CHECKSUM-VALIDATION 1").expect("DEBUG");
    let restored = run(&mut c, &[b"RESTORE", b"evil", b"0", &payload]);
    assert_eq!(restored.expect("RESTORE"), Value::Okay);
    run_str(&mut c, "AI.TENSORSET x FLOAT 4 VALUES 0 0 0 0").expect("TENSORSET");
    let text = error_text(run_str(
        &mut c,
        "AI.MODELEXECUTE evil INPUTS 1 x OUTPUTS 1 y",
    ));
    assert!(
        text.contains("Initializer tensors with external data is not allowed."),
        "{text}"
    );
    alive_and_absent(&mut c, "y");
}
