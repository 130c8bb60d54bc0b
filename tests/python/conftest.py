"""Fixtures for the checks that drive the module with the official `redisai` client.

A real `redis-server` is started on a free 127.0.0.1 port with the module
given by $REDISAI_MODULE (default: <repo>/dist/redisai.so) loaded. $REDIS_SERVER
picks another server binary, e.g. Valkey's `valkey-server` (scripts/test runs these
checks against Debian's Redis 7.0 and then Valkey 8.1 from scripts/fetch-valkey). The server
is shared by the whole session; each test gets a fresh `redisai.Client` and an
empty database. If a test brings the server down, the test is failed with the
server's log and a new server is started for the next test.
"""

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import redis
import redisai

from onnx_model_helpers import ONNX_BACKEND_DIR, ONNX_BACKEND_SO

REPO_ROOT = Path(__file__).resolve().parents[2]
REDIS_SERVER = os.environ.get("REDIS_SERVER") or shutil.which("redis-server") or "/usr/bin/redis-server"
SERVER_NAME = os.path.basename(REDIS_SERVER)
HOST = "127.0.0.1"
START_TIMEOUT_S = 10.0


def module_path() -> Path:
    return Path(os.environ.get("REDISAI_MODULE", REPO_ROOT / "dist" / "redisai.so")).resolve()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class RedisServer:
    """One redis-server process with the module loaded."""

    def __init__(self, module: Path):
        self.module = module
        self.dir = Path(tempfile.mkdtemp(prefix="redisai-pytest-"))
        self.log_path = self.dir / "redis-server.log"
        self.port = None
        self.proc = None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError as e:
            return f"<no log: {e}>"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        # A port picked this way can in rare cases be taken before redis-server
        # binds it; retry with another one when that happens.
        for _ in range(3):
            self.port = free_port()
            with open(self.log_path, "ab") as log:
                log.write(f"\n=== starting {REDIS_SERVER} on port {self.port} ===\n".encode())
                log.flush()
                self.proc = subprocess.Popen(
                    [
                        REDIS_SERVER,
                        "--bind", HOST,
                        "--port", str(self.port),
                        "--loadmodule", str(self.module),
                        "--save", "",
                        "--appendonly", "no",
                        "--dir", str(self.dir),
                        "--daemonize", "no",
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.dir,
                )
            if self._wait_ready():
                return
            if "Address already in use" not in self.log():
                break
        rc = self.proc.poll()
        self.stop()
        state = f"exited with code {rc}" if rc is not None else f"did not answer PING within {START_TIMEOUT_S:.0f} s"
        pytest.fail(
            f"{SERVER_NAME} with module {self.module} {state}.\n"
            f"--- {SERVER_NAME} log ({self.log_path}) ---\n{self.log()}",
            pytrace=False,
        )

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                conn = redis.Redis(host=HOST, port=self.port, protocol=2, socket_timeout=1, socket_connect_timeout=1)
                try:
                    if conn.ping():
                        return True
                finally:
                    conn.close()
            except redis.exceptions.BusyLoadingError:
                pass
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                pass
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server():
    module = module_path()
    if not module.is_file():
        pytest.fail(
            f"RedisAI module not found at {module}: build it with scripts/build "
            "or set REDISAI_MODULE to the .so to test",
            pytrace=False,
        )
    if not (os.path.isfile(REDIS_SERVER) and os.access(REDIS_SERVER, os.X_OK)):
        pytest.fail(
            f"{SERVER_NAME} not found at {REDIS_SERVER} (apt-get install redis-server, "
            "or scripts/fetch-valkey for Valkey)",
            pytrace=False,
        )
    server = RedisServer(module)
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def client(request, redis_server):
    """A `redisai.Client` connected to the test server, on an empty database.

    Every test runs twice: over RESP2 (what redis-py < 8, and so the redis<5 that
    redisai 1.3.0 was written for, speaks) and over RESP3 (redis-py 8's default).
    """
    if not redis_server.alive():
        redis_server.start()
    con = redisai.Client(host=HOST, port=redis_server.port, protocol=request.param, socket_timeout=30)
    con.flushall()
    yield con
    con.close()
    if not redis_server.alive():
        rc = redis_server.proc.poll()
        log = redis_server.log()
        redis_server.stop()
        pytest.fail(
            f"{SERVER_NAME} died during the test (exit code {rc}).\n"
            f"--- {SERVER_NAME} log ({redis_server.log_path}) ---\n{log}",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def onnx_backend(redis_server):
    """The ONNX backend the module loads lazily from BACKENDSPATH (default: backends/ beside the .so)."""
    so = redis_server.module.parent / "backends" / ONNX_BACKEND_DIR / ONNX_BACKEND_SO
    if not so.is_file():
        pytest.fail(
            f"ONNX backend not found at {so}: the model tests need it. Build it with scripts/build "
            f"(which lays out dist/backends/{ONNX_BACKEND_DIR}/)",
            pytrace=False,
        )
    return so


@pytest.fixture
def con(client, onnx_backend):
    """The `client` fixture (fresh, empty database, RESP2 and RESP3), with the ONNX backend present,
    for the ONNX model checks (test_redisai_model*.py). Modules that need other backends define
    their own `con`."""
    return client
