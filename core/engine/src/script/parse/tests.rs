//! Unit tests of the script command parsers.

use super::*;

fn words(text: &str) -> Vec<&[u8]> {
    text.split_whitespace().map(str::as_bytes).collect()
}

#[test]
fn parses_scriptstore() {
    let args = words("CPU TAG v1 ENTRY_POINTS 2 bar baz SOURCE src");
    let spec = parse_script_store(&args, false).expect("valid");
    assert_eq!(spec.tag, b"v1");
    assert_eq!(spec.entry_points, vec!["bar", "baz"]);
    assert_eq!(spec.source, b"src");
    let legacy = parse_script_store(&words("GPU:1 SOURCE src"), true).expect("valid");
    assert!(legacy.entry_points.is_empty());
    assert_eq!(legacy.device_name, b"GPU:1");
}

#[test]
fn scriptstore_errors() {
    let cases = [
        (
            "bad_device ENTRY_POINTS 1 bar SOURCE s",
            false,
            "ERR Invalid DEVICE",
        ),
        (
            "CPU SOURCE s",
            false,
            "ERR Insufficient arguments, missing script entry points",
        ),
        (
            "CPU TAG t SOURCE s",
            false,
            "ERR Insufficient arguments, missing script entry points",
        ),
        (
            "CPU TAG",
            false,
            "ERR Insufficient arguments, missing TAG value",
        ),
        (
            "CPU ENTRY_POINTS x bar SOURCE s",
            false,
            "ERR Non numeric entry points number provided to AI.SCRIPTSTORE command",
        ),
        (
            "CPU ENTRY_POINTS 0 SOURCE s",
            false,
            "ERR Invalid number of entry points",
        ),
        (
            "CPU ENTRY_POINTS 2 bar SOURCE s",
            false,
            "ERR Insufficient arguments, missing script SOURCE",
        ),
        (
            "CPU ENTRY_POINTS 1 bar baz SOURCE s",
            false,
            "ERR Insufficient arguments, missing script SOURCE",
        ),
        (
            "CPU ENTRY_POINTS 5 bar SOURCE s",
            false,
            "ERR Insufficient arguments, missing script entry points",
        ),
        (
            "CPU ENTRY_POINTS 1 bar",
            false,
            "ERR Insufficient arguments, missing script SOURCE",
        ),
        (
            "CPU ENTRY_POINTS 1 bar SOURCE",
            false,
            "ERR Insufficient arguments, missing script SOURCE",
        ),
        (
            "CPU ENTRY_POINTS 1 bar SOURCE a b",
            false,
            "ERR Invalid argument after the script SOURCE",
        ),
        (
            "CPU NOT_SOURCE s",
            true,
            "ERR Insufficient arguments, missing script SOURCE",
        ),
        (
            "CPU",
            true,
            "ERR Insufficient arguments, missing script SOURCE",
        ),
    ];
    for (text, legacy, expected) in cases {
        assert_eq!(
            parse_script_store(&words(text), legacy).expect_err(text).0,
            expected,
            "{text}"
        );
    }
}

#[test]
fn parses_scriptexecute() {
    let args = words("s bar KEYS 1 k INPUTS 2 a b ARGS 2 x y OUTPUTS 2 c d TIMEOUT 100");
    let parsed = parse_script_execute(&args, false).expect("valid");
    assert_eq!(parsed.keys, vec![&b"k"[..]]);
    assert_eq!(parsed.inputs.len(), 2);
    assert_eq!(parsed.args, vec![&b"x"[..], &b"y"[..]]);
    assert_eq!(parsed.outputs.len(), 2);
    assert_eq!(parsed.timeout_ms, Some(100));
    let inputs_only = parse_script_execute(&words("s bar INPUTS 1 a"), false).expect("valid");
    assert!(inputs_only.keys.is_empty() && inputs_only.outputs.is_empty());
}

#[test]
fn scriptexecute_errors() {
    let cases = [
        ("s bar KEYS 1", "ERR Missing arguments after KEYS keyword"),
        ("s bar KEYS not_number key", "ERR Invalid or negative value found in number of KEYS"),
        ("s bar KEYS 2 key", "ERR Number of pre declared KEYS to be used in the command does not match the number of given arguments"),
        ("s bar KEYS 1 a b", "ERR Number of pre declared KEYS to be used in the command does not match the number of given arguments"),
        ("s bar OUTPUTS 1 a", "ERR KEYS or INPUTS scope must be provided first for AI.SCRIPTEXECUTE command"),
        ("s bar", "ERR KEYS or INPUTS scope must be provided first for AI.SCRIPTEXECUTE command"),
        ("s bar INPUTS -1 a", "ERR Invalid or negative value found in number of INPUTS"),
        ("s bar INPUTS 1 a OUTPUTS", "ERR Invalid arguments provided to AI.SCRIPTEXECUTE"),
        ("s bar KEYS 1 k ARGS", "ERR Invalid arguments provided to AI.SCRIPTEXECUTE"),
        ("s bar INPUTS OUTPUTS", "ERR Invalid argument for inputs count in AI.SCRIPTEXECUTE"),
        ("s bar INPUTS 1 a ARGS x", "ERR Invalid argument for keys count in AI.SCRIPTEXECUTE"),
        ("s bar INPUTS 1 a OUTPUTS x", "ERR Invalid argument for outputs count in AI.SCRIPTEXECUTE"),
        ("s bar INPUTS 3 a", "ERR number of inputs to AI.SCRIPTEXECUTE command does not match the number of given arguments"),
        ("s bar INPUTS 1 a ARGS 3 x", "ERR number of args to AI.SCRIPTEXECUTE command does not match the number of given arguments"),
        ("s bar INPUTS 1 a OUTPUTS 2 c", "ERR number of outputs to AI.SCRIPTEXECUTE command does not match the number of given arguments"),
        ("s bar INPUTS 1 a TIMEOUT", "ERR No value provided for TIMEOUT in AI.SCRIPTEXECUTE"),
        ("s bar INPUTS 1 a TIMEOUT -43", "ERR Invalid value for TIMEOUT"),
        ("s bar INPUTS 1 a TIMEOUT TIMEOUT", "ERR Invalid value for TIMEOUT"),
        ("s bar INPUTS 1 a TIMEOUT 10 bad_arg", "ERR Encountered problem parsing AI.SCRIPTEXECUTE"),
        ("s bar INPUTS 1 a bad_arg", "ERR Invalid AI.SCRIPTEXECUTE command. Unexpected argument: bad_arg"),
        ("s INPUTS 1 a OUTPUTS 1 b", "ERR KEYS or INPUTS scope must be provided first for AI.SCRIPTEXECUTE command"),
        ("s bar KEYS 1 a INPUTS 1 a KEYS 1 a", "ERR Already Encountered KEYS scope in AI.SCRIPTEXECUTE command"),
        ("s bar INPUTS 1 a OUTPUTS 1 b INPUTS 1 a", "ERR Already Encountered INPUTS scope in AI.SCRIPTEXECUTE command"),
    ];
    for (text, expected) in cases {
        assert_eq!(
            parse_script_execute(&words(text), false).expect_err(text).0,
            expected,
            "{text}"
        );
    }
    assert_eq!(
        parse_script_execute(&words("s bar KEYS 1 a INPUTS 1 a"), true)
            .expect("an op's KEYS, as RedisAI took them")
            .keys,
        vec![&b"a"[..]]
    );
    assert_eq!(
        parse_script_execute(&words("s bar INPUTS 1 a TIMEOUT 4"), true)
            .expect_err("dag")
            .0,
        "ERR TIMEOUT not allowed within a DAG command"
    );
}

#[test]
fn parses_scriptrun_with_variadic_marker() {
    let parsed =
        parse_script_run(&words("s bar_variadic INPUTS a $ b1 b2 OUTPUTS c")).expect("valid");
    assert_eq!(parsed.inputs, vec![&b"a"[..], &b"b1"[..], &b"b2"[..]]);
    assert_eq!(parsed.outputs, vec![&b"c"[..]]);
    assert_eq!(parsed.calling, Calling::Positional { variadic: Some(1) });
    let timed = parse_script_run(&words("s bar TIMEOUT 5 INPUTS a OUTPUTS c")).expect("valid");
    assert_eq!(timed.timeout_ms, Some(5));
    assert_eq!(timed.calling, Calling::Positional { variadic: None });
    let empty_list = parse_script_run(&words("s f INPUTS a b $ OUTPUTS c")).expect("valid");
    assert_eq!(
        empty_list.calling,
        Calling::Positional { variadic: Some(2) }
    );
    let execute = parse_script_execute(&words("s bar INPUTS 1 a"), false).expect("valid");
    assert_eq!(execute.calling, Calling::Lists);
}

#[test]
fn scriptrun_errors() {
    let cases = [
        ("s INPUTS a b OUTPUTS c", "ERR function name not specified"),
        ("s bar a OUTPUTS c", "ERR INPUTS not specified"),
        ("s bar INPUTS a b", "ERR OUTPUTS not specified"),
        (
            "s bar INPUTS $ a $ b OUTPUTS",
            "ERR Already encountered a variable size list of tensors",
        ),
        (
            "s bar INPUTS OUTPUTS",
            "ERR Insufficient arguments, missing INPUTS and OUTPUTS",
        ),
        (
            "s bar TIMEOUT x INPUTS a OUTPUTS c",
            "ERR Invalid value for TIMEOUT",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(
            parse_script_run(&words(text)).expect_err(text).0,
            expected,
            "{text}"
        );
    }
}

#[test]
fn key_positions() {
    let args = words("AI.SCRIPTEXECUTE s bar KEYS 1 k INPUTS 2 a b ARGS 1 x OUTPUTS 1 c TIMEOUT 5");
    use KeyAccess::{Read, ReadWrite, Write};
    assert_eq!(
        script_execute_keys(&args),
        vec![(1, Read), (5, ReadWrite), (8, Read), (9, Read), (15, Write)]
    );
    assert_eq!(
        script_execute_keys(&words("AI.SCRIPTEXECUTE s bar KEYS 9 k")),
        vec![(1, Read), (5, ReadWrite)]
    );
    let args = words("AI.SCRIPTRUN s bar INPUTS a $ b OUTPUTS c");
    assert_eq!(
        script_run_keys(&args),
        vec![(1, Read), (4, Read), (6, Read), (8, Write)]
    );
}
