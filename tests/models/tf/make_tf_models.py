"""Writes the TensorFlow test models of tests/models/tf/ without TensorFlow.

A frozen TensorFlow graph is a serialized `tensorflow.GraphDef` protocol buffer: a list of
`NodeDef`s (name, op, inputs, attributes). This script encodes them by hand with a tiny
protobuf writer (standard library only; the field numbers are those of
tensorflow/core/framework/{graph,node_def,attr_value,tensor,tensor_shape,types}.proto), so
neither TensorFlow nor the `protobuf` package is needed. Output is deterministic: the same
script gives the same bytes.

    python3 make_tf_models.py OUT_DIR

The backend's tests (plugins/tensorflow/tests/) run every model and check its outputs; see
README.md beside this script for what each model computes.
"""

import base64
import os
import struct
import sys
import zlib

# tensorflow.DataType values (types.proto).
DT_FLOAT, DT_DOUBLE, DT_INT32, DT_UINT8, DT_INT16, DT_INT8, DT_STRING = 1, 2, 3, 4, 5, 6, 7
DT_INT64, DT_BOOL, DT_UINT16 = 9, 10, 17


# --- protobuf wire format ---------------------------------------------------------------


def varint(n):
    n &= (1 << 64) - 1  # negative int64 values take ten bytes, as protobuf writes them
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field_varint(number, value):
    return varint(number << 3) + varint(value)


def field_bytes(number, value):
    if isinstance(value, str):
        value = value.encode()
    return varint(number << 3 | 2) + varint(len(value)) + value


def field_float(number, value):
    return varint(number << 3 | 5) + struct.pack("<f", value)


# --- TensorFlow messages ----------------------------------------------------------------


def shape_proto(dims):
    """TensorShapeProto: dim = 2 (Dim.size = 1), unknown_rank = 3. None: unknown rank."""
    if dims is None:
        return field_varint(3, 1)
    return b"".join(field_bytes(2, field_varint(1, d)) for d in dims)


def tensor_proto(dtype, dims, content):
    """TensorProto: dtype = 1, tensor_shape = 2, tensor_content = 4 (raw little-endian)."""
    return field_varint(1, dtype) + field_bytes(2, shape_proto(dims)) + field_bytes(4, content)


# AttrValue: s = 2, i = 3, f = 4, b = 5, type = 6, shape = 7, tensor = 8.
def attr_type(dtype):
    return field_varint(6, dtype)


def attr_int(value):
    return field_varint(3, value)


def attr_bool(value):
    return field_varint(5, 1 if value else 0)


def attr_string(value):
    return field_bytes(2, value)


def attr_shape(dims):
    return field_bytes(7, shape_proto(dims))


def attr_tensor(dtype, dims, content):
    return field_bytes(8, tensor_proto(dtype, dims, content))


def node(name, op, inputs=(), **attrs):
    """NodeDef: name = 1, op = 2, input = 3 (repeated), attr = 5 (map<string, AttrValue>)."""
    out = field_bytes(1, name) + field_bytes(2, op)
    for source in inputs:
        out += field_bytes(3, source)
    for key in sorted(attrs):  # sorted: deterministic output
        out += field_bytes(5, field_bytes(1, key) + field_bytes(2, attrs[key]))
    return out


def graph(*nodes):
    """GraphDef: node = 1 (repeated). No `versions`, like the frozen graphs RedisAI used."""
    return b"".join(field_bytes(1, n) for n in nodes)


def placeholder(name, dtype, dims=None):
    return node(name, "Placeholder", dtype=attr_type(dtype), shape=attr_shape(dims))


def const(name, dtype, dims, content, inputs=()):
    return node(
        name, "Const", inputs, dtype=attr_type(dtype), value=attr_tensor(dtype, dims, content)
    )


def floats(values):
    return struct.pack(f"<{len(values)}f", *values)


# --- the models -------------------------------------------------------------------------

# The MLP's weights: multiples of 1/8, so small inputs give exact float32 results. The
# backend's tests compute the expected outputs from the same formulas.
def mlp_w1(i, j):  # [4][8]
    return ((i * 8 + j) % 5 - 2) / 8


def mlp_b1(j):  # [8]
    return (j % 3 - 1) / 8


def mlp_w2(j, k):  # [8][3]
    return ((j * 3 + k) % 7 - 3) / 8


def mlp_b2(k):  # [3]
    return (k - 1) / 8


def mul():
    return graph(
        placeholder("a", DT_FLOAT),
        placeholder("b", DT_FLOAT),
        node("mul", "Mul", ["a", "b"], T=attr_type(DT_FLOAT)),
    )


def mlp():
    w1 = floats([mlp_w1(i, j) for i in range(4) for j in range(8)])
    b1 = floats([mlp_b1(j) for j in range(8)])
    w2 = floats([mlp_w2(j, k) for j in range(8) for k in range(3)])
    b2 = floats([mlp_b2(k) for k in range(3)])
    f = attr_type(DT_FLOAT)
    no = attr_bool(False)
    return graph(
        placeholder("x", DT_FLOAT, [-1, 4]),
        const("w1", DT_FLOAT, [4, 8], w1),
        const("b1", DT_FLOAT, [8], b1),
        const("w2", DT_FLOAT, [8, 3], w2),
        const("b2", DT_FLOAT, [3], b2),
        node("mm1", "MatMul", ["x", "w1"], T=f, transpose_a=no, transpose_b=no),
        node("bias1", "BiasAdd", ["mm1", "b1"], T=f, data_format=attr_string("NHWC")),
        node("hidden", "Relu", ["bias1"], T=f),
        node("mm2", "MatMul", ["hidden", "w2"], T=f, transpose_a=no, transpose_b=no),
        node("y", "BiasAdd", ["mm2", "b2"], T=f, data_format=attr_string("NHWC")),
    )


def strings():
    return graph(
        placeholder("s", DT_STRING),
        node("out", "Identity", ["s"], T=attr_type(DT_STRING)),
        node("len", "StringLength", ["s"], unit=attr_string("BYTE")),
    )


def png():
    u8 = attr_type(DT_UINT8)
    return graph(
        placeholder("image", DT_UINT8, [-1, -1, -1]),
        # compression -1: zlib's default level.
        node("png", "EncodePng", ["image"], T=u8, compression=attr_int(-1)),
        node("png_size", "StringLength", ["png"], unit=attr_string("BYTE")),
        node("decoded", "DecodePng", ["png"], dtype=u8, channels=attr_int(0)),
    )


def zlib_graph():
    """zlib through TensorFlow's ZlibInputStream, which lets zlib allocate with its own
    `zcalloc` (libpng, behind EncodePng/DecodePng, brings its own allocator)."""
    return graph(
        placeholder("data", DT_STRING),
        node("compressed", "DecodeBase64", ["data"]),
        node("text", "DecodeCompressed", ["compressed"], compression_type=attr_string("ZLIB")),
        node("size", "StringLength", ["text"], unit=attr_string("BYTE")),
    )


# The input of zlib.pb in the tests: 1 MiB of text, zlib-compressed, in web-safe base64.
ZLIB_TEXT_UNIT = b"RedisAI runs TensorFlow graphs. "  # 32 bytes


def zlib_input():
    text = ZLIB_TEXT_UNIT * (1 << 15)
    return base64.urlsafe_b64encode(zlib.compress(text, 9)) + b"\n"


TYPES = [
    ("float", DT_FLOAT),
    ("double", DT_DOUBLE),
    ("int8", DT_INT8),
    ("int16", DT_INT16),
    ("int32", DT_INT32),
    ("int64", DT_INT64),
    ("uint8", DT_UINT8),
    ("uint16", DT_UINT16),
    ("bool", DT_BOOL),
]


def types():
    nodes = []
    for name, dtype in TYPES:
        nodes.append(placeholder(f"in_{name}", dtype))
        nodes.append(node(f"out_{name}", "Identity", [f"in_{name}"], T=attr_type(dtype)))
    nodes.append(node("not_bool", "LogicalNot", ["in_bool"]))
    nodes.append(node("neg_int64", "Neg", ["in_int64"], T=attr_type(DT_INT64)))
    return graph(*nodes)


def split():
    return graph(
        placeholder("x", DT_FLOAT, [-1]),
        const("axis", DT_INT32, [], struct.pack("<i", 0)),
        node("halves", "Split", ["axis", "x"], T=attr_type(DT_FLOAT), num_split=attr_int(2)),
        node("second_twice", "Mul", ["halves:1", "halves:1"], T=attr_type(DT_FLOAT)),
    )


def count_loop():
    """A TF1 while loop (Enter/Merge/Switch/LoopCond/NextIteration/Exit) that adds 1 to a
    counter until it reaches `limit`: one iteration per unit, so a large limit makes a run
    that takes as long as wanted. `limit` is one INT64 of any shape ([] or [1]: RedisAI
    tensors have at least one dimension); `count` is INT64 [1]."""
    i64 = attr_type(DT_INT64)
    i32 = attr_type(DT_INT32)
    frame = {"frame_name": attr_string("count"), "parallel_iterations": attr_int(1)}
    return graph(
        placeholder("limit", DT_INT64),
        const("scalar_shape", DT_INT32, [0], b""),
        node("limit_scalar", "Reshape", ["limit", "scalar_shape"], T=i64, Tshape=i32),
        const("zero", DT_INT64, [], struct.pack("<q", 0)),
        node("enter_i", "Enter", ["zero"], T=i64, is_constant=attr_bool(False), **frame),
        node(
            "enter_limit", "Enter", ["limit_scalar"], T=i64, is_constant=attr_bool(True), **frame
        ),
        node("merge", "Merge", ["enter_i", "next"], T=i64, N=attr_int(2)),
        node("less", "Less", ["merge", "enter_limit"], T=i64),
        node("cond", "LoopCond", ["less"]),
        node("switch", "Switch", ["merge", "cond"], T=i64),
        node("body", "Identity", ["switch:1"], T=i64),
        # A constant inside the loop's frame: the control input puts it there.
        const("one", DT_INT64, [], struct.pack("<q", 1), inputs=["^body"]),
        node("add", "AddV2", ["body", "one"], T=i64),
        node("next", "NextIteration", ["add"], T=i64),
        node("exit", "Exit", ["switch:0"], T=i64),
        const("vector_shape", DT_INT32, [1], struct.pack("<i", 1)),
        node("count", "Reshape", ["exit", "vector_shape"], T=i64, Tshape=i32),
    )


def unknown_op():
    return graph(
        placeholder("a", DT_FLOAT),
        node("y", "NoSuchOpForRedisAITests", ["a"], T=attr_type(DT_FLOAT)),
    )


def dangling_input():
    return graph(
        placeholder("a", DT_FLOAT),
        node("y", "Mul", ["a", "missing"], T=attr_type(DT_FLOAT)),
    )


MODELS = {
    "mul.pb": mul,
    "mlp.pb": mlp,
    "strings.pb": strings,
    "png.pb": png,
    "types.pb": types,
    "split.pb": split,
    "count_loop.pb": count_loop,
    "zlib.pb": zlib_graph,
    "zlib_1mib.b64": zlib_input,
    "unknown_op.pb": unknown_op,
    "dangling_input.pb": dangling_input,
}


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    for name, make in MODELS.items():
        data = make()
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(data)
        print(f"{name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
