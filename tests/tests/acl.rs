//! ACL: a user limited to `~app1:*` reaches no other key through any AI.* command that
//! names keys (tensors, model inputs and outputs, DAG LOAD/PERSIST/ROUTING and the
//! models a DAG runs), and a user without `@admin` cannot load native code.

use redisai_example_c_plugins::{EXAMPLE_ADD_BACKEND, EXAMPLE_ADD_PLUGIN};
use redisai_tests::redis::{Connection, Value};
use redisai_tests::{run_str, Server};

fn setup() -> (Server, Connection) {
    let server = Server::start();
    let mut c = server.client();
    run_str(
        &mut c,
        &format!("AI.CONFIG LOADBACKEND {EXAMPLE_ADD_BACKEND} {EXAMPLE_ADD_PLUGIN}"),
    )
    .expect("LOADBACKEND");
    for line in [
        "AI.MODELSTORE app1:m EXAMPLE CPU BLOB add",
        "AI.MODELSTORE other:m EXAMPLE CPU BLOB add",
        "AI.TENSORSET app1:a FLOAT 2 VALUES 1 2",
        "AI.TENSORSET app1:b FLOAT 2 VALUES 3 4",
        "AI.TENSORSET other:a FLOAT 2 VALUES 5 6",
        "ACL SETUSER app1 on >pw resetkeys ~app1:* +@all -@admin",
    ] {
        run_str(&mut c, line).unwrap_or_else(|err| panic!("{line}: {err}"));
    }
    (server, c)
}

fn as_app1(server: &Server) -> Connection {
    let mut u = server.client();
    run_str(&mut u, "AUTH app1 pw").expect("AUTH");
    u
}

fn assert_refused(u: &mut Connection, line: &str) {
    match run_str(u, line) {
        Ok(value) => panic!("{line}: allowed, replied {value:?}"),
        Err(err) => {
            let text = format!("{:?} {:?}", err.code(), err.detail());
            assert!(err.code() == Some("NOPERM"), "{line}: {text}");
        }
    }
}

#[test]
fn other_keys_are_out_of_reach_through_every_command() {
    let (server, mut admin) = setup();
    let mut u = as_app1(&server);
    let refused = [
        "AI.TENSORGET other:a VALUES",
        "AI.TENSORGET other:a META",
        "AI.TENSORSET other:x FLOAT 1 VALUES 1",
        "AI.MODELGET other:m META",
        "AI.MODELDEL other:m",
        "AI.MODELSTORE other:n EXAMPLE CPU BLOB add",
        "AI.MODELSET other:n EXAMPLE CPU BLOB add",
        "AI.INFO other:m",
        // a foreign model, input or output
        "AI.MODELEXECUTE other:m INPUTS 2 app1:a app1:b OUTPUTS 1 app1:c",
        "AI.MODELEXECUTE app1:m INPUTS 2 other:a app1:b OUTPUTS 1 app1:c",
        "AI.MODELEXECUTE app1:m INPUTS 2 app1:a app1:b OUTPUTS 1 other:c",
        "AI.MODELRUN app1:m INPUTS app1:a other:a OUTPUTS app1:c",
        "AI.MODELRUN app1:m INPUTS app1:a app1:b OUTPUTS other:c",
        // DAG LOAD, PERSIST, ROUTING and the model an op runs
        "AI.DAGEXECUTE LOAD 1 other:a |> AI.TENSORGET other:a VALUES",
        "AI.DAGEXECUTE_RO LOAD 1 other:a |> AI.TENSORGET other:a VALUES",
        "AI.DAGEXECUTE PERSIST 1 other:c |> AI.TENSORSET other:c FLOAT 1 VALUES 1",
        "AI.DAGEXECUTE ROUTING other:r |> AI.TENSORSET t FLOAT 1 VALUES 1",
        "AI.DAGEXECUTE LOAD 2 app1:a app1:b PERSIST 1 app1:c |> AI.MODELEXECUTE other:m INPUTS 2 app1:a app1:b OUTPUTS 1 app1:c",
        "AI.DAGEXECUTE_RO LOAD 2 app1:a app1:b |> AI.MODELEXECUTE other:m INPUTS 2 app1:a app1:b OUTPUTS 1 c |> AI.TENSORGET c VALUES",
        "AI.DAGRUN LOAD 1 other:a |> AI.TENSORGET other:a VALUES",
        "AI.DAGRUN_RO LOAD 1 other:a |> AI.TENSORGET other:a VALUES",
        "AI.DAGRUN PERSIST 1 other:c |> AI.TENSORSET other:c FLOAT 1 VALUES 1",
        // native code
        "AI.CONFIG LOADBACKEND EXAMPLE /tmp/x.so",
        "AI.CONFIG BACKENDSPATH /tmp",
    ];
    for line in refused {
        assert_refused(&mut u, line);
    }
    // Nothing leaked into the keyspace and nothing was deleted.
    for key in ["other:x", "other:c", "other:n", "other:r"] {
        let exists: i64 = redisai_tests::redis::cmd("EXISTS")
            .arg(key)
            .query(&mut admin)
            .expect("EXISTS");
        assert_eq!(exists, 0, "{key}");
    }
    assert_eq!(
        run_str(&mut admin, "TYPE other:m").expect("TYPE"),
        Value::SimpleString("AI__MODEL".into())
    );
    // ACL LOG names the keys it refused.
    let log = format!("{:?}", run_str(&mut admin, "ACL LOG").expect("ACL LOG"));
    assert!(log.contains("other:a") && log.contains("other:c"), "{log}");

    // The same commands on the user's own keys work.
    let allowed = [
        "AI.TENSORSET app1:x FLOAT 1 VALUES 1",
        "AI.TENSORGET app1:a VALUES",
        "AI.MODELGET app1:m META",
        "AI.INFO app1:m",
        "AI.MODELEXECUTE app1:m INPUTS 2 app1:a app1:b OUTPUTS 1 app1:c",
        "AI.MODELRUN app1:m INPUTS app1:a app1:b OUTPUTS app1:d",
        "AI.DAGEXECUTE LOAD 2 app1:a app1:b PERSIST 1 app1:e |> AI.MODELEXECUTE app1:m INPUTS 2 app1:a app1:b OUTPUTS 1 app1:e",
        "AI.DAGEXECUTE_RO LOAD 1 app1:a |> AI.TENSORGET app1:a VALUES",
        "AI.DAGEXECUTE ROUTING app1:r |> AI.TENSORSET t FLOAT 1 VALUES 1 |> AI.TENSORGET t VALUES",
        "AI.CONFIG GET MODEL_CHUNK_SIZE",
        "AI.CONFIG GET BACKENDSPATH",
        "AI.MODELSTORE app1:n EXAMPLE CPU BLOB add",
        "AI.MODELDEL app1:n",
    ];
    for line in allowed {
        if let Err(err) = run_str(&mut u, line) {
            panic!("{line}: {err}");
        }
    }
    assert_eq!(
        run_str(&mut u, "AI.TENSORGET app1:e VALUES").expect("e"),
        run_str(&mut u, "AI.TENSORGET app1:c VALUES").expect("c"),
    );
}

/// Regression: a key-restricted user sending AI.MODELEXECUTE or AI.MODELRUN with no
/// arguments made Redis read a key position past the end of argv and crash.
#[test]
fn truncated_commands_from_a_restricted_user_do_not_crash() {
    let (server, _admin) = setup();
    let mut u = as_app1(&server);
    for line in [
        "AI.MODELEXECUTE",
        "AI.MODELRUN",
        "AI.MODELEXECUTE app1:m INPUTS",
        "AI.MODELEXECUTE app1:m INPUTS 9 app1:a",
        "AI.MODELEXECUTE app1:m INPUTS 1 app1:a OUTPUTS 5",
        "AI.MODELRUN app1:m TIMEOUT",
        "AI.DAGEXECUTE",
        "AI.DAGEXECUTE LOAD 9",
        "AI.DAGEXECUTE_RO ROUTING",
        "AI.DAGRUN PERSIST 3 app1:x |>",
        "AI.TENSORGET",
    ] {
        assert!(run_str(&mut u, line).is_err(), "{line}");
        assert_eq!(
            run_str(&mut u, "PING").expect("PING"),
            Value::SimpleString("PONG".into())
        );
    }
}

/// Key specs tell reads from writes: a user who may only read `other:*` reads it through
/// TENSORGET, model inputs and DAG LOAD, and writes nothing there.
#[test]
fn read_only_key_selectors_allow_reads_and_refuse_writes() {
    let (server, mut admin) = setup();
    run_str(&mut admin, "ACL SETUSER app1 resetkeys ~app1:* %R~other:*").expect("ACL");
    let mut u = as_app1(&server);
    for line in [
        "AI.TENSORGET other:a VALUES",
        "AI.MODELGET other:m META",
        "AI.INFO other:m",
        "AI.MODELEXECUTE other:m INPUTS 2 other:a app1:b OUTPUTS 1 app1:c",
        "AI.MODELRUN other:m INPUTS other:a app1:b OUTPUTS app1:d",
        "AI.DAGEXECUTE LOAD 1 other:a PERSIST 1 app1:e |> AI.MODELEXECUTE other:m INPUTS 2 other:a other:a OUTPUTS 1 app1:e",
        "AI.DAGEXECUTE_RO LOAD 1 other:a |> AI.TENSORGET other:a VALUES",
    ] {
        if let Err(err) = run_str(&mut u, line) {
            panic!("{line}: {err}");
        }
    }
    for line in [
        "AI.TENSORSET other:x FLOAT 1 VALUES 1",
        "AI.MODELSTORE other:n EXAMPLE CPU BLOB add",
        "AI.MODELDEL other:m",
        "AI.MODELEXECUTE app1:m INPUTS 2 app1:a app1:b OUTPUTS 1 other:c",
        "AI.MODELRUN app1:m INPUTS app1:a app1:b OUTPUTS other:c",
        "AI.DAGEXECUTE PERSIST 1 other:c |> AI.TENSORSET other:c FLOAT 1 VALUES 1",
    ] {
        assert_refused(&mut u, line);
    }
    for key in ["other:x", "other:c", "other:n"] {
        let exists: i64 = redisai_tests::redis::cmd("EXISTS")
            .arg(key)
            .query(&mut admin)
            .expect("EXISTS");
        assert_eq!(exists, 0, "{key}");
    }
    // A write-only selector does not give reads.
    run_str(&mut admin, "ACL SETUSER app1 resetkeys ~app1:* %W~other:*").expect("ACL");
    assert_refused(&mut u, "AI.TENSORGET other:a VALUES");
    assert_refused(
        &mut u,
        "AI.MODELEXECUTE app1:m INPUTS 2 other:a app1:b OUTPUTS 1 app1:c",
    );
    run_str(&mut u, "AI.TENSORSET other:w FLOAT 1 VALUES 1").expect("write-only may write");
}

/// The key names `AI._MODELSCAN` lists.
fn scanned_models(c: &mut Connection) -> Vec<String> {
    let reply = run_str(c, "AI._MODELSCAN").expect("AI._MODELSCAN");
    let Value::Array(entries) = reply else {
        panic!("AI._MODELSCAN: {reply:?}")
    };
    let mut names: Vec<String> = entries
        .iter()
        .map(|entry| match entry {
            Value::Array(pair) => match &pair[0] {
                Value::BulkString(name) => String::from_utf8_lossy(name).into_owned(),
                other => panic!("key name {other:?}"),
            },
            other => panic!("entry {other:?}"),
        })
        .collect();
    names.sort();
    names
}

#[test]
fn key_listings_show_only_the_keys_the_user_may_read() {
    let (server, mut admin) = setup();
    assert_eq!(scanned_models(&mut admin), ["app1:m", "other:m"]);
    let mut u = as_app1(&server);
    assert_eq!(scanned_models(&mut u), ["app1:m"]);
    run_str(&mut admin, "ACL SETUSER app1 resetkeys ~app1:* %R~other:*").expect("ACL");
    assert_eq!(scanned_models(&mut u), ["app1:m", "other:m"]);
    // Write access alone does not let a user read a key, nor see it listed.
    run_str(&mut admin, "ACL SETUSER app1 resetkeys %W~*").expect("ACL");
    assert_eq!(scanned_models(&mut u), Vec::<String>::new());
}

// ---- Scripts (real TORCH plugin) ----

const SCRIPT: &str = r#"
def bar(tensors: List[Tensor], keys: List[str], args: List[str]):
    return tensors[0] + tensors[1]

def setk(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute("SET", keys[0], "1")
    return torch.tensor([1])

def getk(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute("GET", keys[0])
    return torch.tensor([2])

def set_arg(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute("SET", args[0], "1")
    return torch.tensor([3])
"#;

fn store_script(c: &mut Connection, key: &str) -> redisai_tests::redis::RedisResult<Value> {
    redisai_tests::run(
        c,
        &[
            b"AI.SCRIPTSTORE",
            key.as_bytes(),
            b"CPU",
            b"ENTRY_POINTS",
            b"4",
            b"bar",
            b"setk",
            b"getk",
            b"set_arg",
            b"SOURCE",
            SCRIPT.as_bytes(),
        ],
    )
}

fn torch_built() -> bool {
    redisai_tests::hardening::backend_built("redisai_torch")
}

/// The model setup plus a script and plain string keys under both prefixes.
fn setup_scripts() -> (Server, Connection) {
    let (server, mut admin) = setup();
    for key in ["app1:s", "other:s"] {
        assert_eq!(store_script(&mut admin, key).expect(key), Value::Okay);
    }
    run_str(&mut admin, "SET app1:k v").expect("app1:k");
    run_str(&mut admin, "SET other:k v").expect("other:k");
    (server, admin)
}

fn get(c: &mut Connection, key: &str) -> Value {
    run_str(c, &format!("GET {key}")).expect("GET")
}

fn assert_absent(admin: &mut Connection, keys: &[&str]) {
    for key in keys {
        let exists: i64 = redisai_tests::redis::cmd("EXISTS")
            .arg(*key)
            .query(admin)
            .expect("EXISTS");
        assert_eq!(exists, 0, "{key}");
    }
}

fn assert_allowed(u: &mut Connection, lines: &[&str]) {
    for line in lines {
        if let Err(err) = run_str(u, line) {
            panic!("{line}: {err}");
        }
    }
}

/// A script run that `redis.execute` refused: an error reply whose text says why.
fn assert_script_refused(u: &mut Connection, line: &str, why: &str) {
    let text = redisai_tests::error_text(run_str(u, line));
    assert!(text.contains(why), "{line}: {text}");
}

#[test]
fn other_keys_are_out_of_reach_through_scripts() {
    if !torch_built() {
        eprintln!("the TORCH plugin is not built; skipped");
        return;
    }
    let (server, mut admin) = setup_scripts();
    let mut u = as_app1(&server);
    let refused = [
        // the script key
        "AI.SCRIPTGET other:s META",
        "AI.SCRIPTGET other:s SOURCE",
        "AI.SCRIPTDEL other:s",
        "AI.SCRIPTSTORE other:n CPU ENTRY_POINTS 1 bar SOURCE x",
        "AI.SCRIPTSET other:n CPU SOURCE x",
        "AI.SCRIPTEXECUTE other:s bar INPUTS 2 app1:a app1:b OUTPUTS 1 app1:c",
        "AI.SCRIPTRUN other:s bar INPUTS app1:a app1:b OUTPUTS app1:c",
        // INPUTS, OUTPUTS, KEYS
        "AI.SCRIPTEXECUTE app1:s bar INPUTS 2 other:a app1:b OUTPUTS 1 app1:c",
        "AI.SCRIPTEXECUTE app1:s bar INPUTS 2 app1:a app1:b OUTPUTS 1 other:c",
        "AI.SCRIPTEXECUTE app1:s setk KEYS 1 other:k",
        "AI.SCRIPTEXECUTE app1:s setk KEYS 2 app1:k other:k OUTPUTS 1 app1:o",
        "AI.SCRIPTEXECUTE app1:s bar KEYS 1 other:k INPUTS 2 app1:a app1:b ARGS 1 x OUTPUTS 1 app1:c",
        "AI.SCRIPTEXECUTE app1:s bar INPUTS 2 app1:a app1:b ARGS 1 x OUTPUTS 1 other:c TIMEOUT 1000",
        "AI.SCRIPTRUN app1:s bar INPUTS app1:a other:a OUTPUTS app1:c",
        "AI.SCRIPTRUN app1:s bar INPUTS app1:a $ app1:b other:a OUTPUTS app1:c",
        "AI.SCRIPTRUN app1:s bar INPUTS app1:a app1:b OUTPUTS other:c",
        "AI.SCRIPTRUN app1:s bar TIMEOUT 1000 INPUTS app1:a app1:b OUTPUTS other:c",
        // Regression: keys named like keywords were not declared.
        "AI.SCRIPTRUN app1:s bar INPUTS app1:a app1:b OUTPUTS app1:c INPUTS",
        "AI.SCRIPTRUN app1:s bar INPUTS INPUTS app1:a OUTPUTS app1:c",
        "AI.MODELRUN app1:m INPUTS app1:a app1:b OUTPUTS OUTPUTS",
        // DAG KEYS, and the script a DAG op runs
        "AI.DAGEXECUTE KEYS 1 other:k LOAD 1 app1:a |> AI.SCRIPTEXECUTE app1:s setk INPUTS 1 app1:a OUTPUTS 1 o",
        "AI.DAGEXECUTE LOAD 2 app1:a app1:b |> AI.SCRIPTEXECUTE other:s bar INPUTS 2 app1:a app1:b OUTPUTS 1 c",
        "AI.DAGEXECUTE LOAD 2 app1:a app1:b PERSIST 1 other:c |> AI.SCRIPTEXECUTE app1:s bar INPUTS 2 app1:a app1:b OUTPUTS 1 other:c",
        "AI.DAGRUN LOAD 2 app1:a app1:b |> AI.SCRIPTRUN other:s bar INPUTS app1:a app1:b OUTPUTS c",
        "AI.DAGRUN LOAD 1 other:a |> AI.SCRIPTRUN app1:s bar INPUTS other:a other:a OUTPUTS c",
    ];
    for line in refused {
        assert_refused(&mut u, line);
    }

    // Inside a script: a key not declared in KEYS is refused, even one the user may
    // reach; a foreign key cannot be declared (above), so it is never reached.
    for (line, why) in [
        (
            "AI.SCRIPTEXECUTE app1:s set_arg KEYS 1 app1:k ARGS 1 other:k OUTPUTS 1 app1:o",
            "not declared in the KEYS",
        ),
        (
            "AI.SCRIPTEXECUTE app1:s set_arg KEYS 1 app1:k ARGS 1 app1:z OUTPUTS 1 app1:o",
            "not declared in the KEYS",
        ),
        (
            "AI.SCRIPTEXECUTE app1:s set_arg INPUTS 2 app1:a app1:b ARGS 1 other:k OUTPUTS 1 app1:o",
            "not declared in the KEYS",
        ),
        (
            "AI.DAGEXECUTE KEYS 1 app1:k LOAD 1 app1:a |> AI.SCRIPTEXECUTE app1:s set_arg INPUTS 1 app1:a ARGS 1 other:k OUTPUTS 1 o",
            "not declared in the KEYS",
        ),
    ] {
        let reply = redisai_tests::run_nested(&mut u, line);
        let text = match reply {
            Err(err) => format!("{:?} {:?}", err.code(), err.detail()),
            Ok(value) => format!("{value:?}"),
        };
        assert!(text.contains(why), "{line}: {text}");
    }
    assert_eq!(get(&mut admin, "other:k"), Value::BulkString(b"v".to_vec()));
    assert_eq!(get(&mut admin, "app1:k"), Value::BulkString(b"v".to_vec()));
    assert_absent(
        &mut admin,
        &["other:c", "other:n", "app1:z", "app1:o", "app1:c"],
    );
    assert_eq!(
        run_str(&mut admin, "TYPE other:s").expect("TYPE"),
        run_str(&mut admin, "TYPE app1:s").expect("TYPE"),
    );
    let log = format!("{:?}", run_str(&mut admin, "ACL LOG").expect("ACL LOG"));
    assert!(log.contains("other:s") && log.contains("other:k"), "{log}");

    // The same commands on the user's own keys work.
    assert_allowed(
        &mut u,
        &[
            "AI.SCRIPTGET app1:s META",
            "AI.SCRIPTGET app1:s SOURCE",
            "AI.SCRIPTEXECUTE app1:s bar INPUTS 2 app1:a app1:b OUTPUTS 1 app1:c",
            "AI.SCRIPTEXECUTE app1:s setk KEYS 1 app1:k OUTPUTS 1 app1:o",
            "AI.SCRIPTRUN app1:s bar INPUTS app1:a $ app1:b OUTPUTS app1:d",
            "AI.DAGEXECUTE KEYS 1 app1:k LOAD 2 app1:a app1:b PERSIST 1 app1:e |> AI.SCRIPTEXECUTE app1:s bar INPUTS 2 app1:a app1:b OUTPUTS 1 app1:e",
        ],
    );
    assert_eq!(store_script(&mut u, "app1:n").expect("store"), Value::Okay);
    assert_allowed(&mut u, &["AI.SCRIPTDEL app1:n"]);
    assert_eq!(get(&mut admin, "app1:k"), Value::BulkString(b"1".to_vec()));
    assert_eq!(
        run_str(&mut u, "AI.TENSORGET app1:e VALUES").expect("e"),
        run_str(&mut u, "AI.TENSORGET app1:c VALUES").expect("c"),
    );
}

/// `%R~` keys may be script inputs (and the script itself is read), never OUTPUTS or
/// KEYS (which `redis.execute` may write).
#[test]
fn read_only_selectors_for_scripts() {
    if !torch_built() {
        eprintln!("the TORCH plugin is not built; skipped");
        return;
    }
    let (server, mut admin) = setup_scripts();
    run_str(&mut admin, "ACL SETUSER app1 resetkeys ~app1:* %R~other:*").expect("ACL");
    let mut u = as_app1(&server);
    assert_allowed(
        &mut u,
        &[
            "AI.SCRIPTGET other:s META",
            "AI.SCRIPTEXECUTE other:s bar INPUTS 2 other:a app1:b OUTPUTS 1 app1:c",
            "AI.SCRIPTRUN other:s bar INPUTS other:a app1:b OUTPUTS app1:d",
            "AI.DAGEXECUTE LOAD 1 other:a PERSIST 1 app1:e |> AI.SCRIPTEXECUTE other:s bar INPUTS 2 other:a other:a OUTPUTS 1 app1:e",
        ],
    );
    for line in [
        "AI.SCRIPTSTORE other:n CPU ENTRY_POINTS 1 bar SOURCE x",
        "AI.SCRIPTDEL other:s",
        "AI.SCRIPTEXECUTE app1:s bar INPUTS 2 app1:a app1:b OUTPUTS 1 other:c",
        "AI.SCRIPTEXECUTE app1:s getk KEYS 1 other:k OUTPUTS 1 app1:o",
        "AI.SCRIPTEXECUTE app1:s setk KEYS 1 other:k OUTPUTS 1 app1:o",
        "AI.SCRIPTRUN app1:s bar INPUTS app1:a app1:b OUTPUTS other:c",
        // Regression: an output after a second INPUTS word was declared as a read.
        "AI.SCRIPTRUN app1:s bar INPUTS app1:a app1:b OUTPUTS app1:c INPUTS other:c",
        "AI.DAGEXECUTE KEYS 1 other:k LOAD 1 app1:a |> AI.SCRIPTEXECUTE app1:s getk INPUTS 1 app1:a OUTPUTS 1 o",
        "AI.DAGEXECUTE LOAD 2 app1:a app1:b PERSIST 1 other:c |> AI.SCRIPTEXECUTE app1:s bar INPUTS 2 app1:a app1:b OUTPUTS 1 other:c",
    ] {
        assert_refused(&mut u, line);
    }
    assert_eq!(get(&mut admin, "other:k"), Value::BulkString(b"v".to_vec()));
    assert_absent(&mut admin, &["other:c", "other:n", "app1:o"]);
    assert_eq!(
        run_str(&mut admin, "EXISTS other:s").expect("EXISTS"),
        Value::Int(1)
    );
}

/// `redis.execute` checks the command against the caller's ACL: without `+set` a
/// script cannot SET, even a declared key of the user's own.
#[test]
fn redis_execute_needs_the_command_permission() {
    if !torch_built() {
        eprintln!("the TORCH plugin is not built; skipped");
        return;
    }
    let (server, mut admin) = setup_scripts();
    run_str(&mut admin, "ACL SETUSER app1 -set").expect("ACL");
    let mut u = as_app1(&server);
    assert_refused(&mut u, "SET app1:k 2");
    assert_script_refused(
        &mut u,
        "AI.SCRIPTEXECUTE app1:s setk KEYS 1 app1:k OUTPUTS 1 app1:o",
        "NOPERM",
    );
    assert_eq!(get(&mut admin, "app1:k"), Value::BulkString(b"v".to_vec()));
    assert_absent(&mut admin, &["app1:o"]);
    // Other commands still pass through.
    assert_allowed(
        &mut u,
        &["AI.SCRIPTEXECUTE app1:s getk KEYS 1 app1:k OUTPUTS 1 app1:o"],
    );
    // A permission taken away between runs counts at the next run.
    run_str(&mut admin, "ACL SETUSER app1 -get").expect("ACL");
    assert_script_refused(
        &mut u,
        "AI.SCRIPTEXECUTE app1:s getk KEYS 1 app1:k OUTPUTS 1 app1:p",
        "NOPERM",
    );
    assert_absent(&mut admin, &["app1:p"]);
    // In a DAG too.
    let reply = format!(
        "{:?}",
        redisai_tests::run_nested(
            &mut u,
            "AI.DAGEXECUTE KEYS 1 app1:k LOAD 1 app1:a |> AI.SCRIPTEXECUTE app1:s setk INPUTS 1 app1:a OUTPUTS 1 o"
        )
    );
    assert!(reply.contains("NOPERM"), "{reply}");
    assert_eq!(get(&mut admin, "app1:k"), Value::BulkString(b"v".to_vec()));
}

/// Truncated script commands from a key-restricted user: Redis reads key positions
/// before the command runs; none may point past argv.
#[test]
fn truncated_script_commands_from_a_restricted_user_do_not_crash() {
    let (server, _admin) = setup();
    let mut u = as_app1(&server);
    for line in [
        "AI.SCRIPTEXECUTE",
        "AI.SCRIPTEXECUTE app1:s",
        "AI.SCRIPTEXECUTE app1:s bar KEYS",
        "AI.SCRIPTEXECUTE app1:s bar KEYS 9 app1:k",
        "AI.SCRIPTEXECUTE app1:s bar INPUTS 1 app1:a OUTPUTS 5",
        "AI.SCRIPTEXECUTE app1:s bar INPUTS -1 app1:a",
        "AI.SCRIPTEXECUTE app1:s bar ARGS 99",
        "AI.SCRIPTRUN",
        "AI.SCRIPTRUN app1:s",
        "AI.SCRIPTRUN app1:s bar INPUTS",
        "AI.SCRIPTRUN app1:s bar TIMEOUT",
        "AI.SCRIPTGET",
        "AI.SCRIPTDEL",
        "AI.SCRIPTSTORE",
        "AI.SCRIPTSET",
        "AI.DAGEXECUTE KEYS 9",
        "AI.DAGEXECUTE KEYS 1 app1:k |> AI.SCRIPTEXECUTE",
    ] {
        assert!(run_str(&mut u, line).is_err(), "{line}");
        assert_eq!(
            run_str(&mut u, "PING").expect("PING"),
            Value::SimpleString("PONG".into())
        );
    }
}
