//! Hostile TF graphs inside a real redis-server: a non-admin ACL user (no @admin, no
//! @dangerous) may store models, so a stored graph is hostile input. Graphs with operations
//! that read, write or list files, directly or inside a function of the graph's library,
//! are refused at AI.MODELSTORE (and the deprecated AI.MODELSET) with the load policy's
//! message; nothing is stored, and the server goes on answering.
//!
//! The graphs are built here (`redisai_plugin_testkit::graph_def`, a tiny GraphDef writer
//! shared with the TF backend's own tests), not committed as files.

mod common;

use common::{app_user, call, call_str, get_f32, model_bytes, pong};
use redisai_plugin_testkit::graph_def;
use redisai_tests::redis::{Connection, Value};
use redisai_tests::{error_text, run_str, Server};

fn setup() -> (Server, Connection) {
    let server = Server::start();
    let app = app_user(&server);
    (server, app)
}

/// `AI.MODELSTORE key TF CPU INPUTS n in... OUTPUTS n out... BLOB graph` (or MODELSET).
fn store(
    c: &mut Connection,
    command: &str,
    key: &str,
    blob: &[u8],
    inputs: &[&str],
    outputs: &[&str],
) -> redisai_tests::redis::RedisResult<Value> {
    let n_in = inputs.len().to_string();
    let n_out = outputs.len().to_string();
    let mut args: Vec<&[u8]> = vec![command.as_bytes(), key.as_bytes(), b"TF", b"CPU"];
    args.push(b"INPUTS");
    args.push(n_in.as_bytes());
    args.extend(inputs.iter().map(|s| s.as_bytes()));
    args.push(b"OUTPUTS");
    args.push(n_out.as_bytes());
    args.extend(outputs.iter().map(|s| s.as_bytes()));
    args.push(b"BLOB");
    args.push(blob);
    call(c, &args)
}

fn exists(c: &mut Connection, key: &str) -> bool {
    call_str(c, &format!("EXISTS {key}")).expect("EXISTS") == Value::Int(1)
}

#[test]
fn file_operations_are_refused_for_a_non_admin_user() {
    let (_server, mut app) = setup();
    let cases = [
        (
            graph_def::matching_files(),
            &["pattern"][..],
            "files",
            "MatchingFiles",
        ),
        (
            graph_def::read_file(),
            &["fname"][..],
            "contents",
            "ReadFile",
        ),
        (
            graph_def::write_file(),
            &["fname", "data"][..],
            "out",
            "WriteFile",
        ),
        (
            graph_def::read_file_in_a_function(),
            &["fname"][..],
            "contents",
            "ReadFile",
        ),
    ];
    for (blob, inputs, output, op) in &cases {
        for command in ["AI.MODELSTORE", "AI.MODELSET"] {
            // The reported graph's input is named `pattern`: any name, the graph is
            // refused before its names are looked at.
            let inputs: Vec<&str> = inputs.to_vec();
            let text = error_text(store(&mut app, command, "app1:m", blob, &inputs, &[output]));
            assert_eq!(
                text,
                format!("ERR model uses a forbidden operation: {op} (file access)"),
                "{command} {op}"
            );
            assert!(!exists(&mut app, "app1:m"), "{command} {op}: stored");
            pong(&mut app);
        }
    }
    // The server and the backend still work for the same user.
    let mul = model_bytes("tf", "mul.pb");
    assert_eq!(
        store(
            &mut app,
            "AI.MODELSTORE",
            "app1:mul",
            &mul,
            &["a", "b"],
            &["mul"]
        ),
        Ok(Value::Okay)
    );
    run_str(&mut app, "AI.TENSORSET app1:a FLOAT 2 VALUES 2 3").expect("TENSORSET");
    run_str(
        &mut app,
        "AI.MODELEXECUTE app1:mul INPUTS 2 app1:a app1:a OUTPUTS 1 app1:c",
    )
    .expect("MODELEXECUTE");
    let (shape, values) = get_f32(&mut app, "app1:c");
    assert_eq!((shape, values), (vec![2], vec![4.0, 9.0]));
    pong(&mut app);
}
