"""What the serve tests share: an in-process client per configuration (the rulesets load once
per session), a small weights table, and the example case that groups differently in 2.0 and 3.0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

with warnings.catch_warnings():  # newer Starlette suggests httpx2 for its test client; httpx is what we use
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from grouper.serve import ServeConfig, create_app

#: sex 1, age 53: 2.0 groups it HJ11 (MCC from G62.806), 3.0 HJ13 (CC)
CASE = {"case_id": "A001", "sex": 1, "age": 53, "dx": ["K76.600x006", "K07.200x012", "Q39.601", "G62.806"],
        "px": ["52.2100x001"], "los": 9}
WEIGHTS_CSV = "drg,rw,mean_cost,mean_los,n\nHJ11,4.2,45000,14,120\nHJ13,2.5,26000,10,300\n"


def weights_file(folder: Path) -> Path:
    p = folder / "weights.csv"
    if not p.exists():
        p.write_text(WEIGHTS_CSV, encoding="utf-8")
    return p


@lru_cache(maxsize=8)
def client(config: ServeConfig) -> TestClient:
    """A client of the app for ``config`` (frozen, so cached): server errors raise in the test."""
    return TestClient(create_app(config), raise_server_exceptions=True)


def both() -> TestClient:
    """The default service: chs-drg-2.0 (default) and chs-drg-3.0, no weights, no token."""
    return client(ServeConfig(rulesets=("chs-drg-2.0", "chs-drg-3.0")))


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running(*args: str, env: dict | None = None, wait_s: float = 90):
    """``drg serve ARGS --port P`` in a child process until the block ends; yields its base URL
    once /healthz answers. The child is stopped with SIGTERM and must exit cleanly."""
    import httpx

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "grouper.cli", "serve", "--port", str(port), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **(env or {})})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + wait_s
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"drg serve exited {proc.returncode}: {proc.stdout.read()}")
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("drg serve did not start in time")
            time.sleep(0.2)
        yield base
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    out = proc.stdout.read()
    # after its graceful shutdown uvicorn re-raises the signal it caught (one process: -SIGTERM);
    # its multi-process supervisor exits 0
    assert proc.returncode in (0, -signal.SIGTERM), f"drg serve exited {proc.returncode}: {out}"
