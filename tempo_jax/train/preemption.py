"""Turn SIGTERM / SIGINT into a flag, so the train loop can finish its step, checkpoint and exit.

Usage::

    with PreemptionGuard() as guard:
        for step in range(start, total):
            state = train_step(state)
            ckpt.save(step, ..., force=guard.should_stop())
            if guard.should_stop():
                log.warning("stopping after step %d (%s)", step, guard.signal_name)
                break
    ckpt.wait()

A second signal while a stop is already requested (an impatient Ctrl-C) is handed to the
handler that was installed before the guard — for SIGINT that raises ``KeyboardInterrupt``,
for SIGTERM with the default handler it terminates the process — so the user can always get
out. Pass ``second_signal_forces=False`` to keep swallowing repeats.

Multi-host: preemption notices may reach hosts at different times, and every host has to
agree on the step at which to stop (saving is collective). ``should_stop()`` therefore does
an all-gather of the flag when ``jax.process_count() > 1``; every process must call it at the
same point of every step.

Why this guard and not Orbax's ``CheckpointManager.reached_preemption(step)``: that reads
``jax.experimental.multihost_utils.reached_preemption_sync_point``, which is served by the
preemption sync manager that ``jax.distributed.initialize`` starts. Without ``jax.distributed``
(one process: the CPU tests, a single-host GPU run) it always returns False and SIGTERM keeps its
default effect, killing the process mid-step; it never covers Ctrl-C; and it only says "save at
this step", not "stop". The library is used where it applies: the
:class:`~tempo_jax.train.checkpoint.Checkpointer`'s save-decision policy includes Orbax's
``PreemptionCheckpointingPolicy``, so in a ``jax.distributed`` job a preemption notice that reaches
the coordination service, but no signal to this process, still gets a checkpoint at the step every
process agreed on. See docs/library_choices.md.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any

from tempo_jax.parallel.distributed import any_process

log = logging.getLogger(__name__)


class PreemptionGuard:
    """Context manager: while active, SIGTERM/SIGINT set ``requested`` instead of ending the process."""

    def __init__(self, signals: Sequence[int] = (signal.SIGTERM, signal.SIGINT), *, second_signal_forces: bool = True):
        self.signals = tuple(signals)
        self.second_signal_forces = second_signal_forces
        self.requested = False
        self.signal_name: str | None = None
        self._previous: dict[int, Any] = {}
        self._active = False

    # ------------------------------------------------------------------ context manager
    def __enter__(self) -> PreemptionGuard:
        if self._active:
            raise RuntimeError("PreemptionGuard is not re-entrant")
        if threading.current_thread() is not threading.main_thread():
            log.warning(
                "PreemptionGuard: not in the main thread, so signal handlers cannot be installed; "
                "SIGTERM/SIGINT keep their usual effect"
            )
            self._active = True
            return self
        try:
            for sig in self.signals:
                self._previous[sig] = signal.signal(sig, self._handle)
        except BaseException:
            self._restore()
            raise
        self._active = True
        return self

    def __exit__(self, *exc) -> None:
        self._restore()
        self._active = False

    def _restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        self._previous.clear()

    # ------------------------------------------------------------------ handling
    def _handle(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.requested and self.second_signal_forces:
            log.warning("received %s again while stopping; not waiting for the checkpoint", name)
            previous = self._previous.get(signum, signal.SIG_DFL)
            self._restore()
            if callable(previous):
                previous(signum, frame)
            elif previous == signal.SIG_DFL:
                signal.raise_signal(signum)  # default action (terminate) with the guard's handlers gone
            return  # SIG_IGN: ignore
        if not self.requested:
            log.warning(
                "received %s: finishing the current step, then saving a checkpoint and exiting "
                "(send it again to stop immediately)",
                name,
            )
        self.requested = True
        self.signal_name = self.signal_name or name

    def request(self, reason: str = "manual") -> None:
        """Ask the loop to stop, as a signal would (e.g. from a time-budget check)."""
        self.requested = True
        self.signal_name = self.signal_name or reason

    def should_stop(self) -> bool:
        """Whether to stop after this step: the local flag, OR-ed across processes in multi-host runs.

        With more than one JAX process this is a collective (all-gather of one int): call it on
        every process at the same point of each step.
        """
        return any_process(self.requested)
