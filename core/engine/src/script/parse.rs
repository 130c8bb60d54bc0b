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
mod tests;
