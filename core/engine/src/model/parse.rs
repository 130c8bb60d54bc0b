//! Parsing of the model commands' arguments, with RedisAI's error texts.

use std::fmt;

use crate::device::Device;
use crate::tensor::parse::parse_i64;

/// A parse error; its text is the reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(text: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError(text.into()))
}

/// Autobatching settings; zero means off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Batching {
    pub size: u64,
    pub min_size: u64,
    pub min_timeout_ms: u64,
}

/// The parsed `AI.MODELSTORE` / `AI.MODELSET` arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec<'a> {
    /// Upper-case backend name.
    pub backend: String,
    pub device: Device,
    pub tag: &'a [u8],
    pub batching: Batching,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub blob_chunks: Vec<&'a [u8]>,
}

impl ModelSpec<'_> {
    pub fn blob(&self) -> Vec<u8> {
        self.blob_chunks.concat()
    }
}

/// Whether the backend takes INPUTS/OUTPUTS names at store time (TensorFlow only).
pub fn takes_io_names(backend: &str) -> bool {
    backend == "TF"
}

struct Cursor<'a, 'b> {
    args: &'b [&'a [u8]],
    position: usize,
}

impl<'a> Cursor<'a, '_> {
    fn peek(&self) -> Option<&'a [u8]> {
        self.args.get(self.position).copied()
    }

    fn next(&mut self) -> Option<&'a [u8]> {
        let arg = self.peek()?;
        self.position += 1;
        Some(arg)
    }

    fn next_is(&mut self, keyword: &str) -> bool {
        match self.peek() {
            Some(arg) if arg.eq_ignore_ascii_case(keyword.as_bytes()) => {
                self.position += 1;
                true
            }
            _ => false,
        }
    }

    fn take(&mut self, count: usize) -> Vec<&'a [u8]> {
        let end = self.position.saturating_add(count).min(self.args.len());
        let taken = self.args[self.position.min(end)..end].to_vec();
        self.position = end;
        taken
    }

    fn at_end(&self) -> bool {
        self.position >= self.args.len()
    }

    fn rest(&self) -> &'_ [&'a [u8]] {
        &self.args[self.position.min(self.args.len())..]
    }
}

fn parse_u64(arg: Option<&[u8]>) -> Option<u64> {
    parse_i64(arg?).and_then(|v| u64::try_from(v).ok())
}

fn text(arg: &[u8]) -> String {
    String::from_utf8_lossy(arg).into_owned()
}

/// Parses `backend device [TAG t] [BATCHSIZE n [MINBATCHSIZE m [MINBATCHTIMEOUT t]]]
/// [INPUTS n names...] [OUTPUTS n names...] BLOB chunk...` (everything after the key).
/// With `legacy` (AI.MODELSET), INPUTS/OUTPUTS name lists carry no counts.
pub fn parse_model_store<'a>(args: &[&'a [u8]], legacy: bool) -> Result<ModelSpec<'a>, ParseError> {
    let mut cursor = Cursor { args, position: 0 };
    let backend = cursor
        .next()
        .map(|b| text(b).to_ascii_uppercase())
        .unwrap_or_default();
    let device = match cursor.next().and_then(Device::parse) {
        Some(device) => device.check_index().map_err(ParseError)?,
        None => return err("ERR Invalid DEVICE"),
    };
    let mut spec = ModelSpec {
        backend,
        device,
        tag: b"",
        batching: Batching::default(),
        inputs: Vec::new(),
        outputs: Vec::new(),
        blob_chunks: Vec::new(),
    };
    if cursor.next_is("TAG") {
        match cursor.next() {
            Some(tag) => spec.tag = tag,
            None => return err("ERR Insufficient arguments, missing model BLOB"),
        }
    }
    // Each option in RedisAI's order; a later one is checked against the earlier ones.
    if cursor.next_is("BATCHSIZE") {
        if spec.backend == "TFLITE" {
            return err("ERR Auto-batching not supported by the TFLITE backend");
        }
        spec.batching.size = parse_u64(cursor.next())
            .ok_or_else(|| ParseError("ERR Invalid argument for BATCHSIZE".into()))?;
    }
    if cursor.next_is("MINBATCHSIZE") {
        // AI.MODELSET refused MINBATCHSIZE without BATCHSIZE whatever its value.
        if legacy && spec.batching.size == 0 {
            return err("ERR MINBATCHSIZE specified without BATCHSIZE");
        }
        spec.batching.min_size = parse_u64(cursor.next())
            .ok_or_else(|| ParseError("ERR Invalid argument for MINBATCHSIZE".into()))?;
        if spec.batching.size == 0 && spec.batching.min_size > 0 {
            return err("ERR MINBATCHSIZE specified without BATCHSIZE");
        }
    }
    if cursor.next_is("MINBATCHTIMEOUT") {
        if legacy && spec.batching.size == 0 {
            return err("ERR MINBATCHTIMEOUT specified without BATCHSIZE");
        }
        if legacy && spec.batching.min_size == 0 {
            return err("ERR MINBATCHTIMEOUT specified without MINBATCHSIZE");
        }
        spec.batching.min_timeout_ms = parse_u64(cursor.next())
            .ok_or_else(|| ParseError("ERR Invalid argument for MINBATCHTIMEOUT".into()))?;
        if spec.batching.min_size == 0 && spec.batching.min_timeout_ms > 0 {
            return err("ERR MINBATCHTIMEOUT specified without MINBATCHSIZE");
        }
    }
    if cursor.at_end() {
        return err("ERR Insufficient arguments, missing model BLOB");
    }
    if legacy {
        parse_legacy_names(&mut cursor, &mut spec)?;
    } else if takes_io_names(&spec.backend) {
        if !cursor.next_is("INPUTS") {
            return err("ERR INPUTS not specified for TF");
        }
        spec.inputs = parse_names(&mut cursor, "input")?;
        if !cursor.next_is("OUTPUTS") {
            return err("ERR OUTPUTS not specified for TF");
        }
        spec.outputs = parse_names(&mut cursor, "output")?;
    } else if cursor
        .peek()
        .is_some_and(|arg| arg.eq_ignore_ascii_case(b"INPUTS"))
    {
        return err("ERR INPUTS argument should not be specified for this backend");
    }
    if !cursor.next_is("BLOB") {
        return err(if cursor.at_end() {
            "ERR Insufficient arguments, missing model BLOB"
        } else {
            "ERR Invalid argument, expected BLOB"
        });
    }
    if cursor.at_end() {
        return err("ERR Insufficient arguments, missing model BLOB");
    }
    spec.blob_chunks = cursor.rest().to_vec();
    Ok(spec)
}

/// `n name...` after INPUTS or OUTPUTS (`what` is "input" or "output").
fn parse_names(cursor: &mut Cursor<'_, '_>, what: &str) -> Result<Vec<String>, ParseError> {
    let count = parse_u64(cursor.next())
        .filter(|&n| n > 0)
        .ok_or_else(|| ParseError(format!("ERR Invalid argument for {what}_count")))?;
    if (cursor.rest().len() as u64) < count {
        return err(format!(
            "ERR number of model {what}s does not match the number of given arguments"
        ));
    }
    Ok(cursor.take(count as usize).into_iter().map(text).collect())
}

/// AI.MODELSET's `[INPUTS name...] [OUTPUTS name...]`, names without counts, with the
/// texts of RedisAI's deprecated parser (which read them for TF only).
fn parse_legacy_names(
    cursor: &mut Cursor<'_, '_>,
    spec: &mut ModelSpec<'_>,
) -> Result<(), ParseError> {
    let io_names = takes_io_names(&spec.backend);
    let mut names_until = |until: &[&str]| {
        let mut names = Vec::new();
        while let Some(arg) = cursor.peek() {
            if until.iter().any(|k| arg.eq_ignore_ascii_case(k.as_bytes())) {
                break;
            }
            names.push(text(arg));
            cursor.position += 1;
        }
        names
    };
    let before_blob = names_until(&["BLOB"]);
    if !io_names {
        // RedisAI read names only for TF and skipped anything else up to BLOB.
        return Ok(());
    }
    if before_blob.is_empty() {
        return err("ERR Insufficient arguments, INPUTS and OUTPUTS not specified");
    }
    let mut words = before_blob.into_iter();
    if !words
        .next()
        .is_some_and(|w| w.eq_ignore_ascii_case("INPUTS"))
    {
        return err("ERR INPUTS not specified");
    }
    let mut inputs = Vec::new();
    let mut saw_outputs = false;
    for word in words.by_ref() {
        if word.eq_ignore_ascii_case("OUTPUTS") {
            saw_outputs = true;
            break;
        }
        inputs.push(word);
    }
    if !saw_outputs {
        return err("ERR OUTPUTS not specified");
    }
    spec.inputs = inputs;
    spec.outputs = words.collect();
    Ok(())
}

/// The parsed `AI.MODELEXECUTE` / `AI.MODELRUN` arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecuteArgs<'a> {
    pub model_key: &'a [u8],
    pub inputs: Vec<&'a [u8]>,
    pub outputs: Vec<&'a [u8]>,
    pub timeout_ms: Option<u64>,
}

/// Parses `key INPUTS n k... OUTPUTS n k... [TIMEOUT ms]` (everything after the command).
pub fn parse_model_execute<'a>(args: &[&'a [u8]]) -> Result<ExecuteArgs<'a>, ParseError> {
    let mut cursor = Cursor { args, position: 0 };
    let model_key = cursor.next().unwrap_or_default();
    if !cursor.next_is("INPUTS") {
        return err("ERR INPUTS not specified");
    }
    let n_inputs = read_count(&mut cursor, "input_count", "Input")?;
    if n_inputs > cursor.rest().len() {
        return err(
            "ERR number of input keys to AI.MODELEXECUTE command does not match the number of given arguments",
        );
    }
    let inputs = cursor.take(n_inputs);
    if !cursor.next_is("OUTPUTS") {
        return err("ERR OUTPUTS not specified");
    }
    let n_outputs = read_count(&mut cursor, "output_count", "Output")?;
    if cursor.rest().len() < n_outputs {
        return err(
            "ERR number of output keys to AI.MODELEXECUTE command does not match the number of given arguments",
        );
    }
    let outputs = cursor.take(n_outputs);
    let timeout_ms = parse_timeout(&mut cursor, "")?;
    Ok(ExecuteArgs {
        model_key,
        inputs,
        outputs,
        timeout_ms,
    })
}

/// Reads a positive count of keys.
fn read_count(cursor: &mut Cursor<'_, '_>, name: &str, label: &str) -> Result<usize, ParseError> {
    let count = cursor
        .next()
        .and_then(parse_i64)
        .ok_or_else(|| ParseError(format!("ERR Invalid argument for {name}")))?;
    if count <= 0 {
        return err(format!("ERR {label} count must be a positive integer"));
    }
    Ok(usize::try_from(count).unwrap_or(usize::MAX))
}

/// An optional trailing `TIMEOUT ms`; anything else is an error.
fn parse_timeout(
    cursor_args: &mut Cursor<'_, '_>,
    context: &str,
) -> Result<Option<u64>, ParseError> {
    let mut timeout = None;
    if cursor_args.next_is("TIMEOUT") {
        let value = cursor_args
            .next()
            .ok_or_else(|| ParseError(format!("ERR No value provided for TIMEOUT{context}")))?;
        let ms = parse_i64(value)
            .filter(|&ms| ms > 0)
            .ok_or_else(|| ParseError("ERR Invalid value for TIMEOUT".into()))?;
        timeout = Some(ms as u64);
    }
    if let Some(extra) = cursor_args.next() {
        return err(format!("ERR Invalid argument: {}", text(extra)));
    }
    Ok(timeout)
}

/// Parses the deprecated `key [TIMEOUT ms] INPUTS k... OUTPUTS k...`.
pub fn parse_model_run<'a>(args: &[&'a [u8]]) -> Result<ExecuteArgs<'a>, ParseError> {
    let mut cursor = Cursor { args, position: 0 };
    let model_key = cursor.next().unwrap_or_default();
    let mut timeout_ms = None;
    if cursor.next_is("TIMEOUT") {
        let ms = cursor
            .next()
            .and_then(parse_i64)
            .filter(|&ms| ms > 0)
            .ok_or_else(|| ParseError("ERR Invalid value for TIMEOUT".into()))?;
        timeout_ms = Some(ms as u64);
    }
    if !cursor.next_is("INPUTS") {
        return err("ERR INPUTS not specified");
    }
    let mut inputs = Vec::new();
    while let Some(arg) = cursor.peek() {
        if arg.eq_ignore_ascii_case(b"OUTPUTS") {
            break;
        }
        inputs.push(arg);
        cursor.position += 1;
    }
    if !cursor.next_is("OUTPUTS") {
        return err("ERR OUTPUTS not specified");
    }
    let outputs: Vec<&[u8]> = cursor.rest().to_vec();
    if inputs.is_empty() || outputs.is_empty() {
        return err("ERR wrong number of arguments for 'AI.MODELRUN' command");
    }
    Ok(ExecuteArgs {
        model_key,
        inputs,
        outputs,
        timeout_ms,
    })
}

/// Key positions (1-based argument indexes) of an AI.MODELEXECUTE call, as far as they
/// can be told from possibly malformed arguments.
pub fn model_execute_key_positions(args: &[&[u8]]) -> Vec<usize> {
    let mut positions = vec![1];
    let count_at = |index: usize| -> Option<usize> {
        args.get(index)
            .and_then(|a| parse_i64(a))
            .and_then(|n| usize::try_from(n).ok())
    };
    // args[0] is the command, args[1] the model key, args[2] INPUTS, args[3] its count.
    let Some(n_inputs) = count_at(3) else {
        positions.retain(|&p| p < args.len());
        return positions;
    };
    let first_input: usize = 4;
    let after_inputs = first_input.saturating_add(n_inputs).min(args.len());
    positions.extend(first_input..after_inputs);
    let Some(n_outputs) = count_at(after_inputs + 1) else {
        positions.retain(|&p| p < args.len());
        return positions;
    };
    let first_output = after_inputs + 2;
    positions.extend(first_output..first_output.saturating_add(n_outputs).min(args.len()));
    positions.retain(|&p| p < args.len());
    positions
}

/// Key positions of the deprecated AI.MODELRUN. Follows [`parse_model_run`] word for
/// word: every input up to the first `OUTPUTS` and everything after it is a key, also
/// a key named `INPUTS` or `OUTPUTS`.
pub fn model_run_key_positions(args: &[&[u8]]) -> Vec<usize> {
    let mut positions = Vec::new();
    if args.len() > 1 {
        positions.push(1);
    }
    let mut index = 2;
    if args
        .get(index)
        .is_some_and(|a| a.eq_ignore_ascii_case(b"TIMEOUT"))
    {
        index += 2;
    }
    if !args
        .get(index)
        .is_some_and(|a| a.eq_ignore_ascii_case(b"INPUTS"))
    {
        // The parser refuses this command before it touches a key.
        return positions;
    }
    let mut outputs = false;
    for (position, arg) in args.iter().enumerate().skip(index + 1) {
        if !outputs && arg.eq_ignore_ascii_case(b"OUTPUTS") {
            outputs = true;
        } else {
            positions.push(position);
        }
    }
    positions
}

#[cfg(test)]
mod tests;
