"""Writes the TensorFlow Lite test models of tests/models/tflite/ without TensorFlow.

A .tflite file is a FlatBuffer of the TFLite schema. The schema's Python bindings ship in
the `ai-edge-litert` wheel (`ai_edge_litert.schema_py_generated`), so each model here is
built as schema objects (ModelT, SubGraphT, TensorT, OperatorT, ...) and packed with the
`flatbuffers` package. Output is deterministic: the same inputs give the same bytes.

    python make_tflite_models.py OUT_DIR [--verify]

--verify runs every model with LiteRT's own Python interpreter (ai_edge_litert.interpreter,
from the same wheel as the runtime the backend loads) on sample inputs, checks the outputs
against values computed here, and prints them.
"""

import argparse
import os
import sys

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

T = schema.TensorType
OP = schema.BuiltinOperator
OPTS = schema.BuiltinOptions
ACT = schema.ActivationFunctionType

# The bytes every .tflite carries at offset 4.
FILE_IDENTIFIER = b"TFL3"


class Builder:
    """Collects buffers, operator codes and subgraphs of one model."""

    def __init__(self):
        # Buffer 0 is the empty sentinel buffer the schema reserves.
        self.buffers = [schema.BufferT()]
        self.codes = []
        self.subgraphs = []

    def buffer(self, array=None):
        buf = schema.BufferT()
        if array is not None:
            buf.data = list(np.ascontiguousarray(array).tobytes())
        self.buffers.append(buf)
        return len(self.buffers) - 1

    def opcode(self, builtin):
        for i, code in enumerate(self.codes):
            if code.builtinCode == builtin:
                return i
        code = schema.OperatorCodeT()
        code.builtinCode = builtin
        # Codes below 127 also go in the old int8 field, which older readers use.
        code.deprecatedBuiltinCode = min(builtin, 127)
        code.version = 1
        self.codes.append(code)
        return len(self.codes) - 1

    def finish(self, signature_defs=None, description="redisai-rs test model"):
        model = schema.ModelT()
        model.version = 3
        model.description = description
        model.operatorCodes = self.codes
        model.subgraphs = self.subgraphs
        model.buffers = self.buffers
        if signature_defs:
            model.signatureDefs = signature_defs
        fb = flatbuffers.Builder(1024)
        fb.Finish(model.Pack(fb), file_identifier=FILE_IDENTIFIER)
        return bytes(fb.Output())


class Graph:
    """One subgraph: tensors, operators, inputs and outputs."""

    def __init__(self, builder, name):
        self.b = builder
        self.sg = schema.SubGraphT()
        self.sg.name = name
        self.sg.tensors = []
        self.sg.operators = []
        self.sg.inputs = []
        self.sg.outputs = []
        builder.subgraphs.append(self.sg)

    def tensor(self, name, ttype, shape, signature=None, data=None, quant=None):
        t = schema.TensorT()
        t.name = name
        t.type = ttype
        t.shape = list(shape)
        if signature is not None:
            t.shapeSignature = list(signature)
        t.buffer = self.b.buffer(data) if data is not None else 0
        if quant is not None:
            scale, zero_point = quant
            q = schema.QuantizationParametersT()
            q.scale = [float(scale)]
            q.zeroPoint = [int(zero_point)]
            t.quantization = q
        self.sg.tensors.append(t)
        return len(self.sg.tensors) - 1

    def op(self, builtin, inputs, outputs, options_type=0, options=None):
        o = schema.OperatorT()
        o.opcodeIndex = self.b.opcode(builtin)
        o.inputs = list(inputs)
        o.outputs = list(outputs)
        if options is not None:
            o.builtinOptionsType = options_type
            o.builtinOptions = options
        self.sg.operators.append(o)

    def io(self, inputs, outputs):
        self.sg.inputs = list(inputs)
        self.sg.outputs = list(outputs)


def add_options(activation=ACT.NONE):
    o = schema.AddOptionsT()
    o.fusedActivationFunction = activation
    return OPTS.AddOptions, o


def fc_options(activation=ACT.NONE):
    o = schema.FullyConnectedOptionsT()
    o.fusedActivationFunction = activation
    return OPTS.FullyConnectedOptions, o


# ---------------------------------------------------------------------------- models


def make_add():
    """c = a + b, FLOAT32 [N]."""
    b = Builder()
    g = Graph(b, "main")
    a = g.tensor("a", T.FLOAT32, [2], [-1])
    bb = g.tensor("b", T.FLOAT32, [2], [-1])
    c = g.tensor("c", T.FLOAT32, [2], [-1])
    g.op(OP.ADD, [a, bb], [c], *add_options())
    g.io([a, bb], [c])
    return b.finish()


# MLP weights: multiples of 1/8, so small integer inputs give exact float32 results.
MLP_W1 = np.array(
    [
        [0.5, -0.25, 0.125, 0.0, 0.75, -0.5, 0.25, 0.375],
        [-0.125, 0.5, 0.25, -0.375, 0.0, 0.625, -0.25, 0.125],
        [0.25, 0.125, -0.5, 0.5, -0.125, 0.0, 0.375, -0.25],
        [0.0, -0.375, 0.25, 0.125, 0.5, 0.25, -0.125, 0.5],
    ],
    dtype=np.float32,
)  # [in 4][hidden 8]
MLP_B1 = np.array([0.125, 0.0, -0.25, 0.5, 0.0, -0.125, 0.25, 0.0], dtype=np.float32)
MLP_W2 = np.array(
    [
        [0.5, -0.25, 0.125],
        [0.25, 0.5, -0.125],
        [-0.375, 0.125, 0.25],
        [0.125, 0.0, 0.5],
        [0.0, 0.375, -0.25],
        [0.25, -0.125, 0.0],
        [-0.125, 0.25, 0.375],
        [0.5, 0.0, -0.5],
    ],
    dtype=np.float32,
)  # [hidden 8][out 3]
MLP_B2 = np.array([0.0, 0.25, -0.125], dtype=np.float32)


def mlp_reference(x):
    h = np.maximum(x @ MLP_W1 + MLP_B1, 0.0)
    return (h @ MLP_W2 + MLP_B2).astype(np.float32)


def make_mlp():
    """y = relu(x W1 + b1) W2 + b2: two FULLY_CONNECTED, FLOAT32 [N, 4] -> [N, 3]."""
    b = Builder()
    g = Graph(b, "main")
    x = g.tensor("x", T.FLOAT32, [1, 4], [-1, 4])
    # TFLite keeps FULLY_CONNECTED weights as [out, in].
    w1 = g.tensor("W1", T.FLOAT32, [8, 4], data=MLP_W1.T)
    b1 = g.tensor("b1", T.FLOAT32, [8], data=MLP_B1)
    h = g.tensor("h", T.FLOAT32, [1, 8], [-1, 8])
    w2 = g.tensor("W2", T.FLOAT32, [3, 8], data=MLP_W2.T)
    b2 = g.tensor("b2", T.FLOAT32, [3], data=MLP_B2)
    y = g.tensor("y", T.FLOAT32, [1, 3], [-1, 3])
    g.op(OP.FULLY_CONNECTED, [x, w1, b1], [h], *fc_options(ACT.RELU))
    g.op(OP.FULLY_CONNECTED, [h, w2, b2], [y], *fc_options())
    g.io([x], [y])
    return b.finish()


def make_two_outputs():
    """sum = x + x, prod = x * x, FLOAT32 [N, 2]. Its SignatureDef lists the outputs in
    the other order (prod, sum) and names them differently: the backend must use the
    subgraph's order and the tensors' names, as RedisAI does."""
    b = Builder()
    g = Graph(b, "main")
    x = g.tensor("x", T.FLOAT32, [1, 2], [-1, 2])
    s = g.tensor("sum", T.FLOAT32, [1, 2], [-1, 2])
    p = g.tensor("prod", T.FLOAT32, [1, 2], [-1, 2])
    g.op(OP.ADD, [x, x], [s], *add_options())
    mul = schema.MulOptionsT()
    g.op(OP.MUL, [x, x], [p], OPTS.MulOptions, mul)
    g.io([x], [s, p])
    sig = schema.SignatureDefT()
    sig.signatureKey = "serving_default"
    sig.subgraphIndex = 0
    sig.inputs = [tensor_map("input_x", x)]
    sig.outputs = [tensor_map("output_prod", p), tensor_map("output_sum", s)]
    return b.finish(signature_defs=[sig])


def tensor_map(name, index):
    m = schema.TensorMapT()
    m.name = name
    m.tensorIndex = index
    return m


# Quantized FULLY_CONNECTED (int8): real = scale * (q - zero_point).
FC8_X = (0.5, -2)  # input scale, zero point
FC8_W = np.array([[2, -4, 6, 0], [-2, 2, 4, 8], [1, 1, 1, 1]], dtype=np.int8)  # [out 3][in 4]
FC8_W_SCALE = 0.25  # symmetric: zero point 0
FC8_B = np.array([8, -16, 0], dtype=np.int32)  # scale = 0.5 * 0.25 = 0.125, zero point 0
FC8_Y = (0.25, 5)


def fc_int8_reference(xq):
    x = FC8_X[0] * (xq.astype(np.float64) - FC8_X[1])
    w = FC8_W_SCALE * FC8_W.astype(np.float64)
    bias = 0.125 * FC8_B.astype(np.float64)
    y = x @ w.T + bias
    q = np.round(y / FC8_Y[0]) + FC8_Y[1]
    return np.clip(q, -128, 127).astype(np.int8)


def make_fc_int8():
    """y = FULLY_CONNECTED(x, W, b), all int8 (bias int32) with per-tensor scale and
    zero point: INT8 [N, 4] -> INT8 [N, 3]."""
    b = Builder()
    g = Graph(b, "main")
    x = g.tensor("x", T.INT8, [1, 4], [-1, 4], quant=FC8_X)
    w = g.tensor("W", T.INT8, [3, 4], data=FC8_W, quant=(FC8_W_SCALE, 0))
    bias = g.tensor("b", T.INT32, [3], data=FC8_B, quant=(FC8_X[0] * FC8_W_SCALE, 0))
    y = g.tensor("y", T.INT8, [1, 3], [-1, 3], quant=FC8_Y)
    g.op(OP.FULLY_CONNECTED, [x, w, bias], [y], *fc_options())
    g.io([x], [y])
    return b.finish()


# Quantized ADD (uint8).
ADD8_A = (0.5, 10)
ADD8_B = (0.25, 0)
ADD8_C = (1.0, 20)


def add_uint8_reference(aq, bq):
    a = ADD8_A[0] * (aq.astype(np.float64) - ADD8_A[1])
    bb = ADD8_B[0] * (bq.astype(np.float64) - ADD8_B[1])
    q = np.round((a + bb) / ADD8_C[0]) + ADD8_C[1]
    return np.clip(q, 0, 255).astype(np.uint8)


def make_add_uint8():
    """c = a + b on uint8 tensors with different scales and zero points: UINT8 [N]."""
    b = Builder()
    g = Graph(b, "main")
    a = g.tensor("a", T.UINT8, [4], [-1], quant=ADD8_A)
    bb = g.tensor("b", T.UINT8, [4], [-1], quant=ADD8_B)
    c = g.tensor("c", T.UINT8, [4], [-1], quant=ADD8_C)
    g.op(OP.ADD, [a, bb], [c], *add_options())
    g.io([a, bb], [c])
    return b.finish()


# (input name, input type, output name, output type) of casts.tflite.
CASTS = [
    ("f64", T.FLOAT64, "f64_to_f32", T.FLOAT32),
    ("i16", T.INT16, "i16_to_i64", T.INT64),
    ("b", T.BOOL, "b_to_i32", T.INT32),
    ("i32", T.INT32, "i32_to_f64", T.FLOAT64),
    ("u8", T.UINT8, "u8_to_b", T.BOOL),
    ("i8", T.INT8, "i8_to_i16", T.INT16),
    ("f32", T.FLOAT32, "f32_to_u8", T.UINT8),
    ("i64", T.INT64, "i64_to_u16", T.UINT16),
    ("u16", T.UINT16, "u16_to_i8", T.INT8),
]


def make_casts():
    """One CAST per pair of CASTS: every RedisAI dtype the backend takes (FLOAT, DOUBLE,
    INT8, INT16, INT32, INT64, UINT8, UINT16, BOOL) appears as an input and as an output."""
    b = Builder()
    g = Graph(b, "main")
    inputs, outputs = [], []
    for in_name, in_type, out_name, out_type in CASTS:
        i = g.tensor(in_name, in_type, [3], [-1])
        o = g.tensor(out_name, out_type, [3], [-1])
        opts = schema.CastOptionsT()
        opts.inDataType = in_type
        opts.outDataType = out_type
        g.op(OP.CAST, [i], [o], OPTS.CastOptions, opts)
        inputs.append(i)
        outputs.append(o)
    g.io(inputs, outputs)
    return b.finish()


def make_endless_loop():
    """y = WHILE(x >= x) { x = x + 1 }: FLOAT32 [1], a loop whose condition stays true,
    so a run never finishes on its own (for run timeouts and cancellation)."""
    b = Builder()
    main = Graph(b, "main")
    x = main.tensor("x", T.FLOAT32, [1])
    y = main.tensor("y", T.FLOAT32, [1])
    opts = schema.WhileOptionsT()
    opts.condSubgraphIndex = 1
    opts.bodySubgraphIndex = 2
    main.op(OP.WHILE, [x], [y], OPTS.WhileOptions, opts)
    main.io([x], [y])

    cond = Graph(b, "cond")
    cx = cond.tensor("cond_x", T.FLOAT32, [1])
    cy = cond.tensor("cond_y", T.BOOL, [1])
    cond.op(OP.GREATER_EQUAL, [cx, cx], [cy], OPTS.GreaterEqualOptions, schema.GreaterEqualOptionsT())
    cond.io([cx], [cy])

    body = Graph(b, "body")
    bx = body.tensor("body_x", T.FLOAT32, [1])
    one = body.tensor("one", T.FLOAT32, [1], data=np.array([1.0], dtype=np.float32))
    by = body.tensor("body_y", T.FLOAT32, [1])
    body.op(OP.ADD, [bx, one], [by], *add_options())
    body.io([bx], [by])
    return b.finish()


MODELS = {
    "add.tflite": make_add,
    "mlp.tflite": make_mlp,
    "two_outputs.tflite": make_two_outputs,
    "fc_int8.tflite": make_fc_int8,
    "add_uint8.tflite": make_add_uint8,
    "casts.tflite": make_casts,
    "endless_loop.tflite": make_endless_loop,
}

# ---------------------------------------------------------------------------- checks


def run(path, inputs):
    """Runs a model with LiteRT's interpreter: inputs by position, resized to their
    shapes; returns {output name: array} in the subgraph's output order."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=path)
    details = it.get_input_details()
    assert len(details) == len(inputs), path
    for d, value in zip(details, inputs):
        it.resize_tensor_input(d["index"], list(value.shape))
    it.allocate_tensors()
    for d, value in zip(it.get_input_details(), inputs):
        it.set_tensor(d["index"], value)
    it.invoke()
    return [(d["name"], it.get_tensor(d["index"])) for d in it.get_output_details()]


def check(out_dir, name, inputs, expected):
    outputs = run(os.path.join(out_dir, name), inputs)
    shown = ", ".join(f"{n} = {v.tolist()} ({v.dtype})" for n, v in outputs)
    print(f"{name}: {[i.tolist() for i in inputs]} -> {shown}")
    assert len(outputs) == len(expected), name
    for (out_name, got), want in zip(outputs, expected):
        want = np.asarray(want)
        if got.dtype != want.dtype or got.shape != want.shape or not np.array_equal(got, want):
            sys.exit(f"{name}: output {out_name} is {got!r}, expected {want!r}")


def verify(out_dir):
    f32 = lambda v: np.array(v, dtype=np.float32)  # noqa: E731
    check(out_dir, "add.tflite", [f32([1, 2]), f32([3, 4])], [f32([4, 6])])
    check(out_dir, "add.tflite", [f32([[1, 2], [3, 4]]), f32([[10, 20], [30, 40]])], [f32([[11, 22], [33, 44]])])
    for x in ([[1, 2, 3, 4]], [[-1, 0.5, 0, 2]], [[1, 2, 3, 4], [-1, 0.5, 0, 2]]):
        check(out_dir, "mlp.tflite", [f32(x)], [mlp_reference(f32(x))])
    x = f32([[1, 2], [3, 4]])
    check(out_dir, "two_outputs.tflite", [x], [x + x, x * x])
    xq = np.array([[0, 2, 4, 6], [-2, 10, -10, 100]], dtype=np.int8)
    check(out_dir, "fc_int8.tflite", [xq], [fc_int8_reference(xq)])
    aq = np.array([10, 12, 30, 200], dtype=np.uint8)
    bq = np.array([0, 4, 8, 255], dtype=np.uint8)
    check(out_dir, "add_uint8.tflite", [aq, bq], [add_uint8_reference(aq, bq)])
    cast_inputs = [
        np.array([1.5, -2.25, 1e40], dtype=np.float64),
        np.array([-3, 0, 32767], dtype=np.int16),
        np.array([True, False, True]),
        np.array([-7, 0, 2**31 - 1], dtype=np.int32),
        np.array([0, 1, 255], dtype=np.uint8),
        np.array([-128, 0, 127], dtype=np.int8),
        np.array([0.0, 7.9, 255.0], dtype=np.float32),
        np.array([5, 0, 65535], dtype=np.int64),
        np.array([1, 0, 127], dtype=np.uint16),
    ]
    cast_expected = [
        np.array([1.5, -2.25, np.inf], dtype=np.float32),
        np.array([-3, 0, 32767], dtype=np.int64),
        np.array([1, 0, 1], dtype=np.int32),
        np.array([-7, 0, 2**31 - 1], dtype=np.float64),
        np.array([False, True, True]),
        np.array([-128, 0, 127], dtype=np.int16),
        np.array([0, 7, 255], dtype=np.uint8),
        np.array([5, 0, 65535], dtype=np.uint16),
        np.array([1, 0, 127], dtype=np.int8),
    ]
    check(out_dir, "casts.tflite", cast_inputs, cast_expected)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out_dir")
    parser.add_argument("--verify", action="store_true")
    args = parser.parse_args()
    os.makedirs(args.out_dir, exist_ok=True)
    for name, make in MODELS.items():
        data = make()
        with open(os.path.join(args.out_dir, name), "wb") as f:
            f.write(data)
        print(f"wrote {name} ({len(data)} bytes)")
    if args.verify:
        verify(args.out_dir)


if __name__ == "__main__":
    main()
