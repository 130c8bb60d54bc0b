//! Scripts on the real TORCH plugin: a script that throws, one overwriting a blob tensor,
//! clients storing, deleting and executing the same script, and clients that disconnect
//! while blocked on one.

use super::*;

const SCRIPT: &str = r#"
def bar(tensors: List[Tensor], keys: List[str], args: List[str]):
    return tensors[0] + tensors[1]

def out_of_range(tensors: List[Tensor], keys: List[str], args: List[str]):
    return tensors[5]

def raises(tensors: List[Tensor], keys: List[str], args: List[str]):
    assert args[0] != "boom", "boom from the script"
    return tensors[0]

def bad_shapes(tensors: List[Tensor], keys: List[str], args: List[str]):
    return torch.matmul(tensors[0], torch.ones(7, 3))

def setk(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute("SET", keys[0], args[0])
    return tensors[0]

def slow(tensors: List[Tensor], keys: List[str], args: List[str]):
    x = tensors[0]
    for i in range(int(args[0])):
        x = x + 1
    return x
"#;

fn store_script(c: &mut Connection, key: &str) -> redis::RedisResult<Value> {
    run(
        c,
        &[
            b"AI.SCRIPTSTORE",
            key.as_bytes(),
            b"CPU",
            b"ENTRY_POINTS",
            b"6",
            b"bar",
            b"setk",
            b"out_of_range",
            b"raises",
            b"bad_shapes",
            b"slow",
            b"SOURCE",
            SCRIPT.as_bytes(),
        ],
    )
}

fn script_server() -> Option<Server> {
    if !backend_built("redisai_torch") {
        eprintln!("the TORCH plugin is not built; skipped");
        return None;
    }
    let server = server();
    let mut c = server.client();
    store_script(&mut c, "s").expect("script");
    Some(server)
}

#[test]
fn a_script_that_throws_is_an_error_reply() {
    let Some(server) = script_server() else {
        return;
    };
    let mut c = connect(&server);
    for (line, expected) in [
        (
            "AI.SCRIPTEXECUTE s out_of_range INPUTS 1 x OUTPUTS 1 y",
            "out of range",
        ),
        (
            "AI.SCRIPTEXECUTE s raises INPUTS 1 x ARGS 1 boom OUTPUTS 1 y",
            "boom from the script",
        ),
        (
            "AI.SCRIPTEXECUTE s bad_shapes INPUTS 1 x OUTPUTS 1 y",
            "ERR",
        ),
        (
            "AI.SCRIPTEXECUTE s raises INPUTS 1 x OUTPUTS 1 y",
            "out of range",
        ),
        (
            "AI.SCRIPTEXECUTE s slow INPUTS 1 x ARGS 1 notanumber OUTPUTS 1 y",
            "ERR",
        ),
        (
            "AI.SCRIPTRUN s out_of_range INPUTS x OUTPUTS y",
            "out of range",
        ),
    ] {
        let err = error_text(run_str(&mut c, line));
        assert!(err.starts_with("ERR"), "{line}: {err}");
        assert!(err.contains(expected), "{line}: {err}");
        assert!(err.is_ascii(), "{line}: {err}");
        // Inside a DAG: that op's reply, the next op skipped.
        if line.starts_with("AI.SCRIPTEXECUTE") {
            let reply = redisai_tests::run_nested(
                &mut c,
                &format!("AI.DAGEXECUTE LOAD 1 x |> {line} |> AI.TENSORGET y VALUES"),
            )
            .expect("DAG reply");
            let text = format!("{reply:?}");
            assert!(text.contains(expected), "{line} in a DAG: {text}");
        }
    }
    assert_eq!(run_str(&mut c, "EXISTS y").expect("EXISTS"), Value::Int(0));
    // Errors count in the script's statistics, and the script still runs.
    let Value::Array(info) = run_str(&mut c, "AI.INFO s").expect("info") else {
        panic!("AI.INFO")
    };
    let errors = info
        .iter()
        .position(|v| {
            *v == Value::BulkString(b"errors".to_vec())
                || *v == Value::SimpleString("errors".into())
        })
        .and_then(|i| info.get(i + 1).cloned());
    assert!(matches!(errors, Some(Value::Int(n)) if n >= 6), "{info:?}");
    run_str(&mut c, "AI.SCRIPTEXECUTE s bar INPUTS 2 x x OUTPUTS 1 y").expect("bar");
    assert!(answers_ping(&server.url(), Duration::from_secs(5)));
}

/// Regression (found by the live fuzzer): a script whose `redis.execute("SET", ...)`
/// overwrote a tensor stored from a BLOB freed the tensor's retained argument string
/// by taking Redis's lock again on the worker that already held it; the worker and
/// then Redis hung for good.
#[test]
fn a_script_overwriting_a_blob_tensor_does_not_hang() {
    let Some(server) = script_server() else {
        return;
    };
    let mut c = server.client();
    c.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let blob = redisai_tests::hardening::f32_blob(&[1.0, 2.0]);
    for round in 0..3 {
        run_str(&mut c, "DEL b").expect("DEL");
        run(
            &mut c,
            &[b"AI.TENSORSET", b"b", b"FLOAT", b"2", b"BLOB", &blob],
        )
        .expect("b");
        // The tensor is the script's input too: the run holds it while SET drops the key's.
        run_str(
            &mut c,
            &format!("AI.SCRIPTEXECUTE s setk KEYS 1 b INPUTS 1 b ARGS 1 v{round} OUTPUTS 1 o"),
        )
        .expect("setk over a BLOB tensor");
        assert_eq!(
            run_str(&mut c, "GET b").expect("GET"),
            Value::BulkString(format!("v{round}").into_bytes())
        );
        run_str(&mut c, "DEL b").expect("DEL");
        run(
            &mut c,
            &[b"AI.TENSORSET", b"b", b"FLOAT", b"2", b"BLOB", &blob],
        )
        .expect("b");
        run_str(
            &mut c,
            &format!("AI.SCRIPTEXECUTE s setk KEYS 1 b INPUTS 1 x ARGS 1 w{round} OUTPUTS 1 o"),
        )
        .expect("setk over a BLOB tensor, not an input");
    }
    assert!(answers_ping(&server.url(), Duration::from_secs(5)));
}

#[test]
fn clients_store_delete_and_execute_the_same_script() {
    let Some(server) = script_server() else {
        return;
    };
    let clients = env_usize("REDISAI_SCRIPT_CLIENTS", 40);
    let rounds = env_usize("REDISAI_CLIENT_ROUNDS", 10);
    let seed = Rng::from_env("faults scripts").next_u64();
    let results = on_clients(&server, clients, move |id, c| {
        let mut rng = Rng::new(seed ^ id as u64);
        let (mut replies, mut ran) = (0, 0);
        for _ in 0..rounds {
            let line = match rng.below(8) {
                0 => None,
                1 => Some("AI.SCRIPTDEL shared".to_owned()),
                2 | 3 => Some(format!(
                    "AI.SCRIPTEXECUTE shared bar INPUTS 2 x x OUTPUTS 1 out:{id}"
                )),
                4 => Some(format!(
                    "AI.SCRIPTEXECUTE s slow INPUTS 1 x ARGS 1 {} OUTPUTS 1 slow:{id} TIMEOUT {}",
                    1000 + rng.below(20000),
                    20 + rng.below(300)
                )),
                5 => Some(format!(
                    "AI.DAGEXECUTE LOAD 1 x PERSIST 1 dag:{id} |> AI.SCRIPTEXECUTE shared bar INPUTS 2 x x OUTPUTS 1 dag:{id}"
                )),
                6 => Some(format!("AI.SCRIPTEXECUTE s out_of_range INPUTS 1 x OUTPUTS 1 bad:{id}")),
                _ => Some("DEL shared".to_owned()),
            };
            let reply = match &line {
                None => store_script(c, "shared"),
                Some(line) => run_str(c, line),
            };
            replies += usize::from(replied(&reply, id, &line));
            if reply.is_ok() && line.as_deref().is_some_and(|l| l.contains("shared bar")) {
                ran += 1;
            }
        }
        (replies, ran)
    });
    let total: usize = results.iter().map(|r| r.0).sum();
    let ran: usize = results.iter().map(|r| r.1).sum();
    assert_eq!(total, clients * rounds, "every command got a reply");
    eprintln!("faults scripts: {clients} clients x {rounds} commands, all replied; {ran} runs of the shared script succeeded");
    let mut c = server.client();
    wait_for_clients(&mut c, "blocked_clients", 0, Duration::from_secs(30));
    // Every output that exists is a whole result.
    for id in 0..clients {
        for key in [format!("out:{id}"), format!("dag:{id}")] {
            if let Ok(Value::Array(values)) = run_str(&mut c, &format!("AI.TENSORGET {key} VALUES"))
            {
                assert_eq!(
                    values,
                    vec![
                        Value::BulkString(b"2".to_vec()),
                        Value::BulkString(b"4".to_vec())
                    ],
                    "{key}"
                );
            }
        }
    }
    store_script(&mut c, "shared").expect("store again");
    run_str(
        &mut c,
        "AI.SCRIPTEXECUTE shared bar INPUTS 2 x x OUTPUTS 1 y",
    )
    .expect("runs");
    assert!(answers_ping(&server.url(), Duration::from_secs(5)));
}

#[test]
fn clients_that_disconnect_while_blocked_on_a_script() {
    let Some(server) = script_server() else {
        return;
    };
    let clients = env_usize("REDISAI_GONE_CLIENTS", 40);
    for i in 0..clients {
        let output = format!("gone{i}");
        let args: [&str; 11] = [
            "AI.SCRIPTEXECUTE",
            "s",
            "slow",
            "INPUTS",
            "1",
            "x",
            "ARGS",
            "1",
            "20000",
            "OUTPUTS",
            &output,
        ];
        let mut full = args.to_vec();
        full.insert(10, "1");
        let bytes = match i % 4 {
            0 => resp(&full[..7]),
            1 => resp(&[
                "AI.DAGEXECUTE",
                "LOAD",
                "1",
                "x",
                "|>",
                "AI.SCRIPTEXECUTE",
                "s",
                "slow",
                "INPUTS",
                "1",
                "x",
                "ARGS",
                "1",
                "20000",
                "OUTPUTS",
                "1",
                "y",
            ]),
            _ => resp(&full),
        };
        send_and_hang_up(&server, &bytes, i % 2 == 0);
    }
    let mut c = connect(&server);
    run_str(&mut c, "AI.SCRIPTEXECUTE s bar INPUTS 2 x x OUTPUTS 1 live").expect("live client");
    wait_for_clients(&mut c, "blocked_clients", 0, Duration::from_secs(60));
    wait_for_clients(&mut c, "connected_clients", 1, Duration::from_secs(30));
    // The runs of gone clients still wrote their outputs (or were cut short): no
    // half-written key, and the script is intact.
    run_str(
        &mut c,
        "AI.SCRIPTEXECUTE s slow INPUTS 1 x ARGS 1 3 OUTPUTS 1 after",
    )
    .expect("script still runs");
    assert_eq!(
        run_str(&mut c, "AI.TENSORGET after VALUES").expect("after"),
        Value::Array(vec![
            Value::BulkString(b"4".to_vec()),
            Value::BulkString(b"5".to_vec())
        ])
    );
    assert!(answers_ping(&server.url(), Duration::from_secs(5)));
}
