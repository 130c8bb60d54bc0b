"""The module driven by the official `redisai` Python client (1.3.0).

What the client sends (from redisai 1.3.0's command_builder):
  tensorset(key, ndarray)              -> AI.TENSORSET key <DTYPE> d1 .. dn BLOB <bytes>
  tensorset(key, list, shape, dtype)   -> AI.TENSORSET key <DTYPE> d1 .. dn VALUES v1 .. vm
  tensorget(key)                       -> AI.TENSORGET key META BLOB
  tensorget(key, as_numpy=False)       -> AI.TENSORGET key META VALUES
  tensorget(key, meta_only=True)       -> AI.TENSORGET key META
  config(name)                         -> AI.CONFIG GET name
  config(name, value)                  -> AI.CONFIG name value
"""

import numpy as np
import pytest
import redis

DTYPES = {
    # numpy dtype -> RedisAI type name
    "float32": "FLOAT",
    "float64": "DOUBLE",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "uint8": "UINT8",
    "uint16": "UINT16",
    "bool": "BOOL",
}
SHAPES = [(7,), (3, 4), (2, 3, 5)]


def sample(dtype: str, shape, seed: int = 0) -> np.ndarray:
    """Deterministic values covering the dtype's range (extremes included for ints)."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    dt = np.dtype(dtype)
    if dt == np.bool_:
        flat = rng.integers(0, 2, size=n).astype(np.bool_)
        flat[0], flat[-1] = True, False
    elif np.issubdtype(dt, np.integer):
        info = np.iinfo(dt)
        flat = rng.integers(info.min, info.max, size=n, dtype=dt, endpoint=True)
        flat[0], flat[-1] = info.min, info.max
    else:
        flat = (rng.standard_normal(n) * 1000).astype(dt)
        flat[0] = 0.1  # not exactly representable: must survive unchanged, bit for bit
    return flat.reshape(shape)


def assert_same_array(got, want: np.ndarray):
    assert isinstance(got, np.ndarray), f"expected an ndarray, got {type(got)}: {got!r}"
    assert got.dtype == want.dtype, f"dtype {got.dtype} != {want.dtype}"
    assert got.shape == want.shape, f"shape {got.shape} != {want.shape}"
    assert got.tobytes() == want.tobytes(), f"values differ:\n got {got!r}\nwant {want!r}"


# --- BLOB round trips (tensorset of an ndarray, tensorget as numpy) --------------------


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", list(DTYPES))
def test_blob_roundtrip(client, dtype, shape):
    arr = sample(dtype, shape)
    assert client.tensorset("t", arr) == "OK"
    got = client.tensorget("t")
    assert_same_array(got, arr)
    np.testing.assert_array_equal(got, arr)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_blob_float_special_values_bit_exact(client, dtype):
    info = np.finfo(dtype)
    arr = np.array(
        [np.nan, np.inf, -np.inf, -0.0, 0.0, info.max, info.min, info.tiny, info.smallest_subnormal, info.eps],
        dtype=dtype,
    )
    assert client.tensorset("special", arr) == "OK"
    assert_same_array(client.tensorget("special"), arr)


def test_blob_roundtrip_non_contiguous_input(client):
    # The client serialises with ndarray.tobytes() (C order), so a transposed view
    # must come back as the transposed values.
    base = np.arange(24, dtype=np.int32).reshape(4, 6)
    view = base.T
    assert not view.flags["C_CONTIGUOUS"]
    assert client.tensorset("tr", view) == "OK"
    assert_same_array(client.tensorget("tr"), np.ascontiguousarray(view))


def test_blob_roundtrip_large(client):
    arr = sample("float32", (512, 512), seed=7)  # 1 MiB blob
    assert client.tensorset("big", arr) == "OK"
    assert_same_array(client.tensorget("big"), arr)


def test_tensorget_default_array_is_a_readonly_view(client):
    # tensorget() builds the array with np.frombuffer over the BLOB reply.
    # (as_numpy_mutable=True is not tested: redisai 1.3.0 implements it with the
    # binary mode of np.fromstring, which numpy 2.x removed; it sends the same
    # command as the default anyway.)
    arr = sample("int16", (3, 4), seed=3)
    assert client.tensorset("m", arr) == "OK"
    got = client.tensorget("m")
    assert_same_array(got, arr)
    assert not got.flags.writeable


def test_tensorset_overwrites(client):
    assert client.tensorset("k", np.array([1, 2, 3], dtype=np.int64)) == "OK"
    second = np.array([[0.5, 1.5]], dtype=np.float64)
    assert client.tensorset("k", second) == "OK"
    assert_same_array(client.tensorget("k"), second)


# --- string tensors ----------------------------------------------------------------------


def test_string_tensor_roundtrip(client):
    arr = np.array([["foo", "bar", "x"], ["", "hello world", "caf\u00e9"]])
    assert client.tensorset("s", arr) == "OK"
    assert client.tensorget("s", meta_only=True) == {"dtype": "STRING", "shape": [2, 3]}
    got = client.tensorget("s")
    assert got.shape == (2, 3)
    assert got.tolist() == arr.tolist()


def test_string_tensor_values(client):
    assert client.tensorset("s", ["a", "bc", "def"], shape=(3,), dtype="str") == "OK"
    res = client.tensorget("s", as_numpy=False)
    assert res == {"dtype": "STRING", "shape": [3], "values": ["a", "bc", "def"]}


# --- VALUES replies (tensorget(as_numpy=False)) -----------------------------------------


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_tensorget_values_reply(client, dtype):
    arr = sample(dtype, (2, 3), seed=11)
    assert client.tensorset("v", arr) == "OK"
    res = client.tensorget("v", as_numpy=False)
    assert isinstance(res, dict)
    assert set(res) == {"dtype", "shape", "values"}
    assert res["dtype"] == DTYPES[dtype]
    assert res["shape"] == [2, 3]
    values = res["values"]
    assert isinstance(values, list) and len(values) == arr.size
    if dtype.startswith("float"):
        # The client parses each value with float(); casting back to the tensor's
        # dtype must give exactly the stored elements.
        assert all(isinstance(v, float) for v in values)
        assert np.array(values, dtype=dtype).tobytes() == arr.tobytes()
    else:
        assert all(isinstance(v, int) for v in values)
        assert values == [int(x) for x in arr.ravel()]


def test_tensorget_meta_only(client):
    arr = sample("int16", (2, 3, 4))
    assert client.tensorset("meta", arr) == "OK"
    assert client.tensorget("meta", meta_only=True) == {"dtype": "INT16", "shape": [2, 3, 4]}


@pytest.mark.parametrize("dtype", list(DTYPES))
def test_tensorget_meta_only_dtypes(client, dtype):
    assert client.tensorset("meta", sample(dtype, (5,))) == "OK"
    assert client.tensorget("meta", meta_only=True) == {"dtype": DTYPES[dtype], "shape": [5]}


# --- tensorset from Python lists (VALUES) ------------------------------------------------


def test_tensorset_list_float(client):
    assert client.tensorset("l", [1, 2, 3], shape=(3,), dtype="float") == "OK"
    assert_same_array(client.tensorget("l"), np.array([1, 2, 3], dtype=np.float32))
    assert client.tensorget("l", as_numpy=False) == {"dtype": "FLOAT", "shape": [3], "values": [1.0, 2.0, 3.0]}
    assert client.tensorget("l", meta_only=True) == {"dtype": "FLOAT", "shape": [3]}


def test_tensorset_list_without_shape_defaults_to_1d(client):
    assert client.tensorset("l", (4, 5, 6), dtype="int8") == "OK"
    assert_same_array(client.tensorget("l"), np.array([4, 5, 6], dtype=np.int8))


def test_tensorset_list_2d_int64(client):
    values = [-(2**63), -1, 0, 1, 2**62, 2**63 - 1]
    assert client.tensorset("l", values, shape=(2, 3), dtype="int64") == "OK"
    assert_same_array(client.tensorget("l"), np.array(values, dtype=np.int64).reshape(2, 3))
    res = client.tensorget("l", as_numpy=False)
    assert res == {"dtype": "INT64", "shape": [2, 3], "values": values}


@pytest.mark.parametrize("dtype", ["float", "double"])
def test_tensorset_list_fractional_values(client, dtype):
    values = [0.1, -2.5, 1e-3, 3.0e8]
    npdt = np.float32 if dtype == "float" else np.float64
    assert client.tensorset("l", values, shape=(2, 2), dtype=dtype) == "OK"
    assert_same_array(client.tensorget("l"), np.array(values, dtype=npdt).reshape(2, 2))


@pytest.mark.parametrize(
    "dtype,values",
    [
        ("int8", [-128, 127]),
        ("int16", [-32768, 32767]),
        ("int32", [-(2**31), 2**31 - 1]),
        ("uint8", [0, 255]),
        ("uint16", [0, 65535]),
        ("bool", [1, 0]),
    ],
)
def test_tensorset_list_int_limits(client, dtype, values):
    assert client.tensorset("l", values, shape=(2,), dtype=dtype) == "OK"
    assert_same_array(client.tensorget("l"), np.array(values, dtype=dtype))


@pytest.mark.parametrize("dtype,value", [("int8", 128), ("uint8", -1), ("uint16", 65536), ("int16", -32769)])
def test_tensorset_list_out_of_range_is_an_error(client, dtype, value):
    with pytest.raises(redis.exceptions.ResponseError):
        client.tensorset("bad", [value], shape=(1,), dtype=dtype)
    assert client.exists("bad") == 0


def test_tensorset_list_count_mismatch_is_an_error(client):
    with pytest.raises(redis.exceptions.ResponseError):
        client.tensorset("bad", [1, 2, 3], shape=(2, 2), dtype="float")
    assert client.exists("bad") == 0


# --- raw replies, errors, config, pipeline -----------------------------------------------


def test_raw_tensorget_without_format_returns_meta_and_blob(client):
    arr = np.array([[1.5, -2.0], [3.25, 0.0]], dtype=np.float32)
    assert client.tensorset("raw", arr) == "OK"
    reply = client.execute_command("AI.TENSORGET", "raw")
    assert reply == [b"dtype", b"FLOAT", b"shape", [2, 2], b"blob", arr.tobytes()]


def test_raw_tensorget_meta_values(client):
    client.execute_command("AI.TENSORSET", "raw", "INT32", 3, "VALUES", 7, -8, 9)
    reply = client.execute_command("AI.TENSORGET", "raw", "META", "VALUES")
    assert reply == [b"dtype", b"INT32", b"shape", [3], b"values", [7, -8, 9]]
    assert client.execute_command("AI.TENSORGET", "raw", "META") == [b"dtype", b"INT32", b"shape", [3]]


def test_raw_tensorset_blob_size_mismatch_is_an_error(client):
    with pytest.raises(redis.exceptions.ResponseError):
        client.execute_command("AI.TENSORSET", "bad", "FLOAT", 2, 2, "BLOB", b"\x00" * 8)
    assert client.exists("bad") == 0


def test_unsupported_dtype_is_an_error(client):
    # The client knows uint32/uint64, RedisAI 1.2 does not.
    with pytest.raises(redis.exceptions.ResponseError):
        client.tensorset("bad", np.array([1, 2], dtype=np.uint32))
    assert client.exists("bad") == 0


def test_tensorget_missing_key_is_an_error(client):
    with pytest.raises(redis.exceptions.ResponseError):
        client.tensorget("nope")


def test_tensorget_wrong_type_is_an_error(client):
    client.set("plain", "value")
    with pytest.raises(redis.exceptions.ResponseError, match="WRONGTYPE"):
        client.tensorget("plain")
    assert client.get("plain") == b"value"


def test_tensorset_on_other_type_is_an_error(client):
    client.set("plain", "value")
    with pytest.raises(redis.exceptions.ResponseError, match="WRONGTYPE"):
        client.tensorset("plain", np.array([1.0], dtype=np.float32))
    assert client.get("plain") == b"value"


def test_tensor_key_is_a_redis_key(client):
    assert client.tensorset("k1", np.zeros(2, dtype=np.float32)) == "OK"
    assert client.exists("k1") == 1
    assert client.delete("k1") == 1
    with pytest.raises(redis.exceptions.ResponseError):
        client.tensorget("k1")


def test_config_model_chunk_size(client):
    default = client.config("MODEL_CHUNK_SIZE")
    assert isinstance(default, int) and not isinstance(default, bool)
    assert default > 0
    try:
        assert client.config("MODEL_CHUNK_SIZE", 4096) == "OK"
        assert client.config("MODEL_CHUNK_SIZE") == 4096
    finally:
        client.execute_command("AI.CONFIG", "MODEL_CHUNK_SIZE", default)
    assert client.config("MODEL_CHUNK_SIZE") == default


def test_pipeline(client):
    arr = sample("uint8", (2, 2, 3), seed=5)
    pipe = client.pipeline(transaction=False)
    pipe.tensorset("p", arr)
    pipe.tensorget("p")
    pipe.tensorget("p", meta_only=True)
    set_reply, got, meta = pipe.execute()
    assert set_reply in (b"OK", "OK", True)
    assert_same_array(got, arr)
    assert meta == {"dtype": "UINT8", "shape": [2, 2, 3]}
