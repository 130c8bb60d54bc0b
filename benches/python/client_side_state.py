"""The client-side half of scripts/bench-execute's data-locality benchmark.

A typical service that keeps a model's state in Redis and runs the model itself: each
worker (its own process, with its own Redis connection and onnxruntime InferenceSession,
both made once) loops over GET the state blob -> np.frombuffer -> session.run -> SET the
new state back, on a key of its own.

Driven by bench-execute over stdin/stdout, one JSON object per line:
  started, the helper prints   {"ready": true, "workers": N, ...}
  "run SECONDS"  -> every worker loops for SECONDS, then the helper prints
                    {"ops": total, "rate": ops_per_s (sum of each worker's rate),
                     "cpu_s": workers' CPU seconds in the window}
  "quit" (or EOF) -> workers stop, their keys are deleted, the helper exits.
Errors go to stderr and exit non-zero.
"""

import argparse
import json
import multiprocessing as mp
import os
import sys
import time

import numpy as np
import onnxruntime as ort
import redis
import redis.utils

STATE_ELEMENTS = 262144
INITIAL_VALUE = 2.0
BARRIER_TIMEOUT_S = 120


def make_session(model_path, intra_threads):
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])


def step(con, session, input_name, key):
    """One op: GET, run the model, SET. Returns the new state."""
    blob = con.get(key)
    state = np.frombuffer(blob, dtype=np.float32).reshape(1, STATE_ELEMENTS)
    (new_state,) = session.run(None, {input_name: state})
    con.set(key, new_state.tobytes())
    return new_state


def worker(index, args, conn, barrier):
    try:
        session = make_session(args.model, args.intra_threads)
        input_name = session.get_inputs()[0].name
        con = redis.Redis(host=args.host, port=args.port)
        key = f"{args.key_prefix}{index}"
        initial = np.full((1, STATE_ELEMENTS), INITIAL_VALUE, dtype=np.float32)
        con.set(key, initial.tobytes())
        first = step(con, session, input_name, key)
        expected = np.float32(INITIAL_VALUE) * np.float32(0.99) + np.float32(0.01)
        if not np.allclose(first, expected) or not np.allclose(
            np.frombuffer(con.get(key), dtype=np.float32), expected
        ):
            raise RuntimeError(f"unexpected state after one step: {first.ravel()[:4]}")
        for _ in range(args.warmup):
            step(con, session, input_name, key)
        conn.send(("ready", None))
    except Exception as err:  # reported to the parent, which fails the run
        conn.send(("error", f"worker {index}: {err!r}"))
        return
    while True:
        command = conn.recv()
        if command[0] == "quit":
            con.delete(key)
            conn.send(("done", None))
            return
        seconds = command[1]
        try:
            barrier.wait()
            cpu0 = time.process_time()
            start = time.perf_counter()
            ops = 0
            while True:
                step(con, session, input_name, key)
                ops += 1
                elapsed = time.perf_counter() - start
                if elapsed >= seconds:
                    break
            conn.send(("result", (ops, elapsed, time.process_time() - cpu0)))
        except Exception as err:
            conn.send(("error", f"worker {index}: {err!r}"))
            return


def expect(reply, kind):
    status, value = reply
    if status == "error":
        raise RuntimeError(value)
    if status != kind:
        raise RuntimeError(f"expected {kind} from a worker, got {status}")
    return value


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--key-prefix", default="bench:pystate:")
    parser.add_argument("--intra-threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()

    # fork: the workers inherit the imported modules instead of importing them again.
    ctx = mp.get_context("fork")
    # A worker that dies mid-run breaks the barrier (after the timeout) instead of
    # hanging the others.
    barrier = ctx.Barrier(args.workers + 1, timeout=BARRIER_TIMEOUT_S)
    pipes = []
    procs = []
    for index in range(args.workers):
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=worker, args=(index, args, child, barrier), daemon=True)
        proc.start()
        pipes.append(parent)
        procs.append(proc)
    try:
        for pipe in pipes:
            expect(pipe.recv(), "ready")
        print(
            json.dumps(
                {
                    "ready": True,
                    "workers": args.workers,
                    "onnxruntime": ort.__version__,
                    "numpy": np.__version__,
                    "redis": redis.__version__,
                    "hiredis": redis.utils.HIREDIS_AVAILABLE,
                    "intra_op_num_threads": args.intra_threads,
                }
            ),
            flush=True,
        )
        for line in sys.stdin:
            words = line.split()
            if not words or words[0] == "quit":
                break
            if words[0] != "run" or len(words) != 2:
                raise RuntimeError(f"unknown command {line.strip()!r}")
            seconds = float(words[1])
            for pipe in pipes:
                pipe.send(("run", seconds))
            barrier.wait()
            results = [expect(pipe.recv(), "result") for pipe in pipes]
            print(
                json.dumps(
                    {
                        "ops": sum(r[0] for r in results),
                        "rate": sum(r[0] / r[1] for r in results),
                        "cpu_s": sum(r[2] for r in results),
                    }
                ),
                flush=True,
            )
        for pipe in pipes:
            pipe.send(("quit",))
        for pipe in pipes:
            expect(pipe.recv(), "done")
    except Exception as err:
        print(f"client_side_state: error: {err}", file=sys.stderr)
        barrier.abort()
        for proc in procs:
            proc.kill()
        return 1
    for proc in procs:
        proc.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
