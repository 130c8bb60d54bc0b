"""Shared pieces of the ONNX model checks (test_redisai_models.py, test_redisai_model_execute.py,
test_redisai_model_errors.py), which drive the official `redisai` client (1.3.0) against the
real ONNX backend. The `con` fixture they use is in conftest.py.

What the client sends (from redisai 1.3.0's client.py / command_builder.py):
  modelstore(key, backend, device, data, batch=None, minbatch=None, minbatchtimeout=None,
             tag=None, inputs=None, outputs=None)
      -> AI.CONFIG GET MODEL_CHUNK_SIZE        (the reply must be an integer: it slices `data` with it)
      -> AI.MODELSTORE key backend device [TAG t] [BATCHSIZE n [MINBATCHSIZE m [MINBATCHTIMEOUT ms]]]
                       BLOB chunk1 chunk2 ...  (INPUTS/OUTPUTS only for TF; for other backends the
                                                client raises ValueError itself)
  modelset(...)  (deprecated)                  -> AI.MODELSET key backend device [TAG] [BATCHSIZE [MINBATCHSIZE]] BLOB data
  modelget(key, meta_only=False)               -> AI.MODELGET key META [BLOB]; the reply is turned into a dict
                                                  (values decoded as UTF-8, except `blob`)
  modeldel(key)                                -> AI.MODELDEL key
  modelexecute(key, inputs, outputs, timeout)  -> AI.MODELEXECUTE key INPUTS n k... OUTPUTS n k... [TIMEOUT ms]
  modelrun(key, inputs, outputs) (deprecated)  -> AI.MODELRUN key INPUTS k... OUTPUTS k...
  modelscan()    (experimental, UserWarning)   -> AI._MODELSCAN
  infoget(key)                                 -> AI.INFO key            (turned into a dict)
  inforeset(key)                               -> AI.INFO key RESETSTAT

DAGs (client.dag(), AI.DAGEXECUTE) are not covered here.

The test models are described in tests/models/README.md.
"""

import json
from pathlib import Path

import numpy as np
import redisai

MODELS_DIR = Path(__file__).resolve().parents[1] / "models" / "onnx"
ONNX_BACKEND_DIR = "redisai_onnxruntime"
ONNX_BACKEND_SO = "redisai_onnxruntime.so"

# model file -> (input names, output names) as the ONNX graphs declare them
MODEL_IO = {
    "add.onnx": (["a", "b"], ["c"]),
    "mlp.onnx": (["x"], ["y"]),
    "two_outputs.onnx": (["x"], ["sum", "prod"]),
    "string_identity.onnx": (["s"], ["t"]),
    "int_ops.onnx": (["x"], ["y", "pos"]),
}

# RedisAI 1.2 error texts (redis-py strips the leading "ERR ")
EMPTY_MODEL_KEY = "model key is empty"
EMPTY_TENSOR_KEY = "tensor key is empty or in a different shard"
NO_RUN_INFO = "cannot find run info for key"
INPUTS_MISMATCH = "Number of keys given as INPUTS here does not match model definition"
OUTPUTS_MISMATCH = "Number of keys given as OUTPUTS here does not match model definition"
NOT_IN_TRANSACTION = "Cannot run RedisAI command within a transaction or a LUA script"
TERMINATED = "Exiting due to terminate flag being set to true"

# AI.INFO fields of RedisAI 1.2, and the latency percentiles and backend memory (bytes) this module adds.
INFO_FIELDS = {"key", "type", "backend", "device", "tag", "duration", "samples", "calls", "errors"}
INFO_EXTRA_FIELDS = {"duration_p50", "duration_p99", "memory"}
MODELGET_META_FIELDS = {"backend", "device", "tag", "batchsize", "minbatchsize", "inputs", "outputs", "minbatchtimeout"}


def model_bytes(name: str) -> bytes:
    return (MODELS_DIR / name).read_bytes()


def store(con, key, model, **kwargs):
    assert con.modelstore(key, "ONNX", "CPU", model_bytes(model), **kwargs) == "OK"


def other_client(con) -> redisai.Client:
    """A second client on the same server and protocol (for concurrent requests)."""
    kw = con.connection_pool.connection_kwargs
    return redisai.Client(host=kw["host"], port=kw["port"], protocol=kw.get("protocol", 2), socket_timeout=30)


def assert_same_array(got, want: np.ndarray):
    assert isinstance(got, np.ndarray), f"expected an ndarray, got {type(got)}: {got!r}"
    assert got.dtype == want.dtype, f"dtype {got.dtype} != {want.dtype}"
    assert got.shape == want.shape, f"shape {got.shape} != {want.shape}"
    np.testing.assert_array_equal(got, want)


def meta(tag="", inputs=(), outputs=(), batchsize=0, minbatchsize=0, minbatchtimeout=0, device="CPU"):
    return {
        "backend": "ONNX",
        "device": device,
        "tag": tag,
        "batchsize": batchsize,
        "minbatchsize": minbatchsize,
        "inputs": list(inputs),
        "outputs": list(outputs),
        "minbatchtimeout": minbatchtimeout,
    }


# --- MLP reference -------------------------------------------------------------------------


def mlp_weights():
    w = json.loads((MODELS_DIR / "mlp_weights.json").read_text())
    return w, {k: np.array(w[k], dtype=np.float64) for k in ("W1", "b1", "W2", "b2")}


def mlp_reference(x: np.ndarray) -> np.ndarray:
    """y = relu(x @ W1 + b1) @ W2 + b2. The weights are multiples of 1/8, so for small
    integer inputs every intermediate value is exact in float32 and float64 alike."""
    _, p = mlp_weights()
    h = np.maximum(x.astype(np.float64) @ p["W1"] + p["b1"], 0.0)
    return (h @ p["W2"] + p["b2"]).astype(np.float32)
