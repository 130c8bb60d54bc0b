"""The Python model server a user might run instead of the module, for scripts/bench-models:
FastAPI on uvicorn (one worker process, the httptools parser and uvloop when installed),
with one onnxruntime InferenceSession per model.

  model_server.py --port P [--intra-op N] NAME=MODEL.onnx...

POST /v1/NAME takes the model's one input as raw little-endian bytes in the body
(Content-Type: application/octet-stream; the batch size is the body length over one
item's size) and answers with the first output's raw bytes. No JSON on either side:
the cheapest encoding such a server can offer, so the comparison with the module's binary
BLOB protocol is about the servers, not about number formatting. GET /health answers
"ok" once every model is loaded.

The handler is `async def` and calls session.run on the event loop's thread: for small
models that is faster than FastAPI's thread pool (a plain `def` handler), and with one
worker the runs are serialised either way, as in the module with THREADS_PER_QUEUE 1.
"""
import argparse

import numpy as np
import onnxruntime as ort
import uvicorn
from fastapi import FastAPI, HTTPException, Request, Response

ONNX_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
}


class Served:
    def __init__(self, path, intra_op):
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        self.dtype = ONNX_DTYPES[model_input.type]
        # Every dimension but the first (the batch) is fixed in the bench's models.
        self.item_shape = [int(d) for d in model_input.shape[1:]]
        self.item_bytes = int(np.prod(self.item_shape)) * np.dtype(self.dtype).itemsize

    def run(self, body):
        if not body or len(body) % self.item_bytes:
            raise HTTPException(400, f"the body must be a multiple of {self.item_bytes} bytes")
        batch = len(body) // self.item_bytes
        x = np.frombuffer(body, self.dtype).reshape([batch] + self.item_shape)
        return self.session.run(None, {self.input_name: x})[0].tobytes()


def make_app(models):
    app = FastAPI()

    @app.get("/health")
    async def health():
        return Response(b"ok", media_type="text/plain")

    @app.post("/v1/{name}")
    async def infer(name: str, request: Request):
        model = models.get(name)
        if model is None:
            raise HTTPException(404, f"no model {name}")
        return Response(model.run(await request.body()), media_type="application/octet-stream")

    return app


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--intra-op", type=int, default=0,
                        help="intra_op_num_threads of each session (0: onnxruntime decides)")
    parser.add_argument("models", nargs="+", metavar="NAME=MODEL.onnx")
    args = parser.parse_args()
    models = {}
    for entry in args.models:
        name, sep, path = entry.partition("=")
        if not sep:
            parser.error(f"{entry}: expected NAME=MODEL.onnx")
        models[name] = Served(path, args.intra_op)
    # The bench's connections idle while it measures the module: keep them open (uvicorn
    # closes idle keep-alive connections after 5 s by default).
    uvicorn.run(make_app(models), host="127.0.0.1", port=args.port, workers=1,
                log_level="warning", access_log=False, timeout_keep_alive=3600)


if __name__ == "__main__":
    main()
