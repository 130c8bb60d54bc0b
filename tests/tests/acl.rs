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
