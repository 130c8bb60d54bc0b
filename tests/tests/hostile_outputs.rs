//! A stored model whose outputs are huge cannot take the server past `maxmemory`: a run's
//! outputs are charged to the room left under `maxmemory` when the run was dispatched,
//! and refused before Redis's allocator is asked for them (it aborts the server when it
//! fails). The models are stored by a user who is not an admin (hostile input), with
//! `maxmemory 64mb`:
//! - a ~100 MiB output whose shape the model declares (the ONNX backend would run it into
//!   memory lent by the host: the loan is refused);
//! - a ~512 MiB declared output, past the backend's 256 MiB pre-allocation cap (ONNX
//!   Runtime allocates it in its own memory; the host's copy is refused);
//! - an output whose shape only the run computes (ConstantOfShape of an input), ~300 MiB.
//!
//! Each run answers Redis's OOM error, writes nothing, and leaves `used_memory` where it
//! was; `used_memory_peak` never gets near the outputs' size, so none of them was
//! allocated through Redis's allocator. The DAG form of a run is refused the same way,
//! and so are a TorchScript function's huge output and the model it runs through
//! `redisAI.model_execute`.

mod common;

use std::path::PathBuf;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::onnx_graph::{
    fixed, int64_initializer, named, onnx_model, onnx_plugin, store_onnx, value, FLOAT, INT64,
};
use common::{app_user, call, call_str, client, memory_field, pong};
use redisai_tests::redis::{Connection, Value};
use redisai_tests::{error_text, run_nested, Server, ServerConfig};

const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";
const MAXMEMORY: u64 = 64 << 20;

/// FLOAT elements of the outputs: 100 MiB (declared, would be lent), 512 MiB (declared,
/// past the pre-allocation cap), 300 MiB (computed by the run).
const LENT_FLOATS: i64 = 25 << 20;
const CAPPED_FLOATS: i64 = 128 << 20;
const COMPUTED_FLOATS: i64 = 75 << 20;

const SCRIPT: &str = r#"
def zeros(tensors: List[Tensor], keys: List[str], args: List[str]):
    return torch.zeros(int(args[0]))

def nested(tensors: List[Tensor], keys: List[str], args: List[str]):
    return redisAI.model_execute(keys[0], [tensors[0]], 1)[0]

def nested_input(tensors: List[Tensor], keys: List[str], args: List[str]):
    return redisAI.model_execute(keys[0], [torch.zeros(int(args[0]))], 1)[0]
"#;

fn torch_plugin() -> PathBuf {
    redisai_tests::workspace_root().join("dist/backends/redisai_torch/redisai_torch.so")
}

/// y = Expand(x, [floats]), x FLOAT [1], y declared FLOAT [floats].
fn declared_expand(floats: i64) -> Vec<u8> {
    onnx_model(
        "Expand",
        &[("x", value("x", FLOAT, fixed(1)))],
        &[("shape", int64_initializer("shape", floats))],
        value("y", FLOAT, fixed(floats)),
    )
}

/// y = ConstantOfShape(shape), shape INT64 [1], y FLOAT [m] (zeros).
fn computed_shape() -> Vec<u8> {
    onnx_model(
        "ConstantOfShape",
        &[("shape", value("shape", INT64, fixed(1)))],
        &[],
        value("y", FLOAT, named("m")),
    )
}

fn set_count(c: &mut Connection, key: &str, n: i64) {
    call_str(c, &format!("AI.TENSORSET {key} INT64 1 VALUES {n}")).expect("TENSORSET");
}

/// The server and two connections to it: the hostile user's and an admin's (INFO is
/// not the user's).
struct Setup {
    _server: Server,
    app: Connection,
    admin: Connection,
}

/// A server with `maxmemory` and the hostile user's models and inputs.
fn server() -> Setup {
    assert!(
        onnx_plugin().exists(),
        "build the ONNX plugin first (scripts/build)"
    );
    let config = ServerConfig::default()
        .option("maxmemory", &[&MAXMEMORY.to_string()])
        .option("maxmemory-policy", &["noeviction"]);
    let server = Server::start_with(config);
    let mut app = app_user(&server);
    store_onnx(&mut app, "app1:lent", &declared_expand(LENT_FLOATS));
    store_onnx(&mut app, "app1:capped", &declared_expand(CAPPED_FLOATS));
    store_onnx(&mut app, "app1:computed", &computed_shape());
    call_str(&mut app, "AI.TENSORSET app1:x FLOAT 1 VALUES 0.5").expect("x");
    set_count(&mut app, "app1:huge", COMPUTED_FLOATS);
    let admin = client(&server);
    Setup {
        _server: server,
        app,
        admin,
    }
}

/// `used_memory` once it is within 1 MiB of `before` (within 10 s).
fn settles_at(c: &mut Connection, before: u64, what: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let used = memory_field(c, "used_memory");
        if used <= before + (1 << 20) {
            return used;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: used_memory stays at {used}, was {before}"
        );
        sleep(Duration::from_millis(20));
    }
}

/// Checks a refused run: nothing written, used memory as before, never near the
/// outputs' size, and the server answering.
fn refused_and_nothing_allocated(setup: &mut Setup, before: u64, what: &str) {
    assert_eq!(
        call_str(&mut setup.app, "EXISTS app1:y").expect("EXISTS"),
        Value::Int(0),
        "{what}: nothing written"
    );
    let c = &mut setup.admin;
    settles_at(c, before, what);
    let peak = memory_field(c, "used_memory_peak");
    assert!(
        peak < MAXMEMORY,
        "{what}: used_memory_peak {peak} went past maxmemory"
    );
    pong(c);
}

#[test]
fn huge_outputs_are_refused_before_they_are_allocated() {
    let mut setup = server();
    let runs = [
        (
            "AI.MODELEXECUTE app1:lent INPUTS 1 app1:x OUTPUTS 1 app1:y",
            "declared 100 MiB (lent)",
        ),
        (
            "AI.MODELEXECUTE app1:capped INPUTS 1 app1:x OUTPUTS 1 app1:y",
            "declared 512 MiB (copied)",
        ),
        (
            "AI.MODELEXECUTE app1:computed INPUTS 1 app1:huge OUTPUTS 1 app1:y",
            "computed 300 MiB",
        ),
        (
            "AI.MODELRUN app1:computed INPUTS app1:huge OUTPUTS app1:y",
            "computed 300 MiB, MODELRUN",
        ),
    ];
    for (run, what) in runs {
        let before = memory_field(&mut setup.admin, "used_memory");
        assert_eq!(error_text(call_str(&mut setup.app, run)), OOM, "{what}");
        refused_and_nothing_allocated(&mut setup, before, what);
    }
    // Outputs that fit are still written.
    let app = &mut setup.app;
    set_count(app, "app1:small", 1000);
    call_str(
        app,
        "AI.MODELEXECUTE app1:computed INPUTS 1 app1:small OUTPUTS 1 app1:y",
    )
    .expect("an output that fits");
    let meta = call_str(app, "AI.TENSORGET app1:y META").expect("META");
    assert!(format!("{meta:?}").contains("1000"), "{meta:?}");
    // A new maxmemory counts from the next run on.
    call_str(&mut setup.admin, "CONFIG SET maxmemory 1gb").expect("CONFIG SET");
    let lent = "AI.MODELEXECUTE app1:lent INPUTS 1 app1:x OUTPUTS 1 app1:y";
    assert_eq!(
        call_str(&mut setup.app, lent).expect("fits 1gb"),
        Value::Okay
    );
    call_str(&mut setup.app, "DEL app1:y").expect("DEL");
}

#[test]
fn a_dag_with_huge_outputs_is_refused_before_they_are_allocated() {
    let mut setup = server();
    let dags = [
        (
            "AI.DAGEXECUTE LOAD 1 app1:huge PERSIST 1 app1:y |> \
             AI.MODELEXECUTE app1:computed INPUTS 1 app1:huge OUTPUTS 1 app1:y",
            "computed 300 MiB",
        ),
        (
            "AI.DAGEXECUTE_RO LOAD 1 app1:x |> \
             AI.MODELEXECUTE app1:lent INPUTS 1 app1:x OUTPUTS 1 y |> AI.TENSORGET y META",
            "declared 100 MiB, read-only",
        ),
        // Each op's outputs fit alone (40 MiB), not together: the DAG has one budget.
        (
            "AI.DAGEXECUTE LOAD 1 app1:forty PERSIST 1 app1:y |> \
             AI.MODELEXECUTE app1:computed INPUTS 1 app1:forty OUTPUTS 1 a |> \
             AI.MODELEXECUTE app1:computed INPUTS 1 app1:forty OUTPUTS 1 app1:y",
            "two 40 MiB outputs",
        ),
    ];
    set_count(&mut setup.app, "app1:forty", 10 << 20);
    for (dag, what) in dags {
        let before = memory_field(&mut setup.admin, "used_memory");
        let Value::Array(replies) = run_nested(&mut setup.app, dag).expect(what) else {
            panic!("{what}: not an array");
        };
        let refused = replies.iter().any(|reply| match reply {
            Value::ServerError(err) => {
                format!("{} {}", err.code(), err.details().unwrap_or_default()) == OOM
            }
            _ => false,
        });
        assert!(refused, "{what}: {replies:?}");
        refused_and_nothing_allocated(&mut setup, before, what);
    }
}

#[test]
fn a_script_with_huge_outputs_is_refused_before_they_are_allocated() {
    assert!(
        torch_plugin().exists(),
        "build the TORCH plugin first (scripts/build)"
    );
    let mut setup = server();
    let stored = call(
        &mut setup.app,
        &[
            b"AI.SCRIPTSTORE",
            b"app1:s",
            b"CPU",
            b"ENTRY_POINTS",
            b"3",
            b"zeros",
            b"nested",
            b"nested_input",
            b"SOURCE",
            SCRIPT.as_bytes(),
        ],
    );
    assert_eq!(stored.expect("SCRIPTSTORE"), Value::Okay);
    let huge = format!(
        "AI.SCRIPTEXECUTE app1:s zeros INPUTS 1 app1:x ARGS 1 {COMPUTED_FLOATS} OUTPUTS 1 app1:y"
    );
    let before = memory_field(&mut setup.admin, "used_memory");
    assert_eq!(error_text(call_str(&mut setup.app, &huge)), OOM);
    refused_and_nothing_allocated(&mut setup, before, "a script's 300 MiB output");
    // The model a script runs draws from the script run's budget; the script then fails
    // with the model's error.
    let nested = "AI.SCRIPTEXECUTE app1:s nested KEYS 1 app1:computed INPUTS 1 app1:huge \
                  OUTPUTS 1 app1:y";
    let before = memory_field(&mut setup.admin, "used_memory");
    let err = error_text(call_str(&mut setup.app, nested));
    assert!(err.contains(OOM), "{err}");
    refused_and_nothing_allocated(&mut setup, before, "a nested model's 300 MiB output");
    // So do the copies of the inputs the script hands it.
    let nested_input = format!(
        "AI.SCRIPTEXECUTE app1:s nested_input KEYS 1 app1:lent INPUTS 1 app1:x \
         ARGS 1 {COMPUTED_FLOATS} OUTPUTS 1 app1:y"
    );
    let before = memory_field(&mut setup.admin, "used_memory");
    let err = error_text(call_str(&mut setup.app, &nested_input));
    assert!(err.contains(OOM), "{err}");
    refused_and_nothing_allocated(&mut setup, before, "a nested model's 300 MiB input");
    // An output that fits is written.
    let small = "AI.SCRIPTEXECUTE app1:s zeros INPUTS 1 app1:x ARGS 1 1000 OUTPUTS 1 app1:y";
    assert_eq!(call_str(&mut setup.app, small).expect("fits"), Value::Okay);
}
