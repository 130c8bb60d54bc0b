//! Stored scripts: what SCRIPTSTORE was given, plus the backend's compiled script.
//! Scripts exist for the TORCH backend only, as in RedisAI.

pub mod parse;

use std::sync::Arc;

use crate::backend::{registry, PluginScript};
use crate::device::{Device, DeviceKind};
use crate::stats::RunStats;

/// The only backend with scripts.
pub const SCRIPT_BACKEND: &str = "TORCH";

/// How the inputs of a script call map to the function's parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Calling {
    /// `AI.SCRIPTEXECUTE`: `fn(tensors: List[Tensor], keys: List[str], args: List[str])`.
    #[default]
    Lists,
    /// The deprecated `AI.SCRIPTRUN`: the inputs are the function's parameters, in order;
    /// `variadic` is the index of the first input after the `$` marker (those form one
    /// `List[Tensor]` parameter), `None` when the command had no `$`. The backend decides
    /// from the function's signature (a three-list function is still called as `Lists`).
    Positional { variadic: Option<usize> },
}

pub struct Script {
    pub device: Device,
    /// The device as the user spelled it, which replies repeat.
    pub device_name: String,
    pub tag: Vec<u8>,
    /// The functions callers may run (empty for scripts stored with SCRIPTSET).
    pub entry_points: Vec<String>,
    pub source: Vec<u8>,
    /// The backend's script, or why there is none (a backend missing at load time
    /// keeps the script's source rather than losing it).
    pub runtime: Result<PluginScript, String>,
    pub stats: RunStats,
}

/// Everything needed to create a script.
pub struct ScriptDefinition {
    pub device: Device,
    pub device_name: String,
    pub tag: Vec<u8>,
    pub entry_points: Vec<String>,
    pub source: Vec<u8>,
}

impl Script {
    /// Compiles the script through its backend, loading the backend on first use.
    pub fn create(definition: ScriptDefinition) -> Result<Script, String> {
        let runtime = load_runtime(&definition)?;
        Ok(Script::assemble(definition, Ok(runtime)))
    }

    /// Like [`Script::create`], but keeps the script (without a runtime) when the
    /// backend cannot compile it, so loading a data set never loses scripts.
    pub fn restore(definition: ScriptDefinition) -> Script {
        let runtime = load_runtime(&definition);
        Script::assemble(definition, runtime)
    }

    fn assemble(definition: ScriptDefinition, runtime: Result<PluginScript, String>) -> Script {
        Script {
            device: definition.device,
            device_name: definition.device_name,
            tag: definition.tag,
            entry_points: definition.entry_points,
            source: definition.source,
            runtime,
            stats: RunStats::default(),
        }
    }

    pub fn runtime(&self) -> Result<&PluginScript, String> {
        self.runtime.as_ref().map_err(|reason| {
            format!(
                "ERR script cannot run: backend {SCRIPT_BACKEND} could not compile it: {reason}"
            )
        })
    }

    pub fn memory_usage(&self) -> usize {
        std::mem::size_of::<Script>()
            + self.source.len()
            + self.tag.len()
            + self.entry_points.iter().map(String::len).sum::<usize>()
    }
}

fn load_runtime(definition: &ScriptDefinition) -> Result<PluginScript, String> {
    let backend =
        registry::for_device(SCRIPT_BACKEND, definition.device.kind).map_err(|reason| {
            match definition.device.kind {
                DeviceKind::Cpu => format!("Could not load backend {SCRIPT_BACKEND}: {reason}"),
                DeviceKind::Gpu => format!(
                    "device {} is not supported by backend {SCRIPT_BACKEND}: {reason}",
                    definition.device
                ),
            }
        })?;
    if !backend.has_scripts() {
        return Err(format!(
            "backend {} ({}) does not support scripts",
            backend.name,
            backend.path.display()
        ));
    }
    backend.load_script(
        definition.device,
        &definition.source,
        &definition.entry_points,
    )
}

/// A stored script as the keyspace holds it: shared with the runs that use it.
pub type SharedScript = Arc<Script>;
