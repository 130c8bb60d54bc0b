"""Models through the official `redisai` client (1.3.0), run by the real ONNX backend.

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
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import redis
import redisai
from redis.backoff import NoBackoff
from redis.retry import Retry

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


@pytest.fixture(scope="session")
def onnx_backend(redis_server):
    """The ONNX backend the module loads lazily from BACKENDSPATH (default: backends/ beside the .so)."""
    so = redis_server.module.parent / "backends" / ONNX_BACKEND_DIR / ONNX_BACKEND_SO
    if not so.is_file():
        pytest.fail(
            f"ONNX backend not found at {so}: the model tests need it. Build it with scripts/build "
            f"(which lays out dist/backends/{ONNX_BACKEND_DIR}/)",
            pytrace=False,
        )
    return so


@pytest.fixture
def con(client, onnx_backend):
    """The `client` fixture (fresh, empty database, RESP2 and RESP3), with the ONNX backend present."""
    return client


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


# --- modelexecute ----------------------------------------------------------------------------


def test_add(con):
    store(con, "m", "add.onnx")
    assert con.tensorset("a", np.array([1, 2], dtype=np.float32)) == "OK"
    assert con.tensorset("b", np.array([3, 4], dtype=np.float32)) == "OK"
    assert con.modelexecute("m", inputs=["a", "b"], outputs=["c"]) == "OK"
    assert_same_array(con.tensorget("c"), np.array([4, 6], dtype=np.float32))
    assert con.tensorget("c", meta_only=True) == {"dtype": "FLOAT", "shape": [2]}
    assert con.tensorget("c", as_numpy=False) == {"dtype": "FLOAT", "shape": [2], "values": [4.0, 6.0]}


def test_add_larger_and_non_integer_values(con):
    store(con, "m", "add.onnx")
    rng = np.random.default_rng(1)
    a = rng.standard_normal(1000).astype(np.float32)
    b = rng.standard_normal(1000).astype(np.float32)
    con.tensorset("a", a)
    con.tensorset("b", b)
    assert con.modelexecute("m", ["a", "b"], ["c"]) == "OK"
    assert_same_array(con.tensorget("c"), a + b)


def test_add_any_rank(con):
    store(con, "m", "add_any_rank.onnx")
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.full((2, 3), 0.5, dtype=np.float32)
    con.tensorset("a", a)
    con.tensorset("b", b)
    assert con.modelexecute("m", ["a", "b"], ["c"]) == "OK"
    assert_same_array(con.tensorget("c"), a + b)


def test_modelexecute_single_key_arguments(con):
    # A str instead of a list is wrapped by the client (utils.listify).
    store(con, "m", "mlp.onnx")
    x = np.array([[1, 2, 3, 4]], dtype=np.float32)
    con.tensorset("x", x)
    assert con.modelexecute("m", "x", "y") == "OK"
    assert_same_array(con.tensorget("y"), mlp_reference(x))


def test_modelexecute_same_key_twice_and_output_over_input(con):
    store(con, "m", "add.onnx")
    con.tensorset("a", np.array([1.5, -2], dtype=np.float32))
    assert con.modelexecute("m", ["a", "a"], ["a"]) == "OK"
    assert_same_array(con.tensorget("a"), np.array([3, -4], dtype=np.float32))


def test_modelexecute_overwrites_existing_output(con):
    store(con, "m", "add.onnx")
    con.tensorset("a", np.array([1, 2], dtype=np.float32))
    con.tensorset("c", np.array([[7, 7, 7]], dtype=np.int64))
    assert con.modelexecute("m", ["a", "a"], ["c"]) == "OK"
    assert_same_array(con.tensorget("c"), np.array([2, 4], dtype=np.float32))


def test_modelexecute_with_timeout(con):
    store(con, "m", "add.onnx")
    con.tensorset("a", np.array([1, 2], dtype=np.float32))
    assert con.modelexecute("m", ["a", "a"], ["c"], timeout=10000) == "OK"
    assert_same_array(con.tensorget("c"), np.array([2, 4], dtype=np.float32))


def test_mlp_weights_file_examples(con):
    w, _ = mlp_weights()
    store(con, "m", "mlp.onnx")
    for example in w["examples"]:
        x = np.array(example["x"], dtype=np.float32)
        want = np.array(example["y"], dtype=np.float32)
        assert_same_array(mlp_reference(x), want)  # the reference agrees with the file
        con.tensorset("x", x)
        assert con.modelexecute("m", ["x"], ["y"]) == "OK"
        assert_same_array(con.tensorget("y"), want)


@pytest.mark.parametrize("rows", [1, 3, 64])
def test_mlp_matches_numpy(con, rows):
    store(con, "m", "mlp.onnx")
    rng = np.random.default_rng(rows)
    x = rng.integers(-4, 5, size=(rows, 4)).astype(np.float32)
    con.tensorset("x", x)
    assert con.modelexecute("m", ["x"], ["y"]) == "OK"
    got = con.tensorget("y")
    assert_same_array(got, mlp_reference(x))  # exact: see mlp_reference
    assert con.tensorget("y", meta_only=True) == {"dtype": "FLOAT", "shape": [rows, 3]}


def test_mlp_fractional_inputs_close_to_numpy(con):
    store(con, "m", "mlp.onnx")
    x = np.random.default_rng(5).standard_normal((16, 4)).astype(np.float32)
    con.tensorset("x", x)
    assert con.modelexecute("m", ["x"], ["y"]) == "OK"
    np.testing.assert_allclose(con.tensorget("y"), mlp_reference(x), rtol=1e-5, atol=1e-5)


def test_two_outputs_in_order(con):
    store(con, "m", "two_outputs.onnx")
    x = np.array([[1, 2], [3, 4]], dtype=np.float32)
    con.tensorset("x", x)
    assert con.modelexecute("m", ["x"], ["s", "p"]) == "OK"
    assert_same_array(con.tensorget("s"), np.array([[2, 4], [6, 8]], dtype=np.float32))
    assert_same_array(con.tensorget("p"), np.array([[1, 4], [9, 16]], dtype=np.float32))
    # Output keys are bound by position, not by name.
    assert con.modelexecute("m", ["x"], ["p2", "s2"]) == "OK"
    assert_same_array(con.tensorget("p2"), x + x)
    assert_same_array(con.tensorget("s2"), x * x)


def test_string_identity_numpy_array(con):
    store(con, "m", "string_identity.onnx")
    s = np.array(["foo", "", "hello world", "caf\u00e9", "\u65e5\u672c"])
    assert con.tensorset("s", s) == "OK"
    assert con.modelexecute("m", ["s"], ["t"]) == "OK"
    assert con.tensorget("t", meta_only=True) == {"dtype": "STRING", "shape": [5]}
    got = con.tensorget("t")
    assert isinstance(got, np.ndarray) and got.dtype.kind == "U"
    assert got.tolist() == s.tolist()
    assert con.tensorget("t", as_numpy=False) == {"dtype": "STRING", "shape": [5], "values": s.tolist()}


def test_string_identity_values(con):
    store(con, "m", "string_identity.onnx")
    assert con.tensorset("s", ["a", "bc", "def"], shape=(3,), dtype="str") == "OK"
    assert con.modelexecute("m", "s", "t") == "OK"
    assert con.tensorget("t").tolist() == ["a", "bc", "def"]


def test_string_object_and_bytes_arrays_are_refused_by_the_client(con):
    # redisai 1.3.0 only maps numpy unicode ('U') arrays to STRING; object and bytes
    # arrays raise TypeError before anything is sent.
    for arr in (np.array(["a", "b"], dtype=object), np.array([b"a", b"b"])):
        with pytest.raises(TypeError):
            con.tensorset("s", arr)
    assert con.exists("s") == 0


def test_int_ops(con):
    store(con, "m", "int_ops.onnx")
    x = np.array([-2, 0, 3, 2**62, -(2**62)], dtype=np.int64)
    con.tensorset("x", x)
    assert con.modelexecute("m", ["x"], ["y", "pos"]) == "OK"
    assert_same_array(con.tensorget("y"), x + 1)
    assert_same_array(con.tensorget("pos"), x > 0)
    assert con.tensorget("pos", as_numpy=False) == {"dtype": "BOOL", "shape": [5], "values": [0, 0, 1, 1, 0]}
    assert con.tensorget("y", meta_only=True) == {"dtype": "INT64", "shape": [5]}


def test_int_ops_readme_sample(con):
    store(con, "m", "int_ops.onnx")
    con.tensorset("x", [-2, 0, 3], dtype="int64")
    assert con.modelexecute("m", "x", ["y", "pos"]) == "OK"
    assert con.tensorget("y", as_numpy=False)["values"] == [-1, 1, 4]
    assert_same_array(con.tensorget("pos"), np.array([False, False, True]))


def test_non_ascii_key_names(con):
    store(con, "m\u0109", "add.onnx")
    con.tensorset("a\u0109", np.array([2, 3], dtype=np.float32))
    con.tensorset("b", np.array([2, 3], dtype=np.float32))
    assert con.modelexecute("m\u0109", ["a\u0109", "b"], ["c\u0109"]) == "OK"
    assert_same_array(con.tensorget("c\u0109"), np.array([4, 6], dtype=np.float32))


# --- deprecated modelset / modelrun ----------------------------------------------------------


def test_modelset_deprecated(con):
    data = model_bytes("add.onnx")
    with pytest.warns(DeprecationWarning):
        assert con.modelset("m", "ONNX", "CPU", data, tag="old") == "OK"
    got = con.modelget("m")
    assert got.pop("blob") == data
    assert got == meta(tag="old", inputs=["a", "b"], outputs=["c"])


def test_modelrun_deprecated(con):
    store(con, "m", "two_outputs.onnx")
    con.tensorset("x", np.array([[1, -2]], dtype=np.float32))
    with pytest.warns(DeprecationWarning):
        assert con.modelrun("m", ["x"], ["s", "p"]) == "OK"
    assert_same_array(con.tensorget("s"), np.array([[2, -4]], dtype=np.float32))
    assert_same_array(con.tensorget("p"), np.array([[1, 4]], dtype=np.float32))
    with pytest.warns(DeprecationWarning):
        with pytest.raises(redis.exceptions.ResponseError, match=OUTPUTS_MISMATCH):
            con.modelrun("m", ["x"], ["s"])


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


# --- errors ------------------------------------------------------------------------------------


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


# --- timeouts and the kill switch ---------------------------------------------------------------


def module_info(con) -> dict:
    return con.info("modules")


def test_kill_switch_and_timedout_while_queued(con):
    """endless_loop.onnx never ends on its own. Without TIMEOUT it runs until
    MODEL_EXECUTION_TIMEOUT, when the ONNX kill switch stops it with an error. A request
    with a TIMEOUT that waits behind it on the (single-threaded) CPU queue replies
    TIMEDOUT and is not computed."""
    info = module_info(con)
    limit_ms = info.get("ai_model_execution_timeout")
    if not isinstance(limit_ms, int) or not 0 < limit_ms <= 15000:
        pytest.skip(f"needs MODEL_EXECUTION_TIMEOUT between 1 and 15000 ms (the server has {limit_ms!r})")
    single_thread = info.get("ai_threads_per_queue") == 1
    store(con, "e", "endless_loop.onnx")
    store(con, "m", "add.onnx")
    con.tensorset("x", np.array([1, 2], dtype=np.float32))
    result = {}

    def run_endless():
        other = other_client(con)
        start = time.monotonic()
        try:
            result["reply"] = other.modelexecute("e", ["x"], ["ey"])
        except Exception as e:  # noqa: BLE001 - checked below
            result["error"] = e
        finally:
            result["seconds"] = time.monotonic() - start
            other.close()

    worker = threading.Thread(target=run_endless)
    worker.start()
    try:
        time.sleep(0.5)  # let the endless run start on the queue thread
        if single_thread:
            assert con.modelexecute("m", ["x", "x"], ["c"], timeout=100) == "TIMEDOUT"
    finally:
        worker.join(limit_ms / 1000 + 20)
    assert not worker.is_alive(), "AI.MODELEXECUTE of the endless model got no reply"
    assert "reply" not in result, result
    assert isinstance(result["error"], redis.exceptions.ResponseError)
    assert TERMINATED in str(result["error"])
    assert result["seconds"] >= limit_ms / 1000 - 1
    assert con.exists("ey") == 0
    info = con.infoget("e")
    assert (info["calls"], info["errors"], info["samples"]) == (1, 1, 0)
    if single_thread:
        time.sleep(0.2)
        assert con.exists("c") == 0  # the timed-out request was not computed later
    # The queue is free again.
    assert con.modelexecute("m", ["x", "x"], ["c"], timeout=5000) == "OK"
    assert_same_array(con.tensorget("c"), np.array([2, 4], dtype=np.float32))


def test_timeout_while_running_always_replies(con):
    """Every AI.MODELEXECUTE gets exactly one reply. For a run still going at its TIMEOUT, that is
    TIMEDOUT (this module stops the run at the deadline) or, as in RedisAI 1.2, which does not stop
    it, the kill switch's error at MODEL_EXECUTION_TIMEOUT."""
    limit_ms = module_info(con).get("ai_model_execution_timeout") or 0
    store(con, "e", "endless_loop.onnx")
    con.tensorset("x", np.array([1], dtype=np.float32))
    kw = con.connection_pool.connection_kwargs
    # No retries: redis-py would otherwise send the command again after a socket timeout.
    quick = redisai.Client(
        host=kw["host"],
        port=kw["port"],
        protocol=kw.get("protocol", 2),
        socket_timeout=limit_ms / 1000 + 3,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        for attempt in range(60):
            try:
                reply = quick.modelexecute("e", ["x"], ["y"], timeout=30)
            except redis.exceptions.TimeoutError:
                pytest.fail(f"attempt {attempt}: no reply to AI.MODELEXECUTE ... TIMEOUT 30")
            except redis.exceptions.ResponseError as e:
                assert TERMINATED in str(e)
            else:
                assert reply == "TIMEDOUT"
    finally:
        quick.close()
    assert con.exists("y") == 0


# --- autobatching through the client --------------------------------------------------------------


def test_autobatching_concurrent_requests(con):
    store(con, "m", "mlp.onnx", batch=4, minbatch=2, minbatchtimeout=3000)
    xs = {
        "x0": np.array([[1, 2, 3, 4]], dtype=np.float32),
        "x1": np.array([[-1, 0, 2, 3], [4, -4, 1, 0]], dtype=np.float32),
    }
    for key, x in xs.items():
        con.tensorset(key, x)
    replies = {}

    def run(key):
        other = other_client(con)
        try:
            replies[key] = other.modelexecute("m", [key], ["y" + key[1:]])
        except Exception as e:  # noqa: BLE001
            replies[key] = e
        finally:
            other.close()

    workers = [threading.Thread(target=run, args=(key,)) for key in xs]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    assert replies == {"x0": "OK", "x1": "OK"}
    assert_same_array(con.tensorget("y0"), mlp_reference(xs["x0"]))
    assert_same_array(con.tensorget("y1"), mlp_reference(xs["x1"]))
    info = con.infoget("m")
    assert info["errors"] == 0
    assert info["samples"] == 3


# --- pipelines and transactions ---------------------------------------------------------------------


def test_pipeline_with_modelexecute(con):
    store(con, "m", "two_outputs.onnx")
    x = np.array([[1, 2], [3, 4]], dtype=np.float32)
    pipe = con.pipeline(transaction=False)
    pipe.tensorset("x", x)
    pipe.execute_command("AI.MODELEXECUTE", "m", "INPUTS", 1, "x", "OUTPUTS", 2, "s", "p")
    pipe.tensorget("s")
    pipe.tensorget("p")
    set_reply, run_reply, s, p = pipe.execute()
    assert set_reply in (b"OK", "OK", True)
    assert run_reply in (b"OK", "OK", True)
    assert_same_array(s, x + x)
    assert_same_array(p, x * x)


def test_modelexecute_is_refused_in_a_transaction(con):
    store(con, "m", "add.onnx")
    con.tensorset("a", np.array([1, 2], dtype=np.float32))
    pipe = con.pipeline(transaction=True)
    pipe.execute_command("AI.MODELEXECUTE", "m", "INPUTS", 2, "a", "a", "OUTPUTS", 1, "c")
    pipe.exists("a")
    run_reply, exists = pipe.execute(raise_on_error=False)
    assert isinstance(run_reply, redis.exceptions.ResponseError)
    assert NOT_IN_TRANSACTION in str(run_reply)
    assert exists == 1
    assert con.exists("c") == 0
