//! Load-time arguments and runtime settings: one structure, parsed and validated here.

use std::fmt;
use std::path::{Path, PathBuf};

/// Default MODEL_CHUNK_SIZE: 511 MiB, below Redis's default 512 MB bulk limit.
pub const DEFAULT_MODEL_CHUNK_SIZE: u64 = 511 * 1024 * 1024;
/// Default MODEL_EXECUTION_TIMEOUT in milliseconds.
pub const DEFAULT_MODEL_EXECUTION_TIMEOUT_MS: u64 = 5000;
/// Worker threads per device queue are capped to keep a typo from spawning thousands.
pub const MAX_THREADS_PER_QUEUE: u64 = 256;
/// Default INLINE_EXECUTION_LIMIT_US: models whose runs take at most this long run on
/// Redis's main thread (see `exec::inline`).
pub const DEFAULT_INLINE_EXECUTION_LIMIT_US: u64 = 50;
/// The main thread must never be lent to runs longer than this, whatever the setting.
pub const MAX_INLINE_EXECUTION_LIMIT_US: u64 = 10_000;

/// The framework backends that can be named at load time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackendKind {
    TensorFlow,
    TfLite,
    Torch,
    Onnx,
}

impl BackendKind {
    pub const ALL: [BackendKind; 4] = [
        BackendKind::TensorFlow,
        BackendKind::TfLite,
        BackendKind::Torch,
        BackendKind::Onnx,
    ];

    /// Parses the RedisAI identifier (`TF`, `TFLITE`, `TORCH`, `ONNX`), case-insensitively.
    pub fn parse(name: &[u8]) -> Option<BackendKind> {
        BackendKind::ALL
            .into_iter()
            .find(|kind| kind.identifier().as_bytes().eq_ignore_ascii_case(name))
    }

    pub const fn identifier(self) -> &'static str {
        match self {
            BackendKind::TensorFlow => "TF",
            BackendKind::TfLite => "TFLITE",
            BackendKind::Torch => "TORCH",
            BackendKind::Onnx => "ONNX",
        }
    }

    /// The plugin's folder and file stem under BACKENDSPATH.
    pub const fn plugin_name(self) -> &'static str {
        match self {
            BackendKind::TensorFlow => "redisai_tensorflow",
            BackendKind::TfLite => "redisai_tflite",
            BackendKind::Torch => "redisai_torch",
            BackendKind::Onnx => "redisai_onnxruntime",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.identifier())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub backends_path: PathBuf,
    /// Backends named in the module arguments, with the path given there.
    pub backends_at_load: Vec<(BackendKind, PathBuf)>,
    pub threads_per_queue: u64,
    /// 0 lets the framework choose.
    pub intra_op_parallelism: u64,
    /// 0 lets the framework choose.
    pub inter_op_parallelism: u64,
    pub model_chunk_size: u64,
    pub model_execution_timeout_ms: u64,
    /// 0 means no limit.
    pub backend_memory_limit_mb: u64,
    /// 0: every run goes to a run queue.
    pub inline_execution_limit_us: u64,
}

/// A load-time argument or setting that cannot be accepted, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    pub fn with_backends_path(backends_path: PathBuf) -> Config {
        Config {
            backends_path,
            backends_at_load: Vec::new(),
            threads_per_queue: 1,
            intra_op_parallelism: 0,
            inter_op_parallelism: 0,
            model_chunk_size: DEFAULT_MODEL_CHUNK_SIZE,
            model_execution_timeout_ms: DEFAULT_MODEL_EXECUTION_TIMEOUT_MS,
            backend_memory_limit_mb: 0,
            inline_execution_limit_us: DEFAULT_INLINE_EXECUTION_LIMIT_US,
        }
    }

    /// Parses `NAME VALUE` pairs in any order. BACKENDSPATH is applied first so that
    /// relative backend paths resolve against it whatever the order.
    pub fn from_module_args(
        default_backends_path: PathBuf,
        args: &[&[u8]],
    ) -> Result<Config, ConfigError> {
        if !args.len().is_multiple_of(2) {
            return Err(ConfigError(format!(
                "module arguments must come in NAME VALUE pairs, got {} arguments",
                args.len()
            )));
        }
        let mut pairs = Vec::with_capacity(args.len() / 2);
        for pair in args.chunks_exact(2) {
            let name = String::from_utf8_lossy(pair[0]).to_ascii_uppercase();
            if pairs
                .iter()
                .any(|(seen, _): &(String, &[u8])| *seen == name)
            {
                return Err(ConfigError(format!(
                    "module argument {name} is given twice"
                )));
            }
            pairs.push((name, pair[1]));
        }
        pairs.sort_by_key(|(name, _)| name != "BACKENDSPATH");

        let mut config = Config::with_backends_path(default_backends_path);
        for (name, value) in pairs {
            config.apply_load_time(&name, value)?;
        }
        Ok(config)
    }

    fn apply_load_time(&mut self, name: &str, value: &[u8]) -> Result<(), ConfigError> {
        if let Some(kind) = BackendKind::parse(name.as_bytes()) {
            let path = self.resolve_backend_path(value)?;
            self.backends_at_load.push((kind, path));
            return Ok(());
        }
        match name {
            "BACKENDSPATH" => self.set_backends_path(value),
            "THREADS_PER_QUEUE" => {
                self.threads_per_queue = parse_count(name, value, 1, MAX_THREADS_PER_QUEUE)?;
                Ok(())
            }
            "INTRA_OP_PARALLELISM" => {
                self.intra_op_parallelism = parse_count(name, value, 0, 1024)?;
                Ok(())
            }
            "INTER_OP_PARALLELISM" => {
                self.inter_op_parallelism = parse_count(name, value, 0, 1024)?;
                Ok(())
            }
            "MODEL_CHUNK_SIZE" => self.set_model_chunk_size(value),
            "INLINE_EXECUTION_LIMIT_US" => self.set_inline_execution_limit(value),
            "MODEL_EXECUTION_TIMEOUT" => {
                self.model_execution_timeout_ms = parse_count(name, value, 1, i64::MAX as u64)?;
                Ok(())
            }
            "BACKEND_MEMORY_LIMIT" => {
                self.backend_memory_limit_mb = parse_count(name, value, 0, i64::MAX as u64)?;
                Ok(())
            }
            other => Err(ConfigError(format!(
                "unknown module argument '{other}' (expected BACKENDSPATH, TF, TFLITE, TORCH, \
                 ONNX, THREADS_PER_QUEUE, INTRA_OP_PARALLELISM, INTER_OP_PARALLELISM, \
                 MODEL_CHUNK_SIZE, MODEL_EXECUTION_TIMEOUT, BACKEND_MEMORY_LIMIT or \
                 INLINE_EXECUTION_LIMIT_US)"
            ))),
        }
    }

    /// Sets BACKENDSPATH. A relative path is taken, as RedisAI took it, from Redis's
    /// working directory (made absolute now, so a later `CONFIG SET dir` does not move
    /// it), and may not climb out of it with `..`.
    pub fn set_backends_path(&mut self, value: &[u8]) -> Result<(), ConfigError> {
        let path = utf8_path("BACKENDSPATH", value)?;
        if path.is_absolute() {
            self.backends_path = path;
            return Ok(());
        }
        if !stays_inside(&path) {
            return Err(ConfigError(format!(
                "relative BACKENDSPATH '{}' may not leave the working directory",
                path.display()
            )));
        }
        let cwd = std::env::current_dir().map_err(|err| {
            ConfigError(format!(
                "cannot resolve the relative BACKENDSPATH '{}': {err}",
                path.display()
            ))
        })?;
        self.backends_path = cwd.join(path);
        Ok(())
    }

    pub fn set_model_chunk_size(&mut self, value: &[u8]) -> Result<(), ConfigError> {
        self.model_chunk_size = parse_count("MODEL_CHUNK_SIZE", value, 1, i64::MAX as u64)?;
        Ok(())
    }

    pub fn set_inline_execution_limit(&mut self, value: &[u8]) -> Result<(), ConfigError> {
        self.inline_execution_limit_us = parse_count(
            "INLINE_EXECUTION_LIMIT_US",
            value,
            0,
            MAX_INLINE_EXECUTION_LIMIT_US,
        )?;
        Ok(())
    }

    /// An absolute path is kept; a relative one is taken inside BACKENDSPATH and may not
    /// climb out of it.
    pub fn resolve_backend_path(&self, value: &[u8]) -> Result<PathBuf, ConfigError> {
        let path = utf8_path("backend path", value)?;
        if path.is_absolute() {
            return Ok(path);
        }
        if !stays_inside(&path) {
            return Err(ConfigError(format!(
                "relative backend path '{}' may not leave BACKENDSPATH",
                path.display()
            )));
        }
        Ok(self.backends_path.join(path))
    }

    /// `(name, value)` pairs for INFO: RedisAI's `ai_load_time_configs` fields in its
    /// order, then this module's.
    pub fn info_fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("threads_per_queue", self.threads_per_queue.to_string()),
            (
                "inter_op_parallelism",
                self.inter_op_parallelism.to_string(),
            ),
            (
                "intra_op_parallelism",
                self.intra_op_parallelism.to_string(),
            ),
            (
                "model_execution_timeout",
                self.model_execution_timeout_ms.to_string(),
            ),
            (
                "backend_memory_limit",
                self.backend_memory_limit_mb.to_string(),
            ),
            ("backends_path", self.backends_path.display().to_string()),
            ("model_chunk_size", self.model_chunk_size.to_string()),
            (
                "inline_execution_limit_us",
                self.inline_execution_limit_us.to_string(),
            ),
        ]
    }
}

/// Whether a relative path names something inside the folder it is taken from: plain
/// names and `.` only, no `..`.
fn stays_inside(path: &Path) -> bool {
    path.components().all(|part| {
        matches!(
            part,
            std::path::Component::Normal(_) | std::path::Component::CurDir
        )
    })
}

fn utf8_path(what: &str, value: &[u8]) -> Result<PathBuf, ConfigError> {
    let text = std::str::from_utf8(value)
        .map_err(|_| ConfigError(format!("{what} is not valid UTF-8")))?;
    if text.is_empty() || text.contains('\0') {
        return Err(ConfigError(format!("{what} must be a non-empty path")));
    }
    Ok(Path::new(text).to_path_buf())
}

fn parse_count(name: &str, value: &[u8], min: u64, max: u64) -> Result<u64, ConfigError> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|text| text.parse::<u64>().ok())
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| {
            ConfigError(format!(
                "{name} must be an integer from {min} to {max}, got '{}'",
                String::from_utf8_lossy(value)
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        let args: Vec<&[u8]> = text.split_whitespace().map(str::as_bytes).collect();
        Config::from_module_args(PathBuf::from("/opt/ai/backends"), &args)
    }

    #[test]
    fn defaults() {
        let config = parse("").expect("empty args");
        assert_eq!(config.backends_path, PathBuf::from("/opt/ai/backends"));
        assert_eq!(config.threads_per_queue, 1);
        assert_eq!(config.model_chunk_size, 511 * 1024 * 1024);
        assert_eq!(config.inline_execution_limit_us, 50);
    }

    #[test]
    fn all_arguments_in_any_order() {
        let config = parse(
            "onnx redisai_onnxruntime/redisai_onnxruntime.so THREADS_PER_QUEUE 4 \
             BACKENDSPATH /srv/b INTRA_OP_PARALLELISM 2 INTER_OP_PARALLELISM 3 \
             MODEL_CHUNK_SIZE 1024 MODEL_EXECUTION_TIMEOUT 2000 BACKEND_MEMORY_LIMIT 512 \
             TORCH /abs/torch.so INLINE_EXECUTION_LIMIT_US 0",
        )
        .expect("valid");
        assert_eq!(config.backends_path, PathBuf::from("/srv/b"));
        assert_eq!(
            config.backends_at_load,
            vec![
                (
                    BackendKind::Onnx,
                    PathBuf::from("/srv/b/redisai_onnxruntime/redisai_onnxruntime.so")
                ),
                (BackendKind::Torch, PathBuf::from("/abs/torch.so")),
            ]
        );
        assert_eq!(config.threads_per_queue, 4);
        assert_eq!(config.intra_op_parallelism, 2);
        assert_eq!(config.inter_op_parallelism, 3);
        assert_eq!(config.model_chunk_size, 1024);
        assert_eq!(config.model_execution_timeout_ms, 2000);
        assert_eq!(config.backend_memory_limit_mb, 512);
        assert_eq!(config.inline_execution_limit_us, 0);
    }

    #[test]
    fn relative_backends_path_is_taken_from_the_working_directory() {
        let config = parse("BACKENDSPATH ./relative/dir ONNX onnx/x.so").expect("valid");
        let cwd = std::env::current_dir().expect("cwd");
        assert_eq!(config.backends_path, cwd.join("./relative/dir"));
        assert_eq!(
            config.backends_at_load[0].1,
            cwd.join("./relative/dir").join("onnx/x.so")
        );
        assert!(parse("ONNX ./onnx/x.so").is_ok());
        assert!(parse("ONNX onnx/../../x.so").is_err());
    }

    #[test]
    fn rejects_bad_arguments() {
        for (text, reason) in [
            ("THREADS_PER_QUEUE", "pairs"),
            ("THREADS_PER_QUEUE 0", "THREADS_PER_QUEUE must be"),
            ("THREADS_PER_QUEUE many", "THREADS_PER_QUEUE must be"),
            ("MODEL_CHUNK_SIZE -5", "MODEL_CHUNK_SIZE must be"),
            ("BACKENDSPATH ../dir", "may not leave the working directory"),
            ("FOO 1", "unknown module argument 'FOO'"),
            ("ONNX ../../etc/evil.so", "may not leave BACKENDSPATH"),
            ("TF 1 TF 2", "given twice"),
            ("INLINE_EXECUTION_LIMIT_US 10001", "from 0 to 10000"),
        ] {
            let err = parse(text).expect_err(text);
            assert!(err.0.contains(reason), "{text}: {err}");
        }
    }
}
