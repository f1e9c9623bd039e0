"""The whole training loop (``Trainer.run``) as a two-process ``jax.distributed`` job in ONE shared run dir.

Two local processes x 2 CPU devices, mesh (2, 1, 2), the tiny TEMPO recipe for 2 steps:

1. SIGTERM reaches process 1 only, after step 1: both processes agree to stop there, save step 1
   and exit cleanly (no export);
2. a corrupt "step 2" checkpoint is planted; ``--resume`` on both: they agree it is unreadable, process 0
   moves it aside, both fall back to step 1, then run step 2, an evaluation, the step-2 checkpoint and
   the final export;
3. back in this (single) process: ``Trainer(resume=True)`` on one device restores the two-process
   checkpoint (layout and checksums verified), and the parameters, like the exported actor and
   critic, equal the one-device reference run within TOL.

Along the way: one metrics line per step, files written once (by process 0).
"""

import json
import os
import shutil

import jax
import numpy as np
from flax import nnx
from safetensors.numpy import load_file

from tempo_jax.plan.selfcheck import LR, STEPS, TOL, max_abs_diff, tiny_config
from tempo_jax.testing.multiprocess import describe, run_local_job


def _job(assets, run_dir, tmp_path, name, *extra):
    results = run_local_job(
        "tempo_jax.plan.selfcheck",
        [
            "--run",
            "--mesh",
            "2,1,2",
            "--steps",
            str(STEPS),
            "--assets",
            os.path.dirname(assets["model"]),
            "--run-dir",
            str(run_dir),
            "--lr",
            str(LR),
            *extra,
        ],
        tmp_path,
        log_name=name,
    )
    assert all(r.returncode == 0 for r in results), f"{name}: a process failed:\n{describe(results)}"
    return results


def _metric_steps(run_dir):
    with open(run_dir / "metrics.jsonl", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _flat(tree) -> dict[str, np.ndarray]:
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in flat}


def test_two_process_run_preempt_resume_export(assets, reference, tmp_path):
    run_dir = tmp_path / "run"

    # 1. a preemption notice on process 1 only stops both after step 1, with the step saved
    first = _job(assets, run_dir, tmp_path, "preempted", "--preempt", "1:1")
    assert "stopped_by=SIGTERM" in first[1].log
    assert "stopped_by=a stop request from another process" in first[0].log, describe(first)
    assert sorted(os.listdir(run_dir / "checkpoints")) == ["1"]
    assert [row["step"] for row in _metric_steps(run_dir)] == [1]
    assert not (run_dir / "export").exists()
    for name in ("config.json", "model_config.json", "tokenizer"):
        assert (run_dir / name).exists(), name

    # 2. a newer, corrupt checkpoint: both processes must give it up together and fall back to step 1
    ckpts = run_dir / "checkpoints"
    shutil.copytree(ckpts / "1", ckpts / "2")
    victims = [p for p in (ckpts / "2").rglob("*") if p.is_file() and p.stat().st_size > 0 and "actor" in str(p)]
    for p in victims:
        p.write_bytes(p.read_bytes()[: max(1, p.stat().st_size // 3)])
    # both resume: step 2, the evaluation at the last step, its checkpoint and the export
    second = _job(assets, run_dir, tmp_path, "resumed", "--resume")
    assert all("stopped_by=None" in r.log for r in second), describe(second)
    assert all("corrupt or incomplete" in r.log for r in second), describe(second)
    assert sorted(os.listdir(ckpts)) == ["1", "2", "2.corrupt-0"]
    rows = _metric_steps(run_dir)
    assert [row["step"] for row in rows] == [1, 2]  # one line per step, not one per process
    assert any(k.startswith("eval/") for k in rows[1]), sorted(rows[1])
    assert (run_dir / "eval" / "step_000002" / "results.json").is_file()

    # 3. the two-process checkpoint restores on one device (checksums verified) and matches one device
    from tempo_jax.models.hf_io import hf_tensors
    from tempo_jax.train.loop import Trainer

    cfg = tiny_config((1, 1, 1), STEPS, assets, str(run_dir), train__actor_lr=LR, train__critic_lr=LR)
    trainer = Trainer(cfg, resume=True)
    assert trainer.start_step == STEPS
    params = {"actor": trainer.actor.state.params, "critic": trainer.critic.state.params}
    diff = max_abs_diff(reference[-1], _flat(params))
    assert diff < TOL, f"two-process run (preempted + resumed) differs from one device by {diff:.3g}"

    # the export holds the one-device reference parameters, in HF layout
    leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
    ref = jax.tree_util.tree_unflatten(treedef, [reference[-1][jax.tree_util.keystr(p)] for p, _ in leaves])
    for role in ("actor", "critic"):
        graphdef = getattr(trainer, role).graphdef
        want = hf_tensors(nnx.merge(graphdef, ref[role]))
        got = load_file(str(run_dir / "export" / role / "model.safetensors"))
        assert got.keys() == want.keys(), role
        diff = max(float(np.max(np.abs(got[k].astype(np.float64) - want[k].astype(np.float64)))) for k in got)
        assert diff < TOL, f"exported {role} differs from the one-device run by {diff:.3g}"
    assert (run_dir / "export" / "actor" / "tokenizer_config.json").is_file()
