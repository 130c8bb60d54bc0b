//! TorchScript scripts whose entry points call random commands through `redis.execute`.

use super::torch::SCRIPT_SIGNATURE;
use super::*;

/// Commands a generated script calls through `redis.execute`: every AI.* command and
/// ordinary Redis ones.
pub const SCRIPT_COMMANDS: &[&str] = &[
    "AI._MODELSCAN",
    "AI._SCRIPTSCAN",
    "AI.INFO",
    "AI.TENSORSET",
    "AI.TENSORGET",
    "AI.MODELGET",
    "AI.MODELDEL",
    "AI.SCRIPTGET",
    "AI.SCRIPTDEL",
    "AI.CONFIG",
    "AI.MODELSTORE",
    "AI.MODELSET",
    "AI.MODELEXECUTE",
    "AI.MODELRUN",
    "AI.SCRIPTSTORE",
    "AI.SCRIPTSET",
    "AI.SCRIPTEXECUTE",
    "AI.SCRIPTRUN",
    "AI.DAGEXECUTE",
    "AI.DAGEXECUTE_RO",
    "AI.DAGRUN",
    "AI.DAGRUN_RO",
    "GET",
    "SET",
    "INCR",
    "LRANGE",
    "RPUSH",
    "DEL",
    "EXISTS",
    "TYPE",
    "APPEND",
    "STRLEN",
    "HSET",
    "HGETALL",
    "PING",
    "ECHO",
    "ZUNION",
    "LMPOP",
    "SINTERCARD",
    "GEORADIUS",
    "ZDIFFSTORE",
    "FLUSHALL",
    "FLUSHDB",
    "CONFIG",
    "MODULE",
    "SHUTDOWN",
    "DEBUG",
    "KEYS",
    "SAVE",
    "ACL",
    "SELECT",
    "MULTI",
    "EVAL",
    "BLPOP",
    "CLIENT",
    "SCRIPT",
];

/// Those of [`SCRIPT_COMMANDS`] a script may never call (the core refuses them before
/// anything else): a run whose first call is one of them must fail.
pub const REFUSED_IN_SCRIPTS: &[&str] = &[
    "AI.MODELSTORE",
    "AI.MODELSET",
    "AI.MODELEXECUTE",
    "AI.MODELRUN",
    "AI.SCRIPTSTORE",
    "AI.SCRIPTSET",
    "AI.SCRIPTEXECUTE",
    "AI.SCRIPTRUN",
    "AI.DAGEXECUTE",
    "AI.DAGEXECUTE_RO",
    "AI.DAGRUN",
    "AI.DAGRUN_RO",
    "AI.CONFIG",
    "FLUSHALL",
    "FLUSHDB",
    "CONFIG",
    "MODULE",
    "SHUTDOWN",
    "DEBUG",
    "KEYS",
    "SAVE",
    "ACL",
    "SELECT",
    "MULTI",
    "EVAL",
    "BLPOP",
    "CLIENT",
    "SCRIPT",
];

/// Literal arguments of the commands (never `canary`, the key no script may reach).
const SCRIPT_WORDS: &[&str] = &[
    "t1",
    "t2",
    "o:x",
    "o:m0",
    "o:s9",
    "plain",
    "secret",
    "FLOAT",
    "INT64",
    "STRING",
    "VALUES",
    "BLOB",
    "META",
    "RESETSTAT",
    "GET",
    "SET",
    "LOAD",
    "LOADBACKEND",
    "BACKENDSPATH",
    "MODEL_CHUNK_SIZE",
    "MODEL_EXECUTION_TIMEOUT",
    "INLINE_EXECUTION_LIMIT_US",
    "/tmp",
    "/tmp/x.so",
    "dir",
    "SEGFAULT",
    "SLEEP",
    "NOSAVE",
    "*",
    "0",
    "1",
    "2",
    "-1",
    "100",
    "9223372036854775807",
    "",
    "CPU",
    "ONNX",
    "INPUTS",
    "OUTPUTS",
    "|>",
];

/// Well-formed calls: a command and its arguments (`K`: one of the run's keys, `V`: a
/// value), allowed and refused.
const WELL_FORMED_CALLS: &[(&str, &str)] = &[
    ("GET", "K"),
    ("SET", "K V"),
    ("INCR", "K"),
    ("LRANGE", "K 0 -1"),
    ("RPUSH", "K V"),
    ("DEL", "K"),
    ("EXISTS", "K"),
    ("TYPE", "K"),
    ("APPEND", "K V"),
    ("STRLEN", "K"),
    ("HSET", "K f V"),
    ("HGETALL", "K"),
    ("PING", ""),
    ("ECHO", "V"),
    ("AI._MODELSCAN", ""),
    ("AI._SCRIPTSCAN", ""),
    ("AI.INFO", "K"),
    ("AI.INFO", "K RESETSTAT"),
    ("AI.TENSORSET", "K FLOAT 2 VALUES 1 V"),
    ("AI.TENSORGET", "K META"),
    ("AI.TENSORGET", "K VALUES"),
    ("AI.MODELGET", "K META"),
    ("AI.MODELDEL", "K"),
    ("AI.SCRIPTGET", "K"),
    ("AI.SCRIPTDEL", "K"),
    ("AI.CONFIG", "MODEL_CHUNK_SIZE 1"),
    ("AI.CONFIG", "LOADBACKEND TF /tmp/x.so"),
    ("AI.CONFIG", "GET MODEL_CHUNK_SIZE"),
    ("AI.MODELSTORE", "K ONNX CPU BLOB x"),
    ("AI.MODELEXECUTE", "K INPUTS 1 K OUTPUTS 1 K"),
    ("AI.SCRIPTEXECUTE", "K e0 KEYS 1 K"),
    ("AI.DAGEXECUTE", "ROUTING K |> AI.TENSORGET K"),
    ("FLUSHALL", ""),
    ("FLUSHDB", "ASYNC"),
    ("CONFIG", "SET dir /tmp"),
    ("CONFIG", "GET *"),
    ("MODULE", "LOAD /tmp/x.so"),
    ("MODULE", "UNLOAD ai"),
    ("SHUTDOWN", "NOSAVE"),
    ("DEBUG", "SEGFAULT"),
    ("DEBUG", "SLEEP 5"),
    ("KEYS", "*"),
    ("SAVE", ""),
    ("ACL", "SETUSER fuzz +@all"),
    ("SELECT", "1"),
    ("BLPOP", "K 0"),
    ("EVAL", "return 1 0"),
    ("CLIENT", "KILL TYPE normal"),
];

/// A Python string literal of printable ASCII `s` (quotes and backslashes escaped).
fn py_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_ascii_graphic() || c == ' ' => out.push(c),
            _ => out.push('?'),
        }
    }
    out.push('"');
    out
}

/// One argument of a `redis.execute` call: a literal, or one of the run's keys or args.
fn script_arg(rng: &mut Rng) -> String {
    match rng.below(10) {
        0 | 1 => format!("keys[{}]", rng.below(3)),
        2 => format!("args[{}]", rng.below(3)),
        3 => py_str(&(rng.next_u64() as i64).to_string()),
        _ => py_str(one(rng, SCRIPT_WORDS)),
    }
}

/// A script of 1-3 entry points `e0`.. whose bodies call random commands with random
/// arguments through `redis.execute` (their replies kept, turned into lists, strings or
/// numbers), now and then run a model through `redisAI.model_execute`, and return a
/// tensor.
pub fn execute_script(rng: &mut Rng) -> Generated {
    let mut generated = Generated::new(Vec::new());
    let entries = 1 + rng.below(3);
    let mut source = String::new();
    for e in 0..entries {
        let name = format!("e{e}");
        let mut body = Vec::new();
        let statements = *rng.pick(&[1, 1, 1, 2, 2, 3]);
        for s in 0..statements {
            if rng.chance(70) {
                // A well-formed call (most allowed ones run, as the default user).
                let (c, args) = loop {
                    let call = *pick_allowed(rng, WELL_FORMED_CALLS, |c| c.0);
                    if !REFUSED_IN_SCRIPTS.contains(&call.0) || rng.chance(30) {
                        break call;
                    }
                };
                if s == 0 && REFUSED_IN_SCRIPTS.contains(&c) {
                    generated.refused_entries.push(name.clone());
                }
                generated.ops.push(c.to_owned());
                let mut call = format!("redis.execute({}", py_str(c));
                for arg in args.split_whitespace() {
                    call += ", ";
                    call += &match arg {
                        "K" => format!("keys[{}]", if rng.chance(90) { 0 } else { 1 }),
                        "V" => match rng.below(4) {
                            0 => "args[0]".to_owned(),
                            1 => py_str(&rng.below(100).to_string()),
                            _ => py_str(one(rng, &["1", "2", "x", "-1", "0.5"])),
                        },
                        literal => py_str(literal),
                    };
                }
                call += ")";
                body.push(match c {
                    "LRANGE" | "AI._MODELSCAN" | "AI._SCRIPTSCAN" | "HGETALL" if rng.chance(50) => {
                        format!("    r{s} = redis.asList({call})\n    n{s} = len(r{s})")
                    }
                    "INCR" | "STRLEN" | "EXISTS" | "DEL" | "RPUSH" | "APPEND" if rng.chance(50) => {
                        format!("    r{s} = int(str({call}))")
                    }
                    _ if rng.chance(10) => {
                        generated.ops.push("model_execute".into());
                        format!(
                            "    {call}\n    r{s} = redisAI.model_execute(keys[0], [tensors[0]], 1)"
                        )
                    }
                    _ => format!("    {call}"),
                });
                continue;
            }
            let command = if rng.chance(8) {
                "args[0]".to_owned()
            } else {
                let c = *pick_allowed(rng, SCRIPT_COMMANDS, |c| c);
                if s == 0 && REFUSED_IN_SCRIPTS.contains(&c) {
                    generated.refused_entries.push(name.clone());
                }
                generated.ops.push(c.to_owned());
                py_str(c)
            };
            let mut call = format!("redis.execute({command}");
            for _ in 0..rng.below(5) {
                call += ", ";
                call += &script_arg(rng);
            }
            call += ")";
            body.push(match rng.below(6) {
                0 => format!("    r{s} = redis.asList({call})\n    n{s} = len(r{s})"),
                1 => format!("    r{s} = str({call})"),
                2 => format!("    r{s} = int(str({call}))"),
                3 if rng.chance(30) => {
                    generated.ops.push("model_execute".into());
                    format!(
                        "    {call}\n    r{s} = redisAI.model_execute(keys[0], [tensors[0]], 1)"
                    )
                }
                _ => format!("    {call}"),
            });
        }
        let ret = *rng.pick(&[
            "torch.tensor([1])",
            "torch.tensor([1])",
            "tensors[0]",
            "torch.tensor([len(keys), len(args)])",
            "[tensors[0], torch.zeros([2])]",
        ]);
        source += &format!(
            "def {name}{SCRIPT_SIGNATURE}:\n{}\n    return {ret}\n\n",
            body.join("\n")
        );
        generated.names.push(name);
    }
    generated.bytes = source.into_bytes();
    generated.input = float_input(rng, &[2]);
    generated
}
