"""Scripts through the official `redisai` client (1.3.0): scriptstore, scriptset,
scriptget, scriptexecute, scriptrun, scriptdel, scriptscan and infoget of a script,
on the TORCH backend plugin (dist/backends/redisai_torch)."""

import numpy as np
import pytest
import redis

TORCH_BACKEND_DIR = "redisai_torch"
TORCH_BACKEND_SO = "redisai_torch.so"

SCRIPT = """
def bar(tensors: List[Tensor], keys: List[str], args: List[str]):
    a = tensors[0]
    b = tensors[1]
    return a + b

def split(tensors: List[Tensor], keys: List[str], args: List[str]):
    return [tensors[0] * 2, tensors[0] + 1]

def incr_key(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute("INCR", keys[0])
    return torch.tensor([int(str(redis.execute("GET", keys[0])))])
"""

ENTRY_POINTS = ["bar", "split", "incr_key"]

# RedisAI 1.2 style functions (AI.SCRIPTSET / AI.SCRIPTRUN): tensors as parameters, the
# inputs after "$" as one List[Tensor].
LEGACY_SCRIPT = """
def bar(a, b):
    return a + b

def addn(a, args: List[Tensor]):
    return a + torch.stack(args).sum(dim=0)
"""


@pytest.fixture(scope="session")
def torch_backend(redis_server):
    so = redis_server.module.parent / "backends" / TORCH_BACKEND_DIR / TORCH_BACKEND_SO
    if not so.is_file():
        pytest.fail(
            f"TORCH backend not found at {so}: the script tests need it (dist/backends/{TORCH_BACKEND_DIR}/)",
            pytrace=False,
        )
    return so


@pytest.fixture
def con(client, torch_backend):
    return client


def stored(con):
    assert con.scriptstore("s", "CPU", SCRIPT, ENTRY_POINTS, tag="v1") == "OK"
    a = np.array([[2, 3], [2, 3]], dtype=np.float32)
    assert con.tensorset("a", a) == "OK"
    assert con.tensorset("b", a) == "OK"
    return a


def test_scriptstore_and_scriptget(con):
    stored(con)
    got = con.scriptget("s")
    assert got["device"] == "CPU"
    assert got["tag"] == "v1"
    assert got["source"] == SCRIPT
    assert [e.decode() if isinstance(e, bytes) else e for e in got["entry points"]] == ENTRY_POINTS
    meta = con.scriptget("s", meta_only=True)
    assert "source" not in meta


def test_scriptexecute_and_list_outputs(con):
    a = stored(con)
    assert con.scriptexecute("s", "bar", inputs=["a", "b"], outputs=["c"]) == "OK"
    np.testing.assert_array_equal(con.tensorget("c"), a + a)
    assert con.scriptexecute("s", "split", inputs=["a"], outputs=["x", "y"]) == "OK"
    np.testing.assert_array_equal(con.tensorget("x"), a * 2)
    np.testing.assert_array_equal(con.tensorget("y"), a + 1)


def test_scriptexecute_redis_execute(con):
    stored(con)
    con.set("counter", 10)
    assert con.scriptexecute("s", "incr_key", keys=["counter"], outputs=["n"]) == "OK"
    assert con.tensorget("n").tolist() == [11]
    assert con.get("counter") == b"11"


def test_deprecated_scriptset_and_scriptrun(con):
    a = stored(con)
    assert con.scriptset("old", "CPU", SCRIPT) == "OK"
    assert con.scriptrun("old", "bar", inputs=["a", "b"], outputs=["c"]) == "OK"
    np.testing.assert_array_equal(con.tensorget("c"), a + a)


def test_scriptrun_of_redisai_1_2_functions(con):
    a = stored(con)
    assert con.scriptset("legacy", "CPU", LEGACY_SCRIPT) == "OK"
    assert con.scriptrun("legacy", "bar", inputs=["a", "b"], outputs=["c"]) == "OK"
    np.testing.assert_array_equal(con.tensorget("c"), a + a)
    assert con.scriptrun("legacy", "addn", inputs=["a", "$", "a", "b"], outputs=["d"]) == "OK"
    np.testing.assert_array_equal(con.tensorget("d"), a * 3)
    with pytest.raises(redis.exceptions.ResponseError, match="Wrong number of inputs in function bar"):
        con.scriptrun("legacy", "bar", inputs=["a"], outputs=["c"])


def test_scriptdel_scriptscan_and_info(con):
    stored(con)
    assert con.scriptexecute("s", "bar", inputs=["a", "b"], outputs=["c"]) == "OK"
    info = con.infoget("s")
    assert info["type"] == "SCRIPT"
    assert info["backend"] == "TORCH"
    assert info["samples"] == -1
    assert info["calls"] == 1
    assert con.inforeset("s") == "OK"
    assert con.infoget("s")["calls"] == 0
    assert ["s", "v1"] in con.scriptscan()
    assert con.scriptdel("s") == "OK"
    with pytest.raises(redis.exceptions.ResponseError, match="script key is empty"):
        con.scriptget("s")


def test_script_errors(con):
    stored(con)
    with pytest.raises(redis.exceptions.ResponseError, match="Function nope does not exist in the given script."):
        con.scriptexecute("s", "nope", inputs=["a", "b"], outputs=["c"])
    with pytest.raises(redis.exceptions.ResponseError):
        con.scriptstore("broken", "CPU", "def bar(x):\n    return y +\n", "bar")
    assert con.exists("broken") == 0
