"""``drg serve`` as a process: loopback by default, start-up errors as one line, the options
reaching the app, a graceful stop on SIGTERM that finishes the request in flight."""

import socket
import subprocess
import sys
import threading

import httpx

from servekit import CASE, free_port, running


def _drg(*args):
    return subprocess.run([sys.executable, "-m", "grouper.cli", *args], capture_output=True, text=True, timeout=120)


def test_help_names_the_options():
    r = _drg("serve", "--help")
    assert r.returncode == 0
    for opt in ("--host", "--port", "--workers", "--ruleset", "--weights", "--pack", "--token", "--cors-origin",
                "--max-cases", "--max-body"):
        assert opt in r.stdout
    assert "127.0.0.1" in r.stdout


def test_start_up_errors_are_one_line():
    r = _drg("serve", "--ruleset", "no-such-scheme", "--port", str(free_port()))
    assert r.returncode == 1 and "no such ruleset" in r.stderr and "Traceback" not in r.stderr
    r = _drg("serve", "--pack", "illustrative-2024", "--port", str(free_port()))
    assert r.returncode == 1 and "--pack needs --weights" in r.stderr
    r = _drg("serve", "--weights", "chs-drg-1.1=w.csv", "--port", str(free_port()))
    assert r.returncode == 1 and "not served" in r.stderr


def test_serves_on_loopback_with_token_from_env_and_stops_gracefully():
    with running("--ruleset", "chs-drg-2.0", "--workers", "2", env={"DRG_SERVE_TOKEN": "t0k"}) as base:
        port = int(base.rsplit(":", 1)[1])
        # bound to loopback only: the machine's other addresses do not answer
        other = socket.gethostbyname(socket.gethostname())
        if not other.startswith("127."):
            with socket.socket() as s:
                s.settimeout(2)
                assert s.connect_ex((other, port)) != 0
        assert httpx.post(base + "/v1/group", json=CASE).status_code == 401
        auth = {"authorization": "Bearer t0k"}
        r = httpx.post(base + "/v1/group", json=CASE, headers=auth)
        assert r.status_code == 200 and r.json()["drg"] == "HJ11"
        # a slow upload in flight when the stop comes still gets its answer
        got = {}

        def slow_body():
            yield b"["
            for i in range(20):
                threading.Event().wait(0.05)
                yield (b"," if i else b"") + httpx.Response(200, json=CASE).content
            yield b"]"

        t = threading.Thread(target=lambda: got.update(r=httpx.post(
            base + "/v1/group", content=slow_body(), headers={**auth, "content-type": "application/json"},
            timeout=30)))
        t.start()
        threading.Event().wait(0.3)
    t.join(30)
    assert got["r"].status_code == 200 and len(got["r"].json()) == 20
