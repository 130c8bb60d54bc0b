//! The process-wide set of loaded backends, keyed by backend name (`ONNX`, `TORCH`,
//! ... or a third-party plugin's own name).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{load_plugin, Backend};
use crate::config::BackendKind;

static LOADED: Mutex<BTreeMap<String, Arc<Backend>>> = Mutex::new(BTreeMap::new());

fn loaded_map() -> MutexGuard<'static, BTreeMap<String, Arc<Backend>>> {
    LOADED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Loads the plugin at `path` as backend `name`. Loading a name twice is an error, as
/// in RedisAI; so is a plugin that calls itself by another name.
pub fn load(name: &str, path: &Path) -> Result<Arc<Backend>, String> {
    let name = name.to_ascii_uppercase();
    let mut loaded = loaded_map();
    if let Some(existing) = loaded.get(&name) {
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
    loaded.insert(name, Arc::clone(&backend));
    Ok(backend)
}

/// The loaded backend called `name`.
pub fn get(name: &str) -> Option<Arc<Backend>> {
    loaded_map().get(&name.to_ascii_uppercase()).cloned()
}

/// The loaded backend `name`, loading a built-in one from BACKENDSPATH on first use.
pub fn get_or_load(name: &str) -> Result<Arc<Backend>, String> {
    if let Some(backend) = get(name) {
        return Ok(backend);
    }
    let kind = BackendKind::parse(name.as_bytes())
        .ok_or_else(|| format!("backend {name} is not loaded"))?;
    let path = default_path(kind);
    match load(kind.identifier(), &path) {
        Ok(backend) => Ok(backend),
        // Another caller may have loaded it meanwhile.
        Err(err) => get(kind.identifier()).ok_or(err),
    }
}

/// `BACKENDSPATH/<plugin>/<plugin>.so`.
pub fn default_path(kind: BackendKind) -> PathBuf {
    let base = crate::settings::read().backends_path.clone();
    base.join(kind.plugin_name())
        .join(format!("{}.so", kind.plugin_name()))
}

/// Every loaded backend, by name.
pub fn loaded() -> Vec<Arc<Backend>> {
    loaded_map().values().cloned().collect()
}
