//! Writes the TorchScript test models into a folder (default `tests/models/torch`):
//! made with libtorch itself (`redisai_torch::make_module`), so no Python torch is needed.
//!
//!   add.pt          forward(a, b) -> a + b                     (any dtype)
//!   mlp.pt          forward(x[N,4] FLOAT) -> relu(x W1 + b1) W2 + b2   ([N,3])
//!   two_outputs.pt  forward(a, b) -> (a + b, a * b)
//!   argmax.pt       forward(x[N,K] FLOAT) -> argmax over K     (INT64)
//!   logical.pt      forward(a, b BOOL) -> (a and b, a xor b)   (BOOL)
//!
//! and hostile models, which the sandbox policy (src/policy.rs) must refuse:
//!
//!   hostile_from_file.pt  forward(x UINT8) returns /etc/passwd's first 64 bytes + x
//!   hostile_submodule.pt  forward(x) calls self.reader.read(x), which does the same
//!   hostile_setstate.pt   __setstate__ (run while libtorch loads the model) creates
//!                         /tmp/redisai-hostile-setstate with from_file(shared=True)
//!
//! Usage: `cargo run --bin gen-torch-models -- [DIR]`, with LIBTORCH set (see build.rs).

use std::path::PathBuf;

use redisai_plugin_api::sdk::{DType, Device, DeviceKind, TensorRef};
use redisai_torch::{make_module, make_module_with_child};

/// A FLOAT parameter with deterministic values: ((i * 5 + seed) % 9 - 4) / 8.
fn param(shape: &[i64], seed: usize) -> (Vec<i64>, Vec<u8>) {
    let count: i64 = shape.iter().product();
    let data = (0..count as usize)
        .flat_map(|i| ((((i * 5 + seed) % 9) as f32 - 4.0) / 8.0).to_le_bytes())
        .collect();
    (shape.to_vec(), data)
}

fn tensor<'a>(shape: &'a [i64], data: &'a [u8]) -> TensorRef<'a> {
    TensorRef {
        dtype: DType::Float,
        device: Device {
            kind: DeviceKind::Cpu,
            id: 0,
        },
        shape,
        data,
    }
}

fn main() -> Result<(), String> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "tests/models/torch".into()),
    );
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let plain: [(&str, &str); 4] = [
        (
            "add.pt",
            "def forward(self, a: Tensor, b: Tensor) -> Tensor:\n    return a + b\n",
        ),
        (
            "two_outputs.pt",
            "def forward(self, a: Tensor, b: Tensor) -> Tuple[Tensor, Tensor]:\n    return a + b, a * b\n",
        ),
        (
            "argmax.pt",
            "def forward(self, x: Tensor) -> Tensor:\n    return torch.argmax(x, 1)\n",
        ),
        (
            "logical.pt",
            "def forward(self, a: Tensor, b: Tensor) -> Tuple[Tensor, Tensor]:\n    return torch.logical_and(a, b), torch.logical_xor(a, b)\n",
        ),
    ];
    let mut written = Vec::new();
    for (name, source) in plain {
        written.push((
            name,
            make_module(source, &[]).map_err(|e| format!("{name}: {e}"))?,
        ));
    }
    let (w1s, w1) = param(&[4, 8], 1);
    let (b1s, b1) = param(&[8], 2);
    let (w2s, w2) = param(&[8, 3], 3);
    let (b2s, b2) = param(&[3], 4);
    let mlp = make_module(
        "def forward(self, x: Tensor) -> Tensor:\n    return torch.relu(x @ self.w1 + self.b1) @ self.w2 + self.b2\n",
        &[
            ("w1", tensor(&w1s, &w1)),
            ("b1", tensor(&b1s, &b1)),
            ("w2", tensor(&w2s, &w2)),
            ("b2", tensor(&b2s, &b2)),
        ],
    )
    .map_err(|e| format!("mlp.pt: {e}"))?;
    written.push(("mlp.pt", mlp));
    // dtype 0 is uint8 (TorchScript passes dtypes as ints): x is a UINT8 tensor.
    let read_passwd = "torch.from_file(\"/etc/passwd\", False, 64, dtype=0) + x";
    written.push((
        "hostile_from_file.pt",
        make_module(
            &format!("def forward(self, x: Tensor) -> Tensor:\n    return {read_passwd}\n"),
            &[],
        )
        .map_err(|e| format!("hostile_from_file.pt: {e}"))?,
    ));
    written.push((
        "hostile_submodule.pt",
        make_module_with_child(
            "def forward(self, x: Tensor) -> Tensor:\n    return self.reader.read(x)\n",
            "reader",
            &format!("def read(self, x: Tensor) -> Tensor:\n    return {read_passwd}\n"),
        )
        .map_err(|e| format!("hostile_submodule.pt: {e}"))?,
    ));
    written.push((
        "hostile_setstate.pt",
        make_module(
            "def __getstate__(self) -> int:\n    return 1\n\ndef __setstate__(self, state: int) -> None:\n    print(torch.from_file(\"/tmp/redisai-hostile-setstate\", True, 64).sum())\n\ndef forward(self, x: Tensor) -> Tensor:\n    return x\n",
            &[],
        )
        .map_err(|e| format!("hostile_setstate.pt: {e}"))?,
    ));
    for (name, bytes) in written {
        let path = dir.join(name);
        std::fs::write(&path, &bytes).map_err(|e| format!("{}: {e}", path.display()))?;
        println!("{} ({} bytes)", path.display(), bytes.len());
    }
    Ok(())
}
