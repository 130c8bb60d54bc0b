"""TF and TFLite models through the official `redisai` client (1.3.0), run by the real
TensorFlow 2.21 and LiteRT 2.3 backends. The models are described in
tests/models/tf/README.md and tests/models/tflite/README.md.

redisai 1.3.0 sends INPUTS/OUTPUTS only for TF (`modelstore(..., inputs=, outputs=)`), and
raises ValueError itself when they are given for another backend.
"""

from pathlib import Path

import numpy as np
import pytest
import redis

MODELS = Path(__file__).resolve().parents[1] / "models"


def blob(path: str) -> bytes:
    return (MODELS / path).read_bytes()


def test_tf_graph_store_run_get(client):
    assert client.modelstore("mul", "TF", "CPU", blob("tf/mul.pb"), inputs=["a", "b"], outputs=["mul"]) == "OK"
    meta = client.modelget("mul", meta_only=True)
    assert meta["backend"] == "TF"
    assert meta["inputs"] == ["a", "b"]
    assert meta["outputs"] == ["mul"]
    x = np.array([[2, 3], [2, 3]], dtype=np.float32)
    client.tensorset("a", x)
    client.tensorset("b", x)
    assert client.modelexecute("mul", inputs=["a", "b"], outputs=["c"]) == "OK"
    np.testing.assert_array_equal(client.tensorget("c"), np.array([[4, 9], [4, 9]], dtype=np.float32))


def test_tf_deprecated_modelset_and_modelrun(client):
    with pytest.deprecated_call():
        client.modelset("mul", "TF", "CPU", blob("tf/mul.pb"), inputs=["a", "b"], outputs=["mul"])
    client.tensorset("a", np.array([1, 2, 3], dtype=np.float32))
    client.tensorset("b", np.array([4, 5, 6], dtype=np.float32))
    with pytest.deprecated_call():
        client.modelrun("mul", ["a", "b"], ["c"])
    np.testing.assert_array_equal(client.tensorget("c"), np.array([4, 10, 18], dtype=np.float32))


def test_tf_wrong_input_name_is_an_error(client):
    with pytest.raises(redis.exceptions.ResponseError, match='Input node named "nope" not found in TF graph'):
        client.modelstore("m", "TF", "CPU", blob("tf/mul.pb"), inputs=["a", "nope"], outputs=["mul"])
    assert client.exists("m") == 0


def test_tf2_frozen_concrete_function(client):
    data = blob("tf/tf2_frozen.pb")
    assert client.modelstore("tf2", "TF", "CPU", data, inputs=["x"], outputs=["Identity", "Identity_1"]) == "OK"
    client.tensorset("x", np.array([[1, 2, 3, 4]], dtype=np.float32))
    client.modelexecute("tf2", inputs=["x"], outputs=["y", "s"])
    np.testing.assert_array_equal(client.tensorget("y"), np.array([[2.75, 0]], dtype=np.float32))
    np.testing.assert_array_equal(client.tensorget("s"), np.array([10], dtype=np.float32))


def test_tflite_float_and_quantized(client):
    assert client.modelstore("mlp", "TFLITE", "CPU", blob("tflite/mlp.tflite")) == "OK"
    client.tensorset("x", np.array([[1, 2, 3, 4]], dtype=np.float32))
    client.modelexecute("mlp", inputs=["x"], outputs=["y"])
    np.testing.assert_array_equal(
        client.tensorget("y"), np.array([[2.046875, 0.8125, -0.40625]], dtype=np.float32)
    )
    assert client.modelstore("fc", "TFLITE", "CPU", blob("tflite/fc_int8.tflite")) == "OK"
    client.tensorset("q", np.array([[0, 2, 4, 6]], dtype=np.int8))
    client.modelexecute("fc", inputs=["q"], outputs=["r"])
    r = client.tensorget("r")
    assert r.dtype == np.int8
    np.testing.assert_array_equal(r, np.array([[21, 43, 15]], dtype=np.int8))


def test_tflite_refuses_batching(client):
    with pytest.raises(redis.exceptions.ResponseError, match="Auto-batching not supported by the TFLITE backend"):
        client.modelstore("m", "TFLITE", "CPU", blob("tflite/mlp.tflite"), batch=4)
