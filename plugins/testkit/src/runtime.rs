//! The repository's test models, and the runtime libraries the plugins open at init.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::sync::Once;

/// The repository's root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Where the scripts cache the runtimes: `REDISAI_CACHE_DIR`, or else `.cache` in the
/// repository.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("REDISAI_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".cache"))
}

/// The bytes of `tests/models/<kind>/<name>`; panics with the path when it cannot be read.
pub fn model_bytes(kind: &str, name: &str) -> Vec<u8> {
    let path = repo_root().join("tests/models").join(kind).join(name);
    std::fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// A plugin's runtime library: where its tests find it, and what to tell whoever runs them
/// when it is missing.
pub struct RuntimeLib<'a> {
    /// The variable that names the library (e.g. `REDISAI_LITERT_LIB`).
    pub env: &'a str,
    /// The folder under the cache where the fetch script puts it (e.g. `litert-2.3.0`).
    pub cache_subdir: &'a str,
    /// The library's file name.
    pub lib_name: &'a str,
    /// Libraries that must sit beside it (TensorFlow's framework library).
    pub companions: &'a [&'a str],
    /// What the tests need, for the message (e.g. "The TFLite backend tests need the
    /// LiteRT library").
    pub needs: &'a str,
    /// The script that fetches it and runs the tests (e.g. `scripts/build-backend-tflite`).
    pub build_script: &'a str,
    /// The script that fetches it and prints its path (e.g. `scripts/fetch-litert`).
    pub fetch_script: &'a str,
}

impl RuntimeLib<'_> {
    /// Makes sure the library can be found: the variable, or else where the fetch script
    /// puts it by default. Fails (never skips) when it or a companion is missing. When
    /// the variable is unset, sets it to the default path (once, before any backend of
    /// this process exists). Returns the library's path.
    pub fn ensure(&self) -> PathBuf {
        static SET: Once = Once::new();
        let default = cache_dir().join(self.cache_subdir).join(self.lib_name);
        let path = match std::env::var_os(self.env).filter(|p| !p.is_empty()) {
            Some(path) => PathBuf::from(path),
            None => default.clone(),
        };
        let missing: Vec<String> = std::iter::once(path.clone())
            .chain(self.companions.iter().map(|name| path.with_file_name(name)))
            .filter(|file| !file.is_file())
            .map(|file| file.display().to_string())
            .collect();
        assert!(
            missing.is_empty(),
            "\n\n{}, and {} does not exist.\nRun `{} --test` (it fetches what is needed and \
             sets {}), or run `{}` (it prints the path of {}) and set {} to that path; \
             unset, the tests use {}.\n",
            self.needs,
            missing.join(" and "),
            self.build_script,
            self.env,
            self.fetch_script,
            self.lib_name,
            self.env,
            default.display()
        );
        SET.call_once(|| {
            if std::env::var_os(self.env).is_none() {
                // Before any backend exists in this process, so before the runtime starts
                // threads of its own; Rust's own readers synchronise with set_var.
                std::env::set_var(OsStr::new(self.env), &path);
            }
        });
        path
    }
}
