"""Running one picklable function per fragment on a Dask cluster or a pool of local processes,
with retries of failed tasks and of tasks lost with a worker; and the Dask client of a
``--scheduler`` address. Dask is optional: it is imported only when a client is used."""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import os
import pickle
import re
import signal
import tempfile
import threading
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa

from grouper._util.errors import first_line
from grouper.io import sweep_stale

__all__ = ["SchedulerError", "WorkersDied", "dask_client", "map_fragments"]


class _NoShared:
    """Marker for 'no shared object' that survives pickling by value (compared by type)."""


def map_fragments(fn: Callable, fragments: Sequence, client=None, workers: int | None = None, *,
                  shared: Any = _NoShared, retries: int = 2, errors: str = "raise",
                  on_result: Callable[[int, Any], None] | None = None) -> list:
    """Run the picklable ``fn`` once per item of ``fragments`` and return the results in
    fragment order: on the Dask ``client`` when given, else on a pool of ``workers`` local
    processes (default: the CPUs this process may use). ``shared`` is shipped once per worker
    (scattered to every Dask worker, or given to each pool process at start) and passed as
    ``fn(fragment, shared)``; without it, ``fn(fragment)``.

    A task that raises is retried ``retries`` times, and so are tasks lost with a worker (Dask
    reschedules them; a broken local pool is restarted). ``errors="return"`` puts a task's final
    exception in its slot instead of raising it. ``on_result(i, value)`` is called as each
    result arrives (in completion order), for progress and partial records."""
    if errors not in ("raise", "return"):
        raise ValueError("errors must be 'raise' or 'return'")
    items = list(fragments)
    if not items:
        return []
    if client is not None:
        return _map_dask(fn, items, client, shared, retries, errors, on_result)
    if workers is None:
        from grouper.engine import default_threads

        workers = default_threads()
    if workers < 1:
        raise ValueError("workers must be at least 1")
    return _map_pool(fn, items, workers, shared, retries, errors, on_result)


def _map_dask(fn, items, client, shared, retries, errors, on_result) -> list:
    from distributed import as_completed

    token = uuid.uuid4().hex[:8]
    name = getattr(fn, "__name__", "task").strip("_") or "task"
    kw = {} if shared is _NoShared else {"shared": client.scatter(shared, broadcast=True, hash=False)}
    futures = client.map(_call, items, fn=fn, key=[f"drg-{name}-{token}-{i}" for i in range(len(items))],
                         pure=False, retries=retries, **kw)
    index = {f.key: i for i, f in enumerate(futures)}
    results: list = [None] * len(items)
    try:
        for f in as_completed(futures):
            i = index[f.key]
            try:
                value = f.result()
            except Exception as exc:  # the task's own error after its retries, or KilledWorker
                if errors == "raise":
                    raise
                value = exc
            results[i] = value
            if on_result is not None:
                on_result(i, value)
    finally:
        unfinished = [f for f in futures if not f.done()]
        if unfinished:
            with contextlib.suppress(Exception):  # a closed client has nothing left to cancel
                client.cancel(unfinished)
    return results


def _call(item, fn, shared=_NoShared):
    return fn(item) if shared is _NoShared else fn(item, shared)


_POOL_SHARED: Any = _NoShared
#: job files of pools whose parent was killed (its process is gone): removed by the next pool
_JOB_FILE = re.compile(r"drg-job-(?P<pid>\d+)-[a-z0-9_]{8}\.pickle")


def _pool_init(job_file: str | None) -> None:
    """Each pool process reads the shared object from the job file its parent wrote. Passing the
    object itself (megabytes: the compiled ruleset) in the process's start-up data made the parent
    write it into the new process's pipe, and block forever when that process died before
    reading it; a path is a few bytes, and a worker that dies only breaks the pool."""
    global _POOL_SHARED
    if hasattr(signal, "pthread_sigmask"):  # Ctrl-C is the parent's to handle: no traceback from each worker
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    pa.set_cpu_count(1)  # one core per process: no Arrow thread pool competing with the others
    if job_file is None:
        _POOL_SHARED = _NoShared
        return
    try:
        fh = open(job_file, "rb")
    except FileNotFoundError:  # the parent has finished the run (stopped by Ctrl-C) before this process started
        os._exit(1)
    with fh:
        _POOL_SHARED = pickle.load(fh)  # written by this process's parent, readable by its user only


@contextlib.contextmanager
def _sigint_blocked():
    """SIGINT held while pool processes are started (they inherit the mask, so a Ctrl-C during
    their start-up, before ``_pool_init`` ignores it, prints no traceback); the parent gets a
    Ctrl-C that came meanwhile when the block ends."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def _pool_call(fn, item):
    return _call(item, fn, _POOL_SHARED)


class WorkersDied(RuntimeError):
    """The local pool's processes kept dying (killed, out of memory, failing at start-up)."""


def _job_file(shared) -> str:
    folder = tempfile.gettempdir()
    sweep_stale(folder, _JOB_FILE)
    fd, path = tempfile.mkstemp(prefix=f"drg-job-{os.getpid()}-", suffix=".pickle", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(shared, fh, protocol=pickle.HIGHEST_PROTOCOL)
    except BaseException:
        os.unlink(path)
        raise
    return path


def _map_pool(fn, items, workers, shared, retries, errors, on_result) -> list:
    job_file = _job_file(shared) if shared is not _NoShared else None
    try:
        return _run_pool(fn, items, workers, job_file, retries, errors, on_result)
    finally:
        if job_file is not None:
            with contextlib.suppress(OSError):
                os.unlink(job_file)


def _run_pool(fn, items, workers, job_file, retries, errors, on_result) -> list:
    ctx = multiprocessing.get_context("spawn")  # no fork of a process holding OpenMP/Arrow threads
    results: list = [None] * len(items)
    attempts = [0] * len(items)
    todo = deque(range(len(items)))
    restarts = 0
    while todo:
        running: dict[cf.Future, int] = {}
        broken: BaseException | None = None
        with cf.ProcessPoolExecutor(min(workers, len(todo)), mp_context=ctx, initializer=_pool_init,
                                    initargs=(job_file,)) as ex:
            try:
                while todo or running:
                    while todo and broken is None:
                        i = todo.popleft()
                        try:
                            with _sigint_blocked():  # a process started here starts with Ctrl-C held
                                running[ex.submit(_pool_call, fn, items[i])] = i
                        except cf.process.BrokenProcessPool as exc:  # a worker died while tasks were queued
                            broken = exc
                            todo.appendleft(i)
                    if not running:
                        break
                    done, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
                    for f in done:
                        i = running.pop(f)
                        try:
                            value = f.result()
                        except cf.process.BrokenProcessPool as exc:  # a worker died: the pool is gone
                            broken = exc
                            todo.append(i)
                            continue
                        except Exception as exc:
                            attempts[i] += 1
                            if attempts[i] <= retries and broken is None:
                                todo.append(i)
                                continue
                            if errors == "raise":
                                raise
                            value = exc
                        results[i] = value
                        if on_result is not None:
                            on_result(i, value)
            except BaseException:
                ex.shutdown(wait=False, cancel_futures=True)
                raise
        if broken is not None:
            restarts += 1
            if restarts > retries:
                died = WorkersDied(f"worker processes died {restarts} times ({first_line(broken)}); "
                                   f"{len(todo)} task(s) not run")
                if errors == "raise":
                    raise died from None
                for i in sorted(todo):
                    results[i] = died
                    if on_result is not None:
                        on_result(i, died)
                todo.clear()
            else:
                todo = deque(sorted(todo))
    return results


class SchedulerError(RuntimeError):
    """A Dask scheduler that cannot be used: Dask is not installed, or nothing answers at the
    address. The message reads after the option that named the address (``--scheduler ...``)."""


@contextlib.contextmanager
def dask_client(scheduler: str | None):
    """A Dask client of the scheduler at ``scheduler`` (None without one), closed when the block ends."""
    if scheduler is None:
        yield None
        return
    try:
        from distributed import Client
    except ImportError:
        raise SchedulerError("needs Dask: pip install 'drg-grouper[dask]'") from None
    try:
        client = Client(scheduler, timeout="30s")
    except (OSError, ValueError, TimeoutError) as exc:
        raise SchedulerError(f"{scheduler}: cannot connect ({exc})") from None
    try:
        yield client
    finally:
        client.close()
