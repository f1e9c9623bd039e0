"""Sharded training equals one-device training: mesh shapes on 8 fake CPU devices, and two processes.

Each run is real TEMPO steps of the tiny recipe (rollout + grading + critic values + E-step + M-step);
parameters of actor and critic are compared leaf by leaf with the single-device run.
"""
import os
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from tempo_jax.parallel.selfcheck import max_abs_diff, run_tiny_steps
from tempo_jax.testing.tiny import ensure_tiny_assets

LR = 1e-4  # Adam moves every parameter by ~LR per step: 10x the tolerance, far above reduction-order noise
TOL = 1e-5
STEPS = 2


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    return ensure_tiny_assets(str(tmp_path_factory.mktemp("parallel_assets")))


@pytest.fixture(scope="module")
def reference(assets, tmp_path_factory):
    """Parameters after steps 1 and 2 on a single device (no mesh)."""
    return run_tiny_steps((1, 1, 1), STEPS, assets, str(tmp_path_factory.mktemp("ref")),
                          train__actor_lr=LR, train__critic_lr=LR)


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
    from tempo_jax.testing.tiny import tiny_recipe
    from tempo_jax.train.loop import Trainer

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
    from tempo_jax.testing.tiny import tiny_recipe
    from tempo_jax.train.loop import Trainer

    cfg = tiny_recipe("tempo", assets, run_dir=str(tmp_path / "run"), mesh__shape=(1, 8, 1),
                      mesh__rollout_shape=(4, 1, 2), log__tensorboard=False)
    trainer = Trainer(cfg)
    assert dict(trainer.rollout_mesh.shape) == {"data": 4, "fsdp": 1, "tensor": 2}
    params = trainer._rollout_params()
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(trainer.actor.state.params)):
        assert a.sharding.mesh is trainer.rollout_mesh
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# ------------------------------------------------------------------------------------------- multi-host
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one_process(assets, reference, tmp_path):
    """Two local processes x 2 CPU devices (jax.distributed + gloo), mesh (2, 1, 2): the data axis spans
    the processes, so each holds half the rows; 2 TEMPO steps equal the one-device run."""
    port = _free_port()
    env = dict(os.environ)
    env["XLA_FLAGS"] = " ".join(f for f in env.get("XLA_FLAGS", "").split()
                                if "xla_force_host_platform_device_count" not in f)
    env["XLA_FLAGS"] += " --xla_force_host_platform_device_count=2"
    env["JAX_PLATFORMS"] = "cpu"
    out = tmp_path / "params.npz"
    procs, logs = [], []
    for pid in range(2):
        log = open(tmp_path / f"process_{pid}.log", "w")
        logs.append(log)
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "tempo_jax.parallel.selfcheck", "--mesh", "2,1,2", "--steps", str(STEPS),
             "--out", str(out), "--assets", os.path.dirname(assets["model"]), "--run-dir", str(tmp_path / "runs"),
             "--coordinator", f"127.0.0.1:{port}", "--num-processes", "2", "--process-id", str(pid),
             "--lr", str(LR)], env=env, stdout=log, stderr=subprocess.STDOUT))
    deadline = time.time() + 420
    try:
        for p in procs:
            p.wait(timeout=max(1.0, deadline - time.time()))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        for log in logs:
            log.close()
    tails = {pid: (tmp_path / f"process_{pid}.log").read_text()[-3000:] for pid in range(2)}
    assert all(p.returncode == 0 for p in procs), f"worker failed: {tails}"
    assert "process 1/2" in tails[1] and "over 4 devices" in tails[0]
    got = dict(np.load(out))
    diff = max_abs_diff(reference[-1], got)
    assert diff < TOL, f"2 processes differ from one process by {diff:.3g}"
