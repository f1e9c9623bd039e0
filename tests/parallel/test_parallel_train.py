"""Sharded training equals one-device training: mesh shapes on 8 fake CPU devices, and two processes.

Each run is real TEMPO steps of the tiny recipe (rollout + grading + critic values + E-step + M-step);
parameters of actor and critic are compared leaf by leaf with the single-device run.
"""

import os

import jax
import numpy as np
import pytest

from tempo_jax.plan.selfcheck import LR, STEPS, TOL, max_abs_diff, run_tiny_steps
from tempo_jax.testing.multiprocess import describe, run_local_job


def test_reference_moves_parameters_well_beyond_the_tolerance(reference):
    # The comparisons below are only meaningful if a step changes parameters by much more than TOL.
    assert max_abs_diff(reference[0], reference[1]) > 5 * TOL


MESHES = [
    pytest.param((2, 2, 2), id="2x2x2"),
    pytest.param((8, 1, 1), id="8x1x1", marks=pytest.mark.slow),
    pytest.param((2, 4, 1), id="2x4x1", marks=pytest.mark.slow),
    pytest.param((1, 2, 4), id="1x2x4", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("shape", MESHES)
def test_one_tempo_step_on_a_mesh_matches_one_device(shape, assets, reference, tmp_path):
    assert jax.device_count() == 8
    got = run_tiny_steps(shape, 1, assets, str(tmp_path / "run"), train__actor_lr=LR, train__critic_lr=LR)
    diff = max_abs_diff(reference[0], got[0])
    assert diff < TOL, f"mesh {shape}: parameters differ from the one-device run by {diff:.3g}"


def test_trainer_places_states_and_batches_on_the_mesh(assets, tmp_path):
    from tempo_jax.train.loop import Trainer
    from tempo_jax.train.tiny import tiny_recipe

    cfg = tiny_recipe("tempo", assets, run_dir=str(tmp_path / "run"), mesh__shape=(2, 2, 2), log__tensorboard=False)
    trainer = Trainer(cfg)
    assert dict(trainer.mesh.shape) == {"data": 2, "fsdp": 2, "tensor": 2}
    assert trainer.rollout_mesh is trainer.mesh  # rollouts read the training arrays, no copy
    assert trainer._rollout_params() is trainer.actor.state.params
    for role in (trainer.actor, trainer.critic):
        leaves = jax.tree.leaves(role.state)
        assert all(x.sharding.mesh.shape == trainer.mesh.shape for x in leaves)
        sharded = [x for x in leaves if not x.sharding.is_fully_replicated]
        assert sharded, "no parameter is split over the mesh"
        mu = role.state.opt_state[1][0].mu  # clip -> adamw(scale_by_adam) state
        flat_mu, flat_p = jax.tree.leaves(mu), jax.tree.leaves(role.state.params)
        assert [m.sharding.spec for m in flat_mu] == [p.sharding.spec for p in flat_p]


def test_separate_rollout_mesh_reshards_the_actor(assets, tmp_path):
    from tempo_jax.train.loop import Trainer
    from tempo_jax.train.tiny import tiny_recipe

    cfg = tiny_recipe(
        "tempo",
        assets,
        run_dir=str(tmp_path / "run"),
        mesh__shape=(1, 8, 1),
        mesh__rollout_shape=(4, 1, 2),
        log__tensorboard=False,
    )
    trainer = Trainer(cfg)
    assert dict(trainer.rollout_mesh.shape) == {"data": 4, "fsdp": 1, "tensor": 2}
    params = trainer._rollout_params()
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(trainer.actor.state.params)):
        assert a.sharding.mesh is trainer.rollout_mesh
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# ------------------------------------------------------------------------------------------- multi-host
def test_two_processes_match_one_process(assets, reference, tmp_path):
    """Two local processes x 2 CPU devices (jax.distributed + gloo), mesh (2, 1, 2): the data axis spans
    the processes, so each holds half the rows; 2 TEMPO steps equal the one-device run."""
    out = tmp_path / "params.npz"
    results = run_local_job(
        "tempo_jax.plan.selfcheck",
        [
            "--mesh",
            "2,1,2",
            "--steps",
            str(STEPS),
            "--out",
            str(out),
            "--assets",
            os.path.dirname(assets["model"]),
            "--run-dir",
            str(tmp_path / "runs"),
            "--lr",
            str(LR),
        ],
        tmp_path,
    )
    assert all(r.returncode == 0 for r in results), f"worker failed:\n{describe(results)}"
    assert "process 1/2" in results[1].log and "over 4 devices" in results[0].log
    got = dict(np.load(out))
    diff = max_abs_diff(reference[-1], got)
    assert diff < TOL, f"2 processes differ from one process by {diff:.3g}"
