//! AI.TENSORSET / AI.TENSORGET against a real server.

use redisai_tests::int_array as ints;
use redisai_tests::redis::Value;
use redisai_tests::{error_text, run, run_str, Server};

fn bulk(bytes: &[u8]) -> Value {
    Value::BulkString(bytes.to_vec())
}

fn status(text: &str) -> Value {
    Value::SimpleString(text.to_owned())
}

/// A blob per dtype with a few distinctive values, and the VALUES reply expected for it.
fn sample(dtype: &str) -> (Vec<u8>, Vec<&'static str>, Value) {
    let as_doubles =
        |texts: &[&str]| Value::Array(texts.iter().map(|t| bulk(t.as_bytes())).collect());
    match dtype {
        "FLOAT" => (
            [1.5f32, -2.25, 1e-3, 3.0e8]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
            vec!["1.5", "-2.25", "0.001", "300000000"],
            // f32 values widened to doubles, as RedisAI replies them.
            as_doubles(&["1.5", "-2.25", "0.0010000000474974513", "300000000"]),
        ),
        "DOUBLE" => (
            [1.5f64, -2.25, 1e-3, 3.0e8]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
            vec!["1.5", "-2.25", "0.001", "300000000"],
            as_doubles(&["1.5", "-2.25", "0.001", "300000000"]),
        ),
        "INT8" => (
            [-128i8, -1, 0, 127]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
            vec!["-128", "-1", "0", "127"],
            ints(&[-128, -1, 0, 127]),
        ),
        "INT16" => (
            [-32768i16, -1, 0, 32767]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
            vec!["-32768", "-1", "0", "32767"],
            ints(&[-32768, -1, 0, 32767]),
        ),
        "INT32" => (
            [i32::MIN, -1, 0, i32::MAX]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
            vec!["-2147483648", "-1", "0", "2147483647"],
            ints(&[i32::MIN as i64, -1, 0, i32::MAX as i64]),
        ),
        "INT64" => (
            [i64::MIN, -1, 0, i64::MAX]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
            vec!["-9223372036854775808", "-1", "0", "9223372036854775807"],
            ints(&[i64::MIN, -1, 0, i64::MAX]),
        ),
        "UINT8" => (
            vec![0, 1, 200, 255],
            vec!["0", "1", "200", "255"],
            ints(&[0, 1, 200, 255]),
        ),
        "UINT16" => (
            [0u16, 1, 40000, 65535]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
            vec!["0", "1", "40000", "65535"],
            ints(&[0, 1, 40000, 65535]),
        ),
        "BOOL" => (
            vec![1, 0, 0, 1],
            vec!["1", "0", "0", "1"],
            ints(&[1, 0, 0, 1]),
        ),
        "STRING" => (
            b"alpha\0\0b c\0\xce\xbb\0".to_vec(),
            vec!["alpha", "", "b c", "\u{3bb}"],
            Value::Array(
                [&b"alpha"[..], b"", b"b c", "\u{3bb}".as_bytes()]
                    .iter()
                    .map(|v| bulk(v))
                    .collect(),
            ),
        ),
        other => panic!("no sample for {other}"),
    }
}

const DTYPES: [&str; 10] = [
    "FLOAT", "DOUBLE", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "BOOL", "STRING",
];

#[test]
fn every_dtype_round_trips_in_every_format() {
    let server = Server::start();
    let mut c = server.client();
    for dtype in DTYPES {
        let (blob, values, expected_values) = sample(dtype);
        let meta = vec![
            bulk(b"dtype"),
            bulk(dtype.as_bytes()),
            bulk(b"shape"),
            ints(&[2, 2]),
        ];

        let set = run(
            &mut c,
            &[
                b"AI.TENSORSET",
                b"blob_key",
                dtype.as_bytes(),
                b"2",
                b"2",
                b"BLOB",
                &blob,
            ],
        );
        assert_eq!(set.expect("TENSORSET BLOB"), Value::Okay, "{dtype}");
        let mut words: Vec<&[u8]> = vec![
            b"AI.TENSORSET",
            b"values_key",
            dtype.as_bytes(),
            b"2",
            b"2",
            b"VALUES",
        ];
        words.extend(values.iter().map(|v| v.as_bytes()));
        assert_eq!(
            run(&mut c, &words).expect("TENSORSET VALUES"),
            Value::Okay,
            "{dtype}"
        );

        for key in ["blob_key", "values_key"] {
            let get = |format: &str| {
                run_str(
                    &mut server.client(),
                    &format!("AI.TENSORGET {key} {format}"),
                )
            };
            assert_eq!(get("BLOB").expect("BLOB"), bulk(&blob), "{dtype} {key}");
            assert_eq!(
                get("VALUES").expect("VALUES"),
                expected_values,
                "{dtype} {key}"
            );
            assert_eq!(
                get("META").expect("META"),
                Value::Array(meta.clone()),
                "{dtype} {key}"
            );

            let mut with_blob = meta.clone();
            with_blob.extend([bulk(b"blob"), bulk(&blob)]);
            assert_eq!(
                get("META BLOB").expect("META BLOB"),
                Value::Array(with_blob.clone())
            );
            assert_eq!(
                get("BLOB META").expect("BLOB META"),
                Value::Array(with_blob.clone())
            );
            assert_eq!(
                get("").expect("no format"),
                Value::Array(with_blob),
                "default is META BLOB"
            );

            let mut with_values = meta.clone();
            with_values.extend([bulk(b"values"), expected_values.clone()]);
            assert_eq!(
                get("META VALUES").expect("META VALUES"),
                Value::Array(with_values)
            );
        }
    }
}

#[test]
fn tensors_without_data_are_zero_filled() {
    let server = Server::start();
    let mut c = server.client();
    for dtype in DTYPES {
        assert_eq!(
            run_str(&mut c, &format!("AI.TENSORSET z {dtype} 2 3")).expect("set"),
            Value::Okay
        );
        let values = run_str(&mut c, "AI.TENSORGET z VALUES").expect("get");
        let Value::Array(values) = values else {
            panic!("{dtype}: not an array")
        };
        assert_eq!(values.len(), 6, "{dtype}");
        for value in values {
            match value {
                Value::Int(v) => assert_eq!(v, 0, "{dtype}"),
                Value::BulkString(b) if dtype == "STRING" => assert!(b.is_empty()),
                Value::BulkString(b) => assert_eq!(b, b"0", "{dtype}"),
                other => panic!("{dtype}: unexpected {other:?}"),
            }
        }
    }
}

#[test]
fn the_documented_example() {
    let server = Server::start();
    let mut c = server.client();
    assert_eq!(
        run_str(&mut c, "AI.TENSORSET mytensor FLOAT 2 2 VALUES 1 2 3 4").expect("set"),
        Value::Okay
    );
    let blob = run_str(&mut c, "AI.TENSORGET mytensor BLOB").expect("get");
    assert_eq!(
        blob,
        bulk(b"\x00\x00\x80?\x00\x00\x00@\x00\x00@@\x00\x00\x80@")
    );
    assert_eq!(
        run_str(&mut c, "ai.tensorget mytensor values").expect("lower-case works"),
        Value::Array(vec![bulk(b"1"), bulk(b"2"), bulk(b"3"), bulk(b"4")])
    );
}

#[test]
fn error_texts_match_redisai() {
    let server = Server::start();
    let mut c = server.client();
    let cases: &[(&[&[u8]], &str)] = &[
        (&[b"AI.TENSORSET", b"t", b"FLOAT32", b"1"], "ERR invalid data type"),
        (&[b"AI.TENSORSET", b"t", b"FLOAT", b"-1"], "ERR invalid or negative value found in tensor shape"),
        (&[b"AI.TENSORSET", b"t", b"FLOAT", b"0"], "ERR invalid or negative value found in tensor shape"),
        (&[b"AI.TENSORSET", b"t", b"FLOAT", b"two"], "ERR invalid or negative value found in tensor shape"),
        (&[b"AI.TENSORSET", b"t", b"FLOAT", b"2", b"BLOB", b"\0\0\0\0"], "ERR data length does not match tensor shape and type"),
        (&[b"AI.TENSORSET", b"t", b"FLOAT", b"2", b"VALUES", b"1"], "ERR wrong number of values was given in 'AI.TENSORSET' command"),
        (&[b"AI.TENSORSET", b"t", b"FLOAT", b"1", b"VALUES", b"1", b"2"], "ERR wrong number of values was given in 'AI.TENSORSET' command"),
        (&[b"AI.TENSORSET", b"t", b"BOOL", b"2", b"VALUES", b"1", b"2"], "ERR invalid value"),
        (&[b"AI.TENSORSET", b"t", b"BOOL", b"2", b"BLOB", b"\x01\x07"], "ERR BOOL tensor elements must be 0 or 1"),
        (&[b"AI.TENSORSET", b"t", b"FLOAT", b"1", b"VALUES", b"one"], "ERR invalid value"),
        (&[b"AI.TENSORSET", b"t", b"INT8", b"1", b"VALUES", b"1.5"], "ERR invalid value"),
        (&[b"AI.TENSORSET", b"t", b"UINT8", b"1", b"VALUES", b"256"], "ERR invalid value"),
        (&[b"AI.TENSORSET", b"t", b"INT16", b"1", b"VALUES", b"-32769"], "ERR invalid value"),
        (&[b"AI.TENSORSET", b"t", b"FLOAT", b"1", b"BLOB"], "ERR a single binary string should come after the BLOB argument in 'AI.TENSORSET' command"),
        (&[b"AI.TENSORSET", b"t", b"STRING", b"2", b"BLOB", b"a\0b"], "ERR Number of string elements in data blob does not match tensor length"),
        (&[b"AI.TENSORSET", b"t"], "ERR wrong number of arguments for 'AI.TENSORSET' command"),
        (&[b"AI.TENSORSET", b"t", b"FLOAT"], "ERR wrong number of arguments for 'AI.TENSORSET' command"),
        (&[b"AI.TENSORGET"], "ERR wrong number of arguments for 'AI.TENSORGET' command"),
        (&[b"AI.TENSORGET", b"t", b"META", b"BLOB", b"VALUES"], "ERR wrong number of arguments for 'AI.TENSORGET' command"),
        (&[b"AI.TENSORGET", b"missing"], "ERR tensor key is empty or in a different shard"),
        (&[b"AI.TENSORSET", b"t", b"STRING", b"2", b"VALUES", b"ok", b"a\0b"], "ERR C-string value contains null character"),
    ];
    for (args, expected) in cases {
        assert_eq!(
            &error_text(run(&mut c, args)),
            expected,
            "{:?}",
            String::from_utf8_lossy(&args.concat())
        );
    }
    run_str(&mut c, "AI.TENSORSET t FLOAT 1").expect("set");
    assert_eq!(
        error_text(run_str(&mut c, "AI.TENSORGET t BLOB VALUES")),
        "ERR both BLOB and VALUES specified"
    );
    assert_eq!(
        error_text(run_str(&mut c, "AI.TENSORGET t JSON")),
        "ERR unsupported data format"
    );
    assert_eq!(
        error_text(run_str(&mut c, "AI.TENSORSET t FLOAT 1 VALUES x")),
        "ERR invalid value"
    );
    assert_eq!(
        run_str(&mut c, "AI.TENSORGET t VALUES").expect("failed writes leave the old value"),
        Value::Array(vec![bulk(b"0")])
    );
}

#[test]
fn wrongtype_both_ways() {
    let server = Server::start();
    let mut c = server.client();
    run_str(&mut c, "SET plain hello").expect("set");
    run_str(&mut c, "AI.TENSORSET tensor INT32 1 VALUES 7").expect("tensorset");
    let wrongtype = "WRONGTYPE Operation against a key holding the wrong kind of value";
    assert_eq!(
        error_text(run_str(&mut c, "AI.TENSORSET plain FLOAT 1")),
        wrongtype
    );
    assert_eq!(error_text(run_str(&mut c, "AI.TENSORGET plain")), wrongtype);
    assert_eq!(error_text(run_str(&mut c, "GET tensor")), wrongtype);
    assert_eq!(error_text(run_str(&mut c, "LPUSH tensor x")), wrongtype);
    assert_eq!(
        run_str(&mut c, "GET plain").expect("untouched"),
        bulk(b"hello")
    );
    assert_eq!(
        run_str(&mut c, "TYPE tensor").expect("type"),
        status("AI_TENSOR")
    );
}

#[test]
fn huge_blobs_and_shapes_are_refused_cleanly() {
    let server = Server::start();
    let mut c = server.client();
    let big = vec![7u8; 64 << 20];
    assert_eq!(
        error_text(run(
            &mut c,
            &[b"AI.TENSORSET", b"t", b"FLOAT", b"1", b"BLOB", &big]
        )),
        "ERR data length does not match tensor shape and type"
    );
    let overflow = error_text(run_str(
        &mut c,
        "AI.TENSORSET t DOUBLE 9223372036854775807 9223372036854775807 4",
    ));
    assert!(overflow.starts_with("ERR tensor too large"), "{overflow}");
    let too_big = error_text(run_str(&mut c, "AI.TENSORSET t FLOAT 100000 100000 100"));
    assert!(too_big.starts_with("ERR tensor too large"), "{too_big}");
    let too_big_blob = error_text(run_str(
        &mut c,
        "AI.TENSORSET t FLOAT 100000 100000 100 BLOB x",
    ));
    assert_eq!(
        too_big_blob,
        "ERR data length does not match tensor shape and type"
    );
    assert_eq!(run_str(&mut c, "EXISTS t").expect("exists"), Value::Int(0));
    let used: String = redisai_tests::redis::cmd("INFO")
        .arg("memory")
        .query(&mut c)
        .expect("info");
    let used_bytes: u64 = used
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory");
    assert!(
        used_bytes < 512 << 20,
        "no huge allocation was kept: {used_bytes}"
    );
    assert_eq!(run_str(&mut c, "PING").expect("alive"), status("PONG"));
}

#[test]
fn command_getkeys_and_key_introspection() {
    let server = Server::start();
    let mut c = server.client();
    assert_eq!(
        run_str(&mut c, "COMMAND GETKEYS AI.TENSORSET k1 FLOAT 1 VALUES 1").expect("getkeys"),
        Value::Array(vec![bulk(b"k1")])
    );
    assert_eq!(
        run_str(&mut c, "COMMAND GETKEYS AI.TENSORGET k2 META").expect("getkeys"),
        Value::Array(vec![bulk(b"k2")])
    );
    run(
        &mut c,
        &[
            b"AI.TENSORSET",
            b"m",
            b"UINT8",
            b"1024",
            b"BLOB",
            &[1u8; 1024],
        ],
    )
    .expect("set");
    let Value::Int(usage) = run_str(&mut c, "MEMORY USAGE m").expect("usage") else {
        panic!("int")
    };
    assert!((1024..1024 + 512).contains(&usage), "MEMORY USAGE {usage}");
    assert_eq!(run_str(&mut c, "COPY m m2").expect("copy"), Value::Int(1));
    assert_eq!(
        run_str(&mut c, "AI.TENSORGET m2 BLOB").expect("copy content"),
        bulk(&[1u8; 1024])
    );
    let d1 = run_str(&mut c, "DEBUG DIGEST-VALUE m").expect("digest");
    let d2 = run_str(&mut c, "DEBUG DIGEST-VALUE m2").expect("digest");
    assert_eq!(d1, d2);
    run_str(&mut c, "AI.TENSORSET m2 UINT8 1024").expect("overwrite");
    assert_ne!(
        run_str(&mut c, "DEBUG DIGEST-VALUE m2").expect("digest"),
        d1
    );
}

#[test]
fn flags_deny_writes_in_oom_and_replicate_reads() {
    let server = Server::start();
    let mut c = server.client();
    let info = run_str(&mut c, "COMMAND INFO AI.TENSORSET AI.TENSORGET").expect("command info");
    let text = format!("{info:?}");
    assert!(text.contains("denyoom"), "{text}");
    assert!(text.contains("readonly"), "{text}");
    run_str(&mut c, "CONFIG SET maxmemory 1").expect("maxmemory");
    let oom = error_text(run_str(&mut c, "AI.TENSORSET t FLOAT 1"));
    assert!(oom.starts_with("OOM"), "{oom}");
}
