//! Frozen TensorFlow graphs end to end on the TF backend plugin
//! (`dist/backends/redisai_tensorflow/`, TensorFlow 2.21 in a link namespace of its own),
//! inside a real redis-server. The graphs are in tests/models/tf (see its README for what
//! each computes).

mod common;

use common::{
    call, call_str, client, get, get_f32, info_modules, meta_field, model_bytes, model_meta,
    models_persist_and_replicate, pong, server_pid, set_blob, set_f32,
};
use redisai_tests::bulk_array as names;
use redisai_tests::redis::{Connection, Value};
use redisai_tests::{error_text, Server, ServerConfig};

fn tf_bytes(name: &str) -> Vec<u8> {
    model_bytes("tf", name)
}

/// `AI.MODELSTORE key TF CPU INPUTS n in... OUTPUTS n out... BLOB graph`.
fn store_reply(
    c: &mut Connection,
    key: &str,
    blob: &[u8],
    inputs: &[&str],
    outputs: &[&str],
) -> redisai_tests::redis::RedisResult<Value> {
    let n_in = inputs.len().to_string();
    let n_out = outputs.len().to_string();
    let mut args: Vec<&[u8]> = vec![b"AI.MODELSTORE", key.as_bytes(), b"TF", b"CPU"];
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

fn store(c: &mut Connection, key: &str, graph: &str, inputs: &[&str], outputs: &[&str]) {
    let reply = store_reply(c, key, &tf_bytes(graph), inputs, outputs);
    assert_eq!(reply.expect("MODELSTORE TF"), Value::Okay, "{graph}");
}

fn execute(c: &mut Connection, line: &str) {
    assert_eq!(call_str(c, line).expect(line), Value::Okay, "{line}");
}

#[test]
fn mul_graph_with_modelstore_and_the_deprecated_modelset() {
    let server = Server::start();
    let mut c = client(&server);
    assert!(info_modules(&mut c).contains("ai_loaded:0"));
    store(&mut c, "mul", "mul.pb", &["a", "b"], &["mul"]);
    let info = info_modules(&mut c);
    assert!(info.contains("ai_tf:runtime=2.21.0"), "{info}");
    assert!(
        info.contains("redisai_tensorflow/redisai_tensorflow.so"),
        "{info}"
    );

    set_f32(&mut c, "a", &[2, 2], &[2.0, 3.0, 2.0, 3.0]);
    set_f32(&mut c, "b", &[2, 2], &[2.0, 3.0, 2.0, 3.0]);
    execute(&mut c, "AI.MODELEXECUTE mul INPUTS 2 a b OUTPUTS 1 c");
    assert_eq!(get_f32(&mut c, "c"), (vec![2, 2], vec![4.0, 9.0, 4.0, 9.0]));

    let meta = model_meta(&mut c, "mul");
    assert_eq!(
        meta_field(&meta, "backend"),
        Value::BulkString(b"TF".to_vec())
    );
    assert_eq!(meta_field(&meta, "inputs"), names(&["a", "b"]));
    assert_eq!(meta_field(&meta, "outputs"), names(&["mul"]));
    assert_eq!(
        call_str(&mut c, "AI.MODELGET mul BLOB").expect("BLOB"),
        Value::BulkString(tf_bytes("mul.pb"))
    );

    // RedisAI 1.2's deprecated form: no counts before the names.
    let blob = tf_bytes("mul.pb");
    let reply = call(
        &mut c,
        &[
            b"AI.MODELSET",
            b"old",
            b"TF",
            b"CPU",
            b"INPUTS",
            b"a",
            b"b",
            b"OUTPUTS",
            b"mul",
            b"BLOB",
            &blob,
        ],
    );
    assert_eq!(reply.expect("MODELSET"), Value::Okay);
    set_f32(&mut c, "a", &[3], &[1.0, 2.0, 3.0]);
    set_f32(&mut c, "b", &[1], &[-2.0]);
    execute(&mut c, "AI.MODELRUN old INPUTS a b OUTPUTS c");
    assert_eq!(get_f32(&mut c, "c"), (vec![3], vec![-2.0, -4.0, -6.0]));

    // INPUTS and OUTPUTS are required for TF, with RedisAI's error.
    for (line, expected) in [
        (
            "AI.MODELSTORE m TF CPU BLOB x",
            "ERR INPUTS not specified for TF",
        ),
        (
            "AI.MODELSTORE m TF CPU INPUTS 2 a b BLOB x",
            "ERR OUTPUTS not specified for TF",
        ),
        (
            "AI.MODELSET m TF CPU BLOB x",
            "ERR Insufficient arguments, INPUTS and OUTPUTS not specified",
        ),
        (
            "AI.MODELSTORE m TF CPU INPUTS 1 a OUTPUTS 1 b BLOB not-a-graph",
            "ERR Invalid GraphDef",
        ),
    ] {
        assert_eq!(error_text(call_str(&mut c, line)), expected, "{line}");
    }
    assert_eq!(call_str(&mut c, "EXISTS m").expect("EXISTS"), Value::Int(0));
    pong(&mut c);
}

fn w1(i: usize, j: usize) -> f32 {
    ((i * 8 + j) % 5) as f32 / 8.0 - 0.25
}
fn b1(j: usize) -> f32 {
    (j % 3) as f32 / 8.0 - 0.125
}
fn w2(j: usize, k: usize) -> f32 {
    ((j * 3 + k) % 7) as f32 / 8.0 - 0.375
}
fn b2(k: usize) -> f32 {
    k as f32 / 8.0 - 0.125
}

/// mlp.pb computed here (weights as make_tf_models.py writes them): (hidden, y) of a row.
fn mlp_row(x: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let hidden: Vec<f32> = (0..8)
        .map(|j| ((0..4).map(|i| x[i] * w1(i, j)).sum::<f32>() + b1(j)).max(0.0))
        .collect();
    let y = (0..3)
        .map(|k| (0..8).map(|j| hidden[j] * w2(j, k)).sum::<f32>() + b2(k))
        .collect();
    (hidden, y)
}

#[test]
fn mlp_graph_batches_and_outputs_in_the_order_asked() {
    let server = Server::start();
    let mut c = client(&server);
    store(&mut c, "mlp", "mlp.pb", &["x"], &["y", "hidden"]);
    let x = [1.0, 2.0, 3.0, 4.0, -1.0, 0.5, 0.0, 2.0];
    set_f32(&mut c, "x", &[2, 4], &x);
    execute(&mut c, "AI.MODELEXECUTE mlp INPUTS 1 x OUTPUTS 2 y hidden");
    let (h0, y0) = mlp_row(&x[..4]);
    let (h1, y1) = mlp_row(&x[4..]);
    assert_eq!(get_f32(&mut c, "y"), (vec![2, 3], [y0, y1].concat()));
    assert_eq!(get_f32(&mut c, "hidden"), (vec![2, 8], [h0, h1].concat()));

    // Wrong dtype, wrong shape, wrong number of keys: errors, nothing written.
    set_blob(&mut c, "xi", "INT32", &[1, 4], &[0; 16]);
    let text = error_text(call_str(
        &mut c,
        "AI.MODELEXECUTE mlp INPUTS 1 xi OUTPUTS 2 y2 h2",
    ));
    assert!(text.contains("INT32") && text.contains("FLOAT"), "{text}");
    set_f32(&mut c, "x5", &[1, 5], &[1.0; 5]);
    let text = error_text(call_str(
        &mut c,
        "AI.MODELEXECUTE mlp INPUTS 1 x5 OUTPUTS 2 y2 h2",
    ));
    assert!(text.starts_with("ERR "), "{text}");
    let text = error_text(call_str(
        &mut c,
        "AI.MODELEXECUTE mlp INPUTS 1 x OUTPUTS 1 y2",
    ));
    assert!(text.contains("OUTPUTS"), "{text}");
    assert_eq!(
        call_str(&mut c, "EXISTS y2 h2").expect("EXISTS"),
        Value::Int(0)
    );
    pong(&mut c);
}

/// A TF2 model exported by TensorFlow as a frozen concrete function (`Identity` outputs,
/// a `versions` field and a function library, as TF2's exports have).
#[test]
fn tf2_frozen_concrete_function() {
    let server = Server::start();
    let mut c = client(&server);
    store(
        &mut c,
        "tf2",
        "tf2_frozen.pb",
        &["x"],
        &["Identity", "Identity_1"],
    );
    set_f32(
        &mut c,
        "x",
        &[2, 4],
        &[1.0, 2.0, 3.0, 4.0, 0.0, 0.0, 0.0, 8.0],
    );
    execute(&mut c, "AI.MODELEXECUTE tf2 INPUTS 1 x OUTPUTS 2 y s");
    // relu(x·W + b) with W[i][j] = (i - 2j) / 8, b = [0.25, -0.5]; row sums.
    assert_eq!(
        get_f32(&mut c, "y"),
        (vec![2, 2], vec![2.75, 0.0, 3.25, 0.5])
    );
    assert_eq!(get_f32(&mut c, "s"), (vec![2], vec![10.0, 8.0]));
}

/// A STRING tensor's blob: each element NUL-terminated.
fn string_blob(elements: &[&[u8]]) -> Vec<u8> {
    elements
        .iter()
        .flat_map(|e| e.iter().copied().chain([0]))
        .collect()
}

#[test]
fn string_tensors_through_identity() {
    let server = Server::start();
    let mut c = client(&server);
    store(&mut c, "strings", "strings.pb", &["s"], &["out", "len"]);
    let words: [&[u8]; 4] = [b"hello", b"", "wörld".as_bytes(), b"redis ai"];
    set_blob(&mut c, "s", "STRING", &[2, 2], &string_blob(&words));
    execute(
        &mut c,
        "AI.MODELEXECUTE strings INPUTS 1 s OUTPUTS 2 out len",
    );
    assert_eq!(
        get(&mut c, "out"),
        ("STRING".to_owned(), vec![2, 2], string_blob(&words))
    );
    let (dtype, shape, blob) = get(&mut c, "len");
    let lengths: Vec<i32> = blob
        .chunks_exact(4)
        .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    assert_eq!((dtype.as_str(), shape), ("INT32", vec![2, 2]));
    assert_eq!(lengths, [5, 0, 6, 8]);
    assert_eq!(
        call_str(&mut c, "AI.TENSORGET out VALUES").expect("VALUES"),
        Value::Array(
            words
                .iter()
                .map(|w| Value::BulkString(w.to_vec()))
                .collect()
        )
    );
}

#[test]
fn wrong_names_and_bad_graphs_are_error_replies() {
    let server = Server::start();
    let mut c = client(&server);
    let mul = tf_bytes("mul.pb");
    let text = error_text(store_reply(&mut c, "m", &mul, &["a", "nope"], &["mul"]));
    assert!(
        text.contains("Input node named \"nope\" not found in TF graph"),
        "{text}"
    );
    let text = error_text(store_reply(&mut c, "m", &mul, &["a", "b"], &["product"]));
    assert!(
        text.contains("Output node named \"product\" not found in TF graph"),
        "{text}"
    );
    let text = error_text(store_reply(&mut c, "m", &mul, &["a", "b"], &["mul:3"]));
    assert!(text.starts_with("ERR ") && text.contains("mul"), "{text}");

    let mut truncated = mul.clone();
    truncated.truncate(mul.len() / 2);
    let corrupt: [(&str, Vec<u8>); 5] = [
        ("garbage", b"this is not a GraphDef".to_vec()),
        ("truncated", truncated),
        ("an ONNX model", model_bytes("onnx", "add.onnx")),
        ("an op TensorFlow lacks", tf_bytes("unknown_op.pb")),
        ("a dangling input", tf_bytes("dangling_input.pb")),
    ];
    for (what, blob) in corrupt {
        let text = error_text(store_reply(&mut c, "bad", &blob, &["a"], &["y"]));
        assert!(text.starts_with("ERR "), "{what}: {text}");
        assert!(!text.contains('\n'), "{what}: one line: {text}");
        pong(&mut c);
    }
    let text = error_text(store_reply(
        &mut c,
        "bad",
        &tf_bytes("unknown_op.pb"),
        &["a"],
        &["y"],
    ));
    assert!(text.contains("NoSuchOpForRedisAITests"), "{text}");
    assert_eq!(
        call_str(&mut c, "EXISTS m bad").expect("EXISTS"),
        Value::Int(0)
    );

    // The server and the backend still work.
    store(&mut c, "mul", "mul.pb", &["a", "b"], &["mul"]);
    set_f32(&mut c, "a", &[1], &[6.0]);
    set_f32(&mut c, "b", &[1], &[7.0]);
    execute(&mut c, "AI.MODELEXECUTE mul INPUTS 2 a b OUTPUTS 1 c");
    assert_eq!(get_f32(&mut c, "c"), (vec![1], vec![42.0]));
}

/// A 512x512 RGBA image with some noise (so that the PNG is not trivially small).
fn test_image(width: usize, height: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_u32;
    let mut out = Vec::with_capacity(width * height * 4);
    for y in 0..height {
        for x in 0..width {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            out.push((x % 256) as u8 ^ (state & 7) as u8);
            out.push((y % 256) as u8);
            out.push(((x + y) % 256) as u8);
            out.push(255);
        }
    }
    out
}

/// The zlib hazard, inside redis-server: redis-server exports a `zcalloc` of its own,
/// and TensorFlow's framework library calls its bundled zlib through exported names. In
/// the global namespace TensorFlow's zlib would bind to Redis's function (a 1 MiB
/// inflate or compress never returned); the backend opens TensorFlow in a link namespace
/// of its own. Here zlib-heavy graphs must give the right answer (and the client's read
/// timeout turns a hang into a failure, never a stuck test).
#[test]
fn graphs_using_tensorflows_zlib_run_inside_redis() {
    let server = Server::start();
    let mut c = client(&server);

    // 1 MiB inflated from a level-9 zlib stream (DecodeCompressed, ZLIB).
    store(&mut c, "zlib", "zlib.pb", &["data"], &["size", "text"]);
    let b64 = model_bytes("tf", "zlib_1mib.b64");
    let b64 = b64.trim_ascii_end();
    set_blob(&mut c, "data", "STRING", &[1], &string_blob(&[b64]));
    execute(
        &mut c,
        "AI.MODELEXECUTE zlib INPUTS 1 data OUTPUTS 2 size text",
    );
    let (_, _, size) = get(&mut c, "size");
    assert_eq!(size, (1i32 << 20).to_le_bytes());
    let (dtype, _, text) = get(&mut c, "text");
    assert_eq!(dtype, "STRING");
    let unit: &[u8] = b"RedisAI runs TensorFlow graphs. ";
    assert_eq!(text.len(), (1 << 20) + 1, "one element and its NUL");
    assert!(text[..1 << 20]
        .chunks(unit.len())
        .all(|chunk| chunk == unit));

    // A PNG round trip (EncodePng, DecodePng: libpng over TensorFlow's zlib).
    store(
        &mut c,
        "png",
        "png.pb",
        &["image"],
        &["decoded", "png_size"],
    );
    let image = test_image(512, 512);
    set_blob(&mut c, "image", "UINT8", &[512, 512, 4], &image);
    execute(
        &mut c,
        "AI.MODELEXECUTE png INPUTS 1 image OUTPUTS 2 decoded png_size",
    );
    let (_, shape, decoded) = get(&mut c, "decoded");
    assert_eq!(shape, [512, 512, 4]);
    assert!(decoded == image, "the PNG round trip changed the pixels");
    let (_, _, png_size) = get(&mut c, "png_size");
    let png_size = i32::from_le_bytes([png_size[0], png_size[1], png_size[2], png_size[3]]);
    assert!(
        png_size > 0 && (png_size as usize) < image.len(),
        "{png_size}"
    );

    // The PNG bytes hold NULs, which a RedisAI STRING cannot: a clear error, no crash.
    store(&mut c, "raw", "png.pb", &["image"], &["png"]);
    let text = error_text(call_str(
        &mut c,
        "AI.MODELEXECUTE raw INPUTS 1 image OUTPUTS 1 out",
    ));
    assert!(text.contains("NUL"), "{text}");

    let log = server.log();
    for crash in ["crashed by signal", "Segmentation", "ASSERTION"] {
        assert!(!log.contains(crash), "{crash} in:\n{log}");
    }
    pong(&mut c);
}

/// This server's threads named `name`.
fn threads_named(c: &mut Connection, name: &str) -> usize {
    let pid = server_pid(c);
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("/proc/<pid>/task")
        .filter_map(Result::ok)
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|comm| comm.trim_end() == name)
        })
        .count()
}

#[test]
fn inter_op_parallelism_sizes_tensorflows_pool() {
    let server = Server::start_with(ServerConfig::default().module_args(&[
        "INTRA_OP_PARALLELISM",
        "1",
        "INTER_OP_PARALLELISM",
        "3",
    ]));
    let mut c = client(&server);
    assert_eq!(threads_named(&mut c, "tf_Compute"), 0);
    store(&mut c, "mul", "mul.pb", &["a", "b"], &["mul"]);
    set_f32(&mut c, "a", &[2], &[1.5, 2.0]);
    set_f32(&mut c, "b", &[2], &[2.0, 4.0]);
    execute(&mut c, "AI.MODELEXECUTE mul INPUTS 2 a b OUTPUTS 1 c");
    assert_eq!(get_f32(&mut c, "c"), (vec![2], vec![3.0, 8.0]));
    // TensorFlow names its inter-op pool's threads tf_Compute.
    assert_eq!(threads_named(&mut c, "tf_Compute"), 3);
}

#[test]
fn tf_models_persist_and_replicate() {
    let store_models = |c: &mut Connection| {
        store(c, "mul", "mul.pb", &["a", "b"], &["mul"]);
        store(c, "mlp", "mlp.pb", &["x"], &["y"]);
        set_f32(c, "a", &[2], &[3.0, 4.0]);
        set_f32(c, "b", &[2], &[5.0, -1.0]);
        set_f32(c, "x", &[1, 4], &[1.0, 2.0, 3.0, 4.0]);
    };
    let check = |c: &mut Connection| {
        execute(c, "AI.MODELEXECUTE mul INPUTS 2 a b OUTPUTS 1 c");
        assert_eq!(get_f32(c, "c"), (vec![2], vec![15.0, -4.0]));
        execute(c, "AI.MODELEXECUTE mlp INPUTS 1 x OUTPUTS 1 y");
        assert_eq!(
            get_f32(c, "y"),
            (vec![1, 3], mlp_row(&[1.0, 2.0, 3.0, 4.0]).1)
        );
        let meta = model_meta(c, "mul");
        assert_eq!(meta_field(&meta, "inputs"), names(&["a", "b"]));
        assert_eq!(meta_field(&meta, "outputs"), names(&["mul"]));
    };
    models_persist_and_replicate(&["mul", "mlp"], store_models, check);
}

/// Both libcs in the process (the host's, and the one in TensorFlow's link namespace) keep
/// the stacks of ended threads in one shared cache. ONNX Runtime ends a session's threads
/// (8 MiB stacks, with dynamic TLS blocks from the host's malloc) when its model is
/// deleted; TensorFlow's libc then reusing such a stack freed those blocks with its own
/// `free` and aborted the server. The backend gives TensorFlow's threads a stack size no
/// host stack fits. Here: host threads end before TensorFlow starts, and again between
/// TF models.
#[test]
fn tf_starts_after_host_threads_ended() {
    let server = Server::start();
    let mut c = client(&server);
    let onnx = model_bytes("onnx", "mlp.onnx");
    set_f32(&mut c, "x", &[1, 4], &[1.0, 2.0, 3.0, 4.0]);
    for round in 0..2 {
        let reply = call(
            &mut c,
            &[b"AI.MODELSTORE", b"o", b"ONNX", b"CPU", b"BLOB", &onnx],
        );
        assert_eq!(reply.expect("MODELSTORE ONNX"), Value::Okay);
        for _ in 0..5 {
            execute(&mut c, "AI.MODELEXECUTE o INPUTS 1 x OUTPUTS 1 yo");
        }
        // The session and its threads go.
        assert_eq!(call_str(&mut c, "DEL o").expect("DEL"), Value::Int(1));
        let key = format!("tf{round}");
        store(&mut c, &key, "mlp.pb", &["x"], &["y"]);
        execute(
            &mut c,
            &format!("AI.MODELEXECUTE {key} INPUTS 1 x OUTPUTS 1 y"),
        );
        assert_eq!(
            get_f32(&mut c, "y"),
            (vec![1, 3], mlp_row(&[1.0, 2.0, 3.0, 4.0]).1)
        );
    }
    pong(&mut c);
    let log = server.log();
    assert!(!log.contains("crashed by signal"), "{log}");
}
