"""Writes the small ONNX test models of redisai-rs (see README.md beside this file).

Run through scripts/gen-test-models, which sets up a venv with the pinned packages:
    make_onnx_models.py OUT_DIR            the small models (committed) + mlp_weights.json
    make_onnx_models.py --bench OUT_DIR    mlp_big.onnx (about 3 MB, not committed)
    add --verify to either to run each model with onnxruntime and print its outputs.
The output is deterministic: same bytes on every run.
"""

import json
import os
import sys
import threading
import time

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17  # supported by onnxruntime 1.32
IR_VERSION = 8  # the IR version that goes with opset 17
MAX_COMMITTED_SIZE = 100 * 1024

FLOAT, INT64, BOOL, STRING = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL, TensorProto.STRING


def vi(name, dtype, shape):
    return helper.make_tensor_value_info(name, dtype, shape)


def const(name, array):
    return numpy_helper.from_array(np.asarray(array), name)


def model(name, nodes, inputs, outputs, initializers=(), check=True):
    graph = helper.make_graph(list(nodes), name, inputs, outputs, list(initializers))
    m = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="redisai-rs gen-test-models",
        producer_version="1",
    )
    m.ir_version = IR_VERSION
    if check:
        onnx.checker.check_model(m, full_check=True)
    return m


# Weights of mlp.onnx: multiples of 1/8 in [-1, 1), exact in float32 and JSON, so that
# y = relu(x @ W1 + b1) @ W2 + b2 is exact for small integer inputs.
def mlp_weights():
    rng = np.random.default_rng(42)
    q = lambda *shape: (rng.integers(-8, 8, size=shape) / 8).astype(np.float32)
    return {"W1": q(4, 8), "b1": q(8), "W2": q(8, 3), "b2": q(3)}


def mlp_reference(w, x):
    h = np.maximum(x @ w["W1"] + w["b1"], 0)
    return h @ w["W2"] + w["b2"]


def small_models():
    w = mlp_weights()
    i64max = np.iinfo(np.int64).max
    loop_body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Add", ["v_in", "one"], ["v_out"]),
        ],
        "endless_loop_body",
        [vi("iter", INT64, []), vi("cond_in", BOOL, []), vi("v_in", FLOAT, None)],
        [vi("cond_out", BOOL, []), vi("v_out", FLOAT, None)],
        [const("one", np.float32(1))],
    )
    return {
        "add": model(
            "add",
            [helper.make_node("Add", ["a", "b"], ["c"])],
            [vi("a", FLOAT, ["N"]), vi("b", FLOAT, ["N"])],
            [vi("c", FLOAT, ["N"])],
        ),
        # No shape at all: any rank. onnxruntime accepts it; the onnx checker wants a
        # shape on main-graph inputs, so it is not checked.
        "add_any_rank": model(
            "add_any_rank",
            [helper.make_node("Add", ["a", "b"], ["c"])],
            [vi("a", FLOAT, None), vi("b", FLOAT, None)],
            [vi("c", FLOAT, None)],
            check=False,
        ),
        "mlp": model(
            "mlp",
            [
                helper.make_node("Gemm", ["x", "W1", "b1"], ["h0"]),
                helper.make_node("Relu", ["h0"], ["h1"]),
                helper.make_node("Gemm", ["h1", "W2", "b2"], ["y"]),
            ],
            [vi("x", FLOAT, ["N", 4])],
            [vi("y", FLOAT, ["N", 3])],
            [const(k, v) for k, v in w.items()],
        ),
        "two_outputs": model(
            "two_outputs",
            [
                helper.make_node("Add", ["x", "x"], ["sum"]),
                helper.make_node("Mul", ["x", "x"], ["prod"]),
            ],
            [vi("x", FLOAT, ["N", 2])],
            [vi("sum", FLOAT, ["N", 2]), vi("prod", FLOAT, ["N", 2])],
        ),
        "string_identity": model(
            "string_identity",
            [helper.make_node("Identity", ["s"], ["t"])],
            [vi("s", STRING, ["N"])],
            [vi("t", STRING, ["N"])],
        ),
        "batch_mismatch": model(
            "batch_mismatch",
            [helper.make_node("ReduceSum", ["x", "axes"], ["y"], keepdims=1)],
            [vi("x", FLOAT, ["N", 2])],
            [vi("y", FLOAT, [1, 2])],
            [const("axes", np.array([0], dtype=np.int64))],
        ),
        "endless_loop": model(
            "endless_loop",
            [helper.make_node("Loop", ["max_trips", "keep_going", "x"], ["y"], body=loop_body)],
            [vi("x", FLOAT, ["N"])],
            [vi("y", FLOAT, ["N"])],
            [const("max_trips", np.int64(i64max)), const("keep_going", np.bool_(True))],
        ),
        "int_ops": model(
            "int_ops",
            [
                helper.make_node("Add", ["x", "one"], ["y"]),
                helper.make_node("Greater", ["x", "zero"], ["pos"]),
            ],
            [vi("x", INT64, ["N"])],
            [vi("y", INT64, ["N"]), vi("pos", BOOL, ["N"])],
            [const("one", np.int64(1)), const("zero", np.int64(0))],
        ),
        "state_update": model(
            "state_update",
            [
                helper.make_node("Mul", ["state", "decay"], ["scaled"]),
                helper.make_node("Add", ["scaled", "bias"], ["new_state"]),
            ],
            [vi("state", FLOAT, [1, 262144])],
            [vi("new_state", FLOAT, [1, 262144])],
            [const("decay", np.float32(0.99)), const("bias", np.float32(0.01))],
        ),
    }


def bench_models():
    rng = np.random.default_rng(7)
    nodes, inits, prev = [], [], "x"
    for i in range(3):
        w = (rng.standard_normal((512, 512)) / np.sqrt(512)).astype(np.float32)
        b = (rng.standard_normal(512) * 0.01).astype(np.float32)
        inits += [const(f"W{i}", w), const(f"b{i}", b)]
        out = "y" if i == 2 else f"h{i}"
        nodes += [
            helper.make_node("Gemm", [prev, f"W{i}", f"b{i}"], [f"g{i}"]),
            helper.make_node("Relu", [f"g{i}"], [out]),
        ]
        prev = out
    return {
        "mlp_big": model("mlp_big", nodes, [vi("x", FLOAT, ["N", 512])], [vi("y", FLOAT, ["N", 512])], inits)
    }


def write(out_dir, models, size_limit):
    os.makedirs(out_dir, exist_ok=True)
    for name, m in models.items():
        path = os.path.join(out_dir, name + ".onnx")
        data = m.SerializeToString(deterministic=True)
        if size_limit and len(data) > size_limit:
            sys.exit(f"{path}: {len(data)} bytes, over the {size_limit} limit for committed models")
        with open(path, "wb") as f:
            f.write(data)
        print(f"wrote {path} ({len(data)} bytes)", file=sys.stderr)


def write_mlp_weights(out_dir):
    w = mlp_weights()
    x = np.array([[1, 2, 3, 4], [-1, 0.5, 0, 2]], dtype=np.float32)
    doc = {
        "formula": "y = relu(x @ W1 + b1) @ W2 + b2 (row-major, x is [N, 4])",
        **{k: v.tolist() for k, v in w.items()},
        "examples": [{"x": x.tolist(), "y": mlp_reference(w, x).tolist()}],
    }
    path = os.path.join(out_dir, "mlp_weights.json")
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    print(f"wrote {path}", file=sys.stderr)


# ---- verification with onnxruntime (only when --verify is given) ----


def verify(out_dir, names):
    import onnxruntime as ort

    ort.set_default_logger_severity(4)  # quiet: endless_loop's terminate error is expected
    print(f"onnxruntime {ort.__version__}, onnx {onnx.__version__}, numpy {np.__version__}")
    f32 = lambda v: np.array(v, dtype=np.float32)
    samples = {
        "add": {"a": f32([1, 2]), "b": f32([3, 4])},
        "add_any_rank": {"a": f32([[1, 2], [3, 4]]), "b": f32([[10, 20], [30, 40]])},
        "mlp": {"x": f32([[1, 2, 3, 4]])},
        "two_outputs": {"x": f32([[1, 2], [3, 4]])},
        "string_identity": {"s": np.array(["hello", "world", ""], dtype=object)},
        "batch_mismatch": {"x": f32([[1, 2], [3, 4], [5, 6]])},
        "int_ops": {"x": np.array([-2, 0, 3], dtype=np.int64)},
        "state_update": {"state": np.full((1, 262144), 2.0, dtype=np.float32)},
        "mlp_big": {"x": np.ones((2, 512), dtype=np.float32)},
    }
    for name in names:
        sess = ort.InferenceSession(os.path.join(out_dir, name + ".onnx"), providers=["CPUExecutionProvider"])
        io = lambda args: ", ".join(f"{a.name}:{a.type}{a.shape}" for a in args)
        print(f"\n{name}.onnx  inputs [{io(sess.get_inputs())}]  outputs [{io(sess.get_outputs())}]")
        if name == "endless_loop":
            verify_endless_loop(ort, sess)
            continue
        feeds = samples[name]
        outs = sess.run(None, feeds)
        for k, v in feeds.items():
            print(f"  in  {k} {v.dtype}{list(v.shape)} = {summary(v)}")
        for o, v in zip(sess.get_outputs(), outs):
            print(f"  out {o.name} {v.dtype}{list(v.shape)} = {summary(v)}")
        if name == "mlp":
            expected = mlp_reference(mlp_weights(), feeds["x"])
            assert np.array_equal(outs[0], expected), (outs[0], expected)
            print("  matches numpy relu(x @ W1 + b1) @ W2 + b2 exactly")


def summary(v):
    if v.size > 8:
        flat = v.reshape(-1)
        return f"[{', '.join(map(str, flat[:4].tolist()))}, ...] (min {flat.min()}, max {flat.max()})"
    return v.tolist()


def verify_endless_loop(ort, sess):
    opts = ort.RunOptions()
    result = {}

    def run():
        try:
            result["out"] = sess.run(None, {"x": np.zeros(1, dtype=np.float32)}, opts)
        except Exception as e:  # noqa: BLE001 - the error is what we expect
            result["err"] = e

    start = time.monotonic()
    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(3.0)
    assert t.is_alive(), f"endless_loop finished within 3 s: {result}"
    print(f"  still running after {time.monotonic() - start:.1f} s; setting run_options.terminate = True")
    opts.terminate = True
    t.join(10.0)
    assert not t.is_alive(), "terminate did not stop endless_loop within 10 s"
    assert "err" in result, f"terminated run returned without an error: {result}"
    print(f"  stopped after {time.monotonic() - start:.1f} s with an error: {str(result['err']).strip()}")


def main(argv):
    flags = {a for a in argv if a.startswith("--")}
    args = [a for a in argv if not a.startswith("--")]
    if len(args) != 1 or flags - {"--bench", "--verify"}:
        sys.exit(__doc__)
    out_dir = args[0]
    if "--bench" in flags:
        models = bench_models()
        write(out_dir, models, None)
    else:
        models = small_models()
        write(out_dir, models, MAX_COMMITTED_SIZE)
        write_mlp_weights(out_dir)
    if "--verify" in flags:
        verify(out_dir, list(models))


if __name__ == "__main__":
    main(sys.argv[1:])
