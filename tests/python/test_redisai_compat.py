"""Drop-in checks against RedisAI 1.2's replies, through the official `redisai` client (1.3.0):

  dag(load=, persist=, routing=, timeout=, readonly=) and its tensorset, tensorget,
  modelexecute, modelrun (deprecated AI.DAGRUN), scriptexecute (with its own KEYS, as the
  client sends them), execute() and run()
  loadbackend(identifier, path)     -> AI.CONFIG LOADBACKEND (relative and absolute paths)
  config(name[, value])             -> AI.CONFIG GET / BACKENDSPATH / MODEL_CHUNK_SIZE

and the texts RedisAI gave for errors (tensors, AI.MODELSTORE, AI.CONFIG, DAGs, backend
messages with their line breaks as spaces), and its INFO MODULES layout. The ONNX, TORCH,
TF and TFLITE backends are the ones under dist/backends.
"""

from pathlib import Path

import numpy as np
import pytest
import redis

MODELS = Path(__file__).resolve().parents[1] / "models"

SCRIPT = """
def add(tensors: List[Tensor], keys: List[str], args: List[str]):
    return tensors[0] + tensors[1]

def bump(tensors: List[Tensor], keys: List[str], args: List[str]):
    redis.execute("INCR", keys[0])
    return tensors[0] * 2
"""


def blob(path: str) -> bytes:
    return (MODELS / path).read_bytes()


def backend_so(redis_server, folder: str) -> Path:
    so = redis_server.module.parent / "backends" / folder / f"{folder}.so"
    if not so.is_file():
        pytest.fail(f"backend not found at {so} (dist/backends/{folder}/)", pytrace=False)
    return so


@pytest.fixture
def con(client, redis_server):
    for folder in ("redisai_onnxruntime", "redisai_torch", "redisai_tensorflow"):
        backend_so(redis_server, folder)
    return client


def error_of(con, *args) -> str:
    with pytest.raises(redis.exceptions.ResponseError) as caught:
        con.execute_command(*args)
    return str(caught.value)


def f32(*values):
    return np.array(values, dtype=np.float32)


# --- DAGs through the client ---------------------------------------------------------------


def test_dag_execute_with_load_persist_and_modelexecute(con):
    assert con.modelstore("add", "ONNX", "CPU", blob("onnx/add.onnx")) == "OK"
    con.tensorset("a", f32(1, 2, 3))
    dag = con.dag(load="a", persist="c")
    dag.tensorset("b", f32(10, 20, 30))
    dag.modelexecute("add", inputs=["a", "b"], outputs="c")
    dag.tensorget("c")
    ok_set, ok_run, got = dag.execute()
    assert (ok_set, ok_run) == ("OK", "OK")
    np.testing.assert_array_equal(got, f32(11, 22, 33))
    np.testing.assert_array_equal(con.tensorget("c"), f32(11, 22, 33))
    assert con.exists("b") == 0, "tensors not PERSISTed stay inside the DAG"


def test_dag_run_is_execute(con):
    con.tensorset("a", f32(4))
    dag = con.dag(routing="a")
    dag.tensorset("x", f32(7)).tensorget("x", meta_only=True)
    with pytest.deprecated_call():
        reply = dag.run()
    assert reply[0] == "OK"
    assert reply[1]["dtype"] == "FLOAT" and reply[1]["shape"] == [1]


def test_dag_readonly(con):
    assert con.modelstore("add", "ONNX", "CPU", blob("onnx/add.onnx")) == "OK"
    con.tensorset("a", f32(1, 1))
    dag = con.dag(load="a", readonly=True)
    dag.modelexecute("add", inputs=["a", "a"], outputs="c").tensorget("c")
    assert dag.commands[0] == "AI.DAGEXECUTE_RO"
    ok, got = dag.execute()
    assert ok == "OK"
    np.testing.assert_array_equal(got, f32(2, 2))
    assert con.exists("c") == 0
    with pytest.raises(RuntimeError):
        con.dag(load="a", readonly=True).scriptexecute("s", "add", inputs=["a", "a"])


def test_deprecated_dagrun_with_modelrun(con):
    assert con.modelstore("add", "ONNX", "CPU", blob("onnx/add.onnx")) == "OK"
    with pytest.deprecated_call():
        dag = con.dag()
    assert dag.commands[0] == "AI.DAGRUN"
    dag.tensorset("a", f32(1, 2)).tensorset("b", f32(3, 4))
    with pytest.deprecated_call():
        dag.modelrun("add", ["a", "b"], ["c"])
    dag.tensorget("c")
    *oks, got = dag.execute()
    assert oks == ["OK", "OK", "OK"]
    np.testing.assert_array_equal(got, f32(4, 6))


def test_dag_scriptexecute_with_its_own_keys(con):
    assert con.scriptstore("s", "CPU", SCRIPT, ["add", "bump"]) == "OK"
    con.tensorset("a", f32(1, 2))
    con.set("counter", 5)
    dag = con.dag(load="a", persist="out")
    # The client puts KEYS inside the op: AI.SCRIPTEXECUTE s bump KEYS 1 counter INPUTS ...
    dag.scriptexecute("s", "bump", keys="counter", inputs="a", outputs="out")
    dag.tensorget("out")
    assert "KEYS" in dag.commands
    ok, got = dag.execute()
    assert ok == "OK"
    np.testing.assert_array_equal(got, f32(2, 4))
    assert con.get("counter") == b"6"
    np.testing.assert_array_equal(con.tensorget("out"), f32(2, 4))


def test_dag_level_keys_with_an_ops_own_keys(con):
    assert con.scriptstore("s", "CPU", SCRIPT, ["add", "bump"]) == "OK"
    con.tensorset("a", f32(3))
    con.set("counter", 1)
    reply = con.execute_command(
        "AI.DAGEXECUTE", "KEYS", 1, "counter", "LOAD", 1, "a",
        "|>", "AI.SCRIPTEXECUTE", "s", "bump", "KEYS", 1, "counter", "INPUTS", 1, "a", "OUTPUTS", 1, "o",
        "|>", "AI.TENSORGET", "o", "VALUES",
    )
    assert reply[0] in (b"OK", "OK")
    assert [float(v) for v in reply[1]] == [6.0]
    assert con.get("counter") == b"2"


def test_dag_error_texts(con):
    con.tensorset("t", f32(1))
    assert error_of(con, "AI.DAGEXECUTE", "ROUTING", "t", "LOAD", 1, "t") == "DAG is empty"
    assert error_of(con, "AI.DAGEXECUTE", "LOAD", 1, "missing", "|>", "AI.TENSORGET", "missing", "VALUES") == (
        "tensor key is empty or in a different shard"
    )
    con.set("plain", "x")
    assert error_of(con, "AI.DAGEXECUTE", "LOAD", 1, "plain", "|>", "AI.TENSORGET", "plain", "VALUES").startswith(
        "WRONGTYPE"
    )
    assert error_of(con, "AI.DAGEXECUTE", "ROUTING", "t", "LOAD", 2, "t") == (
        "number of keys to LOAD into DAG does not match the number of given arguments"
    )
    assert error_of(con, "AI.DAGEXECUTE", "ROUTING", "t", "PERSIST", 1) == (
        "missing arguments after PERSIST keyword in DAG command"
    )
    assert error_of(con, "AI.DAGEXECUTE", "ROUTING", "t", "PERSIST", "x", "t") == (
        "invalid or negative value found in number of keys to PERSIST"
    )
    assert error_of(
        con, "AI.DAGEXECUTE", "ROUTING", "t", "|>", "AI.MODELEXECUTE", "m", "INPUTS", 1, "t", "OUTPUTS", 1, "o",
        "TIMEOUT", 5,
    ) == "TIMEOUT not allowed within a DAG command"


# --- AI.CONFIG ----------------------------------------------------------------------------


def test_config_texts(client):
    assert error_of(client, "AI.CONFIG", "NOPE") == "unsupported subcommand"
    assert error_of(client, "AI.CONFIG", "help") == "unsupported subcommand"
    assert error_of(client, "AI.CONFIG", "MODEL_CHUNK_SIZE") == "MODEL_CHUNK_SIZE: missing chunk size"
    assert error_of(client, "AI.CONFIG", "MODEL_CHUNK_SIZE", 0) == "MODEL_CHUNK_SIZE: invalid chunk size"
    assert error_of(client, "AI.CONFIG", "MODEL_CHUNK_SIZE", "big") == "MODEL_CHUNK_SIZE: invalid chunk size"
    assert error_of(client, "AI.CONFIG", "BACKENDSPATH") == "BACKENDSPATH: missing path argument"
    assert "wrong number of arguments" in error_of(client, "AI.CONFIG", "LOADBACKEND", "TF")


def test_config_backendspath_relative_to_the_working_directory(client, redis_server):
    original = client.config("BACKENDSPATH")
    try:
        assert client.config("BACKENDSPATH", "rel/backends") == "OK"
        assert client.config("BACKENDSPATH") == str(redis_server.dir / "rel" / "backends")
        assert "may not leave" in error_of(client, "AI.CONFIG", "BACKENDSPATH", "../up")
    finally:
        assert client.config("BACKENDSPATH", original) == "OK"
    assert client.config("BACKENDSPATH") == original


def test_loadbackend_relative_and_absolute(con, redis_server):
    so = backend_so(redis_server, "redisai_tflite")
    for path in ("redisai_tflite/redisai_tflite.so", str(so)):
        try:
            assert con.loadbackend("TFLITE", path) == "OK"
        except redis.exceptions.ResponseError as e:
            # Loaded already (by this loop, or lazily by an earlier test).
            assert "already loaded" in str(e), str(e)
    assert "TensorFlowLite_version" in "".join(con.info("modules").keys())
    assert "may not leave BACKENDSPATH" in error_of(con, "AI.CONFIG", "LOADBACKEND", "TFLITE", "../x/y.so")


# --- error texts --------------------------------------------------------------------------


def test_tensor_error_texts(client):
    assert error_of(client, "AI.TENSORSET", "t", "BOOL", 2, "VALUES", 1, 2) == "invalid value"
    assert error_of(client, "AI.TENSORSET", "t", "INT8", 1, "VALUES", 128) == "invalid value"
    assert error_of(client, "AI.TENSORSET", "t", "BOOL", 2, "BLOB", b"\x02\x01") == (
        "BOOL tensor elements must be 0 or 1"
    )
    assert error_of(client, "AI.TENSORSET", "t", "STRING", 2, "BLOB", b"one\0two\0three\0") == (
        "Number of string elements in data blob does not match tensor length"
    )
    assert error_of(client, "AI.TENSORSET", "t", "STRING", 2, "VALUES", "ok", b"in\0valid") == (
        "C-string value contains null character"
    )


def test_modelstore_error_texts(client):
    def store(*args):
        return error_of(client, "AI.MODELSTORE", "m", *args)

    assert store("TF", "CPU", "BLOB", b"x") == "INPUTS not specified for TF"
    assert store("TF", "CPU", "INPUTS", 1, "a", "BLOB", b"x") == "OUTPUTS not specified for TF"
    assert store("TF", "CPU", "INPUTS", 0, "BLOB", b"x") == "Invalid argument for input_count"
    assert store("PORCH", "CPU", "BLOB", b"x") == "unsupported backend"
    assert store("ONNX", "CPU", "TAG", "t") == "Insufficient arguments, missing model BLOB"
    assert store("ONNX", "CPU", "INPUTS", 1, "a", "BLOB", b"x") == (
        "INPUTS argument should not be specified for this backend"
    )
    assert "wrong number of arguments" in error_of(client, "AI.MODELSTORE", "m", "ONNX", "CPU")


def test_backend_messages_keep_tabs_and_lose_line_breaks(con):
    assert con.modelstore("mul", "TF", "CPU", blob("tf/mul.pb"), inputs=["a", "b"], outputs=["mul"]) == "OK"
    # RedisAI's own example: a TF message with "\n\t" before the node comes back with the
    # line break as a space and the tab as it was.
    reply = con.execute_command(
        "AI.DAGEXECUTE_RO", "ROUTING", "{1}",
        "|>", "AI.TENSORSET", "a", "FLOAT", 2, "VALUES", 2, 3,
        "|>", "AI.TENSORSET", "b", "FLOAT", 2, 2, 3,
        "|>", "AI.MODELEXECUTE", "mul", "INPUTS", 2, "a", "b", "OUTPUTS", 1, "tD",
        "|>", "AI.TENSORGET", "tD", "VALUES",
    )
    assert reply[3] in (b"NA", "NA")
    text = str(reply[2])
    assert "Incompatible shapes: [2] vs. [2,2,3]" in text, text
    assert "\n" not in text and "\r" not in text and "\\x" not in text, text
    assert " \t [[{{node mul}}]]" in text, text
    with pytest.raises(redis.exceptions.ResponseError) as caught:
        con.modelstore("bad", "TF", "CPU", b"not a graph", inputs=["a"], outputs=["b"])
    assert str(caught.value) == "Invalid GraphDef"


# --- INFO MODULES -------------------------------------------------------------------------


def test_info_modules_layout(con):
    con.tensorset("a", f32(1, 2))
    assert con.modelstore("add", "ONNX", "CPU", blob("onnx/add.onnx")) == "OK"
    con.modelexecute("add", inputs=["a", "a"], outputs=["c"])
    # The raw reply (redis-py's INFO callback would drop the section lines).
    try:
        conn = con.connection_pool.get_connection()
    except TypeError:  # redis-py before 5.3 wants a command name
        conn = con.connection_pool.get_connection("INFO")
    try:
        conn.send_command("INFO", "MODULES")
        raw = conn.read_response()
    finally:
        con.connection_pool.release(conn)
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    sections = [line[2:].strip() for line in text.splitlines() if line.startswith("# ai_")]
    assert sections[:5] == ["ai_versions", "ai_git", "ai_load_time_configs", "ai_backends_info", "ai_cpu"]
    names = [line.split(":", 1)[0] for line in text.splitlines() if line.startswith("ai_")]
    assert names[:3] == ["ai_RedisAI_version", "ai_low_level_API_version", "ai_rdb_version"]
    assert "ai_git_sha" in names
    start = names.index("ai_threads_per_queue")
    assert names[start:start + 5] == [
        "ai_threads_per_queue",
        "ai_inter_op_parallelism",
        "ai_intra_op_parallelism",
        "ai_model_execution_timeout",
        "ai_backend_memory_limit",
    ]
    for field in (
        "ai_onnxruntime_version",
        "ai_onnxruntime_memory",
        "ai_onnxruntime_memory_access_num",
        "ai_onnxruntime_maximum_run_sessions_number",
        "ai_self_used_cpu_sys",
        "ai_self_used_cpu_user",
        "ai_children_used_cpu_sys",
        "ai_children_used_cpu_user",
        "ai_main_thread_used_cpu_sys",
        "ai_main_thread_used_cpu_user",
        "ai_queue_CPU_bthread_n1_used_cpu_total",
    ):
        assert field in names, field
    cpu = dict(line.split(":", 1) for line in text.splitlines() if line.startswith("ai_queue_CPU_bthread"))
    seconds = cpu["ai_queue_CPU_bthread_n1_used_cpu_total"]
    whole, _, micros = seconds.partition(".")
    assert whole.isdigit() and len(micros) == 6, seconds


# --- the rest of the client's surface -----------------------------------------------------


def test_transaction_pipeline_with_tensors(client):
    pipe = client.pipeline(transaction=True)
    pipe.tensorset("t", f32(1, 2))
    pipe.set("plain", 1)
    pipe.tensorget("t")
    pipe.tensorget("t", meta_only=True)
    set_reply, set_plain, got, meta = pipe.execute()
    assert set_reply in (b"OK", "OK", True) and set_plain is True
    np.testing.assert_array_equal(got, f32(1, 2))
    assert meta == {"dtype": "FLOAT", "shape": [2]}


def test_debug_client_and_raw_replies(redis_server, capsys):
    import redisai

    con = redisai.Client(host="127.0.0.1", port=redis_server.port, debug=True, enable_postprocess=False)
    try:
        con.flushall()
        assert con.tensorset("t", f32(3)) in (b"OK", "OK")
        assert "AI.TENSORSET" in capsys.readouterr().out
        raw = con.tensorget("t", meta_only=True)
        assert raw[0] in (b"dtype", "dtype")
        dag = con.dag(routing="t")
        dag.enable_postprocess = False
        dag.tensorset("x", f32(1)).tensorget("x", meta_only=True)
        ok, meta = dag.execute()
        assert ok in (b"OK", "OK") and meta[1] in (b"FLOAT", "FLOAT")
    finally:
        con.close()


def test_error_texts_keep_utf8_and_tabs_and_lose_line_breaks(client):
    # Client input quoted in an error comes back byte for byte (a character such as
    # U+0600, whose low byte is 0, included), line breaks and NUL as spaces.
    text = error_of(client, "AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 1, "a", "ü\u0600x\tq")
    assert text == "Invalid AI.SCRIPTEXECUTE command. Unexpected argument: ü\u0600x\tq"
    text = error_of(client, "AI.SCRIPTEXECUTE", "s", "bar", "INPUTS", 1, "a", b"a\r\nb\x00c")
    assert text == "Invalid AI.SCRIPTEXECUTE command. Unexpected argument: a  b c"
    assert client.ping()
