//! `maxmemory` holds for what runs write: a script or model run (or a DAG that persists
//! one) whose outputs take used memory past `maxmemory` writes nothing and gets Redis's
//! OOM error, and the memory comes back. Run as a non-admin user: a 10-byte argument
//! must not buy a 2 GB key.

mod common;

use std::path::PathBuf;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{app_user, call, call_str, client, memory_field, pong, rss_settles};
use redisai_tests::redis::Value;
use redisai_tests::{error_text, Server, ServerConfig};

const SCRIPT: &str = r#"
def ones(tensors: List[Tensor], keys: List[str], args: List[str]):
    return torch.ones(int(args[0]), dtype=torch.uint8)
"#;

const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";

fn torch_plugin() -> PathBuf {
    redisai_tests::workspace_root().join("dist/backends/redisai_torch/redisai_torch.so")
}

#[test]
fn outputs_past_maxmemory_are_not_written() {
    assert!(
        torch_plugin().exists(),
        "build the TORCH plugin first (scripts/test)"
    );
    let server = Server::start_with(ServerConfig::default().option("maxmemory", &["100mb"]));
    let mut admin = client(&server);
    let mut app = app_user(&server);
    assert_eq!(
        call(
            &mut app,
            &[
                b"AI.SCRIPTSTORE",
                b"app1:s",
                b"CPU",
                b"ENTRY_POINTS",
                b"1",
                b"ones",
                b"SOURCE",
                SCRIPT.as_bytes()
            ],
        )
        .expect("SCRIPTSTORE"),
        Value::Okay
    );
    call_str(&mut app, "AI.TENSORSET app1:a FLOAT 1 VALUES 1").expect("input");
    // A small output is written as usual (and warms the backend up).
    let small = "AI.SCRIPTEXECUTE app1:s ones INPUTS 1 app1:a ARGS 1 1000 OUTPUTS 1 app1:small";
    assert_eq!(call_str(&mut app, small).expect("small"), Value::Okay);
    let baseline = rss_settles(&mut admin, 0, u64::MAX);

    let huge = "AI.SCRIPTEXECUTE app1:s ones INPUTS 1 app1:a ARGS 1 2000000000 OUTPUTS 1 app1:big";
    assert_eq!(error_text(call_str(&mut app, huge)), OOM);
    let dag = "AI.DAGEXECUTE LOAD 1 app1:a PERSIST 1 app1:dag |> \
               AI.SCRIPTEXECUTE app1:s ones INPUTS 1 app1:a ARGS 1 2000000000 OUTPUTS 1 app1:dag";
    assert_eq!(error_text(call_str(&mut app, dag)), OOM);
    for key in ["app1:big", "app1:dag"] {
        assert_eq!(
            call_str(&mut app, &format!("EXISTS {key}")).expect("EXISTS"),
            Value::Int(0),
            "{key}"
        );
    }
    // The refused outputs are freed once the reply is sent; a worker may still be
    // letting go of its share of a run for a moment after.
    let deadline = Instant::now() + Duration::from_secs(10);
    while memory_field(&mut admin, "used_memory") >= 100 << 20 {
        assert!(
            Instant::now() < deadline,
            "the refused outputs were not freed"
        );
        sleep(Duration::from_millis(50));
    }
    let rss = rss_settles(&mut admin, baseline, 50 << 20);
    assert!(
        rss <= baseline + (50 << 20),
        "RSS {rss} did not come back to within 50 MB of {baseline}"
    );
    pong(&mut app);
}
