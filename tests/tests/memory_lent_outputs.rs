//! Outputs written into memory the host lends (ABI 1.5) are the server's memory: storing
//! one grows `used_memory` by about its size, and an output that takes used memory past
//! `maxmemory` is refused with Redis's OOM error and freed, as copied outputs were. Both
//! of the ONNX backend's ways are covered: ONNX Runtime writing into lent memory (Relu,
//! whose output shape is the input's, and Concat, whose shapes are declared) and the one
//! copy into it (Expand, whose output shape only the run knows).

mod common;

use std::thread::sleep;
use std::time::{Duration, Instant};

use common::onnx_graph::{fixed, named, onnx_model, onnx_plugin, store_onnx, value, FLOAT, INT64};
use common::{call, call_str, client, memory_fields, pong, set_blob};
use redisai_plugin_testkit::Pb;
use redisai_tests::redis::{Connection, Value};
use redisai_tests::{error_text, Server, ServerConfig};

const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";

/// y = Relu(x), x and y FLOAT [n]: the output's shape is known before the run.
fn relu() -> Vec<u8> {
    onnx_model(
        "Relu",
        &[("x", value("x", FLOAT, named("n")))],
        &[],
        value("y", FLOAT, named("n")),
    )
}

/// y = Concat(x, x, x, x) along axis 0, x FLOAT [`FLOATS`], y FLOAT [4 * `FLOATS`]: both
/// declared, so the output's shape is known before the run.
fn concat4() -> Vec<u8> {
    let node = ["x"; 4]
        .iter()
        .fold(Pb::default(), |node, input| node.str(1, input))
        .str(2, "y")
        .str(3, "n0")
        .str(4, "Concat")
        .msg(5, Pb::default().str(1, "axis").int(20, 2).int(3, 0));
    let graph = Pb::default()
        .msg(1, node)
        .str(2, "g")
        .msg(11, value("x", FLOAT, fixed(FLOATS as i64)))
        .msg(12, value("y", FLOAT, fixed(4 * FLOATS as i64)));
    let opset = Pb::default().str(1, "").int(2, 17);
    Pb::default().int(1, 8).msg(7, graph).msg(8, opset).0
}

/// y = Expand(x, shape), x FLOAT [1], shape INT64 [1], y FLOAT [m]: known after the run.
fn expand() -> Vec<u8> {
    onnx_model(
        "Expand",
        &[
            ("x", value("x", FLOAT, fixed(1))),
            ("shape", value("shape", INT64, fixed(1))),
        ],
        &[],
        value("y", FLOAT, named("m")),
    )
}

/// Sets the inputs of both models: `x` FLOAT [floats] of ones, `one` FLOAT [1] and
/// `count` INT64 [1] holding `floats`.
fn set_inputs(c: &mut Connection, floats: usize) {
    set_blob(c, "x", "FLOAT", &[floats], &vec![0u8; floats * 4]);
    set_blob(c, "one", "FLOAT", &[1], &1f32.to_le_bytes());
    set_blob(c, "count", "INT64", &[1], &(floats as i64).to_le_bytes());
}

const RELU_RUN: &str = "AI.MODELEXECUTE relu INPUTS 1 x OUTPUTS 1 y";
const EXPAND_RUN: &str = "AI.MODELEXECUTE expand INPUTS 2 one count OUTPUTS 1 y";

/// Elements of the input `x`: 40 MB of FLOAT.
const FLOATS: usize = 10_000_000;

fn server(maxmemory: Option<&str>) -> (Server, Connection) {
    assert!(
        onnx_plugin().exists(),
        "build the ONNX plugin first (scripts/build)"
    );
    // Deletes free at once, so that used_memory moves only with what the test does
    // (Valkey 8 frees big values in the background by default).
    let config = ServerConfig::default()
        .option("lazyfree-lazy-user-del", &["no"])
        .option("lazyfree-lazy-server-del", &["no"]);
    let config = match maxmemory {
        Some(limit) => config.option("maxmemory", &[limit]),
        None => config,
    };
    let server = Server::start_with(config);
    let mut c = client(&server);
    store_onnx(&mut c, "relu", &relu());
    store_onnx(&mut c, "expand", &expand());
    store_onnx(&mut c, "concat4", &concat4());
    (server, c)
}

/// `used_memory` less what clients hold (`mem_clients_normal`): the 40 MB `AI.TENSORSET`
/// leaves its client a query buffer of that size, which Redis's cron shrinks at a moment
/// of its own, so that it may be freed while an output is allocated and hide it.
fn used_without_clients(c: &mut Connection) -> u64 {
    let fields = memory_fields(c, &["used_memory", "mem_clients_normal"]);
    fields[0].saturating_sub(fields[1])
}

/// `used_memory` (less what clients hold) once it is below `bound` (within 10 s).
fn settled_below(c: &mut Connection, bound: u64, what: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let used = used_without_clients(c);
        if used < bound {
            return used;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: used_memory stays at {used}, over {bound}"
        );
        sleep(Duration::from_millis(20));
    }
}

/// How much [`used_without_clients`] grew over `before`, once it grew by `at_least` (or after 3 s):
/// Valkey may report a worker thread's allocations a moment later.
fn grown_by_at_least(c: &mut Connection, before: u64, at_least: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let grown = used_without_clients(c).saturating_sub(before);
        if grown >= at_least || Instant::now() >= deadline {
            return grown;
        }
        sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_stored_output_grows_used_memory_by_its_size() {
    let (_server, mut c) = server(None);
    set_inputs(&mut c, FLOATS);
    for (run, what) in [(RELU_RUN, "written in place"), (EXPAND_RUN, "copied once")] {
        // Warm up (the backend's first run allocates its own memory), then drop the key
        // and wait for the worker to let go of its share of that run.
        let base = used_without_clients(&mut c);
        call_str(&mut c, run).expect(what);
        call_str(&mut c, "DEL y").expect("DEL");
        let before = settled_below(&mut c, base + (4 << 20), what);
        assert_eq!(call_str(&mut c, run).expect(what), Value::Okay, "{what}");
        let size = (FLOATS * 4) as u64;
        let grown = grown_by_at_least(&mut c, before, size * 95 / 100);
        assert!(
            grown >= size * 95 / 100 && grown <= size * 110 / 100,
            "{what}: used_memory grew by {grown} bytes for a {size}-byte output"
        );
        let meta = call_str(&mut c, "AI.TENSORGET y META").expect("META");
        assert!(
            format!("{meta:?}").contains(&FLOATS.to_string()),
            "{meta:?}"
        );
        call_str(&mut c, "DEL y").expect("DEL");
    }
    pong(&mut c);
}

#[test]
fn outputs_past_maxmemory_are_refused_and_freed() {
    let (_server, mut c) = server(Some("150mb"));
    // 40 MB of input and 160 MB of output: past 150 MB once the output exists.
    set_inputs(&mut c, FLOATS);
    let concat = "AI.MODELEXECUTE concat4 INPUTS 1 x OUTPUTS 1 y";
    let count = (4 * FLOATS).to_string();
    call(
        &mut c,
        &[
            b"AI.TENSORSET",
            b"count",
            b"INT64",
            b"1",
            b"VALUES",
            count.as_bytes(),
        ],
    )
    .expect("count");
    for run in [concat, EXPAND_RUN] {
        assert_eq!(error_text(call_str(&mut c, run)), OOM, "{run}");
        assert_eq!(
            call_str(&mut c, "EXISTS y").expect("EXISTS"),
            Value::Int(0),
            "{run}"
        );
        settled_below(&mut c, 150 << 20, run);
    }
    pong(&mut c);
}
