"""A small process pool with a hard wall-clock timeout per task.

Why not ``concurrent.futures``: a ProcessPoolExecutor cannot cancel one running task, and
math-verify's own timeouts use ``signal.alarm`` (main thread only). Here each worker is a
``multiprocessing.Process`` with its own ``Pipe``, running tasks in its main thread. When a task
exceeds ``timeout_s`` the parent kills that worker (SIGKILL), records the task's failure value,
starts a replacement and keeps going; a worker that dies on its own is treated the same way.

Workers start once (``forkserver`` where available, else ``spawn``; never a plain ``fork`` of a
process that may hold JAX threads), warm up, and are reused. The pool is a context manager and is
also shut down when garbage-collected or at interpreter exit (``weakref.finalize``).

Caveat (standard for spawn/forkserver): the parent's ``__main__`` module is imported by the
children, so scripts must guard their entry point with ``if __name__ == "__main__":``.
"""
from __future__ import annotations

import dataclasses
import importlib
import multiprocessing as mp
import multiprocessing.connection as mpc
import os
import signal
import threading
import time
import traceback
import weakref
from collections import deque
from typing import Any, Callable, Sequence

DEFAULT_TASK = "tempo_jax.rewards.equivalence:is_equivalent"
DEFAULT_WARMUP = "tempo_jax.rewards.equivalence:warmup"
_SLOW_START = ("workers import the parent's __main__ module: a script that starts training at import time must "
               "guard it with `if __name__ == \"__main__\":`; otherwise the machine is overloaded")


def _resolve(fn: str | Callable | None, default: str) -> Callable:
    if fn is None:
        fn = default
    if callable(fn):
        return fn
    module, _, attr = fn.partition(":")
    return getattr(importlib.import_module(module), attr)


def _worker_main(conn, warmup: str | None, memory_limit_mb: int | None) -> None:
    """Worker loop: ``(index, fn, args, kwargs)`` in, ``(index, ok, value)`` out; ``None`` stops."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business
    try:
        if warmup:
            _resolve(warmup, DEFAULT_WARMUP)()
        if memory_limit_mb:
            try:
                import resource

                limit = int(memory_limit_mb) * 1024 * 1024
                resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            except (ImportError, ValueError, OSError):
                pass
        conn.send(("ready", os.getpid()))
    except BaseException:  # noqa: BLE001 - report start-up failures to the parent
        try:
            conn.send(("error", traceback.format_exc()))
        finally:
            return
    cache: dict[Any, Callable] = {}
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        if msg is None:
            return
        index, fn, args, kwargs = msg
        try:
            func = cache.get(fn) if isinstance(fn, str) else None
            if func is None:
                func = _resolve(fn, DEFAULT_TASK)
                if isinstance(fn, str):
                    cache[fn] = func
            reply = (index, True, func(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - a task failure is a result, not a crash
            reply = (index, False, f"{type(exc).__name__}: {exc}"[:500])
        try:
            conn.send(reply)
        except (EOFError, OSError, BrokenPipeError):
            return
        except Exception as exc:  # unpicklable result
            conn.send((index, False, f"unpicklable result: {exc}"[:500]))


@dataclasses.dataclass(eq=False)
class _Worker:
    proc: Any
    conn: Any
    state: str  # "starting" | "ready"
    since: float
    inflight: deque = dataclasses.field(default_factory=deque)  # task indices sent, not answered
    deadline: float = 0.0  # hard deadline of inflight[0], the task the worker is running

    @property
    def busy(self) -> bool:
        return bool(self.inflight)


@dataclasses.dataclass
class PoolStats:
    tasks: int = 0
    completed: int = 0
    task_errors: int = 0  # the task raised inside the worker
    timeouts: int = 0  # killed at the hard deadline
    crashes: int = 0  # the worker died on its own
    respawns: int = 0


def _stop_workers(workers: list[_Worker], grace_s: float = 1.0) -> None:
    """Ask every worker to exit, then kill the stragglers (also the finalizer)."""
    for w in workers:
        try:
            if w.busy:  # never wait for tasks nobody will read
                w.proc.kill()
            else:  # idle, or starting (it reads the stop message after reporting ready)
                w.conn.send(None)
        except (OSError, ValueError):
            pass
    deadline = time.monotonic() + grace_s
    for w in workers:
        _stop(w, join_s=max(0.0, deadline - time.monotonic()))
    workers.clear()


def _stop(w, join_s: float, kill_first: bool = False) -> None:
    """End one worker (kill it if it does not exit within ``join_s``) and close its pipe."""
    try:
        if kill_first and w.proc.is_alive():
            w.proc.kill()
        w.proc.join(join_s)
        if w.proc.is_alive():
            w.proc.kill()
            w.proc.join(1.0)
    except (OSError, ValueError, AssertionError):
        pass
    try:
        w.conn.close()
    except OSError:
        pass


def _has_data(conn) -> bool:
    try:
        return conn.poll(0)
    except (EOFError, OSError):
        return True  # closed: reading reports the crash


def default_start_method() -> str:
    methods = mp.get_all_start_methods()
    return "forkserver" if "forkserver" in methods else "spawn"


class GradingPool:
    """Process pool with a hard per-task wall-clock timeout.

    Args:
      num_workers: worker processes (keep small: grading shares the host with training).
      timeout_s: hard limit per task, counted from when its worker starts it.
      start_method: ``"forkserver"`` (default where available) or ``"spawn"``.
      startup_timeout_s: limit for a worker to import and warm up.
      warmup: ``"module:function"`` run once in each worker before it reports ready.
      memory_limit_mb: per-worker address-space limit (``RLIMIT_AS``, Linux), None for none.
      prefetch: tasks in flight per worker (pipelining: no idle round trip through the parent
        between tasks; a slow task delays at most ``prefetch - 1`` tasks queued behind it). Each
        task still gets its own hard deadline, which starts when its worker begins it (as seen
        by the parent); tasks queued behind a killed task are re-sent to another worker.
    """

    def __init__(self, num_workers: int = 2, timeout_s: float = 5.0, *, start_method: str | None = None,
                 startup_timeout_s: float = 120.0, warmup: str | None = DEFAULT_WARMUP,
                 memory_limit_mb: int | None = 4096, prefetch: int = 2):
        if num_workers < 1:
            raise ValueError(f"num_workers must be >= 1, got {num_workers}")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self.num_workers = num_workers
        self.timeout_s = float(timeout_s)
        self.startup_timeout_s = float(startup_timeout_s)
        self.prefetch = max(1, int(prefetch))
        self.start_method = start_method or default_start_method()
        self._ctx = mp.get_context(self.start_method)
        self._warmup = warmup
        self._memory_limit_mb = memory_limit_mb
        self._lock = threading.Lock()
        self._workers: list[_Worker] = []
        self._closed = False
        self._startup_failures = 0
        self.stats = PoolStats()
        self._finalizer = weakref.finalize(self, _stop_workers, self._workers)
        for _ in range(num_workers):
            self._workers.append(self._spawn())

    # ------------------------------------------------------------------------ worker lifecycle
    def _spawn(self) -> _Worker:
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(target=_worker_main, args=(child_conn, self._warmup, self._memory_limit_mb),
                                 name="tempo-grader", daemon=True)
        proc.start()
        child_conn.close()
        return _Worker(proc=proc, conn=parent_conn, state="starting", since=time.monotonic())

    def _replace(self, w: _Worker) -> None:
        _stop(w, join_s=2.0, kill_first=True)
        k = self._workers.index(w)
        self._workers[k] = self._spawn()
        self.stats.respawns += 1

    def _startup_failed(self, w: _Worker, why: str) -> None:
        self._startup_failures += 1
        if self._startup_failures > 3 * self.num_workers:
            self.close()
            raise RuntimeError(f"grading workers keep failing to start: {why}")
        self._replace(w)

    @property
    def pids(self) -> list[int]:
        return [w.proc.pid for w in self._workers]

    def wait_ready(self) -> None:
        """Block until every worker has started (otherwise the first ``map`` waits)."""
        self.map([])

    # ------------------------------------------------------------------------------ the map
    def map(self, items: Sequence[Sequence[Any]], fn: str | Callable | None = None,
            kwargs: dict | None = None, on_failure: Any = False) -> list[Any]:
        """``[fn(*item, **kwargs) for item in items]`` in the workers, in order.

        ``fn`` is a picklable module-level callable or a ``"module:function"`` string (default:
        the grading cascade). A task that times out, raises, or kills its worker yields
        ``on_failure``.
        """
        with self._lock:
            if self._closed:
                raise RuntimeError("GradingPool is closed")
            try:
                return self._map(list(items), fn, kwargs or {}, on_failure)
            except BaseException:
                # e.g. an unpicklable task or Ctrl-C: results still in flight would be read by the
                # next call as its own, so replace every worker that has tasks in flight.
                if not self._closed:
                    for w in list(self._workers):
                        if w.busy:
                            w.inflight.clear()
                            self._replace(w)
                raise

    def _map(self, items: list, fn, kwargs: dict, on_failure: Any) -> list[Any]:
        # Each worker gets up to `prefetch` tasks in flight, so it does not idle for a round trip
        # through this process between tasks. The hard deadline
        # applies to the task at the head of a worker's queue: it starts when the task is sent to
        # an empty queue, or when the previous task's result arrives (the worker starts the next
        # one right after sending it), so a task never gets less than `timeout_s`.
        results = [on_failure] * len(items)
        pending = deque(range(len(items)))
        outstanding = len(items)
        self.stats.tasks += len(items)
        need_ready = not items  # wait_ready(): loop until no worker is starting

        def fail_head(w: _Worker) -> None:
            nonlocal outstanding
            w.inflight.popleft()
            outstanding -= 1
            pending.extendleft(reversed(w.inflight))  # queued behind it: not started, retry elsewhere
            w.inflight.clear()
            self._replace(w)

        while outstanding > 0 or (need_ready and any(w.state == "starting" for w in self._workers)):
            progress = True
            while pending and progress:  # round-robin, one task per worker per pass
                progress = False
                for w in list(self._workers):
                    if not (pending and w.state == "ready" and len(w.inflight) < self.prefetch):
                        continue
                    i = pending.popleft()
                    try:
                        w.conn.send((i, fn, tuple(items[i]), kwargs))
                    except (OSError, ValueError):
                        pending.appendleft(i)
                        self.stats.crashes += 1
                        pending.extendleft(reversed(w.inflight))
                        w.inflight.clear()
                        self._replace(w)
                        continue
                    if not w.inflight:
                        w.deadline = time.monotonic() + self.timeout_s
                    w.inflight.append(i)
                    progress = True
            waiting = [w for w in self._workers if w.busy or w.state == "starting"]
            if not waiting:  # only possible if every worker was just replaced; loop again
                continue
            deadlines = [w.deadline if w.busy else w.since + self.startup_timeout_s for w in waiting]
            timeout = max(0.0, min(deadlines) - time.monotonic())
            ready = mpc.wait([w.conn for w in waiting], timeout)
            for w in waiting:
                if w.conn not in ready:
                    continue
                # Drain everything this worker has sent so far.
                while w in self._workers:
                    try:
                        msg = w.conn.recv()
                    except (EOFError, OSError):
                        msg = None
                    if w.state == "starting":
                        if msg is not None and msg[0] == "ready":
                            w.state, w.since = "ready", time.monotonic()
                            self._startup_failures = 0
                        else:
                            self._startup_failed(w, msg[1] if msg else "worker exited during start-up")
                            break
                    elif msg is None:  # the worker died while running its head task
                        self.stats.crashes += 1
                        fail_head(w)
                        break
                    else:
                        index, ok, value = msg
                        w.inflight.popleft()
                        if ok:
                            results[index] = value
                            self.stats.completed += 1
                        else:
                            self.stats.task_errors += 1
                        outstanding -= 1
                        w.deadline = time.monotonic() + self.timeout_s
                    try:
                        if not w.conn.poll(0):
                            break
                    except (EOFError, OSError):
                        continue  # closed: the next recv reports the crash
            now = time.monotonic()
            for w in list(self._workers):
                if w.busy and now >= w.deadline and not _has_data(w.conn):
                    self.stats.timeouts += 1
                    fail_head(w)
                elif w.state == "starting" and now >= w.since + self.startup_timeout_s:
                    self._startup_failed(w, f"no ready message within {self.startup_timeout_s:.0f} s ({_SLOW_START})")
        return results

    # ------------------------------------------------------------------------------ shutdown
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._finalizer()  # runs _stop_workers once; also detaches the exit hook

    def __enter__(self) -> "GradingPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"GradingPool(num_workers={self.num_workers}, timeout_s={self.timeout_s}, "
                f"start_method={self.start_method!r}, closed={self._closed})")
