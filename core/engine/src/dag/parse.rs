//! Parsing AI.DAGEXECUTE / AI.DAGEXECUTE_RO / AI.DAGRUN / AI.DAGRUN_RO, with RedisAI's
//! error texts. Everything is checked here, before anything runs.

use crate::model::parse::{parse_model_execute, parse_model_run, ParseError};
use crate::script::parse::{parse_script_execute, parse_script_run};
use crate::script::Calling;
use crate::tensor::element_count;
use crate::tensor::parse::{parse_i64, DataArg, GetFormat, TensorArgs};

/// Which DAG command is being parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DagFlavor {
    pub read_only: bool,
    /// AI.DAGRUN(_RO): takes the deprecated AI.MODELRUN op syntax.
    pub deprecated: bool,
}

impl DagFlavor {
    pub fn command_name(self) -> &'static str {
        match (self.deprecated, self.read_only) {
            (false, false) => "AI.DAGEXECUTE",
            (false, true) => "AI.DAGEXECUTE_RO",
            (true, false) => "AI.DAGRUN",
            (true, true) => "AI.DAGRUN_RO",
        }
    }
}

/// One op of the DAG, with its local tensor names.
#[derive(Debug, Clone, PartialEq)]
pub enum OpSpec<'a> {
    TensorSet {
        name: &'a [u8],
        tensor: TensorArgs<'a>,
    },
    TensorGet {
        name: &'a [u8],
        format: GetFormat,
    },
    ModelExecute {
        model_key: &'a [u8],
        inputs: Vec<&'a [u8]>,
        outputs: Vec<&'a [u8]>,
    },
    ScriptExecute {
        script_key: &'a [u8],
        function: &'a [u8],
        inputs: Vec<&'a [u8]>,
        args: Vec<&'a [u8]>,
        outputs: Vec<&'a [u8]>,
        /// `Positional` for the deprecated AI.SCRIPTRUN op.
        calling: Calling,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct DagArgs<'a> {
    pub load: Vec<&'a [u8]>,
    /// Keys the DAG's scripts may touch through `redis.execute` (KEYS).
    pub keys: Vec<&'a [u8]>,
    pub persist: Vec<&'a [u8]>,
    pub routing: Option<&'a [u8]>,
    pub timeout_ms: Option<u64>,
    pub ops: Vec<OpSpec<'a>>,
}

const SEPARATOR: &[u8] = b"|>";

impl DagArgs<'_> {
    /// The bytes the DAG's AI.TENSORSET ops allocate for their local tensors (at least:
    /// a STRING element takes one byte here), so that a DAG, read-only ones included, is
    /// held to `maxmemory` before it allocates them. Saturates instead of overflowing.
    pub fn local_tensor_bytes(&self) -> u64 {
        self.ops
            .iter()
            .map(|op| match op {
                OpSpec::TensorSet { tensor, .. } => tensor_bytes(tensor),
                _ => 0,
            })
            .fold(0u64, u64::saturating_add)
    }
}

fn tensor_bytes(tensor: &TensorArgs<'_>) -> u64 {
    if let DataArg::Blob { bytes, .. } = tensor.data {
        return bytes.len() as u64;
    }
    let elements = element_count(&tensor.shape, tensor.dtype).unwrap_or(u64::MAX);
    let size = tensor.dtype.element_size().unwrap_or(1) as u64;
    elements.saturating_mul(size)
}

fn err<T>(text: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError(text.into()))
}

fn is(arg: &[u8], keyword: &str) -> bool {
    arg.eq_ignore_ascii_case(keyword.as_bytes())
}

/// Parses everything after the command name.
pub fn parse_dag<'a>(args: &'a [&'a [u8]], flavor: DagFlavor) -> Result<DagArgs<'a>, ParseError> {
    // AI.DAGRUN's shortest command is `AI.DAGRUN |> AI.TENSORGET key`.
    if args.is_empty() || (flavor.deprecated && args.len() < 3) {
        return if flavor.deprecated {
            err(format!(
                "ERR wrong number of arguments for '{}' command",
                flavor.command_name()
            ))
        } else {
            err(format!(
                "ERR missing arguments for '{}' command",
                flavor.command_name()
            ))
        };
    }
    let mut dag = DagArgs {
        load: Vec::new(),
        keys: Vec::new(),
        persist: Vec::new(),
        routing: None,
        timeout_ms: None,
        ops: Vec::new(),
    };
    let mut position = 0;
    while position < args.len() && args[position] != SEPARATOR {
        let arg = args[position];
        position += 1;
        if is(arg, "LOAD") {
            dag.load = counted_keys(args, &mut position, "LOAD", "to LOAD into DAG")?;
        } else if is(arg, "KEYS") && !flavor.deprecated {
            dag.keys = counted_keys(args, &mut position, "KEYS", "given as KEYS")?;
        } else if is(arg, "PERSIST") {
            if flavor.read_only {
                return err("ERR PERSIST cannot be specified in a read-only DAG");
            }
            dag.persist = counted_keys(
                args,
                &mut position,
                "PERSIST",
                "to PERSIST after DAG execution",
            )?;
        } else if is(arg, "ROUTING") {
            match args.get(position) {
                Some(&value) if value != SEPARATOR => dag.routing = Some(value),
                _ => return err("ERR Missing ROUTING value"),
            }
            position += 1;
        } else if is(arg, "TIMEOUT") {
            let Some(&value) = args.get(position) else {
                return err("ERR No value provided for TIMEOUT");
            };
            let ms = parse_i64(value)
                .filter(|&ms| ms > 0)
                .ok_or_else(|| ParseError("ERR Invalid value for TIMEOUT".into()))?;
            dag.timeout_ms = Some(ms as u64);
            position += 1;
        } else {
            return err(format!(
                "ERR Invalid DAG command. Unexpected argument:  {}",
                String::from_utf8_lossy(arg)
            ));
        }
    }
    if !flavor.deprecated
        && dag.load.is_empty()
        && dag.persist.is_empty()
        && dag.routing.is_none()
        && dag.keys.is_empty()
    {
        return err(
            "ERR AI.DAGEXECUTE and AI.DAGEXECUTE_RO commands must contain at least one out of \
             ROUTING, LOAD, PERSIST keywords",
        );
    }
    for op in args[position..].split(|&arg| arg == SEPARATOR).skip(1) {
        let (op, op_keys) = parse_op(op, flavor)?;
        // An op's own KEYS (the redisai client sends them with dag.scriptexecute) join
        // the DAG's: they are declared to Redis like the DAG's (see dag_key_positions).
        for key in op_keys {
            if !dag.keys.contains(&key) {
                dag.keys.push(key);
            }
        }
        dag.ops.push(op);
    }
    if dag.ops.is_empty() {
        return err("ERR DAG is empty");
    }
    Ok(dag)
}

/// `n key...` after LOAD or PERSIST.
fn counted_keys<'a>(
    args: &[&'a [u8]],
    position: &mut usize,
    keyword: &str,
    purpose: &str,
) -> Result<Vec<&'a [u8]>, ParseError> {
    let Some(&count) = args.get(*position) else {
        return err(format!(
            "ERR missing arguments after {keyword} keyword in DAG command"
        ));
    };
    let count = parse_i64(count).filter(|&n| n > 0).ok_or_else(|| {
        ParseError(format!(
            "ERR invalid or negative value found in number of keys to {keyword}"
        ))
    })? as usize;
    *position += 1;
    let available = args[*position..]
        .iter()
        .take_while(|&&arg| arg != SEPARATOR)
        .count();
    if available == 0 {
        return err(format!(
            "ERR missing arguments after {keyword} keyword in DAG command"
        ));
    }
    if available < count {
        return err(format!(
            "ERR number of keys {purpose} does not match the number of given arguments"
        ));
    }
    let keys = args[*position..*position + count].to_vec();
    *position += count;
    Ok(keys)
}

/// One op, with the KEYS it names (a SCRIPTEXECUTE's).
fn parse_op<'a>(
    op: &'a [&'a [u8]],
    flavor: DagFlavor,
) -> Result<(OpSpec<'a>, Vec<&'a [u8]>), ParseError> {
    let Some((&command, args)) = op.split_first() else {
        return err("ERR Unsupported command within DAG");
    };
    if is(command, "AI.TENSORSET") {
        if args.len() < 3 {
            return err("ERR wrong number of arguments for 'AI.TENSORSET' command");
        }
        let tensor = TensorArgs::parse(&args[1..]).map_err(|e| ParseError(e.to_string()))?;
        return Ok((
            OpSpec::TensorSet {
                name: args[0],
                tensor,
            },
            Vec::new(),
        ));
    }
    if is(command, "AI.TENSORGET") {
        if args.is_empty() || args.len() > 3 {
            return err("ERR wrong number of arguments for 'AI.TENSORGET' command");
        }
        let format = GetFormat::parse(&args[1..]).map_err(|e| ParseError(e.to_string()))?;
        return Ok((
            OpSpec::TensorGet {
                name: args[0],
                format,
            },
            Vec::new(),
        ));
    }
    if flavor.deprecated && (is(command, "AI.MODELEXECUTE") || is(command, "AI.SCRIPTEXECUTE")) {
        return err(format!(
            "ERR {} cannot be used in a deprecated AI.DAGRUN command",
            String::from_utf8_lossy(command).to_ascii_uppercase()
        ));
    }
    if is(command, "AI.MODELEXECUTE") {
        if args.len() < 7 {
            return err("ERR wrong number of arguments for 'AI.MODELEXECUTE' command");
        }
        let parsed = parse_model_execute(args)?;
        if parsed.timeout_ms.is_some() {
            return err("ERR TIMEOUT not allowed within a DAG command");
        }
        return Ok((
            OpSpec::ModelExecute {
                model_key: parsed.model_key,
                inputs: parsed.inputs,
                outputs: parsed.outputs,
            },
            Vec::new(),
        ));
    }
    if is(command, "AI.MODELRUN") {
        if !flavor.deprecated {
            return err(format!(
                "ERR Deprecated AI.MODELRUN cannot be used in {} command",
                flavor.command_name()
            ));
        }
        let parsed = parse_model_run(args)?;
        if parsed.timeout_ms.is_some() {
            return err("ERR TIMEOUT not allowed within a DAG command");
        }
        return Ok((
            OpSpec::ModelExecute {
                model_key: parsed.model_key,
                inputs: parsed.inputs,
                outputs: parsed.outputs,
            },
            Vec::new(),
        ));
    }
    if is(command, "AI.SCRIPTEXECUTE") || is(command, "AI.SCRIPTRUN") {
        if flavor.read_only {
            return err("ERR AI.SCRIPTEXECUTE command cannot be specified in a read-only DAG");
        }
        let parsed = if is(command, "AI.SCRIPTRUN") {
            if !flavor.deprecated {
                return err(format!(
                    "ERR Deprecated AI.SCRIPTRUN cannot be used in {} command",
                    flavor.command_name()
                ));
            }
            let parsed = parse_script_run(args)?;
            if parsed.timeout_ms.is_some() {
                return err("ERR TIMEOUT not allowed within a DAG command");
            }
            parsed
        } else {
            parse_script_execute(args, true)?
        };
        return Ok((
            OpSpec::ScriptExecute {
                script_key: parsed.script_key,
                function: parsed.function,
                inputs: parsed.inputs,
                args: parsed.args,
                outputs: parsed.outputs,
                calling: parsed.calling,
            },
            parsed.keys,
        ));
    }
    err("ERR Unsupported command within DAG")
}

/// Keyspace key positions (indexes into the full argument list, command name at 0) of
/// a DAG command: LOAD, PERSIST and ROUTING keys and the models of MODELEXECUTE ops.
/// Tensor names inside ops are local to the DAG and are not keys.
pub fn dag_key_positions(args: &[&[u8]]) -> Vec<usize> {
    let mut positions = Vec::new();
    let mut index = 1;
    while index < args.len() && args[index] != SEPARATOR {
        let arg = args[index];
        if is(arg, "LOAD") || is(arg, "PERSIST") || is(arg, "KEYS") {
            let count = args
                .get(index + 1)
                .and_then(|a| parse_i64(a))
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(0);
            let first = index + 2;
            let end = first.saturating_add(count).min(args.len());
            positions.extend((first..end).filter(|&i| args[i] != SEPARATOR));
            index = end.max(index + 2);
        } else if is(arg, "ROUTING") {
            if index + 1 < args.len() {
                positions.push(index + 1);
            }
            index += 2;
        } else {
            index += 1;
        }
    }
    while index < args.len() {
        if args[index] == SEPARATOR {
            let command = args.get(index + 1).copied().unwrap_or_default();
            if (is(command, "AI.MODELEXECUTE")
                || is(command, "AI.MODELRUN")
                || is(command, "AI.SCRIPTEXECUTE")
                || is(command, "AI.SCRIPTRUN"))
                && index + 2 < args.len()
            {
                positions.push(index + 2);
            }
            // An AI.SCRIPTEXECUTE op's own `KEYS n k...` (right after key and function).
            if is(command, "AI.SCRIPTEXECUTE")
                && args.get(index + 4).is_some_and(|arg| is(arg, "KEYS"))
            {
                let count = args
                    .get(index + 5)
                    .and_then(|a| parse_i64(a))
                    .and_then(|n| usize::try_from(n).ok())
                    .unwrap_or(0);
                let first = index + 6;
                let end = first.saturating_add(count).min(args.len());
                positions.extend((first..end).filter(|&i| args[i] != SEPARATOR));
            }
        }
        index += 1;
    }
    positions
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXECUTE: DagFlavor = DagFlavor {
        read_only: false,
        deprecated: false,
    };
    const EXECUTE_RO: DagFlavor = DagFlavor {
        read_only: true,
        deprecated: false,
    };
    const RUN: DagFlavor = DagFlavor {
        read_only: false,
        deprecated: true,
    };

    fn words(text: &str) -> Vec<&[u8]> {
        text.split_whitespace().map(str::as_bytes).collect()
    }

    #[test]
    fn parses_the_documented_example() {
        let args = words(
            "LOAD 1 a PERSIST 1 c TIMEOUT 50 |> AI.TENSORSET b FLOAT 1 VALUES 2 \
             |> AI.MODELEXECUTE m INPUTS 2 a b OUTPUTS 1 c |> AI.TENSORGET c VALUES",
        );
        let dag = parse_dag(&args, EXECUTE).expect("valid");
        assert_eq!(dag.load, vec![&b"a"[..]]);
        assert_eq!(dag.persist, vec![&b"c"[..]]);
        assert_eq!(dag.timeout_ms, Some(50));
        assert_eq!(dag.ops.len(), 3);
        assert!(matches!(dag.ops[1], OpSpec::ModelExecute { ref inputs, .. } if inputs.len() == 2));
    }

    #[test]
    fn local_tensor_bytes_count_every_tensorset_op() {
        let args = words(
            "ROUTING x |> AI.TENSORSET t INT8 536870912 |> AI.TENSORSET u DOUBLE 2 3 \
             |> AI.TENSORSET v FLOAT 2 VALUES 1 2 |> AI.TENSORSET w UINT8 3 BLOB abc \
             |> AI.TENSORGET t META",
        );
        let dag = parse_dag(&args, EXECUTE_RO).expect("valid");
        assert_eq!(dag.local_tensor_bytes(), 536_870_912 + 48 + 8 + 3);
        let huge =
            words("ROUTING x |> AI.TENSORSET t INT64 4611686018427387904 4 |> AI.TENSORGET t META");
        let dag = parse_dag(&huge, EXECUTE_RO).expect("valid");
        assert_eq!(dag.local_tensor_bytes(), u64::MAX);
    }

    #[test]
    fn errors_match_redisai() {
        let cases = [
            ("PERSIST 2 x y LOAD 1", EXECUTE, "ERR missing arguments after LOAD keyword in DAG command"),
            ("LOAD notnumber |> AI.TENSORGET x VALUES", EXECUTE, "ERR invalid or negative value found in number of keys to LOAD"),
            ("ROUTING a LOAD 2 a", EXECUTE, "ERR number of keys to LOAD into DAG does not match the number of given arguments"),
            ("ROUTING a LOAD 1 a PERSIST 1", EXECUTE, "ERR missing arguments after PERSIST keyword in DAG command"),
            ("ROUTING a PERSIST not_number a", EXECUTE, "ERR invalid or negative value found in number of keys to PERSIST"),
            ("ROUTING a PERSIST 2 a", EXECUTE, "ERR number of keys to PERSIST after DAG execution does not match the number of given arguments"),
            ("ROUTING a PERSIST 1 a TIMEOUT", EXECUTE, "ERR No value provided for TIMEOUT"),
            ("ROUTING a PERSIST 1 a TIMEOUT not_number", EXECUTE, "ERR Invalid value for TIMEOUT"),
            ("PERSIST 3 a b c ROUTING", EXECUTE, "ERR Missing ROUTING value"),
            ("ROUTING a PERSIST 1 a BAD_ARG", EXECUTE, "ERR Invalid DAG command. Unexpected argument:  BAD_ARG"),
            ("|> AI.TENSORSET a FLOAT 1 2 VALUES 5 10", EXECUTE, "ERR AI.DAGEXECUTE and AI.DAGEXECUTE_RO commands must contain at least one out of ROUTING, LOAD, PERSIST keywords"),
            ("ROUTING a |> AI.NOCOMMAND a FLOAT 1", EXECUTE, "ERR Unsupported command within DAG"),
            ("ROUTING v LOAD 1 v", EXECUTE, "ERR DAG is empty"),
            ("LOAD 1 v |> AI.MODELRUN m INPUTS v v OUTPUTS o", EXECUTE, "ERR Deprecated AI.MODELRUN cannot be used in AI.DAGEXECUTE command"),
            ("LOAD 1 v |> AI.SCRIPTRUN s bar INPUTS v OUTPUTS o", EXECUTE, "ERR Deprecated AI.SCRIPTRUN cannot be used in AI.DAGEXECUTE command"),
            ("PERSIST 1 t |> AI.TENSORSET t FLOAT 1 2 VALUES 5 10", EXECUTE_RO, "ERR PERSIST cannot be specified in a read-only DAG"),
            ("LOAD 1 v |> AI.SCRIPTEXECUTE s bar INPUTS 2 v v", EXECUTE_RO, "ERR AI.SCRIPTEXECUTE command cannot be specified in a read-only DAG"),
            ("LOAD 1 a |> AI.SCRIPTEXECUTE s bar INPUTS 1 a TIMEOUT 3", EXECUTE, "ERR TIMEOUT not allowed within a DAG command"),
            ("KEYS 2 a |> AI.TENSORGET a VALUES", EXECUTE, "ERR number of keys given as KEYS does not match the number of given arguments"),
            ("ROUTING a |> AI.TENSORSET a FLOAT 1 |> AI.TENSORGET", EXECUTE, "ERR wrong number of arguments for 'AI.TENSORGET' command"),
            ("ROUTING a |> AI.TENSORSET a FLOAT 1 |> AI.TENSORGET a META BLOB extra", EXECUTE, "ERR wrong number of arguments for 'AI.TENSORGET' command"),
            ("ROUTING a |> AI.TENSORSET a FLOAT 1 |> AI.TENSORSET", EXECUTE, "ERR wrong number of arguments for 'AI.TENSORSET' command"),
            ("ROUTING a |> AI.TENSORSET a FLOAT 0", EXECUTE, "ERR invalid or negative value found in tensor shape"),
            ("ROUTING a |> AI.MODELEXECUTE m INPUTS 1 a OUTPUTS 1 b TIMEOUT 5", EXECUTE, "ERR TIMEOUT not allowed within a DAG command"),
        ];
        for (text, flavor, expected) in cases {
            let args = words(text);
            assert_eq!(
                parse_dag(&args, flavor).expect_err(text).0,
                expected,
                "{text}"
            );
        }
        assert_eq!(
            parse_dag(&[], EXECUTE).expect_err("empty").0,
            "ERR missing arguments for 'AI.DAGEXECUTE' command"
        );
    }

    #[test]
    fn deprecated_dagrun_refuses_the_new_ops() {
        for (text, expected) in [
            (
                "|> AI.MODELEXECUTE m INPUTS 1 a OUTPUTS 1 b",
                "ERR AI.MODELEXECUTE cannot be used in a deprecated AI.DAGRUN command",
            ),
            (
                "|> ai.scriptexecute s f INPUTS 1 a",
                "ERR AI.SCRIPTEXECUTE cannot be used in a deprecated AI.DAGRUN command",
            ),
            (
                "|>",
                "ERR wrong number of arguments for 'AI.DAGRUN' command",
            ),
        ] {
            assert_eq!(parse_dag(&words(text), RUN).expect_err(text).0, expected);
        }
    }

    #[test]
    fn deprecated_dagrun_takes_modelrun_and_needs_no_keywords() {
        let args = words("|> AI.TENSORSET a FLOAT 1 |> AI.MODELRUN m INPUTS a OUTPUTS b");
        let dag = parse_dag(&args, RUN).expect("valid");
        assert_eq!(dag.ops.len(), 2);
    }

    #[test]
    fn script_ops() {
        let args =
            words("KEYS 1 k LOAD 1 a |> AI.SCRIPTEXECUTE s bar INPUTS 1 a ARGS 1 x OUTPUTS 2 b c");
        let dag = parse_dag(&args, EXECUTE).expect("valid");
        assert_eq!(dag.keys, vec![&b"k"[..]]);
        assert!(matches!(
            &dag.ops[0],
            OpSpec::ScriptExecute { outputs, args, .. } if outputs.len() == 2 && args.len() == 1
        ));
        let args = words("|> AI.TENSORSET a FLOAT 1 |> AI.SCRIPTRUN s bar INPUTS a $ a OUTPUTS b");
        let dag = parse_dag(&args, RUN).expect("valid");
        assert!(matches!(&dag.ops[1], OpSpec::ScriptExecute { inputs, .. } if inputs.len() == 2));
        let args = words("AI.DAGEXECUTE KEYS 1 k |> AI.SCRIPTEXECUTE s bar INPUTS 1 k");
        assert_eq!(dag_key_positions(&args), vec![3, 6]);
        // An op's own KEYS (as the redisai client sends them) join the DAG's and are
        // declared to Redis.
        let args = words(
            "AI.DAGEXECUTE KEYS 1 k |> AI.SCRIPTEXECUTE s bar KEYS 2 k j INPUTS 1 a OUTPUTS 1 b",
        );
        assert_eq!(dag_key_positions(&args), vec![3, 6, 10, 11]);
        let dag = parse_dag(&args[1..], EXECUTE).expect("op KEYS");
        assert_eq!(dag.keys, vec![&b"k"[..], &b"j"[..]]);
    }

    #[test]
    fn key_positions() {
        let args = words(
            "AI.DAGEXECUTE LOAD 2 a b PERSIST 1 c ROUTING r |> AI.TENSORSET x FLOAT 1 \
             |> AI.MODELEXECUTE m INPUTS 1 x OUTPUTS 1 c",
        );
        assert_eq!(dag_key_positions(&args), vec![3, 4, 7, 9, 17]);
        assert_eq!(dag_key_positions(&words("AI.DAGEXECUTE LOAD 5 a")), vec![3]);
    }
}
