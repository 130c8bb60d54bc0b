//! Hostile payloads in RedisAI's encodings: every truncation of valid values, huge or
//! inconsistent counts, and encodings that are neither RedisAI's nor ours.

use super::*;

/// Every prefix of a valid value's fields (re-framed with a correct checksum), and
/// values with huge or inconsistent counts: RESTORE answers an error, nothing crashes.
#[test]
fn hostile_redisai_payloads_are_refused() {
    use Field::{Signed as S, Unsigned as U};
    let server = Server::start();
    let mut c = server.client();
    let model = RaiModel {
        backend: "ONNX",
        device: "CPU",
        tag: b"t",
        batchsize: 2,
        minbatchsize: 1,
        minbatchtimeout: 3,
        inputs: &["x"],
        outputs: &["y"],
        blob: b"0123456789abcdef",
        chunk_size: 5,
    };
    let valid: Vec<(&str, u64, Vec<Field>)> = vec![
        (
            rai::TENSOR,
            3,
            rai::tensor_fields(3, "FLOAT", &[2], &f32_blob(&[1.0, 2.0]), &[]),
        ),
        (
            rai::TENSOR,
            4,
            rai::tensor_fields(4, "STRING", &[2], b"ab\0c\0", &[3, 2]),
        ),
        (rai::MODEL, 0, rai::model_fields(0, &model)),
        (rai::MODEL, 4, rai::model_fields(4, &model)),
        (
            rai::SCRIPT,
            4,
            rai::script_fields(4, "CPU", b"t", "def f(x):\n  return x\n", &["f"]),
        ),
    ];
    let mut refused = 0;
    let mut accepted = 0;
    for (type_name, encver, fields) in &valid {
        let value = rai::module_value(type_name, *encver, fields);
        // Cut inside the fields (after the module id, before the EOF opcode). RESTORE
        // reads on into the payload's trailer, so a cut near the end can still make a
        // well-formed (different) value: then it must be a usable one.
        for cut in 9..value.len() - 1 {
            let payload = rai::dump_payload(rai::TYPE_MODULE_2, &value[..cut]);
            match restore(&mut c, "hostile", &payload) {
                Err(_) => refused += 1,
                Ok(_) => {
                    accepted += 1;
                    assert_eq!(
                        run_str(&mut c, "TYPE hostile").expect("TYPE"),
                        Value::SimpleString((*type_name).to_owned())
                    );
                    let digest = digest_value(&mut c, "hostile");
                    assert_ne!(digest, Value::Nil, "{type_name} v{encver} cut at {cut}");
                    run_str(&mut c, "DEL hostile").expect("DEL");
                }
            }
            assert_eq!(
                run_str(&mut c, "PING").expect("alive"),
                Value::SimpleString("PONG".to_owned())
            );
        }
        // Fewer fields than the encoding has, properly terminated.
        for keep in 0..fields.len() {
            let payload = rai::module_dump(type_name, *encver, &fields[..keep]);
            assert!(
                restore(&mut c, "hostile", &payload).is_err(),
                "{type_name} v{encver} with {keep} fields was accepted"
            );
            refused += 1;
        }
    }
    assert!(
        accepted * 10 < refused,
        "{accepted} truncated payloads accepted, {refused} refused"
    );
    let cpu = rai::c_str("CPU");
    // A v3 ONNX model on the CPU with an empty tag, then `rest`.
    let onnx_v3 =
        |rest: &[Field]| [vec![U(3), cpu.clone(), rai::bytes(b"")], rest.to_vec()].concat();
    let (ab, abcd) = (rai::bytes(b"ab"), rai::bytes(b"abcd"));
    let huge: Vec<(&str, u64, Vec<Field>)> = vec![
        // Tensor rank 2^40, 2^63 (negative as signed), lanes 4, unknown dtype.
        (
            rai::TENSOR,
            2,
            vec![U(1), U(0), U(32), U(2), U(1), U(1 << 40)],
        ),
        (rai::TENSOR, 4, vec![U(2), U(32), S(i64::MIN)]),
        (rai::TENSOR, 4, vec![U(2), U(32), S(1 << 40)]),
        (
            rai::TENSOR,
            1,
            vec![
                U(1),
                U(0),
                U(32),
                U(2),
                U(4),
                U(1),
                U(1),
                U(1),
                U(0),
                rai::bytes(&[0; 16]),
            ],
        ),
        (rai::TENSOR, 4, vec![U(5), U(32), S(0), rai::bytes(&[0; 4])]),
        // Dims whose product overflows, and data of the wrong length.
        (
            rai::TENSOR,
            4,
            vec![
                U(2),
                U(32),
                S(2),
                S(1 << 40),
                S(1 << 40),
                rai::bytes(&[0; 4]),
            ],
        ),
        (
            rai::TENSOR,
            4,
            vec![U(2), U(32), S(1), S(3), rai::bytes(&[0; 4])],
        ),
        // A STRING tensor claiming 2^40 elements, and one whose elements lack NULs.
        (
            rai::TENSOR,
            4,
            vec![U(7), U(8), S(1), S(1 << 40), rai::bytes(b"a\0"), U(2)],
        ),
        (
            rai::TENSOR,
            4,
            vec![U(7), U(8), S(1), S(2), rai::bytes(b"abc"), U(1), U(2)],
        ),
        // Model: unknown backend, 2^62 inputs, 2^62 chunks, chunks longer or shorter
        // than the length, a length of 2^62, an unknown device.
        (rai::MODEL, 3, vec![U(9), cpu.clone()]),
        (rai::MODEL, 3, onnx_v3(&[U(0), U(0), U(0), U(1 << 62)])),
        (
            rai::MODEL,
            3,
            onnx_v3(&[U(0), U(0), U(0), U(0), U(0), U(4), U(1 << 62), ab.clone()]),
        ),
        (
            rai::MODEL,
            3,
            onnx_v3(&[U(0), U(0), U(0), U(0), U(0), U(2), U(1), abcd]),
        ),
        (
            rai::MODEL,
            3,
            onnx_v3(&[U(0), U(0), U(0), U(0), U(0), U(1 << 62), U(1), ab]),
        ),
        (
            rai::MODEL,
            3,
            vec![U(3), rai::c_str("TPU"), rai::bytes(b"")],
        ),
        // Script: 2^62 entry points.
        (
            rai::SCRIPT,
            3,
            vec![cpu.clone(), rai::bytes(b""), rai::c_str("x"), U(1 << 62)],
        ),
    ];
    for (type_name, encver, fields) in &huge {
        let result = restore(
            &mut c,
            "hostile",
            &rai::module_dump(type_name, *encver, fields),
        );
        assert!(result.is_err(), "{type_name} v{encver} {fields:?} accepted");
        refused += 1;
    }
    // Encodings that are neither RedisAI's nor ours.
    for encver in [5u64, 50, 99, 101, 1023] {
        let fields = rai::tensor_fields(4, "FLOAT", &[1], &f32_blob(&[1.0]), &[]);
        let err = error_text(restore(
            &mut c,
            "hostile",
            &rai::module_dump(rai::TENSOR, encver, &fields),
        ));
        assert!(err.contains("Bad data format"), "{err}");
        refused += 1;
    }
    assert_eq!(
        run_str(&mut c, "EXISTS hostile").expect("EXISTS"),
        Value::Int(0)
    );
    assert_eq!(
        run_str(&mut c, "PING").expect("PING"),
        Value::SimpleString("PONG".to_owned())
    );
    eprintln!("{refused} hostile payloads refused, {accepted} truncations well-formed");
}
