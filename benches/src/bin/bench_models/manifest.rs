//! The models of `scripts/gen-bench-models`: each `<name>.json` beside its blob says its
//! backend, its one input and its one output, and how to feed it.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, ensure, Context, Result};
use redisai_plugin_api::abi::RaiDType;
use serde_json::Value;

/// The order of the tables (and the names `--models` takes).
pub const MODEL_ORDER: &[&str] = &[
    "resnet50_onnx",
    "resnet50_torch",
    "resnet50_tf",
    "resnet50_tflite",
    "bert_onnx",
    "bert_torch",
    "image2image_onnx",
    "image2image_torch",
];

/// The large-output model whose row shows the cost of copying outputs (and, once
/// outputs are handed over without a copy, the gain).
pub const LARGE_OUTPUT_MODEL: &str = "image2image_onnx";

/// One tensor of a model: name (a node name for TF), dtype, and shape at batch 1.
#[derive(Clone, Debug)]
pub struct TensorSpec {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<i64>,
}

impl TensorSpec {
    pub fn rai_dtype(&self) -> Result<RaiDType> {
        Ok(match self.dtype.as_str() {
            "FLOAT" => RaiDType::Float,
            "INT64" => RaiDType::Int64,
            other => bail!("{}: dtype {other} is not supported by the bench", self.name),
        })
    }

    fn item_size(&self) -> usize {
        match self.dtype.as_str() {
            "INT64" => 8,
            _ => 4,
        }
    }

    fn elements(&self) -> usize {
        self.shape.iter().map(|&d| d.max(0) as usize).product()
    }

    /// Bytes at batch 1.
    pub fn byte_len(&self) -> usize {
        self.elements() * self.item_size()
    }

    /// The shape with the batch (first) dimension set to `batch`.
    pub fn shape_at(&self, batch: i64) -> Vec<i64> {
        let mut shape = self.shape.clone();
        if let Some(first) = shape.first_mut() {
            *first = batch;
        }
        shape
    }

    /// Input data for `batch` items: values in [0, 1) for FLOAT, token ids for INT64
    /// (a fixed pattern, the same in every run, so outputs can be compared).
    pub fn sample_data(&self, batch: usize) -> Vec<u8> {
        let n = self.elements() * batch;
        match self.dtype.as_str() {
            "INT64" => (0..n as i64)
                .flat_map(|i| (1000 + (i * 7919) % 20000).to_le_bytes())
                .collect(),
            _ => (0..n)
                .flat_map(|i| ((i % 251) as f32 / 251.0).to_le_bytes())
                .collect(),
        }
    }
}

/// A generated model.
#[derive(Clone, Debug)]
pub struct ModelSpec {
    pub name: String,
    pub path: PathBuf,
    /// AI.MODELSTORE's backend name: ONNX, TORCH, TF or TFLITE.
    pub backend: String,
    pub input: TensorSpec,
    pub output: TensorSpec,
    pub blob_bytes: u64,
}

impl ModelSpec {
    /// The plugin of this backend under `dist/backends/`.
    pub fn plugin_path(&self, backends_dir: &Path) -> Result<PathBuf> {
        let name = match self.backend.as_str() {
            "ONNX" => "redisai_onnxruntime",
            "TORCH" => "redisai_torch",
            "TF" => "redisai_tensorflow",
            "TFLITE" => "redisai_tflite",
            other => bail!("{}: unknown backend {other}", self.name),
        };
        Ok(backends_dir.join(name).join(format!("{name}.so")))
    }

    /// The node names TF needs at load (the other backends take none).
    pub fn node_names(&self) -> (Vec<&str>, Vec<&str>) {
        if self.backend == "TF" {
            (vec![&self.input.name], vec![&self.output.name])
        } else {
            (Vec::new(), Vec::new())
        }
    }

    pub fn read_blob(&self) -> Result<Vec<u8>> {
        fs::read(&self.path).with_context(|| format!("reading {}", self.path.display()))
    }

    /// A spec for a model outside the generated set (the small MLP of the tests).
    pub fn onnx_fixed(name: &str, path: PathBuf, input: TensorSpec, output: TensorSpec) -> Self {
        let blob_bytes = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        ModelSpec {
            name: name.into(),
            path,
            backend: "ONNX".into(),
            input,
            output,
            blob_bytes,
        }
    }
}

fn tensor(value: &Value, what: &str) -> Result<TensorSpec> {
    let list = value
        .as_array()
        .with_context(|| format!("{what}: not a list"))?;
    ensure!(
        list.len() == 1,
        "{what}: the bench feeds models with exactly one input and one output"
    );
    let t = &list[0];
    let text = |key: &str| -> Result<String> {
        t.get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .with_context(|| format!("{what}: no {key}"))
    };
    let shape = t
        .get("shape")
        .and_then(Value::as_array)
        .with_context(|| format!("{what}: no shape"))?
        .iter()
        .map(|d| {
            d.as_i64()
                .with_context(|| format!("{what}: bad dimension {d}"))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(TensorSpec {
        name: text("name")?,
        dtype: text("dtype")?,
        shape,
    })
}

/// Reads `<dir>/<name>.json` for each wanted model, in [`MODEL_ORDER`].
pub fn read_models(dir: &Path, wanted: &[String]) -> Result<Vec<ModelSpec>> {
    let mut models = Vec::new();
    for name in MODEL_ORDER
        .iter()
        .filter(|n| wanted.is_empty() || wanted.iter().any(|w| w == *n))
    {
        let json_path = dir.join(format!("{name}.json"));
        let text = fs::read_to_string(&json_path).with_context(|| {
            format!(
                "reading {} (run scripts/gen-bench-models)",
                json_path.display()
            )
        })?;
        let json: Value = serde_json::from_str(&text)
            .with_context(|| format!("parsing {}", json_path.display()))?;
        let field = |key: &str| {
            json.get(key)
                .with_context(|| format!("{}: no {key}", json_path.display()))
        };
        let file = field("file")?.as_str().context("file: not a string")?;
        models.push(ModelSpec {
            name: (*name).into(),
            path: dir.join(file),
            backend: field("backend")?
                .as_str()
                .context("backend: not a string")?
                .into(),
            input: tensor(field("inputs")?, &format!("{name} inputs"))?,
            output: tensor(field("outputs")?, &format!("{name} outputs"))?,
            blob_bytes: field("blob_bytes")?.as_u64().unwrap_or(0),
        });
    }
    for w in wanted {
        ensure!(
            MODEL_ORDER.contains(&w.as_str()),
            "unknown model {w} (known: {})",
            MODEL_ORDER.join(", ")
        );
    }
    Ok(models)
}
