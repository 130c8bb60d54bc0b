//! Parsing of the script commands' arguments, with RedisAI's error texts.

use super::Calling;
use crate::device::Device;
use crate::model::parse::ParseError;
use crate::tensor::parse::parse_i64;

fn err<T>(text: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError(text.into()))
}

fn is(arg: &[u8], keyword: &str) -> bool {
    arg.eq_ignore_ascii_case(keyword.as_bytes())
}

/// The parsed `AI.SCRIPTSTORE` / `AI.SCRIPTSET` arguments (after the key).
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptSpec<'a> {
    pub device: Device,
    pub device_name: &'a [u8],
    pub tag: &'a [u8],
    /// Callable functions (SCRIPTSTORE); empty for the deprecated SCRIPTSET.
    pub entry_points: Vec<String>,
    pub source: &'a [u8],
}

/// Parses `device [TAG t] ENTRY_POINTS n fn... SOURCE src` (SCRIPTSTORE) or, when
/// `legacy`, `device [TAG t] SOURCE src` (SCRIPTSET).
pub fn parse_script_store<'a>(
    args: &[&'a [u8]],
    legacy: bool,
) -> Result<ScriptSpec<'a>, ParseError> {
    let Some((&device_name, rest)) = args.split_first() else {
        return err("ERR Invalid DEVICE");
    };
    let device =
        Device::parse(device_name).ok_or_else(|| ParseError("ERR Invalid DEVICE".into()))?;
    let device = device.check_index().map_err(ParseError)?;
    let mut position = 0;
    let mut tag: &[u8] = b"";
    if rest.first().is_some_and(|a| is(a, "TAG")) {
        let Some(&value) = rest.get(1) else {
            return err("ERR Insufficient arguments, missing TAG value");
        };
        tag = value;
        position = 2;
    }
    let mut entry_points = Vec::new();
    if !legacy {
        match rest.get(position) {
            Some(arg) if is(arg, "ENTRY_POINTS") => {}
            _ => return err("ERR Insufficient arguments, missing script entry points"),
        }
        position += 1;
        let count = rest
            .get(position)
            .and_then(|c| parse_i64(c))
            .ok_or_else(|| {
                ParseError(
                    "ERR Non numeric entry points number provided to AI.SCRIPTSTORE command".into(),
                )
            })?;
        let count = usize::try_from(count)
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| ParseError("ERR Invalid number of entry points".into()))?;
        position += 1;
        let available = rest[position..]
            .iter()
            .take_while(|a| !is(a, "SOURCE"))
            .count();
        // RedisAI read `count` names whatever they were, then looked for SOURCE.
        if count > rest.len() - position {
            return err("ERR Insufficient arguments, missing script entry points");
        }
        if available != count {
            return err("ERR Insufficient arguments, missing script SOURCE");
        }
        for name in &rest[position..position + count] {
            let name = std::str::from_utf8(name)
                .map_err(|_| ParseError("ERR entry point names must be UTF-8".into()))?;
            if name.contains('\0') {
                return err("ERR entry point names must not contain NUL");
            }
            entry_points.push(name.to_owned());
        }
        position += count;
    }
    match rest.get(position) {
        Some(arg) if is(arg, "SOURCE") => {}
        _ => return err("ERR Insufficient arguments, missing script SOURCE"),
    }
    position += 1;
    let Some(&source) = rest.get(position) else {
        return err("ERR Insufficient arguments, missing script SOURCE");
    };
    if rest.len() > position + 1 {
        return err("ERR Invalid argument after the script SOURCE");
    }
    if source.contains(&0) {
        return err("ERR script SOURCE must not contain NUL");
    }
    Ok(ScriptSpec {
        device,
        device_name,
        tag,
        entry_points,
        source,
    })
}

/// The parsed `AI.SCRIPTEXECUTE` / `AI.SCRIPTRUN` arguments (after the command name).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScriptExecuteArgs<'a> {
    pub script_key: &'a [u8],
    pub function: &'a [u8],
    pub keys: Vec<&'a [u8]>,
    pub inputs: Vec<&'a [u8]>,
    pub args: Vec<&'a [u8]>,
    pub outputs: Vec<&'a [u8]>,
    pub timeout_ms: Option<u64>,
    /// `Lists` for SCRIPTEXECUTE, `Positional` for SCRIPTRUN.
    pub calling: Calling,
}

const SCOPES: [&str; 5] = ["KEYS", "INPUTS", "ARGS", "OUTPUTS", "TIMEOUT"];

fn is_scope(arg: &[u8]) -> bool {
    SCOPES.iter().any(|s| is(arg, s))
}

fn unexpected(arg: &[u8]) -> String {
    format!(
        "ERR Invalid AI.SCRIPTEXECUTE command. Unexpected argument: {}",
        String::from_utf8_lossy(arg)
    )
}

/// `n item...` after a scope keyword.
fn counted<'a>(
    args: &[&'a [u8]],
    position: &mut usize,
    scope: &str,
) -> Result<Vec<&'a [u8]>, ParseError> {
    let Some(&count) = args.get(*position) else {
        return err(format!("ERR Missing arguments after {scope} keyword"));
    };
    let count = parse_i64(count).filter(|&n| n >= 0).ok_or_else(|| {
        ParseError(format!(
            "ERR Invalid or negative value found in number of {scope}"
        ))
    })? as usize;
    *position += 1;
    let rest = &args[*position..];
    if count > 0 && rest.is_empty() {
        return err(format!("ERR Missing arguments after {scope} keyword"));
    }
    if rest.len() < count || rest.get(count).is_some_and(|a| !is_scope(a)) {
        return err(format!(
            "ERR Number of pre declared {scope} to be used in the command does not match the \
             number of given arguments"
        ));
    }
    let items = rest[..count].to_vec();
    *position += count;
    Ok(items)
}

/// Parses `key fn [KEYS n k...] [INPUTS n k...] [ARGS n a...] [OUTPUTS n k...]
/// [TIMEOUT ms]`. `in_dag` refuses TIMEOUT (the DAG's covers the op); an op's KEYS
/// are taken, as RedisAI took them (the DAG adds them to the keys its scripts may use).
pub fn parse_script_execute<'a>(
    args: &[&'a [u8]],
    in_dag: bool,
) -> Result<ScriptExecuteArgs<'a>, ParseError> {
    let (Some(&script_key), Some(&function)) = (args.first(), args.get(1)) else {
        return err("ERR wrong number of arguments for 'AI.SCRIPTEXECUTE' command");
    };
    let mut parsed = ScriptExecuteArgs {
        script_key,
        function,
        ..ScriptExecuteArgs::default()
    };
    let mut position = 2;
    // A command (not a DAG op) starts with KEYS or INPUTS.
    if !in_dag
        && !args
            .get(position)
            .is_some_and(|first| is(first, "KEYS") || is(first, "INPUTS"))
    {
        return err("ERR KEYS or INPUTS scope must be provided first for AI.SCRIPTEXECUTE command");
    }
    // Each scope at most once, in any order; TIMEOUT ends the command.
    let mut seen = [false; 4];
    while let Some(&arg) = args.get(position) {
        let Some(scope) = SCOPES.iter().position(|s| is(arg, s)) else {
            return err(unexpected(arg));
        };
        position += 1;
        if scope == 4 {
            if in_dag {
                return err("ERR TIMEOUT not allowed within a DAG command");
            }
            let Some(&value) = args.get(position) else {
                return err("ERR No value provided for TIMEOUT in AI.SCRIPTEXECUTE");
            };
            let ms = parse_i64(value)
                .filter(|&ms| ms > 0)
                .ok_or_else(|| ParseError("ERR Invalid value for TIMEOUT".into()))?;
            parsed.timeout_ms = Some(ms as u64);
            position += 1;
            if position != args.len() {
                return err("ERR Encountered problem parsing AI.SCRIPTEXECUTE");
            }
            break;
        }
        if std::mem::replace(&mut seen[scope], true) {
            return err(format!(
                "ERR Already Encountered {} scope in AI.SCRIPTEXECUTE command",
                SCOPES[scope]
            ));
        }
        match scope {
            0 => parsed.keys = counted(args, &mut position, "KEYS")?,
            1 => parsed.inputs = listed(args, &mut position, "inputs", "inputs")?,
            2 => parsed.args = listed(args, &mut position, "keys", "args")?,
            _ => parsed.outputs = listed(args, &mut position, "outputs", "outputs")?,
        }
    }
    Ok(parsed)
}

/// `n item...` after INPUTS, ARGS or OUTPUTS, with RedisAI's texts (`count_name` is
/// what its count error calls the count: ARGS' says "keys").
fn listed<'a>(
    args: &[&'a [u8]],
    position: &mut usize,
    count_name: &str,
    items_name: &str,
) -> Result<Vec<&'a [u8]>, ParseError> {
    let Some(&count) = args.get(*position) else {
        return err("ERR Invalid arguments provided to AI.SCRIPTEXECUTE");
    };
    let count = parse_i64(count).ok_or_else(|| {
        ParseError(format!(
            "ERR Invalid argument for {count_name} count in AI.SCRIPTEXECUTE"
        ))
    })?;
    let count = usize::try_from(count).map_err(|_| {
        ParseError(format!(
            "ERR Invalid or negative value found in number of {}",
            items_name.to_ascii_uppercase()
        ))
    })?;
    *position += 1;
    let rest = &args[*position..];
    if rest.len() < count {
        return err(format!(
            "ERR number of {items_name} to AI.SCRIPTEXECUTE command does not match the number \
             of given arguments"
        ));
    }
    *position += count;
    Ok(rest[..count].to_vec())
}

/// Parses the deprecated `key fn [TIMEOUT ms] INPUTS k... [$ k...] OUTPUTS k...`. The
/// `$` marker (a variadic list of inputs) is accepted once; the inputs keep their order
/// and `calling` says where the ones after `$` start.
pub fn parse_script_run<'a>(args: &[&'a [u8]]) -> Result<ScriptExecuteArgs<'a>, ParseError> {
    let (Some(&script_key), Some(&function)) = (args.first(), args.get(1)) else {
        return err("ERR wrong number of arguments for 'AI.SCRIPTRUN' command");
    };
    if is(function, "INPUTS") || is(function, "OUTPUTS") {
        return err("ERR function name not specified");
    }
    let mut parsed = ScriptExecuteArgs {
        script_key,
        function,
        ..ScriptExecuteArgs::default()
    };
    let mut position = 2;
    let mut variadic = None;
    if args.get(position).is_some_and(|a| is(a, "TIMEOUT")) {
        let ms = args
            .get(position + 1)
            .and_then(|v| parse_i64(v))
            .filter(|&ms| ms > 0)
            .ok_or_else(|| ParseError("ERR Invalid value for TIMEOUT".into()))?;
        parsed.timeout_ms = Some(ms as u64);
        position += 2;
    }
    if !args.get(position).is_some_and(|a| is(a, "INPUTS")) {
        return err("ERR INPUTS not specified");
    }
    position += 1;
    while let Some(&arg) = args.get(position) {
        if is(arg, "OUTPUTS") {
            break;
        }
        if arg == b"$" {
            if variadic.is_some() {
                return err("ERR Already encountered a variable size list of tensors");
            }
            variadic = Some(parsed.inputs.len());
        } else {
            parsed.inputs.push(arg);
        }
        position += 1;
    }
    if !args.get(position).is_some_and(|a| is(a, "OUTPUTS")) {
        return err("ERR OUTPUTS not specified");
    }
    position += 1;
    parsed.outputs = args[position..].to_vec();
    if parsed.outputs.is_empty() && parsed.inputs.is_empty() {
        return err("ERR Insufficient arguments, missing INPUTS and OUTPUTS");
    }
    parsed.calling = Calling::Positional { variadic };
    Ok(parsed)
}

/// What a command may do to one of its keys, for ACL read/write key selectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAccess {
    Read,
    Write,
    /// KEYS of a script: `redis.execute` may read and write them.
    ReadWrite,
}

/// Key positions (indexes into the full argument list, command name at 0) of
/// `AI.SCRIPTEXECUTE` with their access: the script and INPUTS are read, OUTPUTS
/// written, KEYS read and written. Tolerant of bad input.
pub fn script_execute_keys(args: &[&[u8]]) -> Vec<(usize, KeyAccess)> {
    let mut keys = Vec::new();
    if args.len() > 1 {
        keys.push((1, KeyAccess::Read));
    }
    let mut index = 3;
    while index < args.len() {
        let arg = args[index];
        let access = if is(arg, "KEYS") {
            Some(KeyAccess::ReadWrite)
        } else if is(arg, "INPUTS") {
            Some(KeyAccess::Read)
        } else if is(arg, "OUTPUTS") {
            Some(KeyAccess::Write)
        } else {
            None
        };
        if access.is_some() || is(arg, "ARGS") {
            let count = args
                .get(index + 1)
                .and_then(|a| parse_i64(a))
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(0);
            let first = index + 2;
            let end = first.saturating_add(count).min(args.len());
            if let Some(access) = access {
                keys.extend((first..end).map(|position| (position, access)));
            }
            index = end.max(index + 2);
        } else {
            index += 1;
        }
    }
    keys
}

/// Key positions of the deprecated `AI.SCRIPTRUN` with their access: the script and
/// inputs are read, outputs written. Follows [`parse_script_run`] word for word, so a
/// key named like a keyword (`INPUTS`, a second `$`) is declared as the parser reads
/// it, and everything after the first `OUTPUTS` is an output.
pub fn script_run_keys(args: &[&[u8]]) -> Vec<(usize, KeyAccess)> {
    let mut keys = Vec::new();
    if args.len() > 1 {
        keys.push((1, KeyAccess::Read));
    }
    let mut index = 3;
    if args.get(index).is_some_and(|a| is(a, "TIMEOUT")) {
        index += 2;
    }
    if !args.get(index).is_some_and(|a| is(a, "INPUTS")) {
        // The parser refuses this command before it touches a key.
        return keys;
    }
    index += 1;
    let mut variadic = false;
    while let Some(&arg) = args.get(index) {
        if is(arg, "OUTPUTS") {
            break;
        }
        if arg == b"$" && !variadic {
            variadic = true;
        } else {
            keys.push((index, KeyAccess::Read));
        }
        index += 1;
    }
    keys.extend((index + 1..args.len()).map(|position| (position, KeyAccess::Write)));
    keys
}

#[cfg(test)]
mod tests {
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
        let args =
            words("AI.SCRIPTEXECUTE s bar KEYS 1 k INPUTS 2 a b ARGS 1 x OUTPUTS 1 c TIMEOUT 5");
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
}
