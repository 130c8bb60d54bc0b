//! Helpers shared by the integration tests: the TensorFlow libraries, the test models and
//! tensors.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Once};

use redisai_plugin_api::sdk::{ConfigKey, DType, Device, DeviceKind, OwnedTensor, TensorRef};
use redisai_tensorflow::{
    TfBackend, TfModel, FRAMEWORK_LIB_NAME, RUNTIME_LIB_ENV, RUNTIME_LIB_NAME, TENSORFLOW_VERSION,
};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Makes sure the TensorFlow libraries can be found: `REDISAI_TENSORFLOW_LIB`, or else where
/// `scripts/fetch-tensorflow` puts them by default. Fails (never skips) when they are missing.
pub fn ensure_runtime_lib() -> PathBuf {
    static SET: Once = Once::new();
    let cache = std::env::var_os("REDISAI_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".cache"));
    let default = cache
        .join(format!("tensorflow-{TENSORFLOW_VERSION}"))
        .join(RUNTIME_LIB_NAME);
    let path = match std::env::var_os(RUNTIME_LIB_ENV).filter(|p| !p.is_empty()) {
        Some(path) => PathBuf::from(path),
        None => default.clone(),
    };
    let framework = path.with_file_name(FRAMEWORK_LIB_NAME);
    assert!(
        path.is_file() && framework.is_file(),
        "\n\nThe TensorFlow backend tests need TensorFlow's libraries, and {} or {} does not \
         exist.\nRun `scripts/build-backend-tensorflow --test` (it fetches them and sets \
         {RUNTIME_LIB_ENV}), or run `scripts/fetch-tensorflow` (it prints the path of \
         {RUNTIME_LIB_NAME}) and set {RUNTIME_LIB_ENV} to that path; unset, the tests use \
         {}.\n",
        path.display(),
        framework.display(),
        default.display()
    );
    SET.call_once(|| {
        if std::env::var_os(RUNTIME_LIB_ENV).is_none() {
            // Before any backend exists in this process, so before TensorFlow starts
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
}

impl Settings {
    pub fn get(&self, key: ConfigKey) -> i64 {
        let cell = match key {
            ConfigKey::IntraOpParallelism => &self.intra,
            ConfigKey::InterOpParallelism => &self.inter,
            ConfigKey::ModelExecutionTimeoutMs => &self.timeout_ms,
            ConfigKey::BackendMemoryLimitMb => return 0,
        };
        cell.load(Ordering::SeqCst)
    }

    pub fn set(cell: &AtomicI64, value: i64) {
        cell.store(value, Ordering::SeqCst);
    }
}

/// A backend with default settings.
pub fn backend() -> TfBackend {
    backend_with(Settings::default())
}

pub fn backend_with(settings: Settings) -> TfBackend {
    ensure_runtime_lib();
    match TfBackend::new(move |key| settings.get(key)) {
        Ok(backend) => backend,
        Err(err) => panic!("could not start the TF backend: {}", err.0),
    }
}

pub fn model_bytes(name: &str) -> Vec<u8> {
    let path = repo_root().join("tests/models/tf").join(name);
    std::fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

pub fn load(backend: &TfBackend, name: &str, inputs: &[&str], outputs: &[&str]) -> TfModel {
    match backend.load(&model_bytes(name), &strings(inputs), &strings(outputs)) {
        Ok(model) => model,
        Err(err) => panic!("loading {name}: {}", err.0),
    }
}

pub fn load_err(backend: &TfBackend, blob: &[u8], inputs: &[&str], outputs: &[&str]) -> String {
    match backend.load(blob, &strings(inputs), &strings(outputs)) {
        Ok(_) => panic!("the load should have failed"),
        Err(err) => err.0,
    }
}

pub fn run(backend: &TfBackend, model: &TfModel, inputs: &[Input], n: usize) -> Vec<OwnedTensor> {
    match backend.run(model, 0, &views(inputs), n) {
        Ok(outputs) => outputs,
        Err(err) => panic!("run failed: {}", err.0),
    }
}

pub fn run_err(backend: &TfBackend, model: &TfModel, inputs: &[Input], n: usize) -> String {
    match backend.run(model, 0, &views(inputs), n) {
        Ok(_) => panic!("the run should have failed"),
        Err(err) => err.0,
    }
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
        Input::new(DType::Float, shape, le_bytes(values))
    }

    pub fn i64(shape: &[i64], values: &[i64]) -> Input {
        Input::new(DType::Int64, shape, le_bytes(values))
    }

    pub fn strings(shape: &[i64], elements: &[&[u8]]) -> Input {
        let tensor = OwnedTensor::from_strings(shape.to_vec(), elements);
        Input::new(DType::String, shape, tensor.data)
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

/// Plain numbers and their little-endian bytes.
pub trait Plain: Copy + Sized {
    const SIZE: usize;
    fn put(self, out: &mut Vec<u8>);
    fn take(bytes: &[u8]) -> Self;
}

macro_rules! plain {
    ($($t:ty),*) => {$(
        impl Plain for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
            fn take(bytes: &[u8]) -> Self {
                let mut b = [0u8; std::mem::size_of::<$t>()];
                b.copy_from_slice(bytes);
                <$t>::from_le_bytes(b)
            }
        }
    )*};
}
plain!(f32, f64, i8, i16, i32, i64, u8, u16);

pub fn le_bytes<T: Plain>(values: &[T]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * T::SIZE);
    for &v in values {
        v.put(&mut out);
    }
    out
}

pub fn values<T: Plain>(data: &[u8]) -> Vec<T> {
    data.chunks_exact(T::SIZE).map(T::take).collect()
}

pub fn f32s(data: &[u8]) -> Vec<f32> {
    values(data)
}

/// A deterministic RGBA image of `width` x `height`: smooth gradients plus a little
/// pseudo-random noise, so zlib has real work to do.
pub fn test_image(width: usize, height: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_u32;
    let mut out = Vec::with_capacity(width * height * 4);
    for y in 0..height {
        for x in 0..width {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let noise = (state & 7) as u8;
            out.push((x % 256) as u8 ^ noise);
            out.push((y % 256) as u8);
            out.push(((x + y) % 256) as u8);
            out.push(255);
        }
    }
    out
}

/// The input of zlib.pb: tests/models/tf/zlib_1mib.b64, 1 MiB of text (32-byte
/// [`ZLIB_TEXT_UNIT`] repeated) zlib-compressed and base64-encoded (web-safe alphabet).
pub fn zlib_input() -> Input {
    let text = model_bytes("zlib_1mib.b64");
    let text = text.trim_ascii_end();
    Input::strings(&[], &[text])
}

pub const ZLIB_TEXT_UNIT: &[u8] = b"RedisAI runs TensorFlow graphs. ";
