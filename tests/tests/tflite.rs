//! TensorFlow Lite models end to end on the TFLite backend plugin
//! (`dist/backends/redisai_tflite/`, LiteRT 2.3), inside a real redis-server. The models
//! are in tests/models/tflite (see its README for what each computes).

mod common;

use common::{
    call, call_str, client, get, get_f32, info_modules, meta_field, model_bytes, model_meta,
    models_persist_and_replicate, pong, set_blob, set_f32,
};
use redisai_tests::bulk_array as names;
use redisai_tests::redis::{Connection, Value};
use redisai_tests::{error_text, Server};

fn store_reply(
    c: &mut Connection,
    key: &str,
    blob: &[u8],
) -> redisai_tests::redis::RedisResult<Value> {
    call(
        c,
        &[
            b"AI.MODELSTORE",
            key.as_bytes(),
            b"TFLITE",
            b"CPU",
            b"BLOB",
            blob,
        ],
    )
}

fn store(c: &mut Connection, key: &str, model: &str) {
    let reply = store_reply(c, key, &model_bytes("tflite", model));
    assert_eq!(reply.expect("MODELSTORE TFLITE"), Value::Okay, "{model}");
}

fn execute(c: &mut Connection, line: &str) {
    assert_eq!(call_str(c, line).expect(line), Value::Okay, "{line}");
}

#[test]
fn float_models_inputs_and_outputs_by_position() {
    let server = Server::start();
    let mut c = client(&server);
    store(&mut c, "mlp", "mlp.tflite");
    let info = info_modules(&mut c);
    assert!(info.contains("ai_tflite:runtime=2.3.0"), "{info}");
    set_f32(
        &mut c,
        "x",
        &[2, 4],
        &[1.0, 2.0, 3.0, 4.0, -1.0, 0.5, 0.0, 2.0],
    );
    execute(&mut c, "AI.MODELEXECUTE mlp INPUTS 1 x OUTPUTS 1 y");
    assert_eq!(
        get_f32(&mut c, "y"),
        (
            vec![2, 3],
            vec![2.046875, 0.8125, -0.40625, 0.6171875, 0.2265625, -0.1875]
        )
    );
    let meta = model_meta(&mut c, "mlp");
    assert_eq!(
        meta_field(&meta, "backend"),
        Value::BulkString(b"TFLITE".to_vec())
    );

    // Outputs come in the subgraph's order, whatever the keys are called.
    store(&mut c, "two", "two_outputs.tflite");
    set_f32(&mut c, "x2", &[2, 2], &[1.0, 2.0, 3.0, 4.0]);
    execute(
        &mut c,
        "AI.MODELEXECUTE two INPUTS 1 x2 OUTPUTS 2 first second",
    );
    assert_eq!(
        get_f32(&mut c, "first"),
        (vec![2, 2], vec![2.0, 4.0, 6.0, 8.0])
    );
    assert_eq!(
        get_f32(&mut c, "second"),
        (vec![2, 2], vec![1.0, 4.0, 9.0, 16.0])
    );
    let meta = model_meta(&mut c, "two");
    assert_eq!(meta_field(&meta, "outputs"), names(&["sum", "prod"]));

    // Inputs by position: the same model, the keys swapped.
    store(&mut c, "add", "add.tflite");
    set_f32(&mut c, "p", &[2], &[1.0, 2.0]);
    set_f32(&mut c, "q", &[2], &[3.0, 40.0]);
    execute(&mut c, "AI.MODELEXECUTE add INPUTS 2 q p OUTPUTS 1 r");
    assert_eq!(get_f32(&mut c, "r"), (vec![2], vec![4.0, 42.0]));
}

#[test]
fn quantized_models() {
    let server = Server::start();
    let mut c = client(&server);
    store(&mut c, "fc", "fc_int8.tflite");
    let x: [i8; 8] = [0, 2, 4, 6, -2, 10, -10, 100];
    let blob: Vec<u8> = x.iter().map(|v| *v as u8).collect();
    set_blob(&mut c, "q", "INT8", &[2, 4], &blob);
    execute(&mut c, "AI.MODELEXECUTE fc INPUTS 1 q OUTPUTS 1 r");
    let (dtype, shape, blob) = get(&mut c, "r");
    let r: Vec<i8> = blob.iter().map(|b| *b as i8).collect();
    assert_eq!(
        (dtype.as_str(), shape, r),
        ("INT8", vec![2, 3], vec![21, 43, 15, -39, 127, 58])
    );

    store(&mut c, "addq", "add_uint8.tflite");
    set_blob(&mut c, "ua", "UINT8", &[4], &[10, 12, 30, 200]);
    set_blob(&mut c, "ub", "UINT8", &[4], &[0, 4, 8, 255]);
    execute(&mut c, "AI.MODELEXECUTE addq INPUTS 2 ua ub OUTPUTS 1 uc");
    assert_eq!(
        get(&mut c, "uc"),
        ("UINT8".to_owned(), vec![4], vec![20, 22, 32, 179])
    );

    // A float tensor for a quantized input is refused before the run.
    set_f32(&mut c, "f", &[2, 4], &[0.0; 8]);
    let text = error_text(call_str(
        &mut c,
        "AI.MODELEXECUTE fc INPUTS 1 f OUTPUTS 1 r2",
    ));
    assert!(text.starts_with("ERR "), "{text}");
    assert_eq!(
        call_str(&mut c, "EXISTS r2").expect("EXISTS"),
        Value::Int(0)
    );
}

#[test]
fn corrupt_blobs_and_unsupported_options_are_error_replies() {
    let server = Server::start();
    let mut c = client(&server);
    let good = model_bytes("tflite", "mlp.tflite");
    let mut flipped = good.clone();
    for i in (8..flipped.len()).step_by(97) {
        flipped[i] ^= 0x5a;
    }
    let corrupt: [(&str, Vec<u8>); 5] = [
        ("garbage", b"this is not a flatbuffer".to_vec()),
        ("truncated", good[..good.len() / 2].to_vec()),
        ("empty", Vec::new()),
        ("a TF graph", model_bytes("tf", "mul.pb")),
        ("zeros", vec![0; 4096]),
    ];
    for (what, blob) in corrupt {
        let text = error_text(store_reply(&mut c, "bad", &blob));
        assert!(text.starts_with("ERR "), "{what}: {text}");
        pong(&mut c);
    }
    // Flipped bytes may still make a loadable model: either way, no crash; if it loads,
    // a run is an answer (OK or an error).
    if store_reply(&mut c, "flipped", &flipped).is_ok() {
        set_f32(&mut c, "x", &[1, 4], &[1.0, 2.0, 3.0, 4.0]);
        let _ = call_str(&mut c, "AI.MODELEXECUTE flipped INPUTS 1 x OUTPUTS 1 y");
    }
    pong(&mut c);
    assert_eq!(
        call_str(&mut c, "EXISTS bad").expect("EXISTS"),
        Value::Int(0)
    );

    // No autobatching, and no INPUTS/OUTPUTS names, for TFLITE (RedisAI's errors).
    let reply = call(
        &mut c,
        &[
            b"AI.MODELSTORE",
            b"m",
            b"TFLITE",
            b"CPU",
            b"BATCHSIZE",
            b"4",
            b"BLOB",
            &good,
        ],
    );
    assert_eq!(
        error_text(reply),
        "ERR Auto-batching not supported by the TFLITE backend"
    );
    let reply = call(
        &mut c,
        &[
            b"AI.MODELSTORE",
            b"m",
            b"TFLITE",
            b"CPU",
            b"INPUTS",
            b"1",
            b"x",
            b"OUTPUTS",
            b"1",
            b"y",
            b"BLOB",
            &good,
        ],
    );
    assert!(error_text(reply).starts_with("ERR "));

    // Wrong number of inputs or outputs.
    store(&mut c, "mlp", "mlp.tflite");
    set_f32(&mut c, "x", &[1, 4], &[1.0, 2.0, 3.0, 4.0]);
    let text = error_text(call_str(
        &mut c,
        "AI.MODELEXECUTE mlp INPUTS 2 x x OUTPUTS 1 y",
    ));
    assert!(text.starts_with("ERR "), "{text}");
    let text = error_text(call_str(
        &mut c,
        "AI.MODELEXECUTE mlp INPUTS 1 x OUTPUTS 2 y z",
    ));
    assert!(text.starts_with("ERR "), "{text}");
    execute(&mut c, "AI.MODELEXECUTE mlp INPUTS 1 x OUTPUTS 1 y");
    assert_eq!(
        get_f32(&mut c, "y"),
        (vec![1, 3], vec![2.046875, 0.8125, -0.40625])
    );
}

#[test]
fn tflite_models_persist_and_replicate() {
    let store_models = |c: &mut Connection| {
        store(c, "mlp", "mlp.tflite");
        store(c, "fc", "fc_int8.tflite");
        set_f32(c, "x", &[1, 4], &[-1.0, 0.5, 0.0, 2.0]);
        set_blob(c, "q", "INT8", &[1, 4], &[0, 2, 4, 6]);
    };
    let check = |c: &mut Connection| {
        execute(c, "AI.MODELEXECUTE mlp INPUTS 1 x OUTPUTS 1 y");
        assert_eq!(
            get_f32(c, "y"),
            (vec![1, 3], vec![0.6171875, 0.2265625, -0.1875])
        );
        execute(c, "AI.MODELEXECUTE fc INPUTS 1 q OUTPUTS 1 r");
        assert_eq!(
            get(c, "r"),
            ("INT8".to_owned(), vec![1, 3], vec![21, 43, 15])
        );
    };
    models_persist_and_replicate(&["mlp", "fc"], store_models, check);
}
