//! Random graphs and scripts for the live fuzzer (`tests/tests/fuzz_live/`): ONNX
//! `ModelProto`s and TensorFlow `GraphDef`s built from real operators by a small protobuf
//! writer, TorchScript scripts that chain torch calls, and TorchScript scripts whose entry
//! points call random commands through `redis.execute`. Each generated item says whether
//! a store of it must be refused by the backends' sandboxes (external data and custom
//! operator domains in ONNX, file operations in TF, `torch.from_file` in TorchScript).
//!
//! Everything stays small: shapes have a few elements, every size or repeat count a graph
//! can compute comes from a small constant (never from computed data), and loops have a
//! constant trip count, so a run is quick and allocates little whatever the operators do.

use std::sync::OnceLock;

use crate::hardening::Rng;

mod execute;
mod onnx;
mod onnx_attrs;
mod tf;
mod tf_attrs;
mod torch;

pub use execute::{execute_script, REFUSED_IN_SCRIPTS, SCRIPT_COMMANDS};
pub use onnx::onnx_model;
pub use tf::{tf_graph, TF_FILE_OPS};
pub use torch::torch_script;

/// Whether the generators leave out `name`: an operator (ONNX op_type, TF op), a command
/// a script calls, or one of the tags `onnx-empty-input` (an ONNX node input named "").
/// From `$REDISAI_LIVE_FUZZ_AVOID`, comma-separated, to look past a known crash while it
/// is being fixed (the cases then differ from those of the same seed without it).
pub fn avoided(name: &str) -> bool {
    static AVOID: OnceLock<Vec<String>> = OnceLock::new();
    AVOID
        .get_or_init(|| {
            std::env::var("REDISAI_LIVE_FUZZ_AVOID")
                .unwrap_or_default()
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .iter()
        .any(|a| a.eq_ignore_ascii_case(name))
}

/// One of `items` whose name (by `name`) is not [`avoided`] (any, if all are).
pub fn pick_allowed<'a, T>(rng: &mut Rng, items: &'a [T], name: impl Fn(&T) -> &str) -> &'a T {
    for _ in 0..64 {
        let item = rng.pick(items);
        if !avoided(name(item)) {
            return item;
        }
    }
    rng.pick(items)
}

pub use crate::protobuf::Pb;

/// Files a hostile model or script would like to read (relative ones resolve against the
/// server's working directory, its data directory).
pub const LOCATIONS: &[&str] = &[
    "../../etc/passwd",
    "../../../../../../etc/hostname",
    "dump.rdb",
    "appendonlydir/appendonly.aof.1.incr.aof",
    "nodes.conf",
    "/etc/passwd",
    "./../redisai-fuzz-missing",
    "",
];

/// Where a generated TF graph would write, were it allowed to (the parent of the server's
/// data directory: the temp directory); the fuzzer checks afterwards that nothing was.
pub const WRITTEN: &str = "../redisai-fuzz-written";

/// Where a `PrintV2` node may print to (`file://` output stream); reported, not refused.
pub const PRINTED: &str = "redisai-fuzz-printv2";

/// Small values for input tensors and constants.
const SMALL_FLOATS: &[f32] = &[-2.0, -1.0, 0.0, 0.5, 1.0, 2.0, 3.0];

/// One of `items` (numbers).
fn one_i64(rng: &mut Rng, items: &[i64]) -> i64 {
    items[rng.below(items.len())]
}

/// One of `items`.
fn one<'a>(rng: &mut Rng, items: &[&'a str]) -> &'a str {
    items[rng.below(items.len())]
}

/// One generated model or script, and whether a store of it must be refused.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The model's bytes or the script's source.
    pub bytes: Vec<u8>,
    /// Why a store of it must be refused, when it must.
    pub must_refuse: Option<String>,
    /// The operations, for messages.
    pub ops: Vec<String>,
    /// TF: the output node; scripts: the entry points.
    pub names: Vec<String>,
    /// Scripts: the entry points whose first statement calls a command that scripts may
    /// never call (their runs must fail).
    pub refused_entries: Vec<String>,
    /// The input the model or script is run with: dtype, dims, values.
    pub input: (&'static str, Vec<usize>, Vec<String>),
    /// Other operations that reach files, refused or not by the sandbox (reported).
    pub other_file_ops: Vec<String>,
}

impl Generated {
    fn new(bytes: Vec<u8>) -> Generated {
        Generated {
            bytes,
            must_refuse: None,
            ops: Vec::new(),
            names: Vec::new(),
            refused_entries: Vec::new(),
            input: ("FLOAT", vec![4], vec!["1".into(); 4]),
            other_file_ops: Vec::new(),
        }
    }

    fn refuse(&mut self, why: impl Into<String>) {
        if self.must_refuse.is_none() {
            self.must_refuse = Some(why.into());
        }
    }
}

fn float_input(rng: &mut Rng, dims: &[usize]) -> (&'static str, Vec<usize>, Vec<String>) {
    // The declared shape mostly; else another small one.
    let dims = if rng.chance(80) {
        dims.to_vec()
    } else {
        rng.pick(&[vec![4], vec![2, 2], vec![1], vec![3, 1], vec![1, 4]])
            .clone()
    };
    let n: usize = dims.iter().product();
    let values = (0..n).map(|_| rng.pick(SMALL_FLOATS).to_string()).collect();
    ("FLOAT", dims, values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generators_are_reproducible_and_flag_what_they_must() {
        let mut a = Rng::new(5);
        let mut b = Rng::new(5);
        let (mut onnx, mut tf, mut torch) = (0, 0, 0);
        for _ in 0..300 {
            let (x, y) = (onnx_model(&mut a), onnx_model(&mut b));
            assert_eq!(x.bytes, y.bytes);
            onnx += x.must_refuse.is_some() as usize;
            let g = tf_graph(&mut a);
            let _ = tf_graph(&mut b);
            tf += g.must_refuse.is_some() as usize;
            assert_eq!(
                g.must_refuse.is_some(),
                g.ops.iter().any(|op| TF_FILE_OPS.contains(&op.as_str()))
            );
            let s = torch_script(&mut a);
            let _ = torch_script(&mut b);
            let source = String::from_utf8(s.bytes).expect("UTF-8");
            assert!(s.must_refuse.is_none() || source.contains("from_file"));
            assert_eq!(
                s.must_refuse.is_some() || !s.other_file_ops.is_empty(),
                source.contains("from_file")
            );
            torch += s.must_refuse.is_some() as usize;
            let e = execute_script(&mut a);
            let _ = execute_script(&mut b);
            assert!(String::from_utf8(e.bytes)
                .expect("UTF-8")
                .contains("def e0"));
        }
        assert!(onnx > 20 && tf > 20 && torch > 20, "{onnx} {tf} {torch}");
    }
}
