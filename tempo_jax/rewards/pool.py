"""The grading process pool: pebble's ``ProcessPool`` with a hard wall-clock timeout per task.

Each task is ``pebble.ProcessPool.schedule(fn, args, timeout=timeout_s)``. pebble runs tasks in
the main thread of separate worker processes, times each task from the moment a worker takes it
(queueing and worker start-up are not counted), terminates the worker of a task that runs past
its timeout, and starts a replacement; a worker that dies on its own is replaced the same way.
A task that times out, raises or kills its worker yields the caller's ``on_failure`` value.

Timeout layers, outermost first (what each is for):

1. **Hard, per answer (this module, pebble).** The guarantee: after ``timeout_s`` the worker
   process is killed, whatever it is doing, including C code that never returns to the
   interpreter, so that no signal handler can interrupt it (a native routine such as
   ``hashlib.pbkdf2_hmac`` with a huge count, in the tests). Workers reset ``SIGTERM`` to its
   default action, so pebble's ``terminate()`` kills at once; pebble's own Python-level
   ``SIGTERM`` handler would only run between bytecodes, i.e. after its 3 s ``SIGKILL``
   fallback for a worker stuck in C.
2. **Soft, per cascade stage (``equivalence.soft_deadline``).** ``setitimer`` + ``SIGALRM`` in
   the worker's main thread, with a budget of ``Grader(soft_timeout_frac=0.8) * timeout_s``
   split across the cascade stages. An optimisation, not a guarantee: a slow Python-level parse
   returns "wrong" and the warm worker survives (a kill costs a replacement: a new process that
   imports sympy and math-verify and warms up, ~1 s of CPU on a shared host), and one slow
   stage cannot starve the stages after it.
3. **math-verify's own timeouts: off** (``parse(parsing_timeout=None)``,
   ``verify(timeout_seconds=None)``). ``math_verify.utils.timeout`` arms ``signal.alarm`` with
   whole seconds: that is the same ``ITIMER_REAL`` timer as layer 2 (arming it would replace the
   stage budget and its ``alarm(0)`` on exit would cancel it), and outside the main thread
   ``signal.signal`` raises ``ValueError``, which math-verify re-raises as "doesn't support
   threaded environment". Layers 1 and 2 cover what it would do.

Start-up: workers start once (``forkserver`` where available, else ``spawn``; never a plain
``fork`` of a process that may hold JAX threads), run the warm-up in pebble's initializer and
report ready (or their start-up error) on a queue; the pool raises when workers keep failing to
start, or when none has reported ready for ``startup_timeout_s``. A worker whose warm-up fails
exits with status 0, which pebble replaces silently (pebble marks the whole pool broken when a
worker dies with a non-zero status while no task is running; should that happen anyway, e.g.
an idle worker killed by the OOM killer, the pool is rebuilt and the tasks it dropped are
re-sent). The pool is a context manager and is also shut down when garbage-collected or at
interpreter exit (``weakref.finalize``).

Caveat (standard for spawn/forkserver): the parent's ``__main__`` module is imported by the
children, so scripts must guard their entry point with ``if __name__ == "__main__":``.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import importlib
import multiprocessing as mp
import os
import resource  # POSIX; the pool relies on forkserver/spawn and /proc anyway
import signal
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from multiprocessing.reduction import ForkingPickler
from typing import Any

import pebble

DEFAULT_TASK = "tempo_jax.rewards.equivalence:is_equivalent"
DEFAULT_WARMUP = "tempo_jax.rewards.equivalence:warmup"
_SLOW_START = (
    "workers import the parent's __main__ module: a script that starts training at import time must "
    'guard it with `if __name__ == "__main__":`; otherwise the machine is overloaded'
)
_POLL_S = 0.2  # how often a waiting map checks that the pool is alive and workers are starting
_MAX_REBUILDS = 3  # per map call
_PLAIN = (bool, int, float, str, bytes, type(None))


def _resolve(fn: str | Callable | None, default: str) -> Callable:
    if fn is None:
        fn = default
    if callable(fn):
        return fn
    module, _, attr = fn.partition(":")
    return getattr(importlib.import_module(module), attr)


# ------------------------------------------------------------------------------ worker side

_TASKS: dict[str, Callable] = {}


def _worker_init(warmup: str | None, memory_limit_mb: int | None, events) -> None:
    """pebble initializer: default SIGTERM, warm-up, memory limit, then report on ``events``."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # terminate() kills at once, even inside C code
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business
    try:
        if warmup:
            _resolve(warmup, DEFAULT_WARMUP)()
        if memory_limit_mb:
            try:
                limit = int(memory_limit_mb) * 1024 * 1024
                resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            except (ValueError, OSError):
                pass
    except BaseException:  # report start-up failures to the parent
        events.put(("error", os.getpid(), traceback.format_exc()[-2000:]))
        os._exit(0)  # status 0: pebble replaces the worker without declaring the pool broken
    events.put(("ready", os.getpid(), None))


def _run_task(fn: str | Callable | None, args: tuple, kwargs: dict) -> tuple[bool, Any]:
    """``(True, fn(*args, **kwargs))``, or ``(False, "Error: message")`` if it raised."""
    try:
        func = _TASKS.get(fn) if isinstance(fn, str) else None
        if func is None:
            func = _resolve(fn, DEFAULT_TASK)
            if isinstance(fn, str):
                _TASKS[fn] = func
        value = func(*args, **kwargs)
    except BaseException as exc:  # a task failure is a result, not a crash
        return False, f"{type(exc).__name__}: {exc}"[:500]
    if not isinstance(value, _PLAIN):
        try:
            ForkingPickler.dumps(value)
        except Exception as exc:
            return False, f"unpicklable result: {exc}"[:500]
    return True, value


# ------------------------------------------------------------------------------ parent side


@dataclasses.dataclass
class PoolStats:
    tasks: int = 0
    completed: int = 0
    task_errors: int = 0  # the task raised inside the worker
    timeouts: int = 0  # killed at the hard deadline
    crashes: int = 0  # the worker died on its own
    respawns: int = 0  # workers replaced (timeouts, crashes, failed starts, rebuilds)
    rebuilds: int = 0  # the whole pebble pool replaced: it broke, or a call was interrupted mid-way


def _stop_pools(holder: list) -> None:
    """Stop every pebble pool in ``holder`` (workers are terminated, threads joined)."""
    while holder:
        pool = holder.pop()
        try:
            pool.stop()
            pool.join()
        except Exception:  # best effort at shutdown
            pass


def _shutdown(holder: list, events) -> None:
    """The finalizer: stop the pool, then close the start-up queue."""
    _stop_pools(holder)
    try:
        events.close()
    except (OSError, AttributeError):
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (spawn: not yet reaped by pebble) still answers kill(0)
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def default_start_method() -> str:
    methods = mp.get_all_start_methods()
    return "forkserver" if "forkserver" in methods else "spawn"


class GradingPool:
    """Process pool with a hard per-task wall-clock timeout (pebble ``ProcessPool``).

    Args:
      num_workers: worker processes (keep small: grading shares the host with training).
      timeout_s: hard limit per task, counted from when a worker takes it.
      start_method: ``"forkserver"`` (default where available) or ``"spawn"``.
      startup_timeout_s: the pool raises if no worker reports ready for this long while it
        needs one (``wait_ready``: while any is missing; ``map``: while none is ready).
      warmup: ``"module:function"`` run once in each worker before it takes tasks.
      memory_limit_mb: per-worker address-space limit (``RLIMIT_AS``, Linux), None for none.
    """

    def __init__(
        self,
        num_workers: int = 2,
        timeout_s: float = 5.0,
        *,
        start_method: str | None = None,
        startup_timeout_s: float = 120.0,
        warmup: str | None = DEFAULT_WARMUP,
        memory_limit_mb: int | None = 4096,
    ):
        if num_workers < 1:
            raise ValueError(f"num_workers must be >= 1, got {num_workers}")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self.num_workers = num_workers
        self.timeout_s = float(timeout_s)
        self.startup_timeout_s = float(startup_timeout_s)
        self.start_method = start_method or default_start_method()
        self._ctx = mp.get_context(self.start_method)
        self._warmup = warmup
        self._memory_limit_mb = memory_limit_mb
        self._events = self._ctx.SimpleQueue()  # ("ready" | "error", pid, info) from initializers
        self._ready: set[int] = set()  # live workers that reported ready
        self._last_progress = time.monotonic()  # last worker start, ready report or loss
        self._startup_failures = 0  # consecutive
        self._lock = threading.Lock()
        self._holder: list = []  # [pebble.ProcessPool], shared with the finalizer
        self._closed = False
        self.stats = PoolStats()
        self._finalizer = weakref.finalize(self, _shutdown, self._holder, self._events)
        self._new_pool()

    # ------------------------------------------------------------------------ pool lifecycle
    def _new_pool(self) -> None:
        pool = pebble.ProcessPool(
            max_workers=self.num_workers,
            initializer=_worker_init,
            initargs=(self._warmup, self._memory_limit_mb, self._events),
            context=self._ctx,
        )
        self._holder.append(pool)
        pool.active  # noqa: B018 - reading it starts pebble's threads and workers now, not at the first task
        self._last_progress = time.monotonic()

    def _live_pool(self) -> pebble.ProcessPool:
        if not self._holder[0].active:  # broken: a worker died with no task running
            self._rebuild()
        return self._holder[0]

    def _rebuild(self) -> None:
        _stop_pools(self._holder)
        self.stats.rebuilds += 1
        self.stats.respawns += self.num_workers
        self._new_pool()

    def _poll_events(self) -> None:
        """Read the workers' start-up reports; forget workers that died."""
        while not self._events.empty():
            kind, pid, info = self._events.get()
            self._last_progress = time.monotonic()
            if kind == "ready":
                self._ready.add(pid)
                self._startup_failures = 0
                continue
            self._startup_failures += 1
            self.stats.respawns += 1
            if self._startup_failures > 3 * self.num_workers:
                self.close()
                raise RuntimeError(f"grading workers keep failing to start: {info}")
        gone = {pid for pid in self._ready if not _alive(pid)}
        if gone:  # each has a replacement starting now
            self._ready -= gone
            self._last_progress = time.monotonic()

    def _check_startup(self, need: int) -> bool:
        """True once ``need`` workers are ready; raise if none has come up for too long."""
        self._poll_events()
        if len(self._ready) >= need:
            return True
        if time.monotonic() - self._last_progress > self.startup_timeout_s:
            self.close()
            raise RuntimeError(
                f"grading workers did not start: no ready message within {self.startup_timeout_s:.0f} s ({_SLOW_START})"
            )
        return False

    @property
    def pids(self) -> list[int]:
        """Process ids of the live workers that have finished their warm-up."""
        with self._lock:
            if not self._closed:
                self._poll_events()
            return sorted(self._ready)

    def wait_ready(self) -> None:
        """Block until every worker has started (otherwise the first ``map`` waits)."""
        with self._lock:
            self._check_open()
            rebuilds = 0
            while not self._check_startup(self.num_workers):
                if not self._holder[0].active:
                    rebuilds += 1
                    if rebuilds > _MAX_REBUILDS:
                        self.close()
                        raise RuntimeError(f"the grading pool broke {rebuilds} times while starting")
                    self._rebuild()
                time.sleep(0.02)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("GradingPool is closed")

    # ------------------------------------------------------------------------------ the map
    def map(
        self,
        items: Sequence[Sequence[Any]],
        fn: str | Callable | None = None,
        kwargs: dict | None = None,
        on_failure: Any = False,
    ) -> list[Any]:
        """``[fn(*item, **kwargs) for item in items]`` in the workers, in order.

        ``fn`` is a picklable module-level callable or a ``"module:function"`` string (default:
        the grading cascade). A task that times out, raises, or kills its worker yields
        ``on_failure``. A task that cannot be pickled raises here, before anything is sent.
        """
        with self._lock:
            self._check_open()
            items = [tuple(item) for item in items]
            kwargs = dict(kwargs or {})
            ForkingPickler.dumps((fn, kwargs))  # fail fast, with nothing in flight
            for item in items:
                ForkingPickler.dumps(item)
            self.stats.tasks += len(items)
            results = [on_failure] * len(items)
            todo = list(range(len(items)))
            if not todo:
                return results
            self._poll_events()
            for _ in range(_MAX_REBUILDS + 1):
                pool = self._live_pool()
                futures: dict[int, pebble.ProcessFuture] = {}
                try:
                    for i in todo:
                        try:
                            futures[i] = pool.schedule(_run_task, args=(fn, items[i], kwargs), timeout=self.timeout_s)
                        except RuntimeError:
                            if pool.active:
                                raise
                            break  # it broke meanwhile: the rest goes to the next pool
                    todo = [i for i in todo if i not in futures] + self._collect(pool, futures, results)
                except BaseException:  # e.g. Ctrl-C: stop the tasks nobody will read
                    if not self._closed and not all(f.done() for f in futures.values()):
                        # Not future.cancel(): pebble stops the worker of every cancelled task a
                        # worker has taken, one replacement per queued task. Replace them once.
                        self._rebuild()
                    raise
                if not todo:
                    return results
            self.close()
            raise RuntimeError(f"the grading pool broke {_MAX_REBUILDS + 1} times in one call")

    def _collect(self, pool, futures: dict, results: list) -> list[int]:
        """Wait for every future in order; returns the indices a broken pool dropped."""
        dropped: list[int] = []
        abandoned: set[int] = set()
        for i, f in futures.items():
            while not f.done():
                cf.wait((f,), timeout=_POLL_S)
                if f.done():
                    break
                if not pool.active:  # broke while we waited: what is not done will never be
                    abandoned.update(j for j, g in futures.items() if not g.done() and g.cancel())
                    break
                self._check_startup(1)
            if f.cancelled():
                if i in abandoned:
                    dropped.append(i)
                continue
            exc = f.exception()
            if exc is None:
                ok, value = f.result()
                if ok:
                    results[i] = value
                    self.stats.completed += 1
                else:
                    self.stats.task_errors += 1
            elif isinstance(exc, TimeoutError):  # pebble stopped the worker and starts another
                self.stats.timeouts += 1
                self.stats.respawns += 1
            elif isinstance(exc, pebble.ProcessExpired):  # the worker died while running it
                self.stats.crashes += 1
                self.stats.respawns += 1
            elif isinstance(exc, BrokenProcessPool):
                dropped.append(i)
            else:  # pebble could not send the task (pickling passed above) or an internal error
                raise exc
        return dropped

    # ------------------------------------------------------------------------------ shutdown
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._finalizer()  # runs _shutdown once; also detaches the exit hook

    def __enter__(self) -> GradingPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"GradingPool(num_workers={self.num_workers}, timeout_s={self.timeout_s}, "
            f"start_method={self.start_method!r}, closed={self._closed})"
        )
