//! Opening a plugin library and checking its ABI version before trusting its table.

use std::ffi::{CStr, CString};
use std::fmt;
use std::path::{Path, PathBuf};

use redisai_plugin_api::abi::{
    RaiPluginApi, RaiPluginEntryFn, RAI_PLUGIN_ABI_MAJOR, RAI_PLUGIN_ABI_MINOR,
    RAI_PLUGIN_ENTRY_SYMBOL,
};

use super::host::HOST_API;
use super::Backend;

/// Why a plugin could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError(pub String);

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Opens the plugin at `path`, checks its ABI version and calls its `init`.
pub fn load_plugin(path: &Path) -> Result<Backend, LoadError> {
    let path_text = path
        .to_str()
        .ok_or_else(|| LoadError(format!("{}: the path is not valid UTF-8", path.display())))?;
    if !path.is_file() {
        return Err(LoadError(format!("{path_text}: no such file")));
    }
    let c_path = CString::new(path_text)
        .map_err(|_| LoadError(format!("{path_text}: the path contains a NUL byte")))?;
    // SAFETY: dlopen takes a NUL-terminated path. The library's initialisers run here;
    // that is the trust a plugin gets by being named by an administrator.
    let handle = unsafe { libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if handle.is_null() {
        return Err(LoadError(format!("{path_text}: {}", dl_error())));
    }
    let symbol = CString::new(RAI_PLUGIN_ENTRY_SYMBOL).unwrap_or_default();
    // SAFETY: `handle` is a live library handle and `symbol` a NUL-terminated name.
    let entry = unsafe { libc::dlsym(handle, symbol.as_ptr()) };
    if entry.is_null() {
        return Err(LoadError(format!(
            "{path_text}: no entry symbol '{RAI_PLUGIN_ENTRY_SYMBOL}' (not a redisai-rs plugin)"
        )));
    }
    // SAFETY: the ABI defines the entry symbol as `RaiPluginEntryFn`.
    let entry: RaiPluginEntryFn = unsafe { std::mem::transmute(entry) };
    // SAFETY: calling the plugin's entry function, which takes no arguments.
    let table = unsafe { entry() };
    let api = check_table(table, path_text)?;
    let backend = describe(api, path.to_path_buf())?;
    if let Some(init) = api.init {
        // SAFETY: `HOST_API` lives for the whole process, as the ABI requires.
        let error = unsafe { init(&HOST_API) };
        if let Some(message) = backend.take_error(error) {
            return Err(LoadError(format!("{path_text}: init failed: {message}")));
        }
    }
    Ok(backend)
}

/// Reads the version fields, which every ABI version keeps at the start of the table,
/// before treating the pointer as this version's table.
fn check_table(table: *const RaiPluginApi, path: &str) -> Result<&'static RaiPluginApi, LoadError> {
    if table.is_null() {
        return Err(LoadError(format!(
            "{path}: the entry function returned no table"
        )));
    }
    let words = table.cast::<u32>();
    // SAFETY: every ABI version starts its table with two u32 version fields.
    let (major, minor) = unsafe { (words.read(), words.add(1).read()) };
    if major != RAI_PLUGIN_ABI_MAJOR || minor > RAI_PLUGIN_ABI_MINOR {
        return Err(LoadError(format!(
            "{path}: plugin ABI version {major}.{minor} is not supported by this redisai-rs \
             (ABI {RAI_PLUGIN_ABI_MAJOR}.{RAI_PLUGIN_ABI_MINOR}: same major and a minor up to \
             {RAI_PLUGIN_ABI_MINOR} required)"
        )));
    }
    // SAFETY: same major: the table starts with `abi_major`, `abi_minor`, `struct_size`.
    let struct_size = unsafe { std::ptr::addr_of!((*table).struct_size).read() };
    let needed = table_size_of_minor(minor);
    if struct_size < needed {
        return Err(LoadError(format!(
            "{path}: plugin table is {struct_size} bytes, ABI {major}.{minor} needs {needed}"
        )));
    }
    let api = if needed >= std::mem::size_of::<RaiPluginApi>() {
        // SAFETY: same major and a table at least as large as this version's.
        unsafe { &*table }
    } else {
        // An older minor's table is shorter: copy what it has into a full table whose
        // later (optional) functions are null. Done once per plugin load; leaked, as the
        // plugin itself is never unloaded.
        let mut full = std::mem::MaybeUninit::<RaiPluginApi>::zeroed();
        // SAFETY: the plugin's table has at least `needed` bytes (checked above) and
        // `full` has room for them; an all-zero RaiPluginApi is valid (null pointers and
        // `None` functions).
        let full = unsafe {
            std::ptr::copy_nonoverlapping(
                table.cast::<u8>(),
                full.as_mut_ptr().cast::<u8>(),
                needed,
            );
            full.assume_init()
        };
        &*Box::leak(Box::new(full))
    };
    let required = [
        api.error_message.is_some(),
        api.error_free.is_some(),
        api.model_load.is_some(),
        api.model_free.is_some(),
        api.model_input_count.is_some(),
        api.model_input_name.is_some(),
        api.model_output_count.is_some(),
        api.model_output_name.is_some(),
        api.model_run.is_some(),
        api.tensor_release.is_some(),
    ];
    if required.contains(&false) {
        return Err(LoadError(format!(
            "{path}: the plugin table lacks a required function"
        )));
    }
    Ok(api)
}

fn describe(api: &'static RaiPluginApi, path: PathBuf) -> Result<Backend, LoadError> {
    let text = |ptr: *const std::ffi::c_char| {
        if ptr.is_null() {
            String::new()
        } else {
            // SAFETY: the table's strings are NUL-terminated and live with the plugin.
            unsafe { CStr::from_ptr(ptr) }
                .to_string_lossy()
                .into_owned()
        }
    };
    let name = text(api.name).to_ascii_uppercase();
    if name.is_empty() {
        return Err(LoadError(format!(
            "{}: the plugin has no name",
            path.display()
        )));
    }
    Ok(Backend {
        name,
        runtime_version: text(api.runtime_version),
        abi_version: (api.abi_major, api.abi_minor),
        path,
        device_mask: api.device_mask,
        dtype_mask: api.dtype_mask,
        flags: api.flags,
        api,
    })
}

/// Bytes of the plugin table as ABI minor `minor` defined it (the fields each later
/// minor appended are absent from an older plugin's table).
fn table_size_of_minor(minor: u32) -> usize {
    if minor < 3 {
        std::mem::offset_of!(RaiPluginApi, memory_stats)
    } else {
        std::mem::size_of::<RaiPluginApi>()
    }
}

fn dl_error() -> String {
    // SAFETY: dlerror returns null or a NUL-terminated message owned by the loader.
    let message = unsafe { libc::dlerror() };
    if message.is_null() {
        "unknown dlopen error".to_owned()
    } else {
        // SAFETY: as above.
        unsafe { CStr::from_ptr(message) }
            .to_string_lossy()
            .into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redisai_plugin_api::abi::{
        RaiError, RaiMemoryStats, RaiModel, RaiModelOptions, RaiRunOptions, RaiTensorOut,
        RaiTensorView,
    };
    use std::ffi::{c_char, c_void};

    unsafe extern "C" fn message(_: *const RaiError) -> *const c_char {
        c"".as_ptr()
    }
    unsafe extern "C" fn free_error(_: *mut RaiError) {}
    unsafe extern "C" fn load(
        _: *const RaiModelOptions,
        _: *const u8,
        _: usize,
        _: *mut *mut RaiModel,
    ) -> *mut RaiError {
        std::ptr::null_mut()
    }
    unsafe extern "C" fn free_model(_: *mut RaiModel) {}
    unsafe extern "C" fn count(_: *const RaiModel) -> usize {
        0
    }
    unsafe extern "C" fn name(_: *const RaiModel, _: usize) -> *const c_char {
        std::ptr::null()
    }
    unsafe extern "C" fn run(
        _: *mut RaiModel,
        _: *const RaiRunOptions,
        _: *const RaiTensorView,
        _: usize,
        _: *mut RaiTensorOut,
        _: usize,
    ) -> *mut RaiError {
        std::ptr::null_mut()
    }
    unsafe extern "C" fn release(_: *mut c_void) {}
    unsafe extern "C" fn stats(_: *mut RaiMemoryStats) {
        panic!("a minor-2 table has no memory_stats");
    }
    unsafe extern "C" fn model_memory(_: *const RaiModel) -> u64 {
        7
    }

    fn table(minor: u32, struct_size: usize) -> RaiPluginApi {
        RaiPluginApi {
            abi_major: RAI_PLUGIN_ABI_MAJOR,
            abi_minor: minor,
            struct_size,
            name: c"FAKE".as_ptr(),
            runtime_version: c"1".as_ptr(),
            device_mask: 1,
            dtype_mask: 1,
            flags: 0,
            init: None,
            error_message: Some(message),
            error_free: Some(free_error),
            model_load: Some(load),
            model_free: Some(free_model),
            model_input_count: Some(count),
            model_input_name: Some(name),
            model_output_count: Some(count),
            model_output_name: Some(name),
            model_run: Some(run),
            tensor_release: Some(release),
            script_load: None,
            script_free: None,
            script_run: None,
            // Past a minor-2 table's end: never read for one.
            memory_stats: Some(stats),
            model_memory: Some(model_memory),
            error_code: None,
        }
    }

    #[test]
    fn a_minor_2_table_loads_without_the_memory_functions() {
        let old_size = std::mem::offset_of!(RaiPluginApi, memory_stats);
        let old = Box::leak(Box::new(table(2, old_size)));
        let api = check_table(old, "old.so").expect("a minor-2 plugin still loads");
        assert!(api.memory_stats.is_none() && api.model_memory.is_none());
        assert!(api.model_run.is_some());

        let short = Box::leak(Box::new(table(3, old_size)));
        let err = check_table(short, "short.so")
            .err()
            .expect("a minor-3 table too short");
        assert!(err.0.contains("ABI 1.3 needs"), "{}", err.0);

        let new = Box::leak(Box::new(table(3, std::mem::size_of::<RaiPluginApi>())));
        let api = check_table(new, "new.so").expect("minor 3");
        assert!(api.memory_stats.is_some());
        let model_memory = api.model_memory.expect("model_memory");
        // SAFETY: the fake ignores its argument.
        assert_eq!(unsafe { model_memory(std::ptr::null()) }, 7);
    }
}
