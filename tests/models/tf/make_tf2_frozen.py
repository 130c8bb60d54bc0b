"""Writes tf2_frozen.pb: a TF2 model exported as a frozen concrete function.

Unlike the other graphs in this folder (hand-encoded GraphDefs, see make_tf_models.py),
this one is made by TensorFlow itself, the way TF2 users export a model for RedisAI: a
tf.Module with variables, a tf.function traced into a concrete function, its variables
folded into constants with convert_variables_to_constants_v2, and the GraphDef written.
It carries what TF2 exports carry: a `versions` field, a function library, `_output_shapes`
style attributes, `Identity` outputs, a `ReadVariableOp` folded into constants.

Needs TensorFlow (scripts/gen-tf-models --tf2 runs it in a venv with tensorflow-cpu 2.21.0
from the cached wheel). Inputs: `x` FLOAT [N, 4]. Outputs: `Identity` FLOAT [N, 2] =
relu(x @ W + b), `Identity_1` FLOAT [N] = sum of each row of x.
W[i][j] = (i - 2j) / 8, b = [0.25, -0.5]: multiples of 1/8, exact in float32 for small
integer inputs. For x = [[1, 2, 3, 4]]: Identity = [[2.75, 0]], Identity_1 = [10].
"""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import (
    convert_variables_to_constants_v2,
)


class Model(tf.Module):
    def __init__(self):
        super().__init__()
        w = np.array([[(i - 2 * j) / 8 for j in range(2)] for i in range(4)], np.float32)
        self.w = tf.Variable(w, name="w")
        self.b = tf.Variable(np.array([0.25, -0.5], np.float32), name="b")

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
    def __call__(self, x):
        return tf.nn.relu(tf.matmul(x, self.w) + self.b), tf.reduce_sum(x, axis=1)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "tf2_frozen.pb")
    model = Model()
    frozen = convert_variables_to_constants_v2(model.__call__.get_concrete_function())
    graph_def = frozen.graph.as_graph_def()
    inputs = [t.name for t in frozen.inputs]
    outputs = [t.name for t in frozen.outputs]
    with open(out, "wb") as f:
        f.write(graph_def.SerializeToString(deterministic=True))
    print(f"{out}: inputs {inputs}, outputs {outputs}, {len(graph_def.node)} nodes, "
          f"producer {graph_def.versions.producer}")
    y, s = frozen(tf.constant([[1, 2, 3, 4]], tf.float32))
    print("x = [[1, 2, 3, 4]] ->", y.numpy().tolist(), s.numpy().tolist())


if __name__ == "__main__":
    main()
