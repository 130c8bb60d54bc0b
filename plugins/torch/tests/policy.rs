//! The sandbox policy (src/policy.rs) with real libtorch: scripts and models that could
//! read or write files are refused when loaded, with the exact error text, wherever the
//! forbidden call hides (an if-branch, a loop, a helper function, a submodule's method,
//! a `__setstate__` that libtorch runs while it loads the model); every model and script
//! the project ships still loads; and the rules themselves.

mod common;

use std::path::PathBuf;

use common::{load, load_script, model_bytes, models_dir, run, run_script, Tensor};
use redisai_torch::policy::{self, rule_for, Rule, What};
use redisai_torch::{make_module, make_module_with_child};

const FROM_FILE_MODEL: &str = "model uses a forbidden operation: aten::from_file (file access)";

fn script_refusal(op: &str, reason: &str) -> String {
    format!("script uses a forbidden operation: {op} ({reason})")
}

/// A path under the system's temporary folder that does not exist yet.
fn fresh_path(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("redisai-policy-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

fn refused_script(source: &str, entry_points: &[&str]) -> String {
    match load_script(source, entry_points) {
        Ok(_) => panic!("the script loaded:\n{source}"),
        Err(message) => message,
    }
}

fn refused_model(blob: &[u8]) -> String {
    match load(blob) {
        Ok(_) => panic!("the model loaded"),
        Err(message) => message,
    }
}

#[test]
fn scripts_that_read_or_write_files_are_refused_wherever_the_call_hides() {
    let shared = fresh_path("shared");
    let saved = fresh_path("save");
    let from_file = script_refusal("aten::from_file", "file access");
    // (the script, its refusal)
    let cases = [
        // Reading a file.
        ("def f(tensors: List[Tensor], keys: List[str], args: List[str]):\n    return torch.from_file(args[0], False, int(args[1]), dtype=torch.uint8)\n".to_owned(), &from_file),
        // Creating one with a shared from_file.
        (format!("def f(tensors: List[Tensor], keys: List[str], args: List[str]):\n    return torch.from_file(\"{}\", True, 64, dtype=torch.uint8)\n", shared.display()), &from_file),
        // In an if-branch.
        ("def f(tensors: List[Tensor], keys: List[str], args: List[str]):\n    if len(args) > 1:\n        return torch.from_file(args[0], False, int(args[1]), dtype=torch.uint8)\n    return tensors[0]\n".to_owned(), &from_file),
        // In a loop's body, inside a nested branch.
        ("def f(tensors: List[Tensor], keys: List[str], args: List[str]):\n    x = tensors[0]\n    for a in args:\n        if a == 'x':\n            x = torch.from_file(a, False, 4)\n    return x\n".to_owned(), &from_file),
        // In a helper the entry point calls.
        ("def read(path: str, n: int):\n    return torch.from_file(path, False, n, dtype=torch.uint8)\n\ndef f(tensors: List[Tensor], keys: List[str], args: List[str]):\n    return read(args[0], int(args[1]))\n".to_owned(), &from_file),
        // Two calls deep.
        ("def read(path: str):\n    return torch.from_file(path, False, 4)\n\ndef middle(path: str):\n    return read(path) + 1\n\ndef f(tensors: List[Tensor], keys: List[str], args: List[str]):\n    return middle(args[0])\n".to_owned(), &from_file),
        // In a function no entry point calls (another entry point could).
        ("def f(tensors: List[Tensor], keys: List[str], args: List[str]):\n    return tensors[0]\n\ndef g(path: str):\n    return torch.from_file(path, False, 4)\n".to_owned(), &from_file),
        // Writing a file with torch.save.
        (format!("def f(tensors: List[Tensor], keys: List[str], args: List[str]):\n    torch.save(tensors[0], \"{}\")\n    return tensors[0]\n", saved.display()), &script_refusal("aten::save", "file access")),
    ];
    for (source, refusal) in &cases {
        assert_eq!(&refused_script(source, &["f"]), *refusal, "{source}");
    }
    for path in [shared, saved] {
        assert!(!path.exists(), "{} was created", path.display());
    }
}

/// The model forms a file read can take; libtorch runs `__setstate__` while it loads a
/// model, before the plugin sees its graphs: the stubbed operator keeps the file from
/// being created, and the load is refused with the same text.
#[test]
fn models_that_read_or_write_files_are_refused_wherever_the_call_hides() {
    let read = "torch.from_file(\"/etc/passwd\", False, 16)";
    let created = fresh_path("setstate");
    let module = |code: &str| make_module(code, &[]).expect("make");
    let with_reader = |forward: &str| {
        let read_method = format!("def read(self, x: Tensor) -> Tensor:\n    return {read} + x\n");
        make_module_with_child(forward, "reader", &read_method).expect("make")
    };
    let cases = [
        ("forward", module(&format!("def forward(self, x: Tensor) -> Tensor:\n    return {read} + x\n"))),
        ("a submodule's method forward calls", with_reader("def forward(self, x: Tensor) -> Tensor:\n    return self.reader.read(x)\n")),
        ("a submodule's method forward never calls", with_reader("def forward(self, x: Tensor) -> Tensor:\n    return x\n")),
        ("a helper method called in a branch", module("def read(self, n: int) -> Tensor:\n    return torch.from_file(\"/etc/passwd\", False, n)\n\ndef forward(self, x: Tensor) -> Tensor:\n    if x.sum() > 100:\n        return self.read(16)\n    return x\n")),
        ("__setstate__ creating a file", module(&format!("def __getstate__(self) -> int:\n    return 1\n\ndef __setstate__(self, state: int) -> None:\n    print(torch.from_file(\"{}\", True, 64).sum())\n\ndef forward(self, x: Tensor) -> Tensor:\n    return x\n", created.display()))),
    ];
    for (place, blob) in &cases {
        assert_eq!(refused_model(blob), FROM_FILE_MODEL, "{place}");
    }
    assert!(!created.exists(), "{} was created", created.display());
}

#[test]
fn every_shipped_model_and_script_still_loads_and_runs() {
    let dir = models_dir();
    let dir = dir.as_path();
    let mut models: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("tests/models/torch")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| {
            path.extension().is_some_and(|ext| ext == "pt")
                && !path
                    .file_name()
                    .is_some_and(|name| name.to_string_lossy().starts_with("hostile_"))
        })
        .collect();
    // ../shared/reference-models beside the repository: made by others, with an older torch.
    let reference = dir
        .canonicalize()
        .expect("models folder")
        .ancestors()
        .nth(4)
        .expect("above the repository")
        .join("shared/reference-models/pt-minimal.pt");
    if reference.is_file() {
        models.push(reference);
    }
    assert!(models.len() >= 5, "{models:?}");
    eprintln!("loading {models:?}");
    for path in &models {
        let blob = std::fs::read(path).expect("read");
        load(&blob).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    }
    let model = load(&model_bytes("add.pt")).expect("add.pt");
    let a = Tensor::f32(&[2], &[1.0, 2.0]);
    let out = run(&model, &[a.clone(), a.clone()], 1).expect("run");
    assert_eq!(out, [Tensor::f32(&[2], &[2.0, 4.0])]);
    // Scripts that use the language, aten and the extensions.
    let source = "def helper(x: Tensor, n: int):\n    for i in range(n):\n        if i % 2 == 0:\n            x = x + 1\n    return x\n\ndef f(tensors: List[Tensor], keys: List[str], args: List[str]):\n    y = helper(tensors[0], int(args[0]))\n    print(y)\n    return torch.cat([y, torch.zeros(1, dtype=torch.float32)])\n\ndef g(tensors: List[Tensor], keys: List[str], args: List[str]):\n    redis.execute('SET', keys[0], '1')\n    return redisAI.model_execute(keys[1], tensors, 1)\n";
    let script = load_script(source, &["f", "g"]).expect("script");
    let out = run_script(&script, "f", &[a], &[], &["3"], 1, false).expect("f");
    assert_eq!(out, [Tensor::f32(&[3], &[3.0, 4.0, 0.0])]);
}

#[test]
fn the_rules() {
    let cases: [(&str, What, Option<Rule>); 16] = [
        ("aten::add", What::Model, None),
        ("prim::If", What::Script, None),
        ("quantized::linear", What::Model, None),
        ("aten::from_file", What::Model, Some(Rule::FileAccess)),
        ("aten::save", What::Script, Some(Rule::FileAccess)),
        ("prim::PythonOp", What::Model, Some(Rule::PythonCall)),
        ("prim::id", What::Model, Some(Rule::AddressDisclosure)),
        ("c10d::send", What::Model, Some(Rule::NetworkAccess)),
        (
            "symm_mem::nvshmem_put",
            What::Model,
            Some(Rule::NetworkAccess),
        ),
        (
            "inductor::_reinterpret_tensor",
            What::Model,
            Some(Rule::NotAllowed),
        ),
        ("mylib::anything", What::Model, Some(Rule::NotAllowed)),
        ("redis::execute", What::Script, None),
        ("redis::execute", What::Model, Some(Rule::NotAllowed)),
        (
            "__torch__.torch.classes.quantized.LinearPackedParamsBase",
            What::Model,
            None,
        ),
        (
            "__torch__.torch.classes._nnapi.Compilation",
            What::Model,
            Some(Rule::LibraryLoading),
        ),
        (
            "__torch__.torch.classes.c10d.ProcessGroup",
            What::Model,
            Some(Rule::NetworkAccess),
        ),
    ];
    for (entry, what, rule) in cases {
        assert_eq!(rule_for(entry, what), rule, "{entry} in a {what:?}");
    }
    assert_eq!(
        policy::refusal("c10d::send", Rule::NetworkAccess, What::Script).to_string(),
        "script uses a forbidden operation: c10d::send (network access)"
    );
}

#[test]
fn refused_operators_are_stubbed_out_of_libtorch() {
    common::plugin();
    let stubbed = policy::install().expect("install");
    for name in ["aten::from_file", "aten::save", "c10d::send", "prim::id"] {
        assert!(stubbed.iter().any(|s| s == name), "{name} not stubbed");
    }
    for name in [
        "aten::add",
        "prim::Print",
        "redis::execute",
        "quantized::linear",
    ] {
        assert!(!stubbed.iter().any(|s| s == name), "{name} stubbed");
    }
    // Stubs keep their schemas: code that uses them still compiles and is refused by name.
    let names = redisai_torch::ffi::operator_names().expect("names");
    assert!(names.iter().any(|n| n == "aten::from_file"));
}

#[test]
fn the_hostile_test_models_are_refused() {
    for name in [
        "hostile_from_file.pt",
        "hostile_submodule.pt",
        "hostile_setstate.pt",
    ] {
        assert_eq!(refused_model(&model_bytes(name)), FROM_FILE_MODEL, "{name}");
    }
    assert!(!std::path::Path::new("/tmp/redisai-hostile-setstate").exists());
}

// ---- archives whose code names a custom class ----
//
// `make_module`'s compiler cannot name `torch.classes.*`, but the code a saved module
// carries can: these tests write the archive again with a placeholder string in the
// code replaced by such a call (of the same length, so the debug info still fits).

const PLACEHOLDER: &str = "\"PLACEHOLDER_PLACEHOLDER_PLACEHOLDER_PLACEHOLDER\"";

fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn u16_at(data: &[u8], at: usize) -> usize {
    usize::from(u16::from_le_bytes([data[at], data[at + 1]]))
}

fn u32_at(data: &[u8], at: usize) -> usize {
    u32::from_le_bytes(data[at..at + 4].try_into().expect("4 bytes")) as usize
}

/// The records of a zip archive (no zip64, no comment), inflated.
fn unzip(zip: &[u8]) -> Vec<(String, Vec<u8>)> {
    let end = zip.len() - 22;
    assert_eq!(u32_at(zip, end), 0x0605_4b50, "end of central directory");
    let count = u16_at(zip, end + 10);
    let mut at = u32_at(zip, end + 16);
    let mut records = Vec::new();
    for _ in 0..count {
        assert_eq!(u32_at(zip, at), 0x0201_4b50, "central directory entry");
        let method = u16_at(zip, at + 10);
        let size = u32_at(zip, at + 20);
        let name_len = u16_at(zip, at + 28);
        let skip = name_len + u16_at(zip, at + 30) + u16_at(zip, at + 32);
        let local = u32_at(zip, at + 42);
        let name = String::from_utf8(zip[at + 46..at + 46 + name_len].to_vec()).expect("name");
        let data_at = local + 30 + u16_at(zip, local + 26) + u16_at(zip, local + 28);
        let raw = &zip[data_at..data_at + size];
        let data = match method {
            0 => raw.to_vec(),
            8 => miniz_oxide::inflate::decompress_to_vec(raw).expect("inflate"),
            other => panic!("{name}: zip method {other}"),
        };
        records.push((name, data));
        at += 46 + skip;
    }
    records
}

/// A zip archive of `records`, stored.
fn zip(records: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in records {
        let crc = crc32(data).to_le_bytes();
        let size = u32::try_from(data.len()).expect("size").to_le_bytes();
        let name_len = u16::try_from(name.len()).expect("name").to_le_bytes();
        let offset = u32::try_from(out.len()).expect("offset").to_le_bytes();
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        out.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        out.extend_from_slice(&crc);
        out.extend_from_slice(&size);
        out.extend_from_slice(&size);
        out.extend_from_slice(&name_len);
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        central.extend_from_slice(&crc);
        central.extend_from_slice(&size);
        central.extend_from_slice(&size);
        central.extend_from_slice(&name_len);
        central.extend_from_slice(&[0; 12]);
        central.extend_from_slice(&offset);
        central.extend_from_slice(name.as_bytes());
    }
    let count = u16::try_from(records.len()).expect("count").to_le_bytes();
    let central_at = u32::try_from(out.len()).expect("offset").to_le_bytes();
    let central_len = u32::try_from(central.len()).expect("size").to_le_bytes();
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&count);
    out.extend_from_slice(&count);
    out.extend_from_slice(&central_len);
    out.extend_from_slice(&central_at);
    out.extend_from_slice(&[0, 0]);
    out
}

/// `blob` with PLACEHOLDER in its code replaced by `code` (padded to the same length).
fn with_code(blob: &[u8], code: &str) -> Vec<u8> {
    assert!(code.len() <= PLACEHOLDER.len(), "{code}");
    let replacement = format!("{code:<width$}", width = PLACEHOLDER.len());
    let mut records = unzip(blob);
    let mut replaced = false;
    for (name, data) in &mut records {
        if name.ends_with(".py") {
            let text = String::from_utf8(data.clone()).expect("code");
            if text.contains(PLACEHOLDER) {
                *data = text.replace(PLACEHOLDER, &replacement).into_bytes();
                replaced = true;
            }
        }
    }
    assert!(replaced, "no placeholder in the code");
    zip(&records)
}

/// A module whose forward prints [`PLACEHOLDER`].
fn placeholder_in_forward() -> Vec<u8> {
    make_module(
        &format!(
            "def forward(self, x: Tensor) -> Tensor:\n    print({PLACEHOLDER})\n    return x\n"
        ),
        &[],
    )
    .expect("make")
}

#[test]
fn the_archive_rewriting_keeps_a_model_loadable() {
    load(&with_code(&placeholder_in_forward(), "\"still a string\"")).expect("rewritten");
}

#[test]
fn a_model_using_a_refused_custom_class_is_refused() {
    let nnapi = "__torch__.torch.classes._nnapi.Compilation()";
    let nnapi_refusal = "model uses a forbidden operation: __torch__.torch.classes._nnapi.Compilation (library loading)";
    // In __setstate__, which libtorch runs while loading: the class's stubbed methods
    // refuse to run.
    let in_setstate = make_module(
        &format!(
            "def __getstate__(self) -> int:\n    return 1\n\ndef __setstate__(self, state: int) -> None:\n    print({PLACEHOLDER})\n\ndef forward(self, x: Tensor) -> Tensor:\n    return x\n"
        ),
        &[],
    )
    .expect("make");
    let cases = [
        // In forward: found in the graph.
        (placeholder_in_forward(), nnapi, nnapi_refusal),
        (in_setstate.clone(), nnapi, nnapi_refusal),
        (
            in_setstate,
            "__torch__.torch.classes.c10d.ReduceOp()",
            "model uses a forbidden operation: __torch__.torch.classes.c10d.ReduceOp (network access)",
        ),
    ];
    for (blob, call, refusal) in &cases {
        assert_eq!(refused_model(&with_code(blob, call)), *refusal, "{call}");
    }
}
