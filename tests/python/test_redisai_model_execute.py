"""Running ONNX models through the official `redisai` client (1.3.0): modelexecute and the
deprecated modelrun, results checked against numpy; timeouts and the kill switch,
autobatching of concurrent requests, pipelines and transactions.
"""

import threading
import time

import numpy as np
import pytest
import redis
import redisai
from redis.backoff import NoBackoff
from redis.retry import Retry

from onnx_model_helpers import (
    NOT_IN_TRANSACTION,
    OUTPUTS_MISMATCH,
    TERMINATED,
    assert_same_array,
    mlp_reference,
    mlp_weights,
    other_client,
    store,
)


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


# --- deprecated modelrun ---------------------------------------------------------------------


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
