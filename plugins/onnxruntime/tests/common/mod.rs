//! Helpers shared by the integration tests: the runtime library, the test models, tensors
//! and a tiny ONNX writer for models the committed set does not have.
#![allow(dead_code)]

pub mod onnx;

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Once};

use redisai_onnxruntime::{OnnxBackend, RUNTIME_LIB_ENV, RUNTIME_LIB_NAME};
use redisai_plugin_api::sdk::{ConfigKey, DType, Device, DeviceKind, TensorRef};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Makes sure the runtime library can be found: `REDISAI_ONNXRUNTIME_LIB`, or else where
/// `scripts/fetch-onnxruntime` puts it by default. Fails (never skips) when neither exists.
pub fn ensure_runtime_lib() -> PathBuf {
    static SET: Once = Once::new();
    let cache = std::env::var_os("REDISAI_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".cache"));
    let default = cache.join("onnxruntime-1.32.0").join(RUNTIME_LIB_NAME);
    let path = match std::env::var_os(RUNTIME_LIB_ENV).filter(|p| !p.is_empty()) {
        Some(path) => PathBuf::from(path),
        None => default.clone(),
    };
    assert!(
        path.is_file(),
        "\n\nThe ONNX backend tests need the ONNX Runtime library, and {} does not exist.\n\
         Run `scripts/build-backend-onnx --test` (it fetches the library and sets \
         {RUNTIME_LIB_ENV}), or run `scripts/fetch-onnxruntime` (it prints the path of \
         {RUNTIME_LIB_NAME}) and set {RUNTIME_LIB_ENV} to that path; unset, the tests use \
         {}.\n",
        path.display(),
        default.display()
    );
    SET.call_once(|| {
        if std::env::var_os(RUNTIME_LIB_ENV).is_none() {
            // Before any backend exists in this process, so before ONNX Runtime starts
            // threads of its own; Rust's own readers synchronise with set_var.
            std::env::set_var(RUNTIME_LIB_ENV, &path);
        }
    });
    path
}

/// Settings the tests can change while a backend uses them.
#[derive(Clone, Default)]
pub struct Settings {
    pub intra: Arc<AtomicI64>,
    pub inter: Arc<AtomicI64>,
    pub timeout_ms: Arc<AtomicI64>,
    pub memory_mb: Arc<AtomicI64>,
}

impl Settings {
    pub fn get(&self, key: ConfigKey) -> i64 {
        let cell = match key {
            ConfigKey::IntraOpParallelism => &self.intra,
            ConfigKey::InterOpParallelism => &self.inter,
            ConfigKey::ModelExecutionTimeoutMs => &self.timeout_ms,
            ConfigKey::BackendMemoryLimitMb => &self.memory_mb,
        };
        cell.load(Ordering::SeqCst)
    }

    pub fn set(cell: &AtomicI64, value: i64) {
        cell.store(value, Ordering::SeqCst);
    }
}

/// A backend with default settings.
pub fn backend() -> OnnxBackend {
    backend_with(Settings::default())
}

pub fn backend_with(settings: Settings) -> OnnxBackend {
    ensure_runtime_lib();
    match OnnxBackend::new(move |key| settings.get(key)) {
        Ok(backend) => backend,
        Err(err) => panic!("could not start the ONNX backend: {}", err.0),
    }
}

pub fn model_bytes(name: &str) -> Vec<u8> {
    let path = repo_root().join("tests/models/onnx").join(name);
    std::fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

/// An input tensor with its own storage.
pub struct Input {
    pub dtype: DType,
    pub shape: Vec<i64>,
    pub data: Vec<u8>,
}

impl Input {
    pub fn new(dtype: DType, shape: &[i64], data: Vec<u8>) -> Input {
        Input {
            dtype,
            shape: shape.to_vec(),
            data,
        }
    }

    pub fn f32(shape: &[i64], values: &[f32]) -> Input {
        Input::new(DType::Float, shape, bytes_of(values))
    }

    pub fn i64(shape: &[i64], values: &[i64]) -> Input {
        Input::new(DType::Int64, shape, bytes_of(values))
    }

    pub fn strings(shape: &[i64], values: &[&[u8]]) -> Input {
        let mut data = Vec::new();
        for value in values {
            data.extend_from_slice(value);
            data.push(0);
        }
        Input::new(DType::String, shape, data)
    }

    pub fn view(&self) -> TensorRef<'_> {
        TensorRef {
            dtype: self.dtype,
            device: Device {
                kind: DeviceKind::Cpu,
                id: 0,
            },
            shape: &self.shape,
            data: &self.data,
        }
    }
}

pub fn views(inputs: &[Input]) -> Vec<TensorRef<'_>> {
    inputs.iter().map(Input::view).collect()
}

pub fn bytes_of<T: bytemuck_free::Plain>(values: &[T]) -> Vec<u8> {
    values.iter().flat_map(|v| v.le_bytes()).collect()
}

pub fn f32s(data: &[u8]) -> Vec<f32> {
    data.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

pub fn i64s(data: &[u8]) -> Vec<i64> {
    data.chunks_exact(8)
        .map(|c| {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            i64::from_le_bytes(b)
        })
        .collect()
}

/// Little-endian bytes of plain numbers, without extra dependencies.
pub mod bytemuck_free {
    pub trait Plain: Copy {
        fn le_bytes(self) -> Vec<u8>;
    }
    macro_rules! plain {
        ($($t:ty),*) => {$(
            impl Plain for $t {
                fn le_bytes(self) -> Vec<u8> {
                    self.to_le_bytes().to_vec()
                }
            }
        )*};
    }
    plain!(f32, f64, i8, i16, i32, i64, u8, u16);
}
