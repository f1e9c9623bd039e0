"""Mesh construction and validation, train-state and batch placement, host <-> global arrays, start-up."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from flax import nnx
from jax.sharding import PartitionSpec as P

from tempo_jax.models.decoder import CausalLM
from tempo_jax.parallel import distributed
from tempo_jax.parallel.mesh import (
    MeshError,
    batch_sharding,
    constrain_rows,
    host_to_global,
    local_rows,
    make_mesh,
    mesh_from_config,
    on_mesh,
    resolve_shape,
    rollout_mesh_from_config,
    shard_batch,
    shard_train_state,
    to_host,
    validate_mesh_config,
)
from tempo_jax.train.state import create_train_state
from tempo_jax.train.tiny import tiny_model_config


def _cfg(shape, rollout_shape=()):
    c = ml_collections.ConfigDict()
    c.mesh = ml_collections.ConfigDict(dict(shape=shape, rollout_shape=rollout_shape, topology=""))
    return c


def test_shapes_resolve_and_wildcard():
    assert resolve_shape((2, -1, 2), 8) == (2, 2, 2)
    assert resolve_shape((1, 8, 1), 8) == (1, 8, 1)


@pytest.mark.parametrize(
    "shape, match",
    [
        ((2, 2, 1), "uses 4 devices but 8 are available"),
        ((3, -1, 1), "do not split"),
        ((2, 2), "must have 3 entries"),
        ((0, 8, 1), "positive"),
        ((-1, -1, 8), "positive"),
    ],
)
def test_bad_shapes_say_what_to_change(shape, match):
    with pytest.raises(MeshError, match=match):
        resolve_shape(shape, 8)


def test_config_validation_messages_and_single_device_default():
    assert validate_mesh_config(_cfg((1, 1, 1)), 8) == []
    assert validate_mesh_config(_cfg((2, 4, 1), (8, 1, 1)), 8) == []
    errors = validate_mesh_config(_cfg((2, 2, 1), (3, 1, 1)), 8)
    assert len(errors) == 2 and "mesh.shape=(2, 2, 1)" in errors[0] and "mesh.rollout_shape" in errors[1]
    assert mesh_from_config(_cfg((1, 1, 1))) is None


def test_rollout_mesh_is_the_training_mesh_unless_another_shape_is_given():
    train = mesh_from_config(_cfg((2, 4, 1)))
    assert rollout_mesh_from_config(_cfg((2, 4, 1)), train) is train
    assert rollout_mesh_from_config(_cfg((2, 4, 1), (2, 4, 1)), train) is train
    other = rollout_mesh_from_config(_cfg((2, 4, 1), (-1, 1, 2)), train)
    assert dict(other.shape) == {"data": 4, "fsdp": 1, "tensor": 2}
    assert set(other.devices.flat) == set(train.devices.flat)


def test_train_state_params_by_role_and_adam_moments_mirror_them():
    mesh = make_mesh((1, 4, 2))
    model = CausalLM(tiny_model_config(128, tie_word_embeddings=False), nnx.Rngs(0))
    _, state = create_train_state(model, optax.adamw(1e-3))
    placed = shard_train_state(state, mesh, stacked=False)
    q = placed.params["model"]["layers"][0]["self_attn"]["q_proj"]["kernel"]
    assert q.sharding.spec == P("fsdp", "tensor")
    mu = placed.opt_state[0].mu["model"]["layers"][0]["self_attn"]["q_proj"]["kernel"]
    assert mu.sharding.spec == q.sharding.spec
    assert placed.opt_state[0].count.sharding.is_fully_replicated and placed.step.sharding.is_fully_replicated
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(placed)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_batches_split_rows_over_data_and_fsdp():
    mesh = make_mesh((2, 2, 2))
    batch = {"tokens": np.arange(8 * 3).reshape(8, 3), "odd": np.arange(6), "flag": np.ones(8, bool)}
    dev = shard_batch(batch, mesh)
    assert dev["tokens"].sharding.spec == P(("data", "fsdp"))
    assert dev["tokens"].addressable_shards[0].data.shape == (2, 3)
    assert dev["odd"].sharding.is_fully_replicated  # 6 rows do not split 4 ways: replicated, still correct
    host = to_host(dev)
    for k in batch:
        np.testing.assert_array_equal(host[k], batch[k])
    assert local_rows(batch_sharding(mesh, (8, 3)), (8, 3)) == slice(0, 8)  # one process holds every row
    np.testing.assert_array_equal(
        np.asarray(host_to_global(batch["tokens"], batch_sharding(mesh, (8, 3)))), batch["tokens"]
    )
    assert shard_batch(batch, None)["tokens"].shape == (8, 3)


def test_row_constraint_applies_only_under_a_mesh():
    mesh = make_mesh((2, 2, 2))
    x = jnp.ones((8, 4))
    assert constrain_rows(x) is x  # no active mesh: untouched
    fn = on_mesh(jax.jit(lambda a: constrain_rows(a * 2)), mesh)
    out = fn(x)
    assert out.sharding.spec[0] == ("data", "fsdp")
    np.testing.assert_array_equal(np.asarray(out), 2 * np.ones((8, 4)))


def test_distributed_start_up_is_a_no_op_on_one_host_and_checks_its_arguments(monkeypatch):
    for name in (
        "TEMPO_JAX_COORDINATOR",
        "JAX_COORDINATOR_ADDRESS",
        "TEMPO_JAX_NUM_PROCESSES",
        "JAX_NUM_PROCESSES",
        "TEMPO_JAX_PROCESS_ID",
        "JAX_PROCESS_ID",
        "TPU_WORKER_HOSTNAMES",
        "TEMPO_JAX_DISTRIBUTED",
    ):
        monkeypatch.delenv(name, raising=False)
    assert distributed.init_distributed() is False
    monkeypatch.setenv("TEMPO_JAX_COORDINATOR", "127.0.0.1:1")
    with pytest.raises(ValueError, match="missing"):
        distributed.init_distributed()
    with pytest.raises(ValueError, match="process_id=3"):
        distributed.init_distributed(num_processes=2, process_id=3)
    monkeypatch.setenv("TEMPO_JAX_DISTRIBUTED", "off")
    assert distributed.init_distributed() is False
    assert distributed.is_primary()


def test_any_process_and_barrier_are_local_on_one_process_and_collective_on_several(monkeypatch):
    from jax.experimental import multihost_utils

    assert distributed.any_process(True) is True and distributed.any_process(False) is False
    distributed.barrier("one process: returns at once")  # nothing to wait for
    calls = []
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    monkeypatch.setattr(multihost_utils, "process_allgather", lambda x: calls.append(x) or np.array([x, 1]))
    monkeypatch.setattr(multihost_utils, "sync_global_devices", lambda name: calls.append(name))
    assert distributed.any_process(False) is True  # the other process asked: everybody stops
    distributed.barrier("tempo_jax_test")
    assert calls == [0, "tempo_jax_test"]

    from tempo_jax.train.preemption import PreemptionGuard

    guard = PreemptionGuard()
    assert not guard.requested and guard.should_stop()  # agreed over processes, not the local flag
