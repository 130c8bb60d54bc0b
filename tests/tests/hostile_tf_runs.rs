//! Stored TF graphs of allowed operations that crashed redis-server (found by the live
//! fuzzer, tests/tests/fuzz_live/), inside a real server and as a non-admin user: each
//! run now fails with TensorFlow's error (or the backend's, for an input of the wrong rank),
//! and the server goes on answering and running other models.
//! - Transpose whose `perm` folds to a scalar: grappler's constant folding aborted.
//! - Conv2D fed a rank-2 tensor: oneDNN's convolution kernel aborted.
//!
//! The graphs are built by `redisai_plugin_testkit::graph_def`, shared with the
//! TF backend's own tests (plugins/tensorflow/tests/hostile_runs.rs).

mod common;

use common::{app_user, call, get_f32, pong, set_f32};
use redisai_plugin_testkit::graph_def;
use redisai_tests::redis::{Connection, Value};
use redisai_tests::{error_text, run_str, Server};

fn setup() -> (Server, Connection) {
    let server = Server::start();
    let app = app_user(&server);
    (server, app)
}

/// `AI.MODELSTORE key TF CPU INPUTS 1 x OUTPUTS 1 output BLOB graph`.
fn store(c: &mut Connection, key: &str, blob: &[u8], output: &str) {
    let args: Vec<&[u8]> = vec![
        b"AI.MODELSTORE",
        key.as_bytes(),
        b"TF",
        b"CPU",
        b"INPUTS",
        b"1",
        b"x",
        b"OUTPUTS",
        b"1",
        output.as_bytes(),
        b"BLOB",
        blob,
    ];
    assert_eq!(
        call(c, &args).expect("MODELSTORE"),
        Value::Okay,
        "{key} should store"
    );
}

fn execute(c: &mut Connection, key: &str) -> String {
    let line = format!("AI.MODELEXECUTE {key} INPUTS 1 app1:in OUTPUTS 1 app1:out");
    error_text(run_str(c, &line))
}

#[test]
fn graphs_that_crashed_the_server_fail_their_runs() {
    let (_server, mut app) = setup();
    store(
        &mut app,
        "app1:transpose",
        &graph_def::transpose_of_a_folded_scalar_perm(),
        "t",
    );
    store(
        &mut app,
        "app1:conv",
        &graph_def::conv_graph(None, 1, 1),
        "y",
    );
    store(
        &mut app,
        "app1:conv4",
        &graph_def::conv_graph(Some(&[-1, -1, -1, 1]), 1, 1),
        "y",
    );
    set_f32(&mut app, "app1:in", &[2, 2], &[1.0, 2.0, 3.0, 4.0]);
    for _ in 0..2 {
        let err = execute(&mut app, "app1:transpose");
        assert!(err.contains("perm must be rank 1, got shape []"), "{err}");
        pong(&mut app);
        let err = execute(&mut app, "app1:conv");
        assert!(err.contains("input must be 4-dimensional"), "{err}");
        pong(&mut app);
        let err = execute(&mut app, "app1:conv4");
        assert!(
            err.contains("input 0 ('x') has shape [2,2], the graph declares [?,?,?,1] (rank 4)"),
            "{err}"
        );
        pong(&mut app);
    }
    // The same convolution of a rank-4 input runs (a 3x3 filter of (i % 7 - 3) / 64, SAME
    // padding: the centre weight is 1/64).
    set_f32(&mut app, "app1:in", &[1, 1, 1, 1], &[64.0]);
    for key in ["app1:conv", "app1:conv4"] {
        let line = format!("AI.MODELEXECUTE {key} INPUTS 1 app1:in OUTPUTS 1 app1:out");
        run_str(&mut app, &line).expect("the rank-4 run");
        let (shape, values) = get_f32(&mut app, "app1:out");
        assert_eq!(shape, [1, 1, 1, 1]);
        assert_eq!(values, [1.0], "{key}");
    }
}
