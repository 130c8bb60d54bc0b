//! The first test's cases: random AI.* commands, mutated model blobs of every installed
//! backend, and AI.SCRIPT* commands with mutated TorchScript sources.

use super::*;

pub(super) const COMMANDS: &[&str] = &[
    "AI.TENSORSET",
    "AI.TENSORGET",
    "AI.MODELSTORE",
    "AI.MODELSET",
    "AI.MODELGET",
    "AI.MODELDEL",
    "AI.MODELEXECUTE",
    "AI.MODELRUN",
    "AI._MODELSCAN",
    "AI.INFO",
    "AI.DAGEXECUTE",
    "AI.DAGEXECUTE_RO",
    "AI.DAGRUN",
    "AI.DAGRUN_RO",
    "AI.CONFIG",
    "AI.SCRIPTSTORE",
    "AI.SCRIPTEXECUTE",
    "AI.SCRIPTSET",
    "AI.SCRIPTGET",
    "AI.SCRIPTDEL",
    "AI.SCRIPTRUN",
    "AI._SCRIPTSCAN",
];

pub(super) const WORDS: &[&str] = &[
    "t1",
    "t2",
    "t3",
    "out",
    "onnx",
    "tflite",
    "example",
    "plain",
    "missing",
    "FLOAT",
    "DOUBLE",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "UINT8",
    "UINT16",
    "BOOL",
    "STRING",
    "BLOB",
    "VALUES",
    "META",
    "INPUTS",
    "OUTPUTS",
    "TIMEOUT",
    "TAG",
    "BATCHSIZE",
    "MINBATCHSIZE",
    "MINBATCHTIMEOUT",
    "LOAD",
    "PERSIST",
    "ROUTING",
    "|>",
    "AI.TENSORSET",
    "AI.TENSORGET",
    "AI.MODELEXECUTE",
    "AI.MODELRUN",
    "AI.SCRIPTEXECUTE",
    "ONNX",
    "TFLITE",
    "TF",
    "TORCH",
    "EXAMPLE",
    "CPU",
    "GPU",
    "GPU:0",
    "CPU:1",
    "GET",
    "MODEL_CHUNK_SIZE",
    "RESETSTAT",
    "0",
    "1",
    "2",
    "3",
    "4",
    "-1",
    "100",
    "65536",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551616",
    "1e309",
    "nan",
    "",
    "add",
    "s1",
    "s2",
    "KEYS",
    "ARGS",
    "ENTRY_POINTS",
    "SOURCE",
    "$",
    "bar",
    "split",
    "setk",
    "boom",
];

/// A TorchScript source for the fuzzer to store, run and mutate.
pub(super) const SCRIPT: &str = r#"
def bar(tensors: List[Tensor], keys: List[str], args: List[str]):
    total = tensors[0]
    for t in tensors[1:]:
        total = total + t
    return total

def split(tensors: List[Tensor], keys: List[str], args: List[str]):
    return [tensors[0] * 2, tensors[0] + 1]

def setk(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute("SET", keys[0], args[0])
    return torch.tensor([len(keys)])

def boom(tensors: List[Tensor], keys: List[str], args: List[str]):
    return tensors[7]
"#;

pub(super) const ENTRY_POINTS: [&str; 4] = ["bar", "split", "setk", "boom"];

/// A model of an installed backend: its backend, the MODELSTORE words between the
/// device and BLOB (TF's node names), and its blob.
pub(super) type SeedModel = (&'static str, &'static [&'static str], Vec<u8>);

pub(super) struct Models {
    /// Every installed backend's models.
    pub(super) blobs: Vec<SeedModel>,
    /// Whether the TORCH plugin is built (script cases run then).
    pub(super) torch: bool,
}

pub(super) fn models() -> Models {
    let mut blobs = Vec::new();
    if backend_built("redisai_onnxruntime") {
        for name in ["add.onnx", "mlp.onnx", "two_outputs.onnx", "int_ops.onnx"] {
            blobs.push(("ONNX", &[][..], model_bytes("onnx", name)));
        }
    }
    if backend_built("redisai_tflite") {
        for name in [
            "add.tflite",
            "mlp.tflite",
            "fc_int8.tflite",
            "two_outputs.tflite",
        ] {
            blobs.push(("TFLITE", &[][..], model_bytes("tflite", name)));
        }
    }
    if backend_built("redisai_tensorflow") {
        const MUL: &[&str] = &["INPUTS", "2", "a", "b", "OUTPUTS", "1", "mul"];
        const MLP: &[&str] = &["INPUTS", "1", "x", "OUTPUTS", "2", "y", "hidden"];
        blobs.push(("TF", MUL, model_bytes("tf", "mul.pb")));
        blobs.push(("TF", MLP, model_bytes("tf", "mlp.pb")));
    }
    if backend_built("redisai_torch") {
        for name in ["add.pt", "mlp.pt", "two_outputs.pt"] {
            blobs.push(("TORCH", &[][..], model_bytes("torch", name)));
        }
    }
    blobs.push(("EXAMPLE", &[][..], b"add".to_vec()));
    Models {
        blobs,
        torch: backend_built("redisai_torch"),
    }
}

pub(super) fn mutate(rng: &mut Rng, blob: &[u8]) -> Vec<u8> {
    let mut out = blob.to_vec();
    match rng.below(4) {
        0 => out.truncate(rng.below(blob.len().max(1))),
        1 => {
            for _ in 0..1 + rng.below(8) {
                if !out.is_empty() {
                    let at = rng.below(out.len());
                    out[at] ^= 1 << rng.below(8);
                }
            }
        }
        2 => {
            let at = rng.below(out.len().max(1));
            let junk = {
                let n = rng.below(32);
                rng.bytes(n)
            };
            out.splice(at.min(out.len())..at.min(out.len()), junk);
        }
        _ => {
            let at = rng.below(out.len().max(1)).min(out.len());
            let len = rng.below(64);
            let end = (at + len).min(out.len());
            out.drain(at..end);
        }
    }
    out
}

pub(super) fn word(rng: &mut Rng) -> Vec<u8> {
    match rng.below(10) {
        0 => {
            let n = rng.below(16);
            rng.bytes(n)
        }
        1 => (rng.next_u64() as i64).to_string().into_bytes(),
        _ => rng.pick(WORDS).as_bytes().to_vec(),
    }
}

/// One random command.
pub(super) fn random_command(rng: &mut Rng, models: &Models) -> Vec<Vec<u8>> {
    let valid_blob = |rng: &mut Rng| -> Vec<Vec<u8>> {
        let dtype = *rng.pick(&[
            "FLOAT", "INT8", "UINT8", "INT64", "BOOL", "STRING", "DOUBLE",
        ]);
        let n = 1 + rng.below(4);
        // Right-sized half of the time (FLOAT and DOUBLE then usually run), else not.
        let size = match dtype {
            "FLOAT" => 4,
            "INT64" | "DOUBLE" => 8,
            _ => 1,
        };
        let len = if rng.chance(50) {
            n * size
        } else {
            rng.below(40)
        };
        let blob = rng.bytes(len);
        vec![
            b"AI.TENSORSET".to_vec(),
            rng.pick(&["t1", "t2", "t3"]).as_bytes().to_vec(),
            dtype.as_bytes().to_vec(),
            n.to_string().into_bytes(),
            b"BLOB".to_vec(),
            blob,
        ]
    };
    let script_cases = if models.torch { 3 } else { 0 };
    let pick = rng.below(8 + script_cases);
    if pick >= 8 {
        return random_script_command(rng, pick - 8);
    }
    match pick {
        // A model blob of an installed backend, mutated.
        0 | 1 => {
            let (backend, names, blob) = rng.pick(&models.blobs);
            let key = rng.pick(&["onnx", "tflite", "example", "fuzzed"]);
            let mut command = vec![
                b"AI.MODELSTORE".to_vec(),
                key.as_bytes().to_vec(),
                backend.as_bytes().to_vec(),
                b"CPU".to_vec(),
            ];
            command.extend(names.iter().map(|w| w.as_bytes().to_vec()));
            command.push(b"BLOB".to_vec());
            command.push(mutate(rng, blob));
            command
        }
        // A blob tensor of random length.
        2 => valid_blob(rng),
        // A plausible execution with random keys.
        3 => {
            let model = rng.pick(&["onnx", "tflite", "example", "fuzzed", "t1"]);
            let mut command: Vec<Vec<u8>> = ["AI.MODELEXECUTE", model, "INPUTS"]
                .iter()
                .map(|s| s.as_bytes().to_vec())
                .collect();
            let n = rng.below(4);
            command.push(n.to_string().into_bytes());
            for _ in 0..n {
                command.push(rng.pick(&["t1", "t2", "t3", "out"]).as_bytes().to_vec());
            }
            command.push(b"OUTPUTS".to_vec());
            let m = rng.below(3);
            command.push(m.to_string().into_bytes());
            for _ in 0..m {
                command.push(rng.pick(&["out", "t3"]).as_bytes().to_vec());
            }
            if rng.chance(20) {
                command.push(b"TIMEOUT".to_vec());
                command.push(rng.below(200).to_string().into_bytes());
            }
            command
        }
        // Random arity and words.
        _ => {
            let mut command = vec![rng.pick(COMMANDS).as_bytes().to_vec()];
            let arity = rng.below(14);
            for _ in 0..arity {
                command.push(word(rng));
            }
            // Never point the server at other native code.
            if command[0] == b"AI.CONFIG"
                && command.get(1).is_some_and(|a| {
                    a.eq_ignore_ascii_case(b"LOADBACKEND")
                        || a.eq_ignore_ascii_case(b"BACKENDSPATH")
                })
            {
                command[1] = b"GET".to_vec();
            }
            command
        }
    }
}

pub(super) fn word_of(s: impl AsRef<[u8]>) -> Vec<u8> {
    s.as_ref().to_vec()
}

/// A TorchScript source: the valid one mutated, random bytes, or huge.
pub(super) fn script_source(rng: &mut Rng) -> Vec<u8> {
    match rng.below(10) {
        0 => SCRIPT.as_bytes().to_vec(),
        1 => {
            let n = rng.below(512);
            rng.bytes(n)
        }
        // Huge: the source repeated (duplicate definitions) or junk, up to ~1 MiB.
        2 => {
            let times = 1 + rng.below(2000);
            let mut out = SCRIPT.repeat(times).into_bytes();
            if rng.chance(50) {
                let at = rng.below(out.len());
                out.truncate(at);
            }
            out
        }
        _ => mutate(rng, SCRIPT.as_bytes()),
    }
}

/// One script command: a store of a mutated source, a plausible execution, or a script
/// command with random arity and words.
pub(super) fn random_script_command(rng: &mut Rng, kind: usize) -> Vec<Vec<u8>> {
    let key = |rng: &mut Rng| word_of(rng.pick(&["s1", "s2", "t1", "plain", "missing"]));
    match kind {
        0 => {
            let mut command = vec![word_of("AI.SCRIPTSTORE"), key(rng), word_of("CPU")];
            if rng.chance(20) {
                command.push(word_of("TAG"));
                command.push(word(rng));
            }
            let n = if rng.chance(90) {
                1 + rng.below(ENTRY_POINTS.len())
            } else {
                rng.below(6)
            };
            command.push(word_of("ENTRY_POINTS"));
            command.push(n.to_string().into_bytes());
            for _ in 0..n {
                command.push(if rng.chance(90) {
                    word_of(rng.pick(&ENTRY_POINTS))
                } else {
                    word(rng)
                });
            }
            command.push(word_of("SOURCE"));
            command.push(script_source(rng));
            command
        }
        1 => {
            let keys = ["t1", "t2", "t3", "out", "plain", "missing", "s1"];
            let mut command = vec![
                word_of("AI.SCRIPTEXECUTE"),
                key(rng),
                if rng.chance(90) {
                    word_of(rng.pick(&ENTRY_POINTS))
                } else {
                    word(rng)
                },
            ];
            for scope in ["KEYS", "INPUTS", "ARGS", "OUTPUTS"] {
                if rng.chance(60) {
                    let n = rng.below(4);
                    command.push(word_of(scope));
                    command.push(if rng.chance(95) {
                        n.to_string().into_bytes()
                    } else {
                        word(rng)
                    });
                    for _ in 0..n {
                        command.push(if scope == "ARGS" {
                            word(rng)
                        } else {
                            word_of(rng.pick(&keys))
                        });
                    }
                }
            }
            if rng.chance(20) {
                command.push(word_of("TIMEOUT"));
                command.push(rng.below(200).to_string().into_bytes());
            }
            if rng.chance(20) {
                // The deprecated form: SCRIPTRUN key fn INPUTS k... [$ k...] OUTPUTS k...
                command = vec![word_of("AI.SCRIPTRUN"), key(rng), word_of("bar")];
                command.push(word_of("INPUTS"));
                for _ in 0..rng.below(4) {
                    command.push(word_of(rng.pick(&["t1", "t2", "$", "out"])));
                }
                command.push(word_of("OUTPUTS"));
                for _ in 0..rng.below(3) {
                    command.push(word_of(rng.pick(&["out", "t3"])));
                }
            }
            if rng.chance(15) {
                // The same op inside a DAG.
                let mut dag = vec![
                    word_of("AI.DAGEXECUTE"),
                    word_of("LOAD"),
                    b"1".to_vec(),
                    word_of("t1"),
                    word_of("|>"),
                ];
                dag.extend(command);
                command = dag;
            }
            command
        }
        _ => {
            let name = rng.pick(&[
                "AI.SCRIPTSTORE",
                "AI.SCRIPTSET",
                "AI.SCRIPTGET",
                "AI.SCRIPTDEL",
                "AI.SCRIPTEXECUTE",
                "AI.SCRIPTRUN",
                "AI._SCRIPTSCAN",
            ]);
            let mut command = vec![word_of(name)];
            for _ in 0..rng.below(12) {
                command.push(word(rng));
            }
            command
        }
    }
}
