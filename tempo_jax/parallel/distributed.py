"""Multi-host start-up: ``jax.distributed.initialize`` from arguments or the environment.

Call :func:`init_distributed` first thing in a process (before any JAX computation). On a Cloud TPU
pod slice every worker runs the same command and JAX finds the coordinator itself; elsewhere
(GPU nodes, several local processes) give the coordinator address, the process count and this
process's id, as arguments or environment variables:

* ``TEMPO_JAX_COORDINATOR`` (or JAX's ``JAX_COORDINATOR_ADDRESS``), e.g. ``10.0.0.2:8476``;
* ``TEMPO_JAX_NUM_PROCESSES`` (or ``JAX_NUM_PROCESSES``);
* ``TEMPO_JAX_PROCESS_ID`` (or ``JAX_PROCESS_ID``);
* ``TEMPO_JAX_DISTRIBUTED=auto`` forces auto-detection (SLURM, Open MPI, TPU pods),
  ``TEMPO_JAX_DISTRIBUTED=off`` disables start-up.

With none of these, on a single host, it does nothing: one process sees all local devices.
"""

from __future__ import annotations

import logging
import os

import jax
import numpy as np
from jax.experimental import multihost_utils

log = logging.getLogger(__name__)


def _env(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value not in (None, ""):
            return value
    return None


def _on_tpu_pod() -> bool:
    """A Cloud TPU VM that is one worker of several (the metadata JAX auto-detects from)."""
    hosts = _env("TPU_WORKER_HOSTNAMES")
    return bool(hosts and "," in hosts)


def init_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    local_device_ids=None,
) -> bool:
    """Join the multi-process job; returns True if JAX runs distributed (already or now).

    Explicit arguments win over the environment. Idempotent: a second call is a no-op."""
    if jax.distributed.is_initialized():
        return True
    mode = (_env("TEMPO_JAX_DISTRIBUTED") or "").lower()
    if mode == "off":
        return False
    coordinator_address = coordinator_address or _env("TEMPO_JAX_COORDINATOR", "JAX_COORDINATOR_ADDRESS")
    env_num_processes = _env("TEMPO_JAX_NUM_PROCESSES", "JAX_NUM_PROCESSES")
    if num_processes is None and env_num_processes is not None:
        num_processes = int(env_num_processes)
    env_process_id = _env("TEMPO_JAX_PROCESS_ID", "JAX_PROCESS_ID")
    if process_id is None and env_process_id is not None:
        process_id = int(env_process_id)
    explicit = coordinator_address is not None or num_processes is not None or process_id is not None
    if explicit:
        missing = [
            name
            for name, v in (
                ("coordinator_address", coordinator_address),
                ("num_processes", num_processes),
                ("process_id", process_id),
            )
            if v is None
        ]
        if missing:
            raise ValueError(
                f"multi-process start-up needs coordinator_address, num_processes and process_id; "
                f"missing {missing} (arguments or TEMPO_JAX_COORDINATOR / TEMPO_JAX_NUM_PROCESSES / "
                "TEMPO_JAX_PROCESS_ID)"
            )
        assert num_processes is not None and process_id is not None  # `missing` is empty
        if not 0 <= int(process_id) < int(num_processes):
            raise ValueError(f"process_id={process_id} must be in [0, num_processes={num_processes})")
        jax.distributed.initialize(
            coordinator_address=coordinator_address,
            num_processes=int(num_processes),
            process_id=int(process_id),
            local_device_ids=local_device_ids,
        )
    elif mode == "auto" or _on_tpu_pod():
        jax.distributed.initialize()
    else:
        return False
    log.info(
        "distributed: process %d of %d, %d local / %d global devices",
        jax.process_index(),
        jax.process_count(),
        jax.local_device_count(),
        jax.device_count(),
    )
    return True


def is_primary() -> bool:
    """True on the process that writes shared files (logs, exports): process 0."""
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Wait until every process reaches the barrier ``name`` (a no-op on one process).
    Used around files one process writes and the others read or rename (checkpoint quarantine,
    the final export), so nobody races ahead. Every process must call it with the same name."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)


def any_process(flag: bool) -> bool:
    """``flag`` OR-ed over all processes (just ``flag`` on one process).
    A decision that changes the sequence of collectives (stop after this step, give up on a
    checkpoint) must be taken by every process together, or some wait forever in a collective the
    others never enter. With several processes this is itself a collective (an all-gather of one
    int): every process must call it at the same point."""
    if jax.process_count() == 1:
        return bool(flag)

    return bool(np.any(multihost_utils.process_allgather(np.int32(bool(flag)))))
