"""Run one ``python -m <module>`` command as a local ``jax.distributed`` job of several processes.

The tests use it to check multi-host code paths on one machine: each process gets its own fake
CPU devices (``--xla_force_host_platform_device_count``; a count inherited from the caller, e.g.
the test session's 8, is replaced) and ``--coordinator / --num-processes / --process-id``
arguments (the convention of :mod:`tempo_jax.plan.selfcheck`), or with ``via_env`` the
``TEMPO_JAX_COORDINATOR / TEMPO_JAX_NUM_PROCESSES / TEMPO_JAX_PROCESS_ID`` variables
(:func:`tempo_jax.parallel.distributed.init_distributed`; how ``tempo-jax train`` and ``eval`` join a
job). Output goes to ``<log_dir>/process_<i>.log``.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence


@dataclasses.dataclass
class ProcessResult:
    process_id: int
    returncode: int | None  # None: killed at the time limit
    log_path: pathlib.Path

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def job_env(devices_per_process: int, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment with ``devices_per_process`` fake CPU devices and JAX on the CPU."""
    env = dict(os.environ)
    flags = [f for f in env.get("XLA_FLAGS", "").split() if "xla_force_host_platform_device_count" not in f]
    env["XLA_FLAGS"] = " ".join(flags + [f"--xla_force_host_platform_device_count={devices_per_process}"])
    env["JAX_PLATFORMS"] = "cpu"
    env.update(extra or {})
    return env


def run_local_job(
    module: str,
    args: Sequence[str],
    log_dir: str | os.PathLike,
    *,
    num_processes: int = 2,
    devices_per_process: int = 2,
    timeout_s: float = 420.0,
    grace_s: float = 30.0,
    env: Mapping[str, str] | None = None,
    log_name: str = "process",
    via_env: bool = False,
) -> list[ProcessResult]:
    """Start ``num_processes`` copies of ``python -m module *args`` as one job and wait for all of them.

    If a process fails, the others get ``grace_s`` seconds to finish (they are usually stuck in a
    collective waiting for it) before they are killed; so is everything still running after
    ``timeout_s``. ``via_env``: the job's coordinates go in the environment, not the arguments.
    Returns one :class:`ProcessResult` per process, in process order.
    """
    log_dir = pathlib.Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    full_env = job_env(devices_per_process, env)
    procs, paths = [], []
    for pid in range(num_processes):
        path = log_dir / f"{log_name}_{pid}.log"
        paths.append(path)
        job = {"coordinator": f"127.0.0.1:{port}", "num-processes": str(num_processes), "process-id": str(pid)}
        if via_env:
            flags, proc_env = (
                [],
                {**full_env, **{f"TEMPO_JAX_{k.upper().replace('-', '_')}": v for k, v in job.items()}},
            )
        else:
            flags, proc_env = [a for k, v in job.items() for a in (f"--{k}", v)], full_env
        with open(path, "w") as log:  # the child keeps its own handle
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", module, *args, *flags], env=proc_env, stdout=log, stderr=subprocess.STDOUT
                )
            )
    deadline = time.time() + timeout_s
    killed: set[int] = set()
    try:
        while any(p.poll() is None for p in procs) and time.time() < deadline:
            if any(p.poll() not in (None, 0) for p in procs):
                deadline = min(deadline, time.time() + grace_s)
            time.sleep(0.2)
    finally:
        for pid, p in enumerate(procs):
            if p.poll() is None:
                p.kill()
                p.wait()
                killed.add(pid)
    return [
        ProcessResult(pid, None if pid in killed else p.returncode, path)
        for pid, (p, path) in enumerate(zip(procs, paths))
    ]


def describe(results: Sequence[ProcessResult], tail: int = 3000) -> str:
    """Return codes and the end of every process's output, for assertion messages."""
    return "\n".join(f"--- process {r.process_id}: returncode {r.returncode}\n{r.log[-tail:]}" for r in results)
