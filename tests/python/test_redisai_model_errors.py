"""ONNX model errors through the official `redisai` client (1.3.0): RedisAI 1.2's exact error
texts, missing and wrong-type keys, bad blobs, missing backends, inputs the model does not
accept, and what the client itself refuses before sending anything.
"""

from pathlib import Path

import numpy as np
import pytest
import redis

from onnx_model_helpers import (
    EMPTY_MODEL_KEY,
    EMPTY_TENSOR_KEY,
    INPUTS_MISMATCH,
    NO_RUN_INFO,
    ONNX_BACKEND_DIR,
    OUTPUTS_MISMATCH,
    assert_same_array,
    model_bytes,
    store,
)


def test_missing_model_errors(con):
    con.tensorset("a", np.array([1, 2], dtype=np.float32))
    with pytest.raises(redis.exceptions.ResponseError, match=EMPTY_MODEL_KEY):
        con.modelexecute("nope", ["a", "a"], ["c"])
    with pytest.raises(redis.exceptions.ResponseError, match=EMPTY_MODEL_KEY):
        con.modelget("nope")
    with pytest.raises(redis.exceptions.ResponseError, match=EMPTY_MODEL_KEY):
        con.modelget("nope", meta_only=True)
    with pytest.raises(redis.exceptions.ResponseError, match=EMPTY_MODEL_KEY):
        con.modeldel("nope")
    with pytest.raises(redis.exceptions.ResponseError, match=NO_RUN_INFO):
        con.infoget("nope")
    assert con.exists("c") == 0


def test_error_texts_are_exact(con):
    # RedisAI's clients compare the whole text (str(exception)).
    store(con, "m", "add.onnx")
    con.tensorset("a", np.array([1, 2], dtype=np.float32))
    cases = [
        (("nope", ["a", "a"], ["c"]), EMPTY_MODEL_KEY),
        (("m", ["a"], ["c"]), INPUTS_MISMATCH),
        (("m", ["a", "a", "a"], ["c"]), INPUTS_MISMATCH),
        (("m", ["a", "a"], ["c", "d"]), OUTPUTS_MISMATCH),
        (("m", ["a", "missing"], ["c"]), EMPTY_TENSOR_KEY),
    ]
    for args, text in cases:
        with pytest.raises(redis.exceptions.ResponseError) as excinfo:
            con.modelexecute(*args)
        assert str(excinfo.value) == text, args
    assert con.exists("c") == 0
    assert con.exists("d") == 0


def test_input_count_mismatch(con):
    store(con, "m", "add.onnx")
    con.tensorset("a", np.array([1, 2], dtype=np.float32))
    with pytest.raises(redis.exceptions.ResponseError, match=INPUTS_MISMATCH):
        con.modelexecute("m", ["a"], ["c"])
    with pytest.raises(redis.exceptions.ResponseError, match=INPUTS_MISMATCH):
        con.modelexecute("m", "a", "c")
    assert con.exists("c") == 0


def test_output_count_mismatch(con):
    store(con, "m", "int_ops.onnx")
    con.tensorset("x", np.array([1], dtype=np.int64))
    with pytest.raises(redis.exceptions.ResponseError, match=OUTPUTS_MISMATCH):
        con.modelexecute("m", ["x"], ["y"])
    with pytest.raises(redis.exceptions.ResponseError, match=OUTPUTS_MISMATCH):
        con.modelexecute("m", ["x"], ["y", "pos", "extra"])
    assert con.exists("y") == 0


def test_missing_input_tensor(con):
    store(con, "m", "add.onnx")
    con.tensorset("a", np.array([1, 2], dtype=np.float32))
    with pytest.raises(redis.exceptions.ResponseError, match=EMPTY_TENSOR_KEY):
        con.modelexecute("m", ["a", "missing"], ["c"])
    assert con.exists("c") == 0


def test_wrong_type_keys(con):
    store(con, "m", "add.onnx")
    con.tensorset("a", np.array([1, 2], dtype=np.float32))
    con.set("plain", "value")
    data = model_bytes("add.onnx")
    calls = [
        lambda: con.modelget("plain"),
        lambda: con.modeldel("plain"),
        lambda: con.modelexecute("plain", ["a", "a"], ["c"]),
        lambda: con.modelstore("plain", "ONNX", "CPU", data),  # a string key
        lambda: con.modelstore("a", "ONNX", "CPU", data),  # a tensor key
        lambda: con.modelexecute("m", ["a", "m"], ["c"]),  # a model as an input
        lambda: con.modelexecute("m", ["a", "a"], ["plain"]),  # a string key as the output
        lambda: con.modelexecute("m", ["a", "a"], ["m"]),  # a model key as the output
        lambda: con.tensorget("m"),
    ]
    for i, call in enumerate(calls):
        with pytest.raises(redis.exceptions.ResponseError, match="WRONGTYPE"):
            call()
    assert con.get("plain") == b"value"
    assert_same_array(con.tensorget("a"), np.array([1, 2], dtype=np.float32))
    assert con.modelget("m", meta_only=True)["inputs"] == ["a", "b"]
    assert con.exists("c") == 0


def test_corrupt_model_blob(con):
    with pytest.raises(redis.exceptions.ResponseError, match="protobuf parsing failed"):
        con.modelstore("m", "ONNX", "CPU", b"this is not an onnx model")
    with pytest.raises(redis.exceptions.ResponseError):
        con.modelstore("m", "ONNX", "CPU", model_bytes("add.onnx")[:50])  # truncated
    assert con.exists("m") == 0
    # A failed store over an existing model leaves it as it was.
    store(con, "m", "add.onnx", tag="kept")
    with pytest.raises(redis.exceptions.ResponseError):
        con.modelstore("m", "ONNX", "CPU", b"garbage", tag="new")
    assert con.modelget("m", meta_only=True)["tag"] == "kept"


def test_empty_model_blob(con):
    # The client sends `BLOB` with no chunk at all for empty data.
    with pytest.raises(redis.exceptions.ResponseError):
        con.modelstore("m", "ONNX", "CPU", b"")
    assert con.exists("m") == 0


def test_backend_that_is_not_installed(con):
    backends_path = con.config("BACKENDSPATH")
    if isinstance(backends_path, bytes):
        backends_path = backends_path.decode()
    missing = [
        (name, folder)
        for name, folder in (("TORCH", "redisai_torch"), ("TF", "redisai_tensorflow"), ("TFLITE", "redisai_tflite"))
        if not (Path(backends_path) / folder).exists()
    ]
    if not missing:
        pytest.skip("every backend is installed")
    name, _ = missing[0]
    kwargs = {"inputs": ["a"], "outputs": ["b"]} if name == "TF" else {}
    with pytest.raises(redis.exceptions.ResponseError, match="Could not load backend"):
        con.modelstore("m", name, "CPU", model_bytes("add.onnx"), **kwargs)
    assert con.exists("m") == 0
    # Redis keeps running and ONNX models still work.
    store(con, "m", "add.onnx")


def test_gpu_device_without_gpu_backend(con):
    backends_path = con.config("BACKENDSPATH")
    if isinstance(backends_path, bytes):
        backends_path = backends_path.decode()
    if (Path(backends_path) / f"{ONNX_BACKEND_DIR}_gpu").exists():
        pytest.skip("a GPU variant of the ONNX backend is installed")
    with pytest.raises(redis.exceptions.ResponseError):
        con.modelstore("m", "ONNX", "GPU", model_bytes("add.onnx"))
    assert con.exists("m") == 0


def test_wrong_input_dtype(con):
    store(con, "m", "add.onnx")
    con.tensorset("a", np.array([1, 2], dtype=np.float32))
    con.tensorset("i", np.array([1, 2], dtype=np.int32))
    with pytest.raises(redis.exceptions.ResponseError):
        con.modelexecute("m", ["a", "i"], ["c"])
    assert con.exists("c") == 0
    assert con.infoget("m")["errors"] == 1


def test_wrong_input_rank_and_shape(con):
    store(con, "m", "mlp.onnx")
    con.tensorset("x1", np.ones(4, dtype=np.float32))
    with pytest.raises(redis.exceptions.ResponseError, match="Invalid rank for input"):
        con.modelexecute("m", ["x1"], ["y"])
    con.tensorset("x5", np.ones((2, 5), dtype=np.float32))
    with pytest.raises(redis.exceptions.ResponseError, match="Got invalid dimensions for input"):
        con.modelexecute("m", ["x5"], ["y"])
    assert con.exists("y") == 0
    info = con.infoget("m")
    assert (info["calls"], info["errors"]) == (2, 2)


def test_mismatched_input_lengths(con):
    store(con, "m", "add.onnx")
    con.tensorset("a", np.ones(3, dtype=np.float32))
    con.tensorset("b", np.ones(2, dtype=np.float32))
    with pytest.raises(redis.exceptions.ResponseError):
        con.modelexecute("m", ["a", "b"], ["c"])
    assert con.exists("c") == 0


def test_client_side_argument_checks(con):
    data = model_bytes("add.onnx")
    # inputs/outputs are for TF only: the client refuses them for ONNX.
    with pytest.raises(ValueError):
        con.modelstore("m", "ONNX", "CPU", data, inputs=["a", "b"], outputs=["c"])
    with pytest.raises(ValueError):
        con.modelstore("m", "ONNX", "TPU", data)
    with pytest.raises(ValueError):
        con.modelstore("m", "PYTORCH", "CPU", data)
    with pytest.raises(ValueError):
        con.modelstore("m", "ONNX", "CPU", data, minbatch=2)
    with pytest.raises(ValueError):
        con.modelstore("m", "ONNX", "CPU", data, batch=2, minbatchtimeout=10)
    assert con.exists("m") == 0


def test_raw_modelstore_inputs_for_onnx_is_refused(con):
    # What the client keeps its users from sending: INPUTS/OUTPUTS are refused for non-TF backends.
    with pytest.raises(redis.exceptions.ResponseError):
        con.execute_command(
            "AI.MODELSTORE", "m", "ONNX", "CPU", "INPUTS", 2, "a", "b", "OUTPUTS", 1, "c", "BLOB", model_bytes("add.onnx")
        )
    assert con.exists("m") == 0
