//! The process-wide set of loaded backends, keyed by backend name (`ONNX`, `TORCH`, ...
//! or a third-party plugin's own name) and variant: a plugin file whose name ends in
//! `_gpu` (`redisai_onnxruntime_gpu.so`) is the GPU variant of its backend.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{load_plugin, Backend};
use crate::config::BackendKind;
use crate::device::DeviceKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Variant {
    Default,
    Gpu,
}

impl Variant {
    /// The variant a plugin file is, from its name.
    pub fn of_path(path: &Path) -> Variant {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        if stem.ends_with("_gpu") {
            Variant::Gpu
        } else {
            Variant::Default
        }
    }
}

type Registry = BTreeMap<(String, Variant), Arc<Backend>>;

static LOADED: Mutex<Registry> = Mutex::new(BTreeMap::new());

fn loaded_map() -> MutexGuard<'static, Registry> {
    LOADED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Serialises plugin loads (each backend is opened once) without holding [`LOADED`]
/// while a plugin opens: opening TensorFlow takes a while, on the loader thread, and
/// the main thread reads [`LOADED`] meanwhile (INFO, MODELSTORE's checks).
static OPENING: Mutex<()> = Mutex::new(());

/// Loads the plugin at `path` as backend `name`. Loading a name (and variant) twice is
/// an error, as in RedisAI; so is a plugin that calls itself by another name.
pub fn load(name: &str, path: &Path) -> Result<Arc<Backend>, String> {
    let name = name.to_ascii_uppercase();
    let variant = Variant::of_path(path);
    let _opening = OPENING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(existing) = loaded_map().get(&(name.clone(), variant)) {
        return Err(format!(
            "backend {name} is already loaded (from {})",
            existing.path.display()
        ));
    }
    let backend = load_plugin(path).map_err(|err| err.0)?;
    if backend.name != name {
        return Err(format!(
            "{} is the plugin of backend {}, not {name}",
            path.display(),
            backend.name
        ));
    }
    let backend = Arc::new(backend);
    loaded_map().insert((name, variant), Arc::clone(&backend));
    Ok(backend)
}

/// Whether a backend called `name` is loaded (any variant).
pub fn is_loaded(name: &str) -> bool {
    let name = name.to_ascii_uppercase();
    loaded_map().keys().any(|(loaded, _)| *loaded == name)
}

/// The backend to run `name` models on a device of `kind`: the GPU variant for GPUs
/// when there is one, else a plugin that declares the device. Built-in backends are
/// loaded from BACKENDSPATH on first use.
pub fn for_device(name: &str, kind: DeviceKind) -> Result<Arc<Backend>, String> {
    let name = name.to_ascii_uppercase();
    let builtin = BackendKind::parse(name.as_bytes());
    let preferred = match kind {
        DeviceKind::Gpu => [Variant::Gpu, Variant::Default],
        DeviceKind::Cpu => [Variant::Default, Variant::Gpu],
    };
    let mut reasons = Vec::new();
    for variant in preferred {
        // Bound first: a lock held across the match would deadlock `load` below.
        let already = loaded_map().get(&(name.clone(), variant)).cloned();
        let backend = match already {
            Some(backend) => Some(backend),
            None => match builtin {
                Some(builtin) => {
                    let path = default_path(builtin, variant);
                    if variant == Variant::Gpu && !path.exists() {
                        None
                    } else {
                        match load(&name, &path) {
                            Ok(backend) => Some(backend),
                            Err(reason) => {
                                // Another caller may have loaded it meanwhile.
                                let raced = loaded_map().get(&(name.clone(), variant)).cloned();
                                if raced.is_none() {
                                    reasons.push(reason);
                                }
                                raced
                            }
                        }
                    }
                }
                None => None,
            },
        };
        if let Some(backend) = backend {
            if backend.supports_device(kind) {
                return Ok(backend);
            }
            reasons.push(format!(
                "{} runs on {} only",
                backend.path.display(),
                backend.device_names().join(", ")
            ));
        }
    }
    if reasons.is_empty() {
        reasons.push(format!("backend {name} is not loaded"));
    }
    Err(reasons.join("; "))
}

/// `BACKENDSPATH/<plugin>[_gpu]/<plugin>[_gpu].so`.
pub fn default_path(kind: BackendKind, variant: Variant) -> PathBuf {
    let base = crate::settings::read().backends_path.clone();
    let plugin = match variant {
        Variant::Default => kind.plugin_name().to_owned(),
        Variant::Gpu => format!("{}_gpu", kind.plugin_name()),
    };
    base.join(&plugin).join(format!("{plugin}.so"))
}

/// Every loaded backend.
pub fn loaded() -> Vec<Arc<Backend>> {
    loaded_map().values().cloned().collect()
}

/// The memory of every loaded backend whose plugin can tell (ABI minor 3), in the
/// registry's order (by name, then variant). Backends that cannot count are left out.
/// Cheap (each plugin reads counters), callable from any thread; meant for
/// `INFO MODULES` and `AI.INFO`.
pub fn memory_stats() -> Vec<super::BackendMemory> {
    loaded()
        .iter()
        .filter_map(|backend| backend.memory_stats())
        .collect()
}

/// Bytes held by all the loaded backends together (what [`memory_stats`] reports).
pub fn memory_held_total() -> u64 {
    memory_stats().iter().map(|m| m.held_bytes).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_variants_are_told_by_their_file_name() {
        assert_eq!(
            Variant::of_path(Path::new("/b/x/redisai_onnxruntime_gpu.so")),
            Variant::Gpu
        );
        assert_eq!(
            Variant::of_path(Path::new("/b/x/redisai_onnxruntime.so")),
            Variant::Default
        );
    }
}
