"""scikit-learn models converted with skl2onnx, stored and run through the `redisai` client,
their outputs compared with onnxruntime's own run of the same bytes.

The models are made in memory by tests/models/make_sklearn_models.py (a session fixture):
classifiers (LogisticRegression, RandomForestClassifier, a StandardScaler +
LogisticRegression pipeline, string labels) with skl2onnx's default ZipMap output (a
sequence of maps, which the ONNX backend returns as a FLOAT [N, classes] tensor in label
order) and with `zipmap=False`, and a regressor.
"""

import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))
from make_sklearn_models import make_models  # noqa: E402

ONNX_BACKEND = Path("backends") / "redisai_onnxruntime" / "redisai_onnxruntime.so"
CLASSIFIERS = ["logreg", "forest", "scaled_logreg", "logreg_str"]
MODELS = CLASSIFIERS + [f"{name}_nozipmap" for name in CLASSIFIERS] + ["forest_regressor"]
TOLERANCE = 1e-5


@pytest.fixture(scope="session")
def sklearn_models():
    return make_models()


@pytest.fixture
def con(client, redis_server):
    so = redis_server.module.parent / ONNX_BACKEND
    if not so.is_file():
        pytest.fail(f"ONNX backend not found at {so}: build it with scripts/build", pytrace=False)
    return client


def onnxruntime_run(blob: bytes, x: np.ndarray):
    session = onnxruntime.InferenceSession(blob, providers=["CPUExecutionProvider"])
    return session.run(None, {"X": x})


def redisai_run(con, blob: bytes, x: np.ndarray, n_outputs: int):
    assert con.modelstore("m", "ONNX", "CPU", blob) == "OK"
    assert con.tensorset("x", x) == "OK"
    outputs = [f"out{i}" for i in range(n_outputs)]
    assert con.modelexecute("m", ["x"], outputs) == "OK"
    return [con.tensorget(key) for key in outputs]


def zipmap_labels(blob: bytes) -> list:
    """The class labels of a skl2onnx classifier's probabilities, from the model alone: the
    ZipMap's labels, sorted (the README's recipe)."""
    model = onnx.load_from_string(blob)
    zipmap = next(node for node in model.graph.node if node.op_type == "ZipMap")
    attr = next(a for a in zipmap.attribute if a.name in ("classlabels_int64s", "classlabels_strings"))
    return list(sorted(attr.ints)) if attr.ints else [s.decode() for s in sorted(attr.strings)]


@pytest.mark.parametrize("name", MODELS)
def test_sklearn_model_matches_onnxruntime(con, sklearn_models, name):
    model = sklearn_models[name]
    blob, x, classes = model["onnx"], model["x"], model["classes"]
    want = onnxruntime_run(blob, x)
    got = redisai_run(con, blob, x, len(want))
    n = x.shape[0]
    if classes is None:
        (variable,) = got
        assert variable.dtype == np.float32 and variable.shape == want[0].shape == (n, 1)
        np.testing.assert_allclose(variable, want[0], rtol=0, atol=TOLERANCE)
        return
    label, probabilities = got
    want_label, want_probabilities = want
    assert label.shape == (n,)
    assert label.tolist() == want_label.tolist()
    assert set(label.tolist()) <= set(classes)
    if isinstance(want_probabilities, list):
        # ZipMap: onnxruntime gives one dict per row, its keys in the map's order: the
        # classifier's classes_ (sorted labels), the columns of the backend's tensor.
        assert all(list(row.keys()) == classes for row in want_probabilities)
        want_probabilities = np.array([[row[c] for c in classes] for row in want_probabilities], dtype=np.float32)
    assert probabilities.dtype == np.float32
    assert probabilities.shape == (n, len(classes))
    np.testing.assert_allclose(probabilities, want_probabilities, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(probabilities.sum(axis=1), np.ones(n), rtol=0, atol=1e-4)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_zipmap_and_plain_probabilities_agree(con, sklearn_models, name):
    x = sklearn_models[name]["x"]
    zipmap = redisai_run(con, sklearn_models[name]["onnx"], x, 2)
    plain = redisai_run(con, sklearn_models[f"{name}_nozipmap"]["onnx"], x, 2)
    assert zipmap[0].tolist() == plain[0].tolist()
    np.testing.assert_allclose(zipmap[1], plain[1], rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_class_labels_are_the_sorted_zipmap_labels(con, sklearn_models, name):
    model = sklearn_models[name]
    assert zipmap_labels(model["onnx"]) == model["classes"]
    # The column of the highest probability is the label's column.
    label, probabilities = redisai_run(con, model["onnx"], model["x"], 2)
    assert [model["classes"][i] for i in probabilities.argmax(axis=1)] == label.tolist()


def test_zipmap_model_meta_and_one_row(con, sklearn_models):
    model = sklearn_models["logreg"]
    assert con.modelstore("m", "ONNX", "CPU", model["onnx"]) == "OK"
    meta = con.modelget("m", meta_only=True)
    assert meta["inputs"] == ["X"]
    assert meta["outputs"] == ["output_label", "output_probability"]
    con.tensorset("x", model["x"][:1])
    assert con.modelexecute("m", ["x"], ["label", "proba"]) == "OK"
    assert con.tensorget("proba", meta_only=True) == {"dtype": "FLOAT", "shape": [1, 3]}
    assert con.tensorget("label", meta_only=True) == {"dtype": "INT64", "shape": [1]}


def test_zipmap_model_with_autobatching(con, sklearn_models):
    model = sklearn_models["forest"]
    x = model["x"]
    assert con.modelstore("m", "ONNX", "CPU", model["onnx"], batch=64) == "OK"
    con.tensorset("x", x)
    assert con.modelexecute("m", ["x"], ["label", "proba"]) == "OK"
    want_label, want_probabilities = onnxruntime_run(model["onnx"], x)
    assert con.tensorget("label").tolist() == want_label.tolist()
    want = np.array([[row[c] for c in model["classes"]] for row in want_probabilities], dtype=np.float32)
    np.testing.assert_allclose(con.tensorget("proba"), want, rtol=0, atol=TOLERANCE)
