#!/usr/bin/env python3
"""scikit-learn models converted to ONNX with skl2onnx, for tests/python/test_sklearn_models.py.

Not committed: the test imports this module and makes the models in memory (a session
fixture; a few seconds). Run it by hand to write the .onnx files somewhere to look at:

    $CACHE_DIR/venv/bin/python tests/models/make_sklearn_models.py OUT_DIR

(the venv of scripts/python-tests, which pins scikit-learn, skl2onnx and onnxruntime).

Every model is fitted on the iris data set (it ships with scikit-learn: nothing is
downloaded) with fixed seeds, and converted with opsets 17 / ai.onnx.ml 3. Its input is
`X` FLOAT [N, 4]. The classifiers' outputs are `output_label` [N] (INT64, or STRING for
`*_str`) and `output_probability`: by default a ZipMap, i.e. a sequence of maps from
class label to probability (seq(map(INT64|STRING, FLOAT))); with skl2onnx's option
`zipmap=False` (`*_nozipmap`) a FLOAT [N, classes] tensor. The regressor's output is
`variable` FLOAT [N, 1].
"""

import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType

TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
INITIAL_TYPES = [("X", FloatTensorType([None, 4]))]


def _convert(model, options=None) -> bytes:
    onx = to_onnx(model, initial_types=INITIAL_TYPES, target_opset=TARGET_OPSET, options=options)
    return onx.SerializeToString()


def make_models() -> dict:
    """name -> {"onnx": bytes, "classes": list or None (classes_ of a classifier), "x": FLOAT [N, 4]}."""
    iris = load_iris()
    x = iris.data.astype(np.float32)
    y = iris.target
    # A sample of rows of each class, and rows off the data, for the runs.
    rng = np.random.default_rng(7)
    x_run = np.concatenate([x[::15], rng.normal(loc=x.mean(axis=0), scale=2.0, size=(5, 4)).astype(np.float32)])

    models = {}

    def classifier(name, model, labels):
        model.fit(x, labels)
        zipmap = _convert(model)
        plain = _convert(model, options={id(model): {"zipmap": False}})
        classes = model.classes_.tolist() if hasattr(model, "classes_") else model[-1].classes_.tolist()
        models[name] = {"onnx": zipmap, "classes": classes, "x": x_run}
        models[name + "_nozipmap"] = {"onnx": plain, "classes": classes, "x": x_run}

    classifier("logreg", LogisticRegression(max_iter=500), y)
    classifier("forest", RandomForestClassifier(n_estimators=8, max_depth=4, random_state=0), y)
    classifier("scaled_logreg", make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)), y)
    # String labels: classes_ (and so the ZipMap's keys) are the sorted names.
    classifier("logreg_str", LogisticRegression(max_iter=500), iris.target_names[y])

    regressor = RandomForestRegressor(n_estimators=5, max_depth=3, random_state=0)
    regressor.fit(x[:, :3], iris.data[:, 3])
    models["forest_regressor"] = {
        "onnx": to_onnx(
            regressor,
            initial_types=[("X", FloatTensorType([None, 3]))],
            target_opset=TARGET_OPSET,
        ).SerializeToString(),
        "classes": None,
        "x": x_run[:, :3].copy(),
    }
    return models


def main(argv) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for name, model in make_models().items():
        (out / f"{name}.onnx").write_bytes(model["onnx"])
        print(f"{out / name}.onnx: {len(model['onnx'])} bytes, classes {model['classes']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
