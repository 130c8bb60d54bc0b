//! The sandbox policy: what a stored TorchScript model or script may run.
//!
//! A model or script is input from a client, and TorchScript is a programming language
//! with the whole of libtorch's operator registry at hand: `torch.from_file(path, ...)`
//! returns any file's bytes as a tensor (and with `shared=True` creates and writes files),
//! `torch.save` writes one, and custom operator namespaces reach distributed
//! communication and the like. So every model and script is checked when the plugin
//! loads it, which every way in goes through (`AI.MODELSTORE`/`AI.MODELSET`,
//! `AI.SCRIPTSTORE`/`AI.SCRIPTSET`, RDB and AOF loading, replication), and refused when
//! it could run an operation the policy forbids, with the error
//! `model uses a forbidden operation: aten::from_file (file access)` (or `script uses
//! ...`), which names the operation and, in parentheses, the rule.
//!
//! # What is checked
//! The shim lists the kind of every node of every graph the model or script can run:
//! every method and hook of the module and of each of its submodules (recursively), every
//! function and class method of its compilation unit (helpers the entry points call,
//! `__setstate__`, ...), the blocks nested in `If`, `Loop` and closures, and the subgraphs
//! of `fork` and fusion groups; and the custom classes (`__torch__.torch.classes.*`)
//! that any value in those graphs or any module attribute has. Each is judged by
//! [`rule_for`]:
//!
//! - Operator namespaces are allowed by name (an allow-list): `aten` and `prim` (the
//!   language and the tensor library: every model needs them); the kernels optimised and
//!   quantised models are made of (`quantized`, `_quantized`, `quantization`, `sparse`,
//!   `mkldnn`, `mkldnn_prepacked`, `mkl`, `onednn`), which only compute on tensors;
//!   `profiler` (`record_function` scopes, kept in memory); and, for scripts only, the
//!   plugin's own `redis` and `redisAI` (see `extensions`; they reach Redis as the calling
//!   client, under its ACL). Any other namespace is refused: the distributed ones
//!   (`c10d`, `_c10d_functional`, `_c10d_functional_autograd`, `_dtensor`, `symm_mem`) as
//!   network access, the rest (`inductor`, whose `_reinterpret_tensor` reads raw memory,
//!   `static_runtime`, `onnx`, `_test`, and every namespace no library registered) as not
//!   on the allow-list.
//! - Within the allowed namespaces a deny-list names what reaches outside the process:
//!   `aten::from_file` and `aten::save` (file access), `prim::PythonOp` and
//!   `prim::IgnoredPythonOp` (Python calls), and `prim::id` and `mkldnn::data_ptr`, which
//!   return memory addresses (memory address disclosure, a step towards exploiting any
//!   memory bug). These were found by listing libtorch 2.13's registered operators
//!   (`torch::jit::getAllOperators()`, 4231 schemas) and reading every one whose name or
//!   string arguments suggest files, paths, libraries, processes, sockets or Python:
//!   only `from_file` and `save` take a path; no registered operator loads a library or
//!   starts a process (`torch.ops.load_library` and `torch.load` are Python, not
//!   operators).
//! - Custom classes are allowed by namespace: `quantized`, `rnn`, `sparse` and `mkldnn`
//!   (packed weights of quantised and optimised models). `_nnapi` (its `Compilation`
//!   opens Android's NNAPI library) is refused as library loading, `c10d`, `dist_c10d` and
//!   `dist_rpc` as network access, others (`profiling`, `backendutils`, ...) as not on
//!   the allow-list.
//!
//! # Enforcement at run time too
//! libtorch runs a model's `__setstate__` methods while it loads the model, before the
//! graphs can be looked at, and constant propagation may run an operator while code is
//! compiled. So every operator the policy refuses is also replaced in libtorch's JIT
//! registry (once, before the first load) by a stub with the same schema that only
//! throws, and so is every method of each refused custom class: such code still
//! compiles, and is then refused by name, but never runs the real operator or method,
//! whenever it is called. An error from a stub is reported as the same refusal.

use std::sync::OnceLock;

use redisai_plugin_api::sdk::{Error, Result};

use crate::ffi;

/// What is being loaded: the noun of the refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum What {
    Model,
    Script,
}

impl What {
    fn noun(self) -> &'static str {
        match self {
            What::Model => "model",
            What::Script => "script",
        }
    }
}

/// Why an operation is refused; [`Rule::reason`] is the text in parentheses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    FileAccess,
    LibraryLoading,
    NetworkAccess,
    PythonCall,
    AddressDisclosure,
    NotAllowed,
}

impl Rule {
    pub fn reason(self) -> &'static str {
        match self {
            Rule::FileAccess => "file access",
            Rule::LibraryLoading => "library loading",
            Rule::NetworkAccess => "network access",
            Rule::PythonCall => "Python call",
            Rule::AddressDisclosure => "memory address disclosure",
            Rule::NotAllowed => "not on the allow-list",
        }
    }
}

/// Operator namespaces a model or script may use.
const ALLOWED_NAMESPACES: &[&str] = &[
    "aten",
    "prim",
    "quantized",
    "_quantized",
    "quantization",
    "sparse",
    "mkldnn",
    "mkldnn_prepacked",
    "mkl",
    "onednn",
    "profiler",
];

/// The plugin's script extensions (`redis.execute`, `redisAI.model_execute`, ...).
const SCRIPT_NAMESPACES: &[&str] = &["redis", "redisAI"];

/// Namespaces of distributed communication.
const NETWORK_NAMESPACES: &[&str] = &[
    "c10d",
    "_c10d_functional",
    "_c10d_functional_autograd",
    "_dtensor",
    "symm_mem",
];

/// Operators refused within the allowed namespaces (every overload).
const DENIED_OPERATORS: &[(&str, Rule)] = &[
    ("aten::from_file", Rule::FileAccess),
    ("aten::save", Rule::FileAccess),
    ("prim::PythonOp", Rule::PythonCall),
    ("prim::IgnoredPythonOp", Rule::PythonCall),
    ("prim::id", Rule::AddressDisclosure),
    ("mkldnn::data_ptr", Rule::AddressDisclosure),
];

/// How custom classes are named in TorchScript.
const CUSTOM_CLASS_PREFIX: &str = "__torch__.torch.classes.";

/// Custom class namespaces (`torch.classes.<ns>`) a model may use.
const ALLOWED_CLASS_NAMESPACES: &[&str] = &["quantized", "rnn", "sparse", "mkldnn"];

/// The rule that refuses `entry` (an operator or node kind, `aten::from_file`, or a
/// custom class, `__torch__.torch.classes.ns.Name`) in a `what`; `None` when allowed.
pub fn rule_for(entry: &str, what: What) -> Option<Rule> {
    if let Some((namespace, _)) = entry.split_once("::") {
        if let Some(&(_, rule)) = DENIED_OPERATORS.iter().find(|(name, _)| *name == entry) {
            return Some(rule);
        }
        if ALLOWED_NAMESPACES.contains(&namespace)
            || (what == What::Script && SCRIPT_NAMESPACES.contains(&namespace))
        {
            return None;
        }
        if NETWORK_NAMESPACES.contains(&namespace) {
            return Some(Rule::NetworkAccess);
        }
        return Some(Rule::NotAllowed);
    }
    let Some(class) = entry.strip_prefix(CUSTOM_CLASS_PREFIX) else {
        return Some(Rule::NotAllowed);
    };
    let namespace = class.split('.').next().unwrap_or_default();
    if ALLOWED_CLASS_NAMESPACES.contains(&namespace) {
        return None;
    }
    Some(match namespace {
        "_nnapi" => Rule::LibraryLoading,
        "c10d" | "dist_c10d" | "dist_rpc" => Rule::NetworkAccess,
        _ => Rule::NotAllowed,
    })
}

/// The refusal of `entry` in a `what`.
pub fn refusal(entry: &str, rule: Rule, what: What) -> Error {
    Error::new(format!(
        "{} uses a forbidden operation: {entry} ({})",
        what.noun(),
        rule.reason()
    ))
}

/// Checks what a model or script can run (see [`ffi::Module::operations`]): the first
/// forbidden entry, in the shim's (sorted) order, is refused.
pub fn check<'a>(entries: impl IntoIterator<Item = &'a str>, what: What) -> Result<()> {
    for entry in entries {
        if let Some(rule) = rule_for(entry, what) {
            return Err(refusal(entry, rule, what));
        }
    }
    Ok(())
}

/// Replaces every registered operator the policy refuses (in scripts as in models), and
/// every method of each custom class it refuses, with a stub that only throws; once per
/// process. Returns the stubbed names (operators, then classes).
pub fn install() -> Result<&'static [String]> {
    static STUBBED: OnceLock<std::result::Result<Vec<String>, String>> = OnceLock::new();
    STUBBED
        .get_or_init(|| {
            let refused = |names: Vec<String>| -> Vec<String> {
                names
                    .into_iter()
                    .filter(|name| rule_for(name, What::Script).is_some())
                    .collect()
            };
            let operators = refused(ffi::operator_names().map_err(Error::into_message)?);
            ffi::stub_operators(&operators).map_err(Error::into_message)?;
            let classes = refused(ffi::custom_class_names().map_err(Error::into_message)?);
            ffi::stub_custom_classes(&classes).map_err(Error::into_message)?;
            Ok(operators.into_iter().chain(classes).collect())
        })
        .as_deref()
        .map_err(|message| {
            Error::new(format!(
                "could not install the sandbox policy's stubs: {message}"
            ))
        })
}

/// The refusal for an error `err` of a load or run of a `what`, when it came from a stub
/// (see [`install`]): the same text as a refusal at load time.
pub(crate) fn explain(err: Error, what: What) -> Error {
    match ffi::take_forbidden() {
        Some(name) => {
            let rule = rule_for(&name, what).unwrap_or(Rule::NotAllowed);
            refusal(&name, rule, what)
        }
        None => err,
    }
}
