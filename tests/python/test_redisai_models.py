"""Storing, reading back, describing and deleting ONNX models through the official `redisai`
client (1.3.0): modelstore/modelset, modelget (chunked blobs included), infoget/inforeset,
modeldel and modelscan. Helpers and the client's wire format: onnx_model_helpers.py.
"""


import numpy as np
import pytest
import redis

from onnx_model_helpers import (
    EMPTY_MODEL_KEY,
    INFO_EXTRA_FIELDS,
    INFO_FIELDS,
    MODEL_IO,
    MODELGET_META_FIELDS,
    NO_RUN_INFO,
    assert_same_array,
    meta,
    mlp_reference,
    model_bytes,
    store,
)


# --- modelstore / modelget -----------------------------------------------------------------


def test_modelstore_and_modelget(con):
    data = model_bytes("add.onnx")
    assert con.modelstore("m", "ONNX", "CPU", data, tag="v1.0") == "OK"
    got = con.modelget("m")
    assert set(got) == MODELGET_META_FIELDS | {"blob"}
    blob = got.pop("blob")
    assert isinstance(blob, bytes)
    assert blob == data
    assert got == meta(tag="v1.0", inputs=["a", "b"], outputs=["c"])


def test_modelget_meta_only(con):
    store(con, "m", "two_outputs.onnx")
    assert con.modelget("m", meta_only=True) == meta(inputs=["x"], outputs=["sum", "prod"])


@pytest.mark.parametrize("model", list(MODEL_IO))
def test_modelget_every_model(con, model):
    data = model_bytes(model)
    assert con.modelstore("m", "ONNX", "CPU", data) == "OK"
    got = con.modelget("m")
    assert got.pop("blob") == data
    inputs, outputs = MODEL_IO[model]
    assert got == meta(inputs=inputs, outputs=outputs)


def test_modelstore_batching_options(con):
    store(con, "m", "mlp.onnx", batch=4, minbatch=2, minbatchtimeout=50, tag="batched")
    assert con.modelget("m", meta_only=True) == meta(
        tag="batched", inputs=["x"], outputs=["y"], batchsize=4, minbatchsize=2, minbatchtimeout=50
    )
    store(con, "m2", "mlp.onnx", batch=8)
    assert con.modelget("m2", meta_only=True) == meta(inputs=["x"], outputs=["y"], batchsize=8)


def test_modelstore_utf8_tag(con):
    store(con, "m", "add.onnx", tag="caf\u00e9 v2")
    assert con.modelget("m", meta_only=True)["tag"] == "caf\u00e9 v2"


def test_modelstore_backend_name_is_case_insensitive(con):
    assert con.modelstore("m", "onnx", "CPU", model_bytes("add.onnx")) == "OK"
    assert con.modelget("m", meta_only=True)["backend"] == "ONNX"


def test_device_string_is_kept_as_given(con):
    assert con.modelstore("m", "ONNX", "cpu", model_bytes("add.onnx")) == "OK"
    assert con.modelget("m", meta_only=True)["device"] == "cpu"
    assert con.infoget("m")["device"] == "cpu"


def test_modelstore_lowercase_device_is_accepted(con):
    assert con.modelstore("m", "ONNX", "cpu", model_bytes("add.onnx")) == "OK"
    assert con.modelget("m", meta_only=True)["device"].upper() == "CPU"
    con.tensorset("a", np.array([1, 2], dtype=np.float32))
    assert con.modelexecute("m", ["a", "a"], ["c"]) == "OK"
    assert_same_array(con.tensorget("c"), np.array([2, 4], dtype=np.float32))


def test_modelstore_overwrites_model(con):
    store(con, "m", "add.onnx", tag="first")
    store(con, "m", "mlp.onnx", tag="second")
    got = con.modelget("m")
    assert got.pop("blob") == model_bytes("mlp.onnx")
    assert got == meta(tag="second", inputs=["x"], outputs=["y"])
    x = np.array([[1, 2, 3, 4]], dtype=np.float32)
    con.tensorset("x", x)
    assert con.modelexecute("m", "x", "y") == "OK"
    assert_same_array(con.tensorget("y"), mlp_reference(x))


def test_model_key_is_a_redis_key(con):
    store(con, "m", "add.onnx")
    assert con.exists("m") == 1
    kind = con.type("m")
    assert (kind.decode() if isinstance(kind, bytes) else kind) == "AI__MODEL"


# --- AI.CONFIG GET MODEL_CHUNK_SIZE and chunked blobs --------------------------------------


class CommandSpy:
    """Records what the client passes to execute_command."""

    def __init__(self, con, monkeypatch):
        self.calls = []
        original = con.execute_command

        def spy(*args, **kwargs):
            self.calls.append(args)
            return original(*args, **kwargs)

        monkeypatch.setattr(con, "execute_command", spy)


def test_modelstore_asks_for_the_chunk_size(con, monkeypatch):
    chunk_size = con.config("MODEL_CHUNK_SIZE")
    assert isinstance(chunk_size, int) and not isinstance(chunk_size, bool) and chunk_size > 0
    data = model_bytes("mlp.onnx")
    assert len(data) < chunk_size
    spy = CommandSpy(con, monkeypatch)
    assert con.modelstore("m", "ONNX", "CPU", data) == "OK"
    assert spy.calls[0] == ("AI.CONFIG GET MODEL_CHUNK_SIZE",)
    assert spy.calls[1] == ("AI.MODELSTORE", "m", "ONNX", "CPU", "BLOB", data)
    assert len(spy.calls) == 2


def test_modelstore_and_modelget_chunked_blob(con, monkeypatch):
    default = con.config("MODEL_CHUNK_SIZE")
    data = model_bytes("mlp.onnx")
    chunk = 64
    try:
        assert con.config("MODEL_CHUNK_SIZE", chunk) == "OK"
        spy = CommandSpy(con, monkeypatch)
        assert con.modelstore("m", "ONNX", "CPU", data, tag="chunked") == "OK"
        assert spy.calls[0] == ("AI.CONFIG GET MODEL_CHUNK_SIZE",)
        args = spy.calls[1]
        chunks = args[args.index("BLOB") + 1 :]
        assert len(chunks) == -(-len(data) // chunk) > 1
        assert b"".join(chunks) == data
        monkeypatch.undo()

        # A blob larger than MODEL_CHUNK_SIZE comes back as an array of chunks; the client
        # passes that list through as is.
        got = con.modelget("m")
        blob = got.pop("blob")
        assert isinstance(blob, list) and len(blob) == len(chunks)
        assert all(isinstance(c, bytes) and 0 < len(c) <= chunk for c in blob)
        assert b"".join(blob) == data
        assert got == meta(tag="chunked", inputs=["x"], outputs=["y"])
    finally:
        con.execute_command("AI.CONFIG", "MODEL_CHUNK_SIZE", default)
    assert con.config("MODEL_CHUNK_SIZE") == default

    # With the default chunk size the same model comes back in one piece, and it runs.
    assert con.modelget("m")["blob"] == data
    x = np.array([[1, 2, 3, 4], [-1, 0, 2, 3]], dtype=np.float32)
    con.tensorset("x", x)
    assert con.modelexecute("m", ["x"], ["y"]) == "OK"
    assert_same_array(con.tensorget("y"), mlp_reference(x))


# --- deprecated modelset ---------------------------------------------------------------------


def test_modelset_deprecated(con):
    data = model_bytes("add.onnx")
    with pytest.warns(DeprecationWarning):
        assert con.modelset("m", "ONNX", "CPU", data, tag="old") == "OK"
    got = con.modelget("m")
    assert got.pop("blob") == data
    assert got == meta(tag="old", inputs=["a", "b"], outputs=["c"])


# --- infoget / inforeset ---------------------------------------------------------------------


def check_info(info: dict, key: str, tag: str = ""):
    assert INFO_FIELDS <= set(info) <= INFO_FIELDS | INFO_EXTRA_FIELDS, sorted(info)
    assert info["key"] == key
    assert info["type"] == "MODEL"
    assert info["backend"] == "ONNX"
    assert info["device"] == "CPU"
    assert info["tag"] == tag
    for field in ("duration", "samples", "calls", "errors") + tuple(INFO_EXTRA_FIELDS & set(info)):
        assert isinstance(info[field], int) and not isinstance(info[field], bool), (field, info[field])
        assert info[field] >= 0


def test_infoget_fresh_model(con):
    store(con, "m", "add.onnx", tag="t1")
    info = con.infoget("m")
    check_info(info, "m", "t1")
    assert (info["duration"], info["samples"], info["calls"], info["errors"]) == (0, 0, 0, 0)


def test_infoget_counts_runs_and_inforeset(con):
    store(con, "m", "mlp.onnx")
    con.tensorset("x", np.ones((3, 4), dtype=np.float32))
    previous = 0
    for call in range(1, 4):
        assert con.modelexecute("m", ["x"], ["y"]) == "OK"
        info = con.infoget("m")
        check_info(info, "m")
        assert info["calls"] == call
        assert info["samples"] == 3 * call  # samples: the batch dimension of each run
        assert info["errors"] == 0
        assert info["duration"] >= previous
        previous = info["duration"]
    assert previous > 0
    assert con.inforeset("m") == "OK"
    info = con.infoget("m")
    check_info(info, "m")
    assert (info["duration"], info["samples"], info["calls"], info["errors"]) == (0, 0, 0, 0)
    # Counting starts again after the reset.
    assert con.modelexecute("m", ["x"], ["y"]) == "OK"
    info = con.infoget("m")
    assert (info["samples"], info["calls"], info["errors"]) == (3, 1, 0)


def test_infoget_counts_failed_runs_as_errors(con):
    store(con, "m", "two_outputs.onnx")
    con.tensorset("ok", np.ones((2, 2), dtype=np.float32))
    con.tensorset("bad", np.ones(3, dtype=np.float32))  # rank 1, the model wants rank 2
    assert con.modelexecute("m", ["ok"], ["s", "p"]) == "OK"
    with pytest.raises(redis.exceptions.ResponseError):
        con.modelexecute("m", ["bad"], ["s", "p"])
    info = con.infoget("m")
    check_info(info, "m")
    # RedisAI counts a failed run as a call and an error, with no samples or duration.
    assert (info["samples"], info["calls"], info["errors"]) == (2, 2, 1)
    assert con.inforeset("m") == "OK"
    assert con.infoget("m")["errors"] == 0


def test_infoget_after_modeldel(con):
    store(con, "m", "add.onnx")
    assert con.modeldel("m") == "OK"
    with pytest.raises(redis.exceptions.ResponseError, match=NO_RUN_INFO):
        con.infoget("m")
    with pytest.raises(redis.exceptions.ResponseError, match=NO_RUN_INFO):
        con.inforeset("m")


# --- modeldel / modelscan --------------------------------------------------------------------


def test_modeldel(con):
    store(con, "m", "add.onnx")
    assert con.modeldel("m") == "OK"
    assert con.exists("m") == 0
    with pytest.raises(redis.exceptions.ResponseError, match=EMPTY_MODEL_KEY):
        con.modelget("m")
    with pytest.raises(redis.exceptions.ResponseError, match=EMPTY_MODEL_KEY):
        con.modeldel("m")
    # The key can take a model again.
    store(con, "m", "add.onnx")
    assert con.modelget("m", meta_only=True)["inputs"] == ["a", "b"]


def test_modelscan(con):
    with pytest.warns(UserWarning, match="Experimental"):
        assert con.modelscan() == []
    store(con, "m1", "add.onnx", tag="v1.2")
    store(con, "m2", "mlp.onnx")
    con.tensorset("not_a_model", np.zeros(2, dtype=np.float32))
    con.set("plain", "x")
    with pytest.warns(UserWarning, match="Experimental"):
        models = con.modelscan()
    assert sorted(models) == [["m1", "v1.2"], ["m2", ""]]
    assert con.modeldel("m1") == "OK"
    with pytest.warns(UserWarning, match="Experimental"):
        assert con.modelscan() == [["m2", ""]]
