"""Writes the real-size models of scripts/bench-models, with random weights (nothing is
downloaded but the frameworks' own packages), and a manifest the bench reads.

  gen_bench_models.py torch OUT_DIR   ResNet-50 (torchvision) and BERT-base (transformers,
                                      sequence length 128) as ONNX and TorchScript, and
                                      the large-output image-to-image net as ONNX and
                                      TorchScript
  gen_bench_models.py tf OUT_DIR      ResNet-50 (Keras) as a frozen TF graph and TFLite

Each model is written to OUT_DIR/<name>.<ext> (through a temporary file, so a killed
run leaves no half model) with OUT_DIR/<name>.json beside it: how the bench stores and
feeds it. A model whose two files exist is not made again.

The two parts run in different venvs (PyTorch and TensorFlow pin different versions of
shared packages): scripts/gen-bench-models makes them.
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Batch 1 is what a client sends; the dimension is left free in every model so that
# BATCHSIZE 16 and the runtime's batch-16 call can use it.
IMAGE = 224
SEQ_LEN = 128
BIG = 512


def have(out_dir, name, ext):
    return all(os.path.exists(os.path.join(out_dir, f)) for f in (f"{name}.{ext}", f"{name}.json"))


def write_model(out_dir, name, ext, write, spec):
    """Writes the model with write(path) and its manifest entry `spec`."""
    path = os.path.join(out_dir, f"{name}.{ext}")
    tmp = f"{path}.tmp"
    write(tmp)
    os.replace(tmp, path)
    spec = dict(spec, name=name, file=os.path.basename(path), blob_bytes=os.path.getsize(path))
    with open(f"{path}.json.tmp", "w") as f:
        json.dump(spec, f, indent=1)
    os.replace(f"{path}.json.tmp", os.path.join(out_dir, f"{name}.json"))
    print(f"{path}: {spec['blob_bytes'] / 1e6:.1f} MB", flush=True)


def tensor(name, dtype, shape):
    return {"name": name, "dtype": dtype, "shape": shape}


# ---------------------------------------------------------------------------------------
# PyTorch: ONNX and TorchScript


def torch_models(out_dir):
    import torch
    import torchvision
    import transformers

    torch.manual_seed(0)
    torch.set_grad_enabled(False)

    class Bert(torch.nn.Module):
        """BERT-base: token ids in, the pooled [CLS] embedding out (no padding, so no
        attention mask: BertModel's default of all ones)."""

        def __init__(self):
            super().__init__()
            self.bert = transformers.BertModel(transformers.BertConfig(), add_pooling_layer=True)

        def forward(self, input_ids):
            return self.bert(input_ids=input_ids).pooler_output

    class ImageToImage(torch.nn.Module):
        """A light 3x3 conv net, image in, image of the same size out: little compute
        per byte, so the cost of moving a 3 MiB output shows."""

        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(
                torch.nn.Conv2d(3, 8, 3, padding=1),
                torch.nn.ReLU(),
                torch.nn.Conv2d(8, 3, 3, padding=1),
            )

        def forward(self, x):
            return x + self.net(x)

    def build_bert():
        model = Bert().eval()
        example = torch.randint(0, transformers.BertConfig().vocab_size, (1, SEQ_LEN))
        return model, example

    cases = [
        ("resnet50", lambda: (torchvision.models.resnet50(weights=None).eval(),
                              torch.rand(1, 3, IMAGE, IMAGE)),
         [tensor("input", "FLOAT", [1, 3, IMAGE, IMAGE])], [tensor("output", "FLOAT", [1, 1000])]),
        ("bert", build_bert,
         [tensor("input_ids", "INT64", [1, SEQ_LEN])], [tensor("output", "FLOAT", [1, 768])]),
        ("image2image", lambda: (ImageToImage().eval(), torch.rand(1, 3, BIG, BIG)),
         [tensor("input", "FLOAT", [1, 3, BIG, BIG])], [tensor("output", "FLOAT", [1, 3, BIG, BIG])]),
    ]
    for name, build, inputs, outputs in cases:
        onnx_name, pt_name = f"{name}_onnx", f"{name}_torch"
        if have(out_dir, onnx_name, "onnx") and have(out_dir, pt_name, "pt"):
            continue
        model, example = build()
        if not have(out_dir, onnx_name, "onnx"):
            def export_onnx(path):
                # The TorchScript-based exporter: one self-contained file (no external
                # data), the batch dimension left free.
                torch.onnx.export(
                    model, (example,), path, dynamo=False, opset_version=17,
                    input_names=[t["name"] for t in inputs],
                    output_names=[t["name"] for t in outputs],
                    dynamic_axes={t["name"]: {0: "batch"} for t in inputs + outputs},
                )
            write_model(out_dir, onnx_name, "onnx", export_onnx,
                        {"backend": "ONNX", "inputs": inputs, "outputs": outputs})
        if not have(out_dir, pt_name, "pt"):
            def export_torchscript(path):
                traced = torch.jit.trace(model, (example,), check_trace=False)
                traced = torch.jit.freeze(traced)
                traced.save(path)
            write_model(out_dir, pt_name, "pt", export_torchscript,
                        {"backend": "TORCH", "inputs": inputs, "outputs": outputs})


# ---------------------------------------------------------------------------------------
# TensorFlow: a frozen graph and TFLite


def tf_models(out_dir):
    if have(out_dir, "resnet50_tf", "pb") and have(out_dir, "resnet50_tflite", "tflite"):
        return
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    tf.random.set_seed(0)
    model = tf.keras.applications.ResNet50(weights=None, input_shape=(IMAGE, IMAGE, 3))

    @tf.function(input_signature=[tf.TensorSpec([None, IMAGE, IMAGE, 3], tf.float32, name="input")])
    def serve(x):
        return model(x, training=False)

    concrete = serve.get_concrete_function()
    inputs = [tensor("input", "FLOAT", [1, IMAGE, IMAGE, 3])]
    outputs = [tensor("output", "FLOAT", [1, 1000])]
    if not have(out_dir, "resnet50_tf", "pb"):
        frozen = convert_variables_to_constants_v2(concrete)
        graph_def = frozen.graph.as_graph_def()
        # The TF backend takes node names: "input:0" -> "input".
        node = lambda t: t.name.split(":")[0]

        def write_pb(path):
            with open(path, "wb") as f:
                f.write(graph_def.SerializeToString())
        write_model(out_dir, "resnet50_tf", "pb", write_pb, {
            "backend": "TF",
            "inputs": [dict(inputs[0], name=node(frozen.inputs[0]))],
            "outputs": [dict(outputs[0], name=node(frozen.outputs[0]))],
        })
    if not have(out_dir, "resnet50_tflite", "tflite"):
        # From the Keras model: from_concrete_functions leaves the weights out (0.2 MB).
        flatbuffer = tf.lite.TFLiteConverter.from_keras_model(model).convert()

        def write_tflite(path):
            with open(path, "wb") as f:
                f.write(flatbuffer)
        write_model(out_dir, "resnet50_tflite", "tflite", write_tflite,
                    {"backend": "TFLITE", "inputs": inputs, "outputs": outputs})


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("torch", "tf"):
        sys.exit(__doc__)
    part, out_dir = sys.argv[1:]
    os.makedirs(out_dir, exist_ok=True)
    (torch_models if part == "torch" else tf_models)(out_dir)


if __name__ == "__main__":
    main()
