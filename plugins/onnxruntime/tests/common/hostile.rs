//! Hostile ONNX models (protobuf by hand): external data in an initializer, a Constant's
//! attribute, an If branch and a model-local function; a custom operator domain.

use super::ensure_runtime_lib;
use super::onnx::{elem, Pb};
use ort::session::{Session, SessionInputValue};
use redisai_onnxruntime::runtime;

pub const SECRET: [f32; 4] = [1.5, 2.5, -3.0, 42.0];

/// A FLOAT [4] tensor named `name` whose data is in the file `location`.
pub fn external_tensor(name: &str, location: &str) -> Pb {
    let entry = |k: &str, v: &str| Pb::default().str(1, k).str(2, v);
    Pb::default()
        .int(1, 4)
        .int(2, elem::FLOAT)
        .str(8, name)
        .msg(13, entry("location", location))
        .msg(13, entry("offset", "0"))
        .msg(13, entry("length", "16"))
        .int(14, 1)
}

/// A FLOAT [4] tensor in the model.
pub fn inline_tensor(name: &str) -> Pb {
    let raw: Vec<u8> = [0f32; 4].iter().flat_map(|v| v.to_le_bytes()).collect();
    Pb::default()
        .int(1, 4)
        .int(2, elem::FLOAT)
        .str(8, name)
        .bytes(9, &raw)
}

pub fn value_info(name: &str, elem_type: i64, dims: &[i64]) -> Pb {
    let mut shape = Pb::default();
    for &d in dims {
        shape = shape.msg(1, Pb::default().int(1, d));
    }
    let tensor = Pb::default().int(1, elem_type).msg(2, shape);
    Pb::default()
        .str(1, name)
        .msg(2, Pb::default().msg(1, tensor))
}

pub fn node(op: &str, domain: &str, inputs: &[&str], outputs: &[&str]) -> Pb {
    let mut n = Pb::default();
    for i in inputs {
        n = n.str(1, i);
    }
    for o in outputs {
        n = n.str(2, o);
    }
    n = n.str(3, &format!("{op}_node")).str(4, op);
    if !domain.is_empty() {
        n = n.str(7, domain);
    }
    n
}

/// A Constant node whose value is `tensor`.
pub fn constant(tensor: Pb, output: &str) -> Pb {
    let attr = Pb::default().str(1, "value").int(20, 4).msg(5, tensor);
    node("Constant", "", &[], &[output]).msg(5, attr)
}

pub fn model(graph: Pb, extra: Pb) -> Vec<u8> {
    let mut m = Pb::default()
        .int(1, 8)
        .str(2, "redisai-onnxruntime-tests")
        .msg(7, graph)
        .msg(8, Pb::default().str(1, "").int(2, 17));
    m.0.extend_from_slice(&extra.0);
    m.0
}

/// The hostile models: output `y` (FLOAT [4]); inputs: none, `x` (FLOAT [4], the
/// initializer model) or `cond` (BOOL [], the If model).
pub fn initializer_model(location: &str) -> Vec<u8> {
    // y = x + w: an initializer ONNX Runtime cannot fold away at load.
    let graph = Pb::default()
        .msg(1, node("Add", "", &["x", "w"], &["y"]))
        .str(2, "g")
        .msg(5, external_tensor("w", location))
        .msg(11, value_info("x", elem::FLOAT, &[4]))
        .msg(12, value_info("y", elem::FLOAT, &[4]));
    model(graph, Pb::default())
}

pub fn constant_model(location: &str) -> Vec<u8> {
    let graph = Pb::default()
        .msg(1, constant(external_tensor("w", location), "y"))
        .str(2, "g")
        .msg(12, value_info("y", elem::FLOAT, &[4]));
    model(graph, Pb::default())
}

pub fn if_model(location: &str) -> Vec<u8> {
    let branch = |name: &str, body: Pb| {
        let g = Pb::default()
            .msg(1, body)
            .str(2, name)
            .msg(12, value_info(&format!("{name}_out"), elem::FLOAT, &[4]));
        Pb::default().str(1, name).int(20, 5).msg(6, g)
    };
    let then_branch = branch(
        "then_branch",
        constant(external_tensor("w", location), "then_branch_out"),
    );
    let else_branch = branch(
        "else_branch",
        constant(inline_tensor("z"), "else_branch_out"),
    );
    let if_node = node("If", "", &["cond"], &["y"])
        .msg(5, then_branch)
        .msg(5, else_branch);
    let graph = Pb::default()
        .msg(1, if_node)
        .str(2, "g")
        .msg(11, value_info("cond", elem::BOOL, &[]))
        .msg(12, value_info("y", elem::FLOAT, &[4]));
    model(graph, Pb::default())
}

pub fn function_model(location: &str) -> Vec<u8> {
    let function = Pb::default()
        .str(1, "Leak")
        .str(5, "out")
        .msg(7, constant(external_tensor("w", location), "out"))
        .msg(9, Pb::default().str(1, "").int(2, 17))
        .str(10, "local.fn");
    let graph = Pb::default()
        .msg(1, node("Leak", "local.fn", &[], &["y"]))
        .str(2, "g")
        .msg(12, value_info("y", elem::FLOAT, &[4]));
    let extra = Pb::default()
        .msg(8, Pb::default().str(1, "local.fn").int(2, 1))
        .msg(25, function);
    model(graph, extra)
}

pub fn custom_domain_model() -> Vec<u8> {
    let graph = Pb::default()
        .msg(1, node("Evil", "com.example", &["x"], &["y"]))
        .str(2, "g")
        .msg(11, value_info("x", elem::FLOAT, &[4]))
        .msg(12, value_info("y", elem::FLOAT, &[4]));
    let extra = Pb::default().msg(8, Pb::default().str(1, "com.example").int(2, 1));
    model(graph, extra)
}

/// What ONNX Runtime itself does with the model: load it with ort directly (no policy)
/// and run it; the output `y`.
pub fn ort_output(bytes: &[u8]) -> Result<Vec<f32>, String> {
    ensure_runtime_lib();
    let rt = runtime::runtime().map_err(|e| e.to_string())?;
    let mut session = Session::builder(rt.env())
        .and_then(|mut b| b.commit_from_memory(bytes))
        .map_err(|e| e.to_string())?;
    // `cond` (If) is true, `x` (Add) is zeros.
    let mut inputs: Vec<SessionInputValue<'_>> = Vec::new();
    for input in session.inputs() {
        let value: SessionInputValue<'_> = if input.name() == "cond" {
            ort::value::Tensor::from_array((Vec::<i64>::new(), vec![true]))
                .map_err(|e| e.to_string())?
                .into()
        } else {
            ort::value::Tensor::from_array((vec![4i64], vec![0f32; 4]))
                .map_err(|e| e.to_string())?
                .into()
        };
        inputs.push(value);
    }
    let outputs = session.run(inputs.as_slice()).map_err(|e| e.to_string())?;
    let (_, data) = outputs[0]
        .try_extract_tensor::<f32>()
        .map_err(|e| e.to_string())?;
    Ok(data.to_vec())
}
