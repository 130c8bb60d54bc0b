//! The sandbox policy (src/policy.rs) with real libtorch: scripts and models that could
//! read or write files are refused when loaded, with the exact error text, wherever the
//! forbidden call hides (an if-branch, a loop, a helper function, a submodule's method,
//! a `__setstate__` that libtorch runs while it loads the model); every model and script
//! the project ships still loads; and the rules themselves.

mod common;

use std::path::PathBuf;

use common::{free_model, free_script, load, load_script, model_bytes, run, run_script, Tensor};
use redisai_torch::policy::{self, rule_for, Rule, What};
use redisai_torch::{make_module, make_module_with_child};

const FROM_FILE_MODEL: &str = "model uses a forbidden operation: aten::from_file (file access)";

fn script_refusal(op: &str, reason: &str) -> String {
    format!("script uses a forbidden operation: {op} ({reason})")
}

fn from_file_refused_in_script() -> String {
    script_refusal("aten::from_file", "file access")
}

/// A path under the system's temporary folder that does not exist yet.
fn fresh_path(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("redisai-policy-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

fn refused_script(source: &str, entry_points: &[&str]) -> String {
    match load_script(source, entry_points) {
        Ok(script) => {
            free_script(script);
            panic!("the script loaded:\n{source}");
        }
        Err(message) => message,
    }
}

fn refused_model(blob: &[u8]) -> String {
    match load(blob) {
        Ok(model) => {
            free_model(model);
            panic!("the model loaded");
        }
        Err(message) => message,
    }
}

#[test]
fn a_script_reading_a_file_is_refused() {
    let source = "def f(tensors: List[Tensor], keys: List[str], args: List[str]):\n    return torch.from_file(args[0], False, int(args[1]), dtype=torch.uint8)\n";
    assert_eq!(
        refused_script(source, &["f"]),
        from_file_refused_in_script()
    );
}

#[test]
fn a_script_creating_a_file_with_shared_from_file_is_refused_and_nothing_is_written() {
    let path = fresh_path("shared");
    let source = format!(
        "def f(tensors: List[Tensor], keys: List[str], args: List[str]):\n    return torch.from_file(\"{}\", True, 64, dtype=torch.uint8)\n",
        path.display()
    );
    assert_eq!(
        refused_script(&source, &["f"]),
        from_file_refused_in_script()
    );
    assert!(!path.exists(), "{} was created", path.display());
}

#[test]
fn from_file_is_found_in_branches_loops_and_helpers() {
    let sources = [
        // In an if-branch.
        "def f(tensors: List[Tensor], keys: List[str], args: List[str]):\n    if len(args) > 1:\n        return torch.from_file(args[0], False, int(args[1]), dtype=torch.uint8)\n    return tensors[0]\n",
        // In a loop's body, inside a nested branch.
        "def f(tensors: List[Tensor], keys: List[str], args: List[str]):\n    x = tensors[0]\n    for a in args:\n        if a == 'x':\n            x = torch.from_file(a, False, 4)\n    return x\n",
        // In a helper the entry point calls.
        "def read(path: str, n: int):\n    return torch.from_file(path, False, n, dtype=torch.uint8)\n\ndef f(tensors: List[Tensor], keys: List[str], args: List[str]):\n    return read(args[0], int(args[1]))\n",
        // Two calls deep.
        "def read(path: str):\n    return torch.from_file(path, False, 4)\n\ndef middle(path: str):\n    return read(path) + 1\n\ndef f(tensors: List[Tensor], keys: List[str], args: List[str]):\n    return middle(args[0])\n",
        // In a function no entry point calls (another entry point could).
        "def f(tensors: List[Tensor], keys: List[str], args: List[str]):\n    return tensors[0]\n\ndef g(path: str):\n    return torch.from_file(path, False, 4)\n",
    ];
    for source in sources {
        assert_eq!(
            refused_script(source, &["f"]),
            from_file_refused_in_script(),
            "{source}"
        );
    }
}

#[test]
fn a_script_writing_a_file_with_torch_save_is_refused() {
    let path = fresh_path("save");
    let source = format!(
        "def f(tensors: List[Tensor], keys: List[str], args: List[str]):\n    torch.save(tensors[0], \"{}\")\n    return tensors[0]\n",
        path.display()
    );
    assert_eq!(
        refused_script(&source, &["f"]),
        script_refusal("aten::save", "file access")
    );
    assert!(!path.exists());
}

#[test]
fn a_model_whose_forward_reads_a_file_is_refused() {
    let blob = make_module(
        "def forward(self, x: Tensor) -> Tensor:\n    return torch.from_file(\"/etc/passwd\", False, 16) + x\n",
        &[],
    )
    .expect("make");
    assert_eq!(refused_model(&blob), FROM_FILE_MODEL);
}

#[test]
fn a_model_whose_submodule_reads_a_file_is_refused() {
    let blob = make_module_with_child(
        "def forward(self, x: Tensor) -> Tensor:\n    return self.reader.read(x)\n",
        "reader",
        "def read(self, x: Tensor) -> Tensor:\n    return torch.from_file(\"/etc/passwd\", False, 16) + x\n",
    )
    .expect("make");
    assert_eq!(refused_model(&blob), FROM_FILE_MODEL);
    // A submodule method that forward never calls is refused as well.
    let blob = make_module_with_child(
        "def forward(self, x: Tensor) -> Tensor:\n    return x\n",
        "reader",
        "def read(self, x: Tensor) -> Tensor:\n    return torch.from_file(\"/etc/passwd\", False, 16) + x\n",
    )
    .expect("make");
    assert_eq!(refused_model(&blob), FROM_FILE_MODEL);
}

#[test]
fn a_model_whose_helper_method_or_branch_reads_a_file_is_refused() {
    let blob = make_module(
        "def read(self, n: int) -> Tensor:\n    return torch.from_file(\"/etc/passwd\", False, n)\n\ndef forward(self, x: Tensor) -> Tensor:\n    if x.sum() > 100:\n        return self.read(16)\n    return x\n",
        &[],
    )
    .expect("make");
    assert_eq!(refused_model(&blob), FROM_FILE_MODEL);
}

/// libtorch runs `__setstate__` while it loads a model, before the plugin sees its
/// graphs: the stubbed operator keeps the file from being created, and the load is
/// refused with the same text.
#[test]
fn a_model_whose_setstate_creates_a_file_is_refused_before_it_writes() {
    let path = fresh_path("setstate");
    let blob = make_module(
        &format!(
            "def __getstate__(self) -> int:\n    return 1\n\ndef __setstate__(self, state: int) -> None:\n    print(torch.from_file(\"{}\", True, 64).sum())\n\ndef forward(self, x: Tensor) -> Tensor:\n    return x\n",
            path.display()
        ),
        &[],
    )
    .expect("make");
    assert_eq!(refused_model(&blob), FROM_FILE_MODEL);
    assert!(!path.exists(), "{} was created", path.display());
}

#[test]
fn every_shipped_model_and_script_still_loads_and_runs() {
    let dir = common::model_path("add.pt");
    let dir = dir.parent().expect("models folder");
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
        let model = load(&blob).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        free_model(model);
    }
    let model = load(&model_bytes("add.pt")).expect("add.pt");
    let a = Tensor::f32(&[2], &[1.0, 2.0]);
    let out = run(model, &[a.clone(), a.clone()], 1).expect("run");
    assert_eq!(out, [Tensor::f32(&[2], &[2.0, 4.0])]);
    free_model(model);
    // Scripts that use the language, aten and the extensions.
    let source = "def helper(x: Tensor, n: int):\n    for i in range(n):\n        if i % 2 == 0:\n            x = x + 1\n    return x\n\ndef f(tensors: List[Tensor], keys: List[str], args: List[str]):\n    y = helper(tensors[0], int(args[0]))\n    print(y)\n    return torch.cat([y, torch.zeros(1, dtype=torch.float32)])\n\ndef g(tensors: List[Tensor], keys: List[str], args: List[str]):\n    redis.execute('SET', keys[0], '1')\n    return redisAI.model_execute(keys[1], tensors, 1)\n";
    let script = load_script(source, &["f", "g"]).expect("script");
    let out = run_script(script, "f", &[a], &[], &["3"], 1, false).expect("f");
    assert_eq!(out, [Tensor::f32(&[3], &[3.0, 4.0, 0.0])]);
    free_script(script);
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
        policy::refusal("c10d::send", Rule::NetworkAccess, What::Script).0,
        "script uses a forbidden operation: c10d::send (network access)"
    );
}

#[test]
fn refused_operators_are_stubbed_out_of_libtorch() {
    common::api();
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
