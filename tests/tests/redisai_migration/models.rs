//! Models of every RedisAI encoding and backend, one its backend refuses, and one placed
//! on a GPU this build has no backend for.

use super::*;

struct ModelCase {
    backend: &'static str,
    plugin: &'static str,
    file: (&'static str, &'static str),
    inputs: &'static [&'static str],
    outputs: &'static [&'static str],
    batching: bool,
    /// MODELEXECUTE's output on a = [1, 2], b = [3, 4].
    expected: [&'static str; 2],
}

const MODELS: [ModelCase; 4] = [
    ModelCase {
        backend: "ONNX",
        plugin: "redisai_onnxruntime",
        file: ("onnx", "add.onnx"),
        inputs: &[],
        outputs: &[],
        batching: true,
        expected: ["4", "6"],
    },
    ModelCase {
        backend: "TF",
        plugin: "redisai_tensorflow",
        file: ("tf", "mul.pb"),
        inputs: &["a", "b"],
        outputs: &["mul"],
        batching: true,
        expected: ["3", "8"],
    },
    ModelCase {
        backend: "TFLITE",
        plugin: "redisai_tflite",
        file: ("tflite", "add.tflite"),
        inputs: &[],
        outputs: &[],
        batching: false,
        expected: ["4", "6"],
    },
    ModelCase {
        backend: "TORCH",
        plugin: "redisai_torch",
        file: ("torch", "add.pt"),
        inputs: &[],
        outputs: &[],
        batching: true,
        expected: ["4", "6"],
    },
];

const MODEL_LINES: [&str; 3] = ["AI.MODELGET {} META", "AI.MODELGET {} BLOB", "TYPE {}"];

fn model_reference(r: &mut Connection, key: &str, m: &RaiModel) {
    let mut args: Vec<Vec<u8>> = vec![
        b"AI.MODELSTORE".to_vec(),
        key.as_bytes().to_vec(),
        m.backend.as_bytes().to_vec(),
        m.device.as_bytes().to_vec(),
        b"TAG".to_vec(),
        m.tag.to_vec(),
    ];
    if m.batchsize > 0 {
        args.push(b"BATCHSIZE".to_vec());
        args.push(m.batchsize.to_string().into_bytes());
        if m.minbatchsize > 0 {
            args.push(b"MINBATCHSIZE".to_vec());
            args.push(m.minbatchsize.to_string().into_bytes());
            if m.minbatchtimeout > 0 {
                args.push(b"MINBATCHTIMEOUT".to_vec());
                args.push(m.minbatchtimeout.to_string().into_bytes());
            }
        }
    }
    for (keyword, names) in [("INPUTS", m.inputs), ("OUTPUTS", m.outputs)] {
        if !names.is_empty() {
            args.push(keyword.as_bytes().to_vec());
            args.push(names.len().to_string().into_bytes());
            args.extend(names.iter().map(|n| n.as_bytes().to_vec()));
        }
    }
    args.push(b"BLOB".to_vec());
    args.push(m.blob.to_vec());
    let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
    run(r, &refs).unwrap_or_else(|e| panic!("reference {key}: {e}"));
}

fn run_model(c: &mut Connection, key: &str, expected: &[&str; 2], when: &str) {
    run_str(c, "AI.TENSORSET mig:a FLOAT 2 VALUES 1 2").expect("a");
    run_str(c, "AI.TENSORSET mig:b FLOAT 2 VALUES 3 4").expect("b");
    run_str(
        c,
        &format!("AI.MODELEXECUTE {key} INPUTS 2 mig:a mig:b OUTPUTS 1 mig:out"),
    )
    .unwrap_or_else(|e| panic!("{when}: run {key}: {e}"));
    assert_eq!(
        run_str(c, "AI.TENSORGET mig:out VALUES").expect("out"),
        floats(expected),
        "{when}: {key}"
    );
}

#[test]
fn models_of_every_version_and_backend_load_and_run() {
    let mut server = Server::start();
    let reference = Server::start();
    let mut r = reference.client();
    let early_replica = server.start_replica();
    let mut c = server.client();
    // Each restored model, and what it computes.
    let mut entries: Vec<Restored> = Vec::new();
    let mut expected: Vec<[&str; 2]> = Vec::new();
    for case in &MODELS {
        if !backend_built(case.plugin) {
            eprintln!("{} is not built; its models are skipped", case.plugin);
            continue;
        }
        let blob = model_bytes(case.file.0, case.file.1);
        for encver in 0..=4u64 {
            let key = format!("m:{encver}:{}", case.backend);
            let tag = format!("tag {encver}");
            let (batchsize, minbatchsize, minbatchtimeout) = match (case.batching, encver) {
                (false, _) => (0, 0, 0),
                (true, 0 | 1) => (4, 2, 0),
                (true, _) => (4, 2, 7),
            };
            // RedisAI's chunking, with a chunk size that divides the blob (an empty last
            // chunk), a small one, and one larger than the blob.
            let chunk_size = match encver {
                1 => 64,
                2 => blob.len(),
                3 => 1 << 20,
                _ => 1000,
            };
            let m = RaiModel {
                backend: case.backend,
                device: "CPU",
                tag: tag.as_bytes(),
                batchsize,
                minbatchsize,
                minbatchtimeout,
                inputs: case.inputs,
                outputs: case.outputs,
                blob: &blob,
                chunk_size,
            };
            let fields = rai::model_fields(encver, &m);
            restore_ok(&mut c, &key, &rai::module_dump(rai::MODEL, encver, &fields));
            model_reference(&mut r, &key, &m);
            same_answers(&mut c, &mut r, &key, &MODEL_LINES, "restored");
            run_model(&mut c, &key, &case.expected, "restored");
            entries.push((key, encver, fields));
            expected.push(case.expected);
        }
    }
    if entries.is_empty() {
        return;
    }
    let keys: Vec<&str> = entries.iter().map(|entry| entry.0.as_str()).collect();
    let runs: Vec<String> = keys
        .iter()
        .flat_map(|key| {
            [
                "AI.TENSORSET mig:a FLOAT 2 VALUES 1 2".to_owned(),
                "AI.TENSORSET mig:b FLOAT 2 VALUES 3 4".to_owned(),
                format!("AI.MODELEXECUTE {key} INPUTS 2 mig:a mig:b OUTPUTS 1 mig:out"),
            ]
        })
        .collect();
    let runs: Vec<&str> = runs.iter().map(String::as_str).collect();
    check_rdb_file(rai::MODEL, &entries, &mut r, &MODEL_LINES, &runs);
    check_stages(
        &mut server,
        &early_replica,
        &mut r,
        &keys,
        &MODEL_LINES,
        |c, i, when| run_model(c, keys[i], &expected[i], when),
    );
}

#[test]
fn a_model_its_backend_refuses_is_kept_with_the_reason() {
    let mut server = Server::start();
    let mut c = server.client();
    let m = RaiModel {
        backend: "TORCH",
        device: "CPU",
        tag: b"broken",
        batchsize: 0,
        minbatchsize: 0,
        minbatchtimeout: 0,
        inputs: &[],
        outputs: &[],
        blob: b"this is not TorchScript",
        chunk_size: 8,
    };
    restore_ok(
        &mut c,
        "broken",
        &rai::module_dump(rai::MODEL, 4, &rai::model_fields(4, &m)),
    );
    let check = |c: &mut Connection| {
        assert_eq!(
            run_str(c, "AI.MODELGET broken BLOB").expect("BLOB"),
            Value::BulkString(b"this is not TorchScript".to_vec())
        );
        run_str(c, "AI.TENSORSET mig:a FLOAT 2 VALUES 1 2").expect("a");
        let err = error_text(run_str(
            c,
            "AI.MODELEXECUTE broken INPUTS 2 mig:a mig:a OUTPUTS 1 mig:out",
        ));
        assert!(err.contains("model cannot run"), "{err}");
    };
    check(&mut c);
    let digest = digest_value(&mut c, "broken");
    run_str(&mut c, "DEBUG RELOAD").expect("DEBUG RELOAD");
    check(&mut c);
    assert_eq!(digest_value(&mut c, "broken"), digest);
    server.restart();
    let mut c = server.client();
    check(&mut c);
    assert_eq!(digest_value(&mut c, "broken"), digest);
}

/// A RedisAI model placed on a GPU this build has no backend for is kept, with the
/// reason, like a model whose backend refuses it.
#[test]
fn a_gpu_model_without_a_gpu_backend_is_kept() {
    let server = Server::start();
    let mut c = server.client();
    let blob = model_bytes("onnx", "add.onnx");
    let m = RaiModel {
        backend: "ONNX",
        device: "GPU:0",
        tag: b"gpu",
        batchsize: 0,
        minbatchsize: 0,
        minbatchtimeout: 0,
        inputs: &["a", "b"],
        outputs: &["c"],
        blob: &blob,
        chunk_size: 512,
    };
    restore_ok(
        &mut c,
        "gpu",
        &rai::module_dump(rai::MODEL, 3, &rai::model_fields(3, &m)),
    );
    assert_eq!(
        run_str(&mut c, "AI.MODELGET gpu BLOB").expect("BLOB"),
        Value::BulkString(blob.clone())
    );
    let meta = format!(
        "{:?}",
        run_str(&mut c, "AI.MODELGET gpu META").expect("META")
    );
    assert!(meta.contains("GPU:0") && meta.contains("gpu"), "{meta}");
    run_str(&mut c, "AI.TENSORSET mig:a FLOAT 2 VALUES 1 2").expect("a");
    let run_result = run_str(
        &mut c,
        "AI.MODELEXECUTE gpu INPUTS 2 mig:a mig:a OUTPUTS 1 mig:out",
    );
    if backend_built("redisai_onnxruntime") {
        // Only a CPU build of the backend: the model cannot run, and says why.
        if let Err(err) = run_result {
            let text = err.to_string();
            assert!(text.contains("model cannot run"), "{text}");
        }
    }
    let digest = digest_value(&mut c, "gpu");
    run_str(&mut c, "DEBUG RELOAD").expect("DEBUG RELOAD");
    assert_eq!(digest_value(&mut c, "gpu"), digest);
}
