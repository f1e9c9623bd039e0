"""Check that a mesh (and a multi-process job) trains exactly like one device, on the tiny model.

Runs a few real TEMPO steps (rollout + grading + E-step + M-step) of the tiny recipe
(:mod:`tempo_jax.testing.tiny`) and returns the actor and critic parameters after each step.
The tests compare these across mesh shapes and process counts; on a new cluster the same
command checks that the multi-host start-up and collectives work before a long run::

    # on each of N hosts (or N local processes):
    python -m tempo_jax.parallel.selfcheck --mesh 2,1,2 --steps 2 --out /tmp/selfcheck.npz \\
        --coordinator HOST0:8476 --num-processes N --process-id I
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Sequence

import numpy as np


def run_tiny_steps(shape: Sequence[int], steps: int, assets: dict[str, str], run_dir: str,
                   **changes: Any) -> list[dict[str, np.ndarray]]:
    """Parameters (flattened ``{path: array}``, actor/ and critic/) after each of ``steps`` TEMPO steps."""
    import jax

    from tempo_jax.parallel.mesh import to_host
    from tempo_jax.testing.tiny import tiny_recipe
    from tempo_jax.train import setup
    from tempo_jax.train.loop import Trainer

    base = dict(run_dir=run_dir, mesh__shape=tuple(shape), checkpoint__async_save=False, log__tensorboard=False,
                grader__workers=1, train__total_steps=steps)
    base.update(changes)
    cfg = tiny_recipe("tempo", assets, **base)
    trainer = Trainer(cfg)
    out = []
    with setup.make_grader(cfg) as trainer.grader:
        for step in range(1, steps + 1):
            trainer.step(step)
            arrays = {"actor": trainer.actor.state.params, "critic": trainer.critic.state.params}
            flat = jax.tree_util.tree_flatten_with_path(to_host(arrays))[0]
            out.append({jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in flat})
    trainer.checkpointer.wait()
    return out


def max_abs_diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    if a.keys() != b.keys():
        raise ValueError(f"different parameter sets: {sorted(a.keys() ^ b.keys())[:4]}")
    return max(float(np.max(np.abs(a[k].astype(np.float64) - b[k].astype(np.float64)))) for k in a)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tempo_jax.parallel.selfcheck", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mesh", default="1,1,1", help="data,fsdp,tensor (product = global device count)")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--out", required=True, help=".npz with the parameters after the last step (process 0)")
    parser.add_argument("--assets", default="runs/tiny_assets", help="tiny model + data (created if missing)")
    parser.add_argument("--run-dir", default="runs/selfcheck")
    parser.add_argument("--coordinator", default=None)
    parser.add_argument("--num-processes", type=int, default=None)
    parser.add_argument("--process-id", type=int, default=None)
    parser.add_argument("--lr", type=float, default=1e-4)
    args = parser.parse_args(argv)

    from tempo_jax.parallel.distributed import init_distributed

    init_distributed(args.coordinator, args.num_processes, args.process_id)
    import jax

    from tempo_jax.testing.tiny import ensure_tiny_assets

    assets = ensure_tiny_assets(args.assets)
    run_dir = os.path.join(args.run_dir, f"process_{jax.process_index()}")
    shape = tuple(int(s) for s in args.mesh.split(","))
    params = run_tiny_steps(shape, args.steps, assets, run_dir, train__actor_lr=args.lr, train__critic_lr=args.lr)
    if jax.process_index() == 0:
        np.savez(args.out, **params[-1])
    print(f"process {jax.process_index()}/{jax.process_count()}: {args.steps} steps on mesh {shape} over "
          f"{jax.device_count()} devices; parameters in {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
