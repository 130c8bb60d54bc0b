//! Models end to end on the TORCH backend plugin (libtorch 2.13), with the TorchScript
//! models made by `scripts/build-backend-torch --gen-models` (tests/models/torch). Needs
//! dist/backends/redisai_torch (scripts/build-backend-torch, or build_all).

use std::path::PathBuf;

use redisai_tests::redis::{Connection, Value};
use redisai_tests::{digest, error_text, run, run_str, Server, ServerConfig};

fn model_bytes(name: &str) -> Vec<u8> {
    let path: PathBuf = redisai_tests::workspace_root()
        .join("tests/models/torch")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

fn store(c: &mut Connection, key: &str, model: &str) {
    let blob = model_bytes(model);
    let reply = run(
        c,
        &[
            b"AI.MODELSTORE",
            key.as_bytes(),
            b"TORCH",
            b"CPU",
            b"BLOB",
            &blob,
        ],
    );
    assert_eq!(reply.expect("MODELSTORE"), Value::Okay, "{model}");
}

fn bulk(text: &str) -> Value {
    Value::BulkString(text.as_bytes().to_vec())
}

fn status(text: &str) -> Value {
    Value::SimpleString(text.to_owned())
}

fn values(c: &mut Connection, key: &str) -> Value {
    run_str(c, &format!("AI.TENSORGET {key} VALUES")).expect(key)
}

fn meta_values(c: &mut Connection, key: &str) -> Value {
    run_str(c, &format!("AI.TENSORGET {key} META VALUES")).expect(key)
}

fn pong(c: &mut Connection) {
    assert_eq!(
        run_str(c, "PING").expect("alive"),
        Value::SimpleString("PONG".into())
    );
}

fn floats(items: &[&str]) -> Value {
    Value::Array(items.iter().map(|s| bulk(s)).collect())
}

#[test]
fn add_and_two_outputs() {
    let server = Server::start();
    let mut c = server.client();
    store(&mut c, "add", "add.pt");
    run_str(&mut c, "AI.TENSORSET a FLOAT 2 2 VALUES 1 2 3 4").expect("a");
    run_str(&mut c, "AI.TENSORSET b FLOAT 2 2 VALUES 10 20 30 40").expect("b");
    assert_eq!(
        run_str(&mut c, "AI.MODELEXECUTE add INPUTS 2 a b OUTPUTS 1 c").expect("run"),
        Value::Okay
    );
    assert_eq!(
        meta_values(&mut c, "c"),
        Value::Array(vec![
            bulk("dtype"),
            bulk("FLOAT"),
            bulk("shape"),
            Value::Array(vec![Value::Int(2), Value::Int(2)]),
            bulk("values"),
            floats(&["11", "22", "33", "44"]),
        ])
    );
    store(&mut c, "two", "two_outputs.pt");
    run_str(
        &mut c,
        "AI.MODELEXECUTE two INPUTS 2 a b OUTPUTS 2 sum prod",
    )
    .expect("run");
    assert_eq!(values(&mut c, "sum"), floats(&["11", "22", "33", "44"]));
    assert_eq!(values(&mut c, "prod"), floats(&["10", "40", "90", "160"]));
    let text = error_text(run_str(
        &mut c,
        "AI.MODELEXECUTE two INPUTS 2 a b OUTPUTS 1 only",
    ));
    assert!(text.starts_with("ERR "), "{text}");
    let info: String = redisai_tests::redis::cmd("INFO")
        .arg("modules")
        .query(&mut c)
        .expect("info");
    assert!(info.contains("ai_torch:runtime=2.13.0"), "{info}");
}

#[test]
fn mlp_int64_and_bool() {
    let server = Server::start();
    let mut c = server.client();
    store(&mut c, "mlp", "mlp.pt");
    run_str(&mut c, "AI.TENSORSET x FLOAT 1 4 VALUES 1 2 3 4").expect("x");
    run_str(&mut c, "AI.MODELEXECUTE mlp INPUTS 1 x OUTPUTS 1 y").expect("mlp");
    // relu(x W1 + b1) W2 + b2 with the weights of gen-torch-models (exact in binary; the
    // plugin tests check the model against a reference computation).
    assert_eq!(values(&mut c, "y"), floats(&["-0.78125", "0.75", "-0.25"]));

    store(&mut c, "argmax", "argmax.pt");
    run_str(&mut c, "AI.TENSORSET s FLOAT 2 3 VALUES 0 5 1 9 2 3").expect("s");
    run_str(&mut c, "AI.MODELEXECUTE argmax INPUTS 1 s OUTPUTS 1 i").expect("argmax");
    assert_eq!(
        meta_values(&mut c, "i"),
        Value::Array(vec![
            bulk("dtype"),
            bulk("INT64"),
            bulk("shape"),
            Value::Array(vec![Value::Int(2)]),
            bulk("values"),
            Value::Array(vec![Value::Int(1), Value::Int(0)]),
        ])
    );
    store(&mut c, "add", "add.pt");
    run_str(
        &mut c,
        "AI.TENSORSET big INT64 2 VALUES 9223372036854775806 -5",
    )
    .expect("big");
    run_str(&mut c, "AI.TENSORSET one INT64 2 VALUES 1 1").expect("one");
    run_str(&mut c, "AI.MODELEXECUTE add INPUTS 2 big one OUTPUTS 1 sum").expect("int64 add");
    assert_eq!(
        values(&mut c, "sum"),
        Value::Array(vec![Value::Int(i64::MAX), Value::Int(-4)])
    );

    store(&mut c, "logical", "logical.pt");
    run_str(&mut c, "AI.TENSORSET p BOOL 4 VALUES 0 0 1 1").expect("p");
    run_str(&mut c, "AI.TENSORSET q BOOL 4 VALUES 0 1 0 1").expect("q");
    run_str(
        &mut c,
        "AI.MODELEXECUTE logical INPUTS 2 p q OUTPUTS 2 and xor",
    )
    .expect("logical");
    let Value::Array(and) = meta_values(&mut c, "and") else {
        panic!("and")
    };
    assert_eq!(and[1], bulk("BOOL"));
    assert_eq!(
        and[5],
        Value::Array(vec![
            Value::Int(0),
            Value::Int(0),
            Value::Int(0),
            Value::Int(1)
        ])
    );
    assert_eq!(
        values(&mut c, "xor"),
        Value::Array(vec![
            Value::Int(0),
            Value::Int(1),
            Value::Int(1),
            Value::Int(0)
        ])
    );
}

#[test]
fn corrupt_blobs_and_bad_inputs_are_errors_not_crashes() {
    let server = Server::start();
    let mut c = server.client();
    let blob = model_bytes("mlp.pt");
    let mut flipped = blob.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0xff;
    for (name, corrupt) in [
        ("garbage", b"this is not a torchscript model".to_vec()),
        ("truncated", blob[..blob.len() / 2].to_vec()),
        ("empty", Vec::new()),
    ] {
        let text = error_text(run(
            &mut c,
            &[
                b"AI.MODELSTORE",
                b"bad",
                b"TORCH",
                b"CPU",
                b"BLOB",
                &corrupt,
            ],
        ));
        assert!(text.starts_with("ERR "), "{name}: {text}");
        pong(&mut c);
    }
    // A flipped byte may still load (inside a weight): either way, no crash.
    let _ = run(
        &mut c,
        &[
            b"AI.MODELSTORE",
            b"flipped",
            b"TORCH",
            b"CPU",
            b"BLOB",
            &flipped,
        ],
    );
    pong(&mut c);
    assert_eq!(
        run_str(&mut c, "EXISTS bad").expect("exists"),
        Value::Int(0)
    );

    store(&mut c, "mlp", "mlp.pt");
    run_str(&mut c, "AI.TENSORSET wrong FLOAT 1 5").expect("wrong");
    let text = error_text(run_str(
        &mut c,
        "AI.MODELEXECUTE mlp INPUTS 1 wrong OUTPUTS 1 y",
    ));
    assert!(text.contains("cannot be multiplied"), "{text}");
    run_str(&mut c, "AI.TENSORSET s STRING 1 VALUES hi").expect("s");
    let text = error_text(run_str(
        &mut c,
        "AI.MODELEXECUTE mlp INPUTS 1 s OUTPUTS 1 y",
    ));
    assert!(text.contains("STRING"), "{text}");
    assert_eq!(run_str(&mut c, "EXISTS y").expect("exists"), Value::Int(0));
    pong(&mut c);
}

#[test]
fn modelget_round_trips_meta_and_blob() {
    let server = Server::start();
    let mut c = server.client();
    let blob = model_bytes("add.pt");
    run(
        &mut c,
        &[
            b"AI.MODELSTORE",
            b"m",
            b"TORCH",
            b"CPU",
            b"TAG",
            b"v1",
            b"BLOB",
            &blob,
        ],
    )
    .expect("store");
    assert_eq!(
        run_str(&mut c, "AI.MODELGET m META").expect("meta"),
        Value::Array(vec![
            status("backend"),
            bulk("TORCH"),
            status("device"),
            bulk("CPU"),
            status("tag"),
            bulk("v1"),
            status("batchsize"),
            Value::Int(0),
            status("minbatchsize"),
            Value::Int(0),
            status("inputs"),
            Value::Array(vec![bulk("a"), bulk("b")]),
            status("outputs"),
            Value::Array(vec![bulk("output_0")]),
            status("minbatchtimeout"),
            Value::Int(0),
        ])
    );
    let Value::BulkString(got) = run_str(&mut c, "AI.MODELGET m BLOB").expect("blob") else {
        panic!("blob")
    };
    assert_eq!(got, blob);
    run(
        &mut c,
        &[b"AI.MODELSTORE", b"copy", b"TORCH", b"CPU", b"BLOB", &got],
    )
    .expect("restore");
    run_str(&mut c, "AI.TENSORSET a INT32 1 VALUES 40").expect("a");
    run_str(&mut c, "AI.TENSORSET b INT32 1 VALUES 2").expect("b");
    run_str(&mut c, "AI.MODELEXECUTE copy INPUTS 2 a b OUTPUTS 1 c").expect("run copy");
    assert_eq!(values(&mut c, "c"), Value::Array(vec![Value::Int(42)]));
}

#[test]
fn models_persist_in_rdb_and_aof_and_replicate() {
    // AOF without the RDB preamble: the rewrite replays AI.MODELSTORE commands (DEBUG
    // RELOAD below covers the RDB encoding).
    let mut server = Server::start_with(
        ServerConfig::default()
            .option("appendonly", &["yes"])
            .option("aof-use-rdb-preamble", &["no"]),
    );
    let mut c = server.client();
    store(&mut c, "mlp", "mlp.pt");
    store(&mut c, "add", "add.pt");
    run_str(&mut c, "AI.TENSORSET x FLOAT 1 4 VALUES 1 2 3 4").expect("x");
    let replica = server.start_replica();
    run_str(&mut c, "AI.MODELEXECUTE mlp INPUTS 1 x OUTPUTS 1 y").expect("run");
    replica.wait_for_sync(&server);
    let mut r = replica.client();
    assert_eq!(digest(&mut r), digest(&mut c));
    assert_eq!(
        run_str(&mut r, "AI.MODELGET mlp BLOB").expect("replicated model"),
        Value::BulkString(model_bytes("mlp.pt"))
    );
    let expected = values(&mut c, "y");
    let before = digest(&mut c);

    // RDB: DEBUG RELOAD saves and loads the data set in place.
    run_str(&mut c, "DEBUG RELOAD").expect("reload");
    assert_eq!(digest(&mut c), before);
    run_str(&mut c, "AI.MODELEXECUTE mlp INPUTS 1 x OUTPUTS 1 y").expect("after reload");
    assert_eq!(values(&mut c, "y"), expected);

    // AOF: rewrite, then restart from it (the backend loads lazily while it is read).
    run_str(&mut c, "BGREWRITEAOF").expect("rewrite");
    redisai_tests::wait_for_rewrite(&mut c);
    server.restart();
    let mut c = server.client();
    assert_eq!(digest(&mut c), before);
    run_str(&mut c, "AI.MODELEXECUTE mlp INPUTS 1 x OUTPUTS 1 y2").expect("after restart");
    assert_eq!(values(&mut c, "y2"), expected);
}

/// Convolutions take scratch memory through libtorch's raw allocation API, which needs
/// the plugin's counting CPU allocator (BACKEND_MEMORY_LIMIT) to give each storage a
/// context equal to its data pointer: before, any image-sized conv2d (so every ResNet)
/// failed with libtorch's "dptr.get() == dptr.get_context()" INTERNAL ASSERT.
#[test]
fn convolutions_run_through_the_counting_allocator() {
    let server = Server::start();
    let mut c = server.client();
    let source = "def conv(tensors: List[Tensor], keys: List[str], args: List[str]):\n    \
                  return torch.conv2d(tensors[0], tensors[1], padding=1)\n";
    let stored = run(
        &mut c,
        &[
            b"AI.SCRIPTSTORE",
            b"s",
            b"CPU",
            b"ENTRY_POINTS",
            b"1",
            b"conv",
            b"SOURCE",
            source.as_bytes(),
        ],
    );
    assert_eq!(stored.expect("SCRIPTSTORE"), Value::Okay);
    let (side, channels) = (224usize, 8usize);
    let ones = |count: usize| 1f32.to_le_bytes().repeat(count);
    let side_text = side.to_string();
    let x = ones(3 * side * side);
    let set_x: [&[u8]; 9] = [
        b"AI.TENSORSET",
        b"x",
        b"FLOAT",
        b"1",
        b"3",
        side_text.as_bytes(),
        side_text.as_bytes(),
        b"BLOB",
        &x,
    ];
    run(&mut c, &set_x).expect("x");
    let w = ones(channels * 3 * 3 * 3);
    run(
        &mut c,
        &[
            b"AI.TENSORSET",
            b"w",
            b"FLOAT",
            b"8",
            b"3",
            b"3",
            b"3",
            b"BLOB",
            &w,
        ],
    )
    .expect("w");
    run_str(&mut c, "AI.SCRIPTEXECUTE s conv INPUTS 2 x w OUTPUTS 1 y").expect("conv2d");
    let Value::BulkString(blob) = run_str(&mut c, "AI.TENSORGET y BLOB").expect("y") else {
        panic!("AI.TENSORGET BLOB is not a bulk string");
    };
    let y: Vec<f32> = blob
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!(y.len(), channels * side * side);
    // A 3x3 window of ones over 3 channels of ones, zero-padded: 12 at the corners, 18
    // along the edges, 27 inside; the same in every output channel.
    for plane in y.chunks_exact(side * side) {
        assert_eq!(plane[0], 12.0);
        assert_eq!(plane[1], 18.0);
        assert_eq!(plane[side + 1], 27.0);
        assert_eq!(plane[side * side - 1], 12.0);
        let total: f32 = plane.iter().sum();
        let edge = (side - 2) as f32;
        let expected = 4.0 * 12.0 + 4.0 * edge * 18.0 + edge * edge * 27.0;
        assert_eq!(total, expected);
    }
    pong(&mut c);
}
