//! Copies of a checked model with a few fields rewritten, every other byte kept.

use super::walk::deeper;
use super::wire::{
    attribute, each_bytes, each_raw, function, graph, last_bytes, model, node, type_proto,
    value_info, Value,
};
use super::{Checked, Refusal};

/// A copy of the model whose inputs named in `ranks` declare a shape of that rank, every
/// dimension symbolic (its own name). Each of those inputs' `ValueInfoProto` gets one more
/// `type { tensor_type { shape } }`, which protobuf merges into the type it has: the
/// element type stays, the shape (absent before) is the new one. Every other byte of the
/// model is kept as it is.
pub fn declare_ranks(blob: &[u8], ranks: &[(&str, usize)]) -> Result<Vec<u8>, String> {
    let rewrite = || -> Checked<Vec<u8>> {
        let mut out = Vec::with_capacity(blob.len() + 64 * ranks.len());
        each_raw(blob, |number, raw, value| {
            match (number, value) {
                (model::GRAPH, Value::Bytes(graph)) => {
                    let mut g = Vec::with_capacity(graph.len() + 64 * ranks.len());
                    each_raw(graph, |number, raw, value| {
                        match (number, value) {
                            (graph::INPUT, Value::Bytes(input)) => {
                                let name = last_bytes(input, value_info::NAME)?;
                                let name = String::from_utf8_lossy(name);
                                match ranks.iter().position(|(n, _)| *n == name) {
                                    Some(at) => {
                                        let mut vi = input.to_vec();
                                        put_bytes(
                                            &mut vi,
                                            value_info::TYPE,
                                            &rank_type(at, ranks[at].1),
                                        );
                                        put_bytes(&mut g, graph::INPUT, &vi);
                                    }
                                    None => g.extend_from_slice(raw),
                                }
                            }
                            _ => g.extend_from_slice(raw),
                        }
                        Ok(())
                    })?;
                    put_bytes(&mut out, model::GRAPH, &g);
                }
                _ => out.extend_from_slice(raw),
            }
            Ok(())
        })?;
        Ok(out)
    };
    rewrite().map_err(Refusal::text)
}

/// A copy of a checked model (call after [`check`]) whose nodes no longer name trailing
/// omitted optional inputs: a node's inputs that are `""` from some position to the end
/// are dropped, in the main graph, every subgraph (attributes `g` and `graphs`) and the
/// local functions. ONNX gives both forms one meaning, but ONNX Runtime 1.32's level-2
/// graph optimizations dereference the missing input of the `""` form
/// (`LayerNormalization(x, scale, "")` crashes the server when the model is loaded).
/// An empty name before a named input (Resize's `roi`) is kept. Every other byte is kept.
pub fn drop_trailing_empty_inputs(blob: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(blob.len());
    let rewritten = each_raw(blob, |number, raw, value| match (number, value) {
        (model::GRAPH, Value::Bytes(graph)) => {
            put_bytes(&mut out, number, &rewrite_graph(graph, 1)?);
            Ok(())
        }
        (model::FUNCTIONS, Value::Bytes(function)) => {
            let mut f = Vec::with_capacity(function.len());
            each_raw(function, |number, raw, value| match (number, value) {
                (function::NODE, Value::Bytes(node)) => {
                    put_bytes(&mut f, number, &rewrite_node(node, 2)?);
                    Ok(())
                }
                _ => {
                    f.extend_from_slice(raw);
                    Ok(())
                }
            })?;
            put_bytes(&mut out, number, &f);
            Ok(())
        }
        _ => {
            out.extend_from_slice(raw);
            Ok(())
        }
    });
    rewritten.map_err(Refusal::text)?;
    Ok(out)
}

fn rewrite_graph(graph: &[u8], depth: usize) -> Checked<Vec<u8>> {
    let depth = deeper(depth)?;
    let mut out = Vec::with_capacity(graph.len());
    each_raw(graph, |number, raw, value| {
        match (number, value) {
            (graph::NODE, Value::Bytes(node)) => {
                put_bytes(&mut out, number, &rewrite_node(node, depth)?)
            }
            _ => out.extend_from_slice(raw),
        }
        Ok(())
    })?;
    Ok(out)
}

fn rewrite_node(node: &[u8], depth: usize) -> Checked<Vec<u8>> {
    let depth = deeper(depth)?;
    // Inputs from `keep` on (counting input occurrences) are all "".
    let mut inputs = 0usize;
    let mut keep = 0usize;
    each_bytes(node, |number, inner| {
        if number == node::INPUT {
            inputs += 1;
            if !inner.is_empty() {
                keep = inputs;
            }
        }
        Ok(())
    })?;
    let mut out = Vec::with_capacity(node.len());
    let mut seen = 0usize;
    each_raw(node, |number, raw, value| {
        match (number, value) {
            (node::INPUT, Value::Bytes(_)) => {
                seen += 1;
                if seen <= keep {
                    out.extend_from_slice(raw);
                }
            }
            (node::ATTRIBUTE, Value::Bytes(attr)) => {
                let mut a = Vec::with_capacity(attr.len());
                each_raw(attr, |number, raw, value| {
                    match (number, value) {
                        (attribute::G | attribute::GRAPHS, Value::Bytes(graph)) => {
                            put_bytes(&mut a, number, &rewrite_graph(graph, depth)?)
                        }
                        _ => a.extend_from_slice(raw),
                    }
                    Ok(())
                })?;
                put_bytes(&mut out, number, &a);
            }
            _ => out.extend_from_slice(raw),
        }
        Ok(())
    })?;
    Ok(out)
}

/// `TypeProto { tensor_type { shape { dim { dim_param } x rank } } }`.
fn rank_type(input: usize, rank: usize) -> Vec<u8> {
    let mut shape = Vec::new();
    for d in 0..rank {
        let mut dim = Vec::new();
        put_bytes(
            &mut dim,
            2,
            format!("redisai_input{input}_dim{d}").as_bytes(),
        );
        put_bytes(&mut shape, 1, &dim);
    }
    let mut tensor = Vec::new();
    put_bytes(&mut tensor, type_proto::SHAPE, &shape);
    let mut ty = Vec::new();
    put_bytes(&mut ty, type_proto::TENSOR_TYPE, &tensor);
    ty
}

/// Appends a length-delimited field.
fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_varint(out, (u64::from(field) << 3) | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}
