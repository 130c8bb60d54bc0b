//! Stored models: what MODELSTORE was given, plus the backend's live model.

pub mod parse;

use std::sync::Arc;

use crate::backend::{registry, ModelLoadOptions, PluginModel};
use crate::device::{Device, DeviceKind};
use crate::exec::inline::InlineGate;
use crate::stats::RunStats;
pub use parse::Batching;

pub struct Model {
    /// Upper-case backend name, as given to MODELSTORE.
    pub backend: String,
    pub device: Device,
    /// The device as the user spelled it (`cpu`, `GPU:1`), which replies repeat.
    pub device_name: String,
    pub tag: Vec<u8>,
    pub batching: Batching,
    /// INPUTS/OUTPUTS names given at store time (TensorFlow only).
    pub declared_inputs: Vec<String>,
    pub declared_outputs: Vec<String>,
    /// The serialised model, as stored (MODELGET BLOB, RDB, AOF).
    pub blob: Vec<u8>,
    /// The backend's model, or why there is none (a backend missing at RDB load keeps
    /// the model's data rather than losing it).
    pub runtime: Result<PluginModel, String>,
    pub stats: RunStats,
    /// Whether its runs are fast enough to run on the main thread.
    pub inline_gate: InlineGate,
}

/// Everything needed to create a model.
pub struct ModelDefinition {
    pub backend: String,
    pub device: Device,
    pub device_name: String,
    pub tag: Vec<u8>,
    pub batching: Batching,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub blob: Vec<u8>,
}

impl Model {
    /// Creates the model through its backend, loading the backend on first use.
    pub fn create(definition: ModelDefinition) -> Result<Model, String> {
        let runtime = load_runtime(&definition);
        match runtime {
            Ok(runtime) => Ok(Model::assemble(definition, Ok(runtime))),
            Err(reason) => Err(reason),
        }
    }

    /// Like [`Model::create`], but keeps the model (without a runtime) when the backend
    /// cannot create it, so loading a data set never loses models.
    pub fn restore(definition: ModelDefinition) -> Model {
        let runtime = load_runtime(&definition);
        Model::assemble(definition, runtime)
    }

    /// A model with no backend behind it (its runs fail with `reason`).
    pub fn without_runtime(definition: ModelDefinition) -> Model {
        Model::assemble(definition, Err("no backend".to_owned()))
    }

    fn assemble(definition: ModelDefinition, runtime: Result<PluginModel, String>) -> Model {
        Model {
            backend: definition.backend,
            device: definition.device,
            device_name: definition.device_name,
            tag: definition.tag,
            batching: definition.batching,
            declared_inputs: definition.inputs,
            declared_outputs: definition.outputs,
            blob: definition.blob,
            runtime,
            stats: RunStats::default(),
            inline_gate: InlineGate::default(),
        }
    }

    /// Input names: as declared (TF) or as the backend reports them.
    pub fn input_names(&self) -> Vec<String> {
        match (&self.runtime, self.declared_inputs.is_empty()) {
            (Ok(runtime), true) => runtime.input_names.clone(),
            _ => self.declared_inputs.clone(),
        }
    }

    pub fn output_names(&self) -> Vec<String> {
        match (&self.runtime, self.declared_outputs.is_empty()) {
            (Ok(runtime), true) => runtime.output_names.clone(),
            _ => self.declared_outputs.clone(),
        }
    }

    pub fn runtime(&self) -> Result<&PluginModel, String> {
        self.runtime.as_ref().map_err(|reason| {
            format!(
                "ERR model cannot run: backend {} could not create it: {reason}",
                self.backend
            )
        })
    }

    /// MEMORY USAGE: the stored blob and, where its backend can tell, what the backend
    /// holds for the model (allocated by the runtime, outside Redis's allocator).
    pub fn memory_usage(&self) -> usize {
        let runtime = self
            .runtime
            .as_ref()
            .ok()
            .and_then(PluginModel::memory_bytes)
            .map_or(0, |bytes| usize::try_from(bytes).unwrap_or(usize::MAX));
        (std::mem::size_of::<Model>() + self.blob.len() + self.tag.len()).saturating_add(runtime)
    }
}

fn load_runtime(definition: &ModelDefinition) -> Result<PluginModel, String> {
    let backend =
        registry::for_device(&definition.backend, definition.device.kind).map_err(|reason| {
            match definition.device.kind {
                DeviceKind::Cpu => {
                    format!("Could not load backend {}: {reason}", definition.backend)
                }
                DeviceKind::Gpu => format!(
                    "device {} is not supported by backend {}: {reason}",
                    definition.device, definition.backend
                ),
            }
        })?;
    let options = ModelLoadOptions {
        device: definition.device,
        batch_size: definition.batching.size,
        input_names: definition.inputs.clone(),
        output_names: definition.outputs.clone(),
    };
    backend.load_model(&options, &definition.blob)
}

/// A stored model as the keyspace holds it: shared with the runs that use it, so a
/// model replaced or deleted mid-run lives until those runs end.
pub type SharedModel = Arc<Model>;
