"""The process pool: order, hard timeouts, crashes, respawn, shutdown (generic tasks, no warm-up)."""

import gc
import hashlib
import operator
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from tempo_jax.rewards.pool import GradingPool


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie still answers kill(0); check its state
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _wait_dead(pids, timeout_s=10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not any(_alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def pool():
    with GradingPool(num_workers=2, timeout_s=1.0, warmup=None) as p:
        yield p


def test_map_keeps_order(pool):
    items = [(i, i * 10) for i in range(50)]
    assert pool.map(items, fn=operator.add) == [i * 11 for i in range(50)]
    assert pool.map([]) == []


def test_string_task_reference(pool):
    assert pool.map([("a-b-c", "-")], fn="operator:contains") == [True]


def test_hard_timeout_kills_and_respawns(pool):
    pool.wait_ready()
    before = dict(vars(pool.stats))
    pids = set(pool.pids)
    assert len(pids) == 2
    t = time.perf_counter()
    # the tasks after the stuck one are taken by the other worker; only the stuck one fails
    out = pool.map([(0.0,), (30.0,), (0.0,), (0.0,)], fn=time.sleep, on_failure="timeout")
    elapsed = time.perf_counter() - t
    assert out == [None, "timeout", None, None]
    assert elapsed < 1.0 + 1.5
    assert pool.stats.timeouts == before["timeouts"] + 1
    assert pool.stats.respawns == before["respawns"] + 1
    gone = pids - set(pool.pids)
    assert len(gone) == 1 and _wait_dead(gone)
    assert pool.map([(2, 3)], fn=operator.mul) == [6]  # keeps working


def test_hard_timeout_inside_c_code(pool):
    """A task stuck in C (no signal handler can run) is still killed at the deadline."""
    pool.wait_ready()
    timeouts = pool.stats.timeouts
    t = time.perf_counter()
    out = pool.map(
        [("sha256", b"x", b"y", 10**9), ("sha256", b"x", b"y", 1)], fn=hashlib.pbkdf2_hmac, on_failure="timeout"
    )
    assert out[0] == "timeout" and out[1] == hashlib.pbkdf2_hmac("sha256", b"x", b"y", 1)
    assert time.perf_counter() - t < 1.0 + 1.5  # pebble alone would wait 3 s before SIGKILL
    assert pool.stats.timeouts == timeouts + 1


def test_crash_and_task_errors(pool):
    before = dict(vars(pool.stats))
    out = pool.map([(1, 0), (3,), (4, 2)], fn=operator.truediv, on_failure=-1.0)
    assert out == [-1.0, -1.0, 2.0]  # ZeroDivisionError and a TypeError are failures, not crashes
    assert pool.stats.task_errors == before["task_errors"] + 2
    assert pool.map([(7,)], fn=os._exit, on_failure="dead") == ["dead"]  # the worker exits mid-task
    assert pool.stats.crashes == before["crashes"] + 1
    assert pool.map([(5, 5)], fn=operator.eq) == [True]


def test_unpicklable_task_raises_and_pool_recovers(pool):
    # The third task (a lambda) cannot be pickled: the call fails before any task is sent, so
    # no worker is disturbed, and nothing of it can leak into the next call.
    pool.wait_ready()  # a worker replaced by an earlier test may still be starting
    before = dict(vars(pool.stats))
    with pytest.raises((TypeError, AttributeError, pickle.PicklingError)):  # a lambda does not pickle
        pool.map([(0.3,), (0.3,), (lambda: 0,)], fn=time.sleep)
    assert dict(vars(pool.stats)) == before
    for _ in range(3):
        assert pool.map([(i, 1) for i in range(6)], fn=operator.add) == [1, 2, 3, 4, 5, 6]


def test_interrupted_call_replaces_the_workers_once(monkeypatch):
    """A call interrupted with tasks in flight (e.g. Ctrl-C) stops them; the next call is clean."""

    class Interrupt(BaseException):
        pass

    def interrupted(*args):
        time.sleep(0.3)
        raise Interrupt

    with GradingPool(num_workers=2, timeout_s=5.0, warmup=None) as p:
        p.wait_ready()
        pids = p.pids
        monkeypatch.setattr(p, "_collect", interrupted)
        with pytest.raises(Interrupt):
            p.map([(30.0,)] * 20, fn=time.sleep)
        monkeypatch.undo()
        assert _wait_dead(pids)  # nobody will read those results: their workers are gone
        assert p.stats.respawns == 2 and p.stats.rebuilds == 1
        t = time.perf_counter()
        assert p.map([(i, 1) for i in range(6)], fn=operator.add) == [1, 2, 3, 4, 5, 6]
        assert time.perf_counter() - t < 5.0  # the 18 queued sleeps were dropped, not run


def test_idle_worker_killed_from_outside():
    """pebble marks its pool broken when an idle worker dies; the next call rebuilds it."""
    with GradingPool(num_workers=1, timeout_s=1.0, warmup=None) as p:
        p.wait_ready()
        (pid,) = p.pids
        os.kill(pid, signal.SIGKILL)
        assert _wait_dead([pid])
        assert p.map([(i, 1) for i in range(4)], fn=operator.add) == [1, 2, 3, 4]
        assert p.stats.rebuilds <= 1 and pid not in p.pids


def test_close_and_context_manager():
    with GradingPool(num_workers=1, timeout_s=1.0, warmup=None) as p:
        assert p.map([(1, 1)], fn=operator.add) == [2]
        pids = p.pids
    assert _wait_dead(pids)
    with pytest.raises(RuntimeError):
        p.map([(1, 1)], fn=operator.add)
    p.close()  # idempotent


def test_garbage_collected_pool_stops_workers():
    p = GradingPool(num_workers=1, timeout_s=1.0, warmup=None)
    p.wait_ready()
    pids = p.pids
    del p
    gc.collect()
    assert _wait_dead(pids)


def test_interpreter_exit_stops_workers():
    script = textwrap.dedent("""
        from tempo_jax.rewards.pool import GradingPool
        if __name__ == "__main__":
            p = GradingPool(num_workers=2, timeout_s=1.0, warmup=None)
            p.wait_ready()
            print(*p.pids)
            # no close(): the exit hook must clean up
    """)
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
    )
    assert out.returncode == 0, out.stderr
    pids = [int(x) for x in out.stdout.split()]
    assert len(pids) == 2 and _wait_dead(pids)


def test_bad_arguments():
    with pytest.raises(ValueError):
        GradingPool(num_workers=0)
    with pytest.raises(ValueError):
        GradingPool(timeout_s=0)


def test_startup_failure_is_reported():
    with pytest.raises(RuntimeError, match="keep failing to start"):
        p = GradingPool(num_workers=1, timeout_s=1.0, warmup="tempo_jax.rewards.no_such_module:f")
        p.wait_ready()


def test_workers_that_never_get_ready_are_reported_with_the_likely_cause():
    # signal.pause blocks forever: the warm-up never finishes, as with an unguarded __main__
    p = GradingPool(num_workers=1, timeout_s=1.0, startup_timeout_s=1.0, warmup="signal:pause")
    with pytest.raises(RuntimeError, match=r"no ready message within 1 s.*if __name__ == \"__main__\""):
        p.wait_ready()
