//! Attributes of the generated ONNX nodes.

use super::onnx::{onnx_type, value_info, OnnxBuild};
use super::*;

const ONNX_ATTR_NAMES: &[&str] = &[
    "axis",
    "axes",
    "perm",
    "to",
    "alpha",
    "beta",
    "value",
    "shape",
    "mode",
    "keepdims",
    "transA",
    "transB",
    "equation",
    "body",
    "then_branch",
    "else_branch",
    "dtype",
    "seed",
    "num_outputs",
    "k",
    "upper",
    "location",
    "ep_cache_context",
    "embed_mode",
    "",
];

fn attribute(name: &str) -> Pb {
    Pb::default().str(1, name)
}

fn int_attr(name: &str, v: i64) -> Pb {
    attribute(name).int(3, v).int(20, 2)
}

fn ints_attr(name: &str, v: &[i64]) -> Pb {
    let mut a = attribute(name);
    for &x in v {
        a = a.int(8, x);
    }
    a.int(20, 7)
}

fn float_attr(name: &str, v: f32) -> Pb {
    attribute(name).float(2, v).int(20, 1)
}

fn str_attr(name: &str, v: &str) -> Pb {
    attribute(name).str(4, v).int(20, 3)
}

pub(super) fn tensor_attr(name: &str, t: Pb) -> Pb {
    attribute(name).msg(5, t).int(20, 4)
}

pub(super) fn graph_attr(name: &str, g: Pb) -> Pb {
    attribute(name).msg(6, g).int(20, 5)
}

fn small_float_tensor(rng: &mut Rng) -> Pb {
    let n = 1 + rng.below(4);
    let values: Vec<f32> = (0..n).map(|_| *rng.pick(SMALL_FLOATS)).collect();
    Pb::default()
        .int(1, n as i64)
        .int(2, onnx_type::FLOAT)
        .packed_floats(4, &values)
}

/// A branch or body subgraph: `inputs` (name, type), one node, and its outputs.
pub(super) fn subgraph(nodes: &[Pb], inputs: &[(&str, i64)], outputs: &[(&str, i64)]) -> Pb {
    let mut g = Pb::default();
    for n in nodes {
        g = g.msg(1, n.clone());
    }
    g = g.str(2, "sub");
    for (name, ty) in inputs {
        g = g.msg(11, value_info(name, *ty, None));
    }
    for (name, ty) in outputs {
        g = g.msg(12, value_info(name, *ty, None));
    }
    g
}

pub(super) fn onnx_node(op: &str, domain: &str, inputs: &[String], outputs: &[String]) -> Pb {
    let mut n = Pb::default();
    for i in inputs {
        n = n.str(1, i);
    }
    for o in outputs {
        n = n.str(2, o);
    }
    n = n.str(4, op);
    if !domain.is_empty() {
        n = n.str(7, domain);
    }
    n
}

/// Attributes for `op` (its usual ones, with small values), sometimes wrong or extra.
pub(super) fn onnx_attrs(rng: &mut Rng, b: &mut OnnxBuild, op: &str) -> Vec<Pb> {
    let axis = rng.below(4) as i64 - 2;
    let mut attrs = match op {
        "Softmax" | "Flatten" | "Concat" | "Gather" | "GatherElements" | "ArgMax" | "Split"
        | "LayerNormalization" | "CumSum" | "TopK" | "Compress" => vec![int_attr("axis", axis)],
        "LeakyRelu" | "Elu" => vec![float_attr("alpha", *rng.pick(SMALL_FLOATS))],
        "Gemm" => vec![int_attr("transA", rng.below(2) as i64)],
        "Transpose" => vec![ints_attr(
            "perm",
            rng.pick::<&[i64]>(&[&[0], &[1, 0], &[0, 1], &[2, 0, 1]]),
        )],
        "Cast" => vec![int_attr(
            "to",
            *rng.pick(&[
                onnx_type::FLOAT,
                onnx_type::INT32,
                onnx_type::INT64,
                onnx_type::DOUBLE,
                onnx_type::BOOL,
                onnx_type::STRING,
                0,
                99,
            ]),
        )],
        "Einsum" => vec![str_attr(
            "equation",
            one(
                rng,
                &[
                    "i,i->i",
                    "ij,jk->ik",
                    "i,j->ij",
                    "...,...->...",
                    "ii->i",
                    "->",
                    "a",
                ],
            ),
        )],
        "Trilu" => vec![int_attr("upper", rng.below(2) as i64)],
        "DepthToSpace" | "SpaceToDepth" => vec![int_attr("blocksize", rng.below(4) as i64)],
        "MaxPool" | "AveragePool" | "MaxUnpool" | "Conv" | "ConvTranspose" => vec![
            ints_attr(
                "kernel_shape",
                rng.pick::<&[i64]>(&[&[2], &[1, 1], &[2, 2], &[0]]),
            ),
            ints_attr(
                "strides",
                rng.pick::<&[i64]>(&[&[1], &[1, 1], &[2, 2], &[0, 1]]),
            ),
        ],
        "Upsample" => vec![str_attr("mode", one(rng, &["nearest", "linear"]))],
        "Multinomial" => vec![int_attr("sample_size", 1 + rng.below(3) as i64)],
        "ReverseSequence" => vec![
            int_attr("batch_axis", rng.below(2) as i64),
            int_attr("time_axis", rng.below(2) as i64),
        ],
        "LpNormalization" => vec![int_attr("p", rng.below(4) as i64)],
        "DFT" => vec![int_attr("onesided", rng.below(2) as i64)],
        "Shrink" => vec![float_attr("lambd", *rng.pick(SMALL_FLOATS))],
        "Mod" => vec![int_attr("fmod", 1)],
        "ReduceMean" | "ReduceMax" => vec![int_attr("keepdims", rng.below(2) as i64)],
        "Resize" => vec![str_attr("mode", one(rng, &["nearest", "linear", "cubic"]))],
        "Pad" => vec![str_attr("mode", one(rng, &["constant", "reflect", "edge"]))],
        "RandomNormal" => vec![
            ints_attr("shape", rng.pick::<&[i64]>(&[&[2], &[1, 3], &[4]])),
            int_attr("dtype", onnx_type::FLOAT),
        ],
        "ConstantOfShape" => vec![tensor_attr(
            "value",
            Pb::default()
                .int(1, 1)
                .int(2, onnx_type::FLOAT)
                .packed_floats(4, &[1.5]),
        )],
        "StringNormalizer" => vec![str_attr("case_change_action", "LOWER")],
        "Normalizer" => vec![str_attr("norm", one(rng, &["MAX", "L1", "L2"]))],
        "Scaler" => vec![attribute("scale").float(7, 2.0).int(20, 6)],
        "Constant" => vec![tensor_attr("value", small_float_tensor(rng))],
        "If" => {
            let branch = |rng: &mut Rng, b: &mut OnnxBuild| {
                let out = b.name("br");
                let node = if rng.chance(50) {
                    onnx_node(
                        "Identity",
                        "",
                        &["x".to_owned()],
                        std::slice::from_ref(&out),
                    )
                } else {
                    onnx_node("Constant", "", &[], std::slice::from_ref(&out))
                        .msg(5, tensor_attr("value", small_float_tensor(rng)))
                };
                subgraph(&[node], &[], &[(out.as_str(), onnx_type::FLOAT)])
            };
            let then_g = branch(rng, b);
            let else_g = branch(rng, b);
            vec![
                graph_attr("then_branch", then_g),
                graph_attr("else_branch", else_g),
            ]
        }
        "Loop" => {
            // Body: (iteration, condition, carried) -> (condition, carried op).
            let op = *rng.pick(&["Relu", "Neg", "Identity", "Abs"]);
            let body = subgraph(
                &[
                    onnx_node("Identity", "", &["cond_in".into()], &["cond_out".into()]),
                    onnx_node(op, "", &["v_in".into()], &["v_out".into()]),
                ],
                &[
                    ("iter", onnx_type::INT64),
                    ("cond_in", onnx_type::BOOL),
                    ("v_in", onnx_type::FLOAT),
                ],
                &[("cond_out", onnx_type::BOOL), ("v_out", onnx_type::FLOAT)],
            );
            vec![graph_attr("body", body)]
        }
        "Scan" => {
            let body = subgraph(
                &[onnx_node(
                    "Identity",
                    "",
                    &["s_in".into()],
                    &["s_out".into()],
                )],
                &[("s_in", onnx_type::FLOAT)],
                &[("s_out", onnx_type::FLOAT)],
            );
            vec![graph_attr("body", body), int_attr("num_scan_inputs", 1)]
        }
        "EPContext" => vec![
            str_attr("ep_cache_context", one(rng, LOCATIONS)),
            int_attr("embed_mode", 0),
            str_attr("source", "x"),
        ],
        _ => Vec::new(),
    };
    if !attrs.is_empty() && rng.chance(8) {
        attrs.remove(rng.below(attrs.len()));
    }
    if rng.chance(10) {
        // An extra attribute, of any kind.
        let name = *rng.pick(ONNX_ATTR_NAMES);
        attrs.push(match rng.below(6) {
            0 => int_attr(name, rng.next_u64() as i64),
            1 => ints_attr(name, &[rng.below(5) as i64 - 2, 1]),
            2 => float_attr(name, f32::from_bits(rng.next_u64() as u32)),
            3 => str_attr(name, one(rng, LOCATIONS)),
            4 => tensor_attr(name, small_float_tensor(rng)),
            _ => attribute(name).int(20, rng.below(16) as i64),
        });
    }
    attrs
}
