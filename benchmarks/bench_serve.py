"""Load test of ``drg serve`` on loopback, bounded in count and time.

    python benchmarks/bench_serve.py [--workers 2] [--clients 16] [--rate 500] [--seconds 10]
                                     [--batch-cases 200000] [--batch-seconds 10] [--fuzz 1000]
                                     [--baseline DIR] [--rounds N] [--quick] [--json FILE]

Starts ``drg serve --workers W`` on a free loopback port and measures, each phase bounded by
its seconds (and every request by a timeout):
(a) single cases: C concurrent keep-alive clients paced to R requests/s in total, JSON bodies of
    reference cases; throughput, p50/p99/max latency, errors (transport failures and non-200);
(b) the Arrow batch endpoint: 2 clients posting Arrow streams of B cases; cases/s;
(c) fuzzed bodies: random bytes and random JSON, each answered with a status: 5xx must be 0.
The client is a minimal HTTP/1.1 client on asyncio (precomputed requests), so that the load
generator, sharing the machine with the server, costs little. Each phase reports the CPU time the
server's processes spent (per request, per case) apart from the client's. With ``--baseline DIR``
(a checkout of another commit) both servers run and the phases alternate between them for
``--rounds`` rounds, for a ratio from one run. It reports and never fails on time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "tests" / "data" / "chs-drg-2.0" / "golden_random.csv"
ARROW = "application/vnd.apache.arrow.stream"
TARGETS = {"single_p99_ms": 5.0, "single_rate": 500, "batch_cases_per_s": 0.5e6}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(workers: int, port: int, wait_s: float = 120, tree: Path | None = None) -> subprocess.Popen:
    """``drg serve`` of this tree, or of ``tree`` (a checkout of another commit: its own .venv
    when it has one, else this interpreter with the checkout first on the path)."""
    python, env, cwd = sys.executable, dict(os.environ), None
    if tree is not None:
        tree = tree.resolve()
        python = str(tree / ".venv/bin/python") if (tree / ".venv/bin/python").exists() else sys.executable
        env["PYTHONPATH"], cwd = str(tree), str(tree)
    proc = subprocess.Popen([python, "-m", "grouper.cli", "serve", "--port", str(port), "--workers",
                             str(workers), "--ruleset", "chs-drg-2.0", "--max-body", str(1 << 20)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"drg serve exited {proc.returncode}: {proc.stderr.read()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("drg serve did not start in time")


def stop_server(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) of a process and all its descendants (Linux /proc; else None):
    the server's cost, apart from the load generator's."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total, todo = 0.0, [pid]
    try:
        while todo:
            p = todo.pop()
            with open(f"/proc/{p}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo.extend(int(c) for c in fh.read().split())
    except (OSError, ValueError, IndexError):
        return None
    return total


def measured(pid: int, phase) -> dict:
    """Run the phase (a coroutine) and add the CPU seconds the server and this client spent."""
    s0, c0 = cpu_seconds(pid), time.process_time()
    r = run(phase)
    s1, c1 = cpu_seconds(pid), time.process_time()
    r["server_cpu_s"] = None if s0 is None or s1 is None else round(s1 - s0, 3)
    r["client_cpu_s"] = round(c1 - c0, 3)
    return r


def request_bytes(path: str, body: bytes, kind: str = "application/json") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {kind}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


class _Reader(asyncio.Protocol):
    """The reading side of one connection: bytes in, one (status, body, close) per answer."""

    def __init__(self):
        self.transport, self.waiter, self.buf, self.head = None, None, bytearray(), None

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        w = self.waiter
        if w is None or w.done():
            return
        try:
            if self.head is None:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                lines = self.buf[:end].decode("latin-1").split("\r\n")
                length, close = 0, False
                for line in lines[1:]:
                    k, _, v = line.partition(":")
                    k = k.strip().lower()
                    if k == "content-length":
                        length = int(v)
                    elif k == "connection" and v.strip().lower() == "close":
                        close = True
                self.head = (int(lines[0].split()[1]), end + 4, end + 4 + length, close)
            status, start, stop, close = self.head
            if len(self.buf) >= stop:
                body = bytes(self.buf[start:stop])
                del self.buf[:stop]
                self.head = None
                w.set_result((status, body, close))
        except (ValueError, IndexError) as exc:
            w.set_exception(exc)

    def connection_lost(self, exc) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed before the answer"))


class Conn:
    """One keep-alive HTTP/1.1 connection: send prepared bytes, read status and body. A protocol
    on the event loop (no stream reader, no task per request): the load generator shares the
    CPUs with the server, so it should cost little."""

    def __init__(self, port: int):
        self.port = port
        self.p: _Reader | None = None

    async def send(self, data: bytes, timeout: float = 30) -> tuple[int, bytes]:
        loop = asyncio.get_running_loop()
        if self.p is None:
            _, self.p = await loop.create_connection(_Reader, "127.0.0.1", self.port)
        p = self.p
        waiter = p.waiter = loop.create_future()
        p.transport.write(data)
        timer = loop.call_later(timeout, lambda: waiter.done() or waiter.set_exception(asyncio.TimeoutError()))
        try:
            status, body, close = await waiter
        finally:
            timer.cancel()
            p.waiter = None
        if close:
            self.close()
        return status, body

    def close(self) -> None:
        if self.p is not None:
            self.p.transport.close()
        self.p = None


def run(coro):
    """Run a phase on uvloop when it is installed (the serve extra brings it): the leaner loop."""
    try:
        from uvloop import run as uv_run
    except ImportError:
        return asyncio.run(coro)
    return uv_run(coro)


def case_bodies(n: int) -> list[bytes]:
    """JSON bodies of the first n reference cases of CHS-DRG 2.0 (as a HIS would send them)."""
    import csv

    out = []
    with open(CASES, encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            case = {"case_id": row["case_id"], "sex": row["sex"], "age": row["age"],
                    "dx": row["dx"].split("|"), "px": row["px"].split("|") if row["px"] else []}
            for k in ("age_days", "birth_weight", "los", "discharge"):
                if row[k]:
                    case[k] = row[k]
            out.append(json.dumps(case).encode())
            if len(out) == n:
                break
    return out


async def single_phase(port: int, clients: int, rate: float, seconds: float) -> dict:
    """C clients, each paced to rate/C requests/s (open loop: a late answer does not delay the
    schedule's next slot beyond its own wait), for ``seconds``."""
    bodies = [request_bytes("/v1/group", b) for b in case_bodies(2000)]
    lat: list[float] = []
    errors = {"transport": 0, "status": 0}
    t_end = time.perf_counter() + seconds

    async def client(k: int):
        conn = Conn(port)
        period = clients / rate
        nxt = time.perf_counter() + period * k / clients
        i = k
        while True:
            now = time.perf_counter()
            if nxt > now:
                await asyncio.sleep(nxt - now)
            if time.perf_counter() >= t_end:
                break
            t0 = time.perf_counter()
            try:
                status, _ = await conn.send(bodies[i % len(bodies)], timeout=10)
                if status != 200:
                    errors["status"] += 1
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError):
                errors["transport"] += 1
                conn.close()
            lat.append(time.perf_counter() - t0)
            i += clients
            nxt += period
        conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(client(k) for k in range(clients)))
    elapsed = time.perf_counter() - t0
    a = np.array(lat) * 1e3
    return {"requests": len(lat), "seconds": round(elapsed, 2), "rate": round(len(lat) / elapsed, 1),
            "p50_ms": round(float(np.percentile(a, 50)), 3), "p99_ms": round(float(np.percentile(a, 99)), 3),
            "max_ms": round(float(a.max()), 3), "errors": errors["transport"] + errors["status"]}


def batch_table(n: int) -> pa.Table:
    """n cases resampled (fixed seed) from the 2.0 reference cases."""
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    t = pcsv.read_csv(CASES, convert_options=pcsv.ConvertOptions(column_types={
        c: pa.string() for c in ("case_id", "sex", "age", "age_days", "birth_weight", "dept", "los", "discharge",
                                 "dx", "px")}, strings_can_be_null=False))
    idx = np.random.default_rng(20240601).integers(0, t.num_rows, n)
    t = t.take(pa.array(idx))

    def number(c, typ):
        return pc.cast(pc.if_else(pc.equal(t[c], ""), None, t[c]), typ)

    def codes(c):
        return pc.split_pattern(pc.if_else(pc.equal(t[c], ""), None, t[c]), "|")
    # as an Arrow client sends a table: numbers as integers, codes as lists of strings
    return pa.table({"case_id": t["case_id"], "sex": number("sex", pa.int8()), "age": number("age", pa.int16()),
                     "age_days": number("age_days", pa.int32()), "birth_weight": number("birth_weight", pa.int32()),
                     "los": number("los", pa.int32()), "discharge": t["discharge"], "dx": codes("dx"),
                     "px": codes("px")}).combine_chunks()


async def batch_phase(port: int, cases: int, seconds: float, clients: int = 2) -> dict:
    t = batch_table(cases)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, t.schema) as w:
        w.write_table(t)
    req = request_bytes("/v1/group", sink.getvalue().to_pybytes(), ARROW)
    done = {"requests": 0, "cases": 0, "errors": 0}
    t_end = time.perf_counter() + seconds
    check: list[bytes] = []

    async def client():
        conn = Conn(port)
        while time.perf_counter() < t_end:
            try:
                status, body = await conn.send(req, timeout=120)
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError):
                done["errors"] += 1
                conn.close()
                continue
            if status != 200:
                done["errors"] += 1
                continue
            done["requests"] += 1
            done["cases"] += cases
            if not check:
                check.append(body)
        conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - t0
    rows = pa.ipc.open_stream(check[0]).read_all().num_rows if check else 0
    return {"cases_per_request": cases, "requests": done["requests"], "seconds": round(elapsed, 2),
            "cases_per_s": round(done["cases"] / elapsed), "errors": done["errors"] + (rows != cases if check else 0),
            "request_mb": round(len(req) / 1e6, 1)}


def fuzz_bodies(n: int, seed: int = 7) -> list[bytes]:
    """Random bytes, broken JSON, and random JSON documents with case fields in them."""
    rnd = random.Random(seed)
    fields = ["sex", "age", "age_days", "birth_weight", "dx", "px", "los", "discharge", "dept", "cost", "x"]

    def value(depth=0):
        pick = rnd.randrange(8 if depth < 3 else 5)
        if pick == 0:
            return rnd.randint(-10**20, 10**20)
        if pick == 1:
            return rnd.uniform(-1e6, 1e6)
        if pick == 2:
            return "".join(chr(rnd.randrange(32, 0x3000)) for _ in range(rnd.randrange(40)))
        if pick == 3:
            return None
        if pick == 4:
            return rnd.random() < 0.5
        if pick == 5:
            return [value(depth + 1) for _ in range(rnd.randrange(6))]
        return {rnd.choice(fields): value(depth + 1) for _ in range(rnd.randrange(6))}

    out = []
    for i in range(n):
        k = i % 4
        if k == 0:
            out.append(rnd.randbytes(rnd.randrange(200)))
        elif k == 1:
            out.append(json.dumps(value()).encode()[: rnd.randrange(1, 60)])
        else:
            out.append(json.dumps([value() for _ in range(rnd.randrange(1, 4))] if k == 2 else value()).encode())
    return out


async def fuzz_phase(port: int, n: int, seconds: float) -> dict:
    counts = {"2xx": 0, "4xx": 0, "5xx": 0, "transport": 0}
    conn = Conn(port)
    t_end = time.perf_counter() + seconds
    for i, b in enumerate(fuzz_bodies(n)):
        if time.perf_counter() >= t_end:
            break
        kind = ARROW if i % 10 == 0 else "application/json"
        try:
            status, _ = await conn.send(request_bytes("/v1/group", b, kind), timeout=10)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError):
            counts["transport"] += 1
            conn.close()
            continue
        counts[f"{status // 100}xx" if status // 100 in (2, 4, 5) else "5xx"] += 1
    conn.close()
    return counts


def _line_single(label: str, x: dict, rate: float, clients: int) -> str:
    cpu = "" if x["server_cpu_s"] is None else f"; server CPU {1e6 * x['server_cpu_s'] / max(x['requests'], 1):.0f} us/request"
    return (f"{label}single case : {x['requests']} requests in {x['seconds']} s = {x['rate']} req/s ({clients} clients, "
            f"paced to {rate:g}/s); p50 {x['p50_ms']} ms, p99 {x['p99_ms']} ms, max {x['max_ms']} ms; errors "
            f"{x['errors']}{cpu}, client CPU {1e6 * x['client_cpu_s'] / max(x['requests'], 1):.0f} us/request; "
            f"load {x['load_average']}   [target p99 <= {TARGETS['single_p99_ms']} ms at {TARGETS['single_rate']}/s]")


def _line_batch(label: str, x: dict) -> str:
    cpu = "" if x["server_cpu_s"] is None or not x["requests"] else \
        f"; server CPU {1e9 * x['server_cpu_s'] / (x['requests'] * x['cases_per_request']):.0f} ns/case"
    return (f"{label}Arrow batch : {x['requests']} requests of {x['cases_per_request']:,} cases ({x['request_mb']} MB) "
            f"in {x['seconds']} s = {x['cases_per_s'] / 1e6:.2f} M cases/s; errors {x['errors']}{cpu}; "
            f"load {x['load_average']}   "
            f"[target >= {TARGETS['batch_cases_per_s'] / 1e6:g} M cases/s]")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--rate", type=float, default=500.0, help="single-case requests/s, all clients together")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--batch-cases", type=int, default=200_000)
    ap.add_argument("--batch-seconds", type=float, default=10.0)
    ap.add_argument("--fuzz", type=int, default=1000)
    ap.add_argument("--baseline", type=Path, metavar="DIR",
                    help="also serve from this checkout (another commit) and alternate the two, round by round")
    ap.add_argument("--rounds", type=int, default=1, help="rounds of the single-case and batch phases")
    ap.add_argument("--quick", action="store_true", help="seconds, not minutes: CI's smoke run")
    ap.add_argument("--json", metavar="FILE")
    a = ap.parse_args(argv)
    if a.quick:
        a.seconds, a.batch_seconds, a.batch_cases, a.fuzz, a.rate, a.clients = 1.5, 1.5, 20_000, 200, 200, 4
    load_before = os.getloadavg()[0]  # other work on the machine: latency tails depend on it
    trees = {"this": None} if a.baseline is None else {"baseline": a.baseline, "this": None}
    procs: dict[str, tuple[subprocess.Popen, int]] = {}
    runs: dict[str, list[dict]] = {k: [] for k in trees}
    label = (lambda k: f"{k:<9}") if a.baseline is not None else (lambda k: "")
    print(f"drg serve --workers {a.workers} on loopback ({os.cpu_count()} CPUs shared with the client; "
          f"1-min load average before the run {load_before:.2f})", flush=True)
    try:
        for k, tree in trees.items():
            port = free_port()
            procs[k] = (start_server(a.workers, port, tree=tree), port)
            run(single_phase(port, a.clients, a.rate, min(1.0, a.seconds)))  # warm every worker
        for r in range(a.rounds):
            order = list(trees) if r % 2 == 0 else list(reversed(trees))  # A B, then B A: load drifts evenly
            for k in order:
                proc, port = procs[k]
                single = measured(proc.pid, single_phase(port, a.clients, a.rate, a.seconds))
                single["load_average"] = round(os.getloadavg()[0], 2)  # 1-min load average after the phase
                batch = measured(proc.pid, batch_phase(port, a.batch_cases, a.batch_seconds))
                batch["load_average"] = round(os.getloadavg()[0], 2)
                runs[k].append({"single": single, "batch": batch})
                print(_line_single(label(k), single, a.rate, a.clients), flush=True)
                print(_line_batch(label(k), batch), flush=True)
        proc, port = procs["this"]
        fuzz = run(fuzz_phase(port, a.fuzz, max(a.seconds, 30)))
    finally:
        for proc, _ in procs.values():
            stop_server(proc)
    print(f"fuzzed      : {sum(fuzz.values())} bodies: 2xx {fuzz['2xx']}, 4xx {fuzz['4xx']}, 5xx {fuzz['5xx']}, "
          f"transport errors {fuzz['transport']}   [target: 0 5xx, 0 transport errors]")
    if a.baseline is not None:
        def per(k, phase, unit):
            xs = [x[phase] for x in runs[k]]
            n = sum(x["requests"] * (x.get("cases_per_request") or 1) for x in xs)
            cpu = [x["server_cpu_s"] for x in xs]
            return None if None in cpu or not n else sum(cpu) / n * unit
        for phase, unit, what in (("single", 1e6, "us/request"), ("batch", 1e9, "ns/case")):
            b, t = per("baseline", phase, unit), per("this", phase, unit)
            if b is not None and t is not None:
                print(f"server CPU, {phase:<6}: baseline {b:.0f} {what}, this {t:.0f} {what}, ratio baseline/this "
                      f"{b / t:.2f}")
    this = runs["this"][-1]
    r = {"workers": a.workers, "clients": a.clients, "target_rate": a.rate, "single": this["single"],
         "batch": this["batch"], "fuzz": fuzz, "runs": runs, "cpus": os.cpu_count(),
         "load_average_before": round(load_before, 2)}
    if a.json:
        Path(a.json).write_text(json.dumps(r, indent=2), encoding="utf-8")
    return r


if __name__ == "__main__":
    main()
