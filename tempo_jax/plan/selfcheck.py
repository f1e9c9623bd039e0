"""Check that a mesh (and a multi-process job) trains exactly like one device, on the tiny model.

Runs a few real TEMPO steps (rollout + grading + E-step + M-step) of the tiny recipe
(:mod:`tempo_jax.train.tiny`) and returns the actor and critic parameters after each step.
The tests compare these across mesh shapes and process counts; on a new cluster the same
command checks that the multi-host start-up and collectives work before a long run::

    # on each of N hosts (or N local processes):
    python -m tempo_jax.plan.selfcheck --mesh 2,1,2 --steps 2 --out /tmp/selfcheck.npz \\
        --coordinator HOST0:8476 --num-processes N --process-id I

With ``--run`` every process instead runs the whole ``Trainer.run()`` (rollouts, a small evaluation at
the last step, checkpoints, final export) into one shared ``--run-dir``; ``--resume`` continues it,
and ``--preempt STEP:PROCESS`` sends SIGTERM to one process only after STEP (all must stop there).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np

from tempo_jax.parallel.distributed import init_distributed
from tempo_jax.parallel.mesh import to_host
from tempo_jax.train.loop import Trainer
from tempo_jax.train.tiny import ensure_tiny_assets, tiny_recipe

STEPS = 2
LR = 1e-4  # Adam moves every parameter by ~LR per step: 10x the tolerance, far above reduction-order noise
TOL = 1e-5  # sharded / multi-process parameters must equal the one-device ones within this


def tiny_config(shape: Sequence[int], steps: int, assets: dict[str, str], run_dir: str, **changes: Any):
    """The tiny TEMPO recipe for these checks: ``steps`` steps on mesh ``shape``, synchronous saves."""
    base = dict(
        run_dir=run_dir,
        mesh__shape=tuple(shape),
        checkpoint__async_save=False,
        log__tensorboard=False,
        grader__workers=1,
        train__total_steps=steps,
    )
    base.update(changes)
    return tiny_recipe("tempo", assets, **base)


def run_tiny_steps(
    shape: Sequence[int], steps: int, assets: dict[str, str], run_dir: str, **changes: Any
) -> list[dict[str, np.ndarray]]:
    """Parameters (flattened ``{path: array}``, actor/ and critic/) after each of ``steps`` TEMPO steps."""
    cfg = tiny_config(shape, steps, assets, run_dir, **changes)
    out = []
    with Trainer(cfg) as trainer:
        for step in range(1, steps + 1):
            trainer.step(step)
            assert trainer.critic is not None  # the TEMPO recipe trains a critic
            arrays = {"actor": trainer.actor.state.params, "critic": trainer.critic.state.params}
            flat = jax.tree_util.tree_flatten_with_path(to_host(arrays))[0]
            out.append({jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in flat})
    return out


def run_tiny_training(
    shape: Sequence[int],
    steps: int,
    assets: dict[str, str],
    run_dir: str,
    *,
    resume: bool = False,
    preempt: tuple[int, int] | None = None,
    **changes: Any,
) -> dict[str, Any]:
    """``Trainer.run()`` of the tiny recipe into ``run_dir`` (shared by all processes), with a 2-question,
    2-sample evaluation at the last step. ``preempt=(step, process)``: that process alone gets SIGTERM
    after ``step``. Returns what ``run()`` returns."""
    base = dict(eval__test_freq=steps, eval__before_train=False, eval__n=2, eval__limit=2)
    base.update(changes)
    cfg = tiny_config(shape, steps, assets, run_dir, **base)
    if preempt is not None and jax.process_index() == preempt[1]:
        trainer: Trainer = _PreemptedTrainer(cfg, resume=resume, signal_after=preempt[0])
    else:
        trainer = Trainer(cfg, resume=resume)
    return trainer.run()


class _PreemptedTrainer(Trainer):
    """A Trainer that sends its own process SIGTERM after step ``signal_after`` (as a preemption
    notice reaching this host only)."""

    def __init__(self, cfg, resume: bool = False, *, signal_after: int):
        super().__init__(cfg, resume=resume)
        self._signal_after = signal_after

    def step(self, step: int) -> dict[str, float]:
        out = super().step(step)
        if step == self._signal_after:
            os.kill(os.getpid(), signal.SIGTERM)
        return out


def _step_process(text: str) -> tuple[int, int]:
    """``--preempt STEP:PROCESS`` -> (step, process)."""
    step, process = text.split(":")
    return int(step), int(process)


def max_abs_diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    if a.keys() != b.keys():
        raise ValueError(f"different parameter sets: {sorted(a.keys() ^ b.keys())[:4]}")
    return max(float(np.max(np.abs(a[k].astype(np.float64) - b[k].astype(np.float64)))) for k in a)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tempo_jax.plan.selfcheck",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--mesh", default="1,1,1", help="data,fsdp,tensor (product = global device count)")
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument(
        "--out", default=None, help=".npz with the parameters after the last step (process 0); required without --run"
    )
    parser.add_argument("--assets", default="runs/tiny_assets", help="tiny model + data (created if missing)")
    parser.add_argument("--run-dir", default="runs/selfcheck")
    parser.add_argument("--coordinator", default=None)
    parser.add_argument("--num-processes", type=int, default=None)
    parser.add_argument("--process-id", type=int, default=None)
    parser.add_argument("--lr", type=float, default=LR)
    parser.add_argument(
        "--run",
        action="store_true",
        help="run the whole training loop into the shared --run-dir instead of comparing steps",
    )
    parser.add_argument("--resume", action="store_true", help="with --run: continue from the latest checkpoint")
    parser.add_argument(
        "--preempt",
        default=None,
        metavar="STEP:PROCESS",
        help="with --run: SIGTERM to process PROCESS only, after step STEP",
    )
    args = parser.parse_args(argv)
    if not args.run and not args.out:
        parser.error("--out is required (unless --run)")

    init_distributed(args.coordinator, args.num_processes, args.process_id)
    assets = ensure_tiny_assets(args.assets)
    shape = tuple(int(s) for s in args.mesh.split(","))
    if args.run:
        preempt = _step_process(args.preempt) if args.preempt else None
        result = run_tiny_training(
            shape,
            args.steps,
            assets,
            args.run_dir,
            resume=args.resume,
            preempt=preempt,
            train__actor_lr=args.lr,
            train__critic_lr=args.lr,
        )
        print(
            f"process {jax.process_index()}/{jax.process_count()}: run on mesh {shape} over {jax.device_count()} "
            f"devices in {result['run_dir']}; stopped_by={result['stopped_by']}",
            flush=True,
        )
        return 0
    run_dir = os.path.join(args.run_dir, f"process_{jax.process_index()}")
    params = run_tiny_steps(shape, args.steps, assets, run_dir, train__actor_lr=args.lr, train__critic_lr=args.lr)
    if jax.process_index() == 0:
        # allow_pickle named (numpy's default): unnamed, mypy matches the ** arrays against it
        np.savez(args.out, allow_pickle=True, **params[-1])
    print(
        f"process {jax.process_index()}/{jax.process_count()}: {args.steps} steps on mesh {shape} over "
        f"{jax.device_count()} devices; parameters in {args.out}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
