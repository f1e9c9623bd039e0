"""Checkpointer (Orbax) and PreemptionGuard: round trip, retention, corruption fall-back, resharding, signals."""

from __future__ import annotations

import logging
import os
import pathlib
import signal
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from tempo_jax.models.config import ModelConfig, RopeConfig
from tempo_jax.models.decoder import CausalLM
from tempo_jax.train.checkpoint import Checkpointer, CheckpointMismatchError, CheckpointRestoreError
from tempo_jax.train.optim import make_optimizer
from tempo_jax.train.preemption import PreemptionGuard
from tempo_jax.train.state import TrainState, create_train_state

# A failed Orbax read leaves its other pending reads to fail after the asyncio loop has closed
# ("Event loop is closed", reported by pytest as unraisable, in whichever test is running then).
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")

REPO = pathlib.Path(__file__).resolve().parents[2]
CFG = ModelConfig(
    model_type="qwen3",
    vocab_size=64,
    hidden_size=32,
    intermediate_size=64,
    num_layers=2,
    num_heads=4,
    num_kv_heads=2,
    head_dim=8,
    rope=RopeConfig(theta=1e4),
    qk_norm="head",
)


def _filled(abstract, seed):
    """Concrete leaves with non-trivial values (Adam moments start at zero, which would make bit-exactness
    vacuous); filled on the host, which is much cheaper here than initialising the model eagerly."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda x: jnp.asarray(
            rng.standard_normal(x.shape).astype(x.dtype)
            if jnp.issubdtype(x.dtype, jnp.floating)
            else np.full(x.shape, 7 + seed, x.dtype)
        ),
        abstract,
    )


@pytest.fixture(scope="module")
def states():
    """(actor, critic) TrainStates of the tiny Qwen3-style CausalLM, with random values in every leaf."""
    abstract = jax.eval_shape(lambda: create_train_state(CausalLM(CFG, rngs=nnx.Rngs(0)), make_optimizer(1e-3))[1])
    return _filled(abstract, 1), _filled(abstract, 2)


def small(step):
    return {
        "w": jnp.arange(256, dtype=jnp.float32).reshape(16, 16) * step,
        "b": jnp.full((3,), step, jnp.bfloat16),
        "n": jnp.asarray(step, jnp.int32),
    }


SMALL_ABSTRACT = {"actor": jax.eval_shape(lambda: small(1))}


def save_steps(directory, steps, **kw):
    ckpt = Checkpointer(directory, **kw)
    for s in steps:
        assert ckpt.save(s, {"actor": small(s), "critic": None}, {"step": s})
    ckpt.wait()
    return ckpt


def assert_bit_equal(a, b):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert jax.tree.structure(a) == jax.tree.structure(b) and len(la) == len(lb)
    for x, y in zip(la, lb):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape
        assert x.tobytes() == y.tobytes()


def data_files(step_dir: pathlib.Path):
    return sorted(p for p in step_dir.rglob("*") if p.is_file() and p.parent.name == "d")


# ---------------------------------------------------------------------------------------------- round trip
def test_round_trip_bit_exact_with_meta(tmp_path, states):
    actor, critic = states
    meta = {
        "data": {"epoch": 1, "position": 37, "seed": 0},
        "config": {"method": "tempo", "lr": 1e-6, "n": [1, 2]},
        "rng_seed": 1234,
        "metrics": {"reward": -0.25, "note": "ok"},
    }
    with Checkpointer(tmp_path / "ck") as ckpt:
        assert ckpt.save(5, {"actor": actor, "critic": critic}, meta)
        # async: save returned after copying to host; the trainer may donate the arrays right away
        donated = jax.tree.map(lambda x: x + 0, actor)
        assert ckpt.save(6, {"actor": donated, "critic": None}, {})
        jax.tree.map(lambda x: x.delete(), donated)
        ckpt.wait()
        assert ckpt.all_steps() == [5, 6] and ckpt.latest_step() == 6

    ckpt = Checkpointer(tmp_path / "ck")  # a fresh process would do this
    abstract = {"actor": jax.eval_shape(lambda: actor), "critic": jax.eval_shape(lambda: critic)}
    step, arrays, got_meta = ckpt.restore(abstract, step=5)
    assert step == 5 and got_meta == meta
    assert isinstance(arrays["actor"], TrainState) and isinstance(arrays["actor"].params, nnx.State)
    assert_bit_equal(arrays["actor"], actor)
    assert_bit_equal(arrays["critic"], critic)
    assert int(arrays["actor"].step) == int(actor.step)

    # latest (6) was saved without a critic: asking for None is fine, asking for a critic is a clear error
    step, arrays, _ = ckpt.restore({"actor": actor, "critic": None})  # concrete arrays as templates
    assert step == 6 and arrays["critic"] is None
    assert_bit_equal(arrays["actor"], actor)
    with pytest.raises(CheckpointMismatchError, match=r"without 'critic'"):
        ckpt.restore(abstract)
    assert ckpt.all_steps() == [5, 6]  # a mismatch is not corruption: nothing moved aside


def test_missing_or_mismatched_item_is_a_clear_error(tmp_path):
    ckpt = save_steps(tmp_path, [1])
    with pytest.raises(CheckpointMismatchError, match=r"has no 'value_head'"):
        ckpt.restore({**SMALL_ABSTRACT, "value_head": SMALL_ABSTRACT["actor"]})
    wrong = {"actor": {**small(1), "w": jnp.zeros((8, 16))}}
    with pytest.raises(CheckpointMismatchError, match=r"\['w'\].*\[16, 16\].*\[8, 16\]"):
        ckpt.restore(wrong)
    with pytest.raises(CheckpointMismatchError, match=r"not in the checkpoint: \['extra'\]"):
        ckpt.restore({"actor": {**small(1), "extra": jnp.zeros(2)}})
    assert ckpt.all_steps() == [1] and sorted(os.listdir(tmp_path)) == ["1"]
    with pytest.raises(CheckpointRestoreError, match="no checkpoint for step 9"):
        ckpt.restore(SMALL_ABSTRACT, step=9)
    with pytest.raises(CheckpointRestoreError, match="no checkpoints in"):
        Checkpointer(tmp_path / "empty").restore(SMALL_ABSTRACT)


def test_save_validation(tmp_path):
    ckpt = Checkpointer(tmp_path, async_save=False)
    with pytest.raises(TypeError, match="JSON-serialisable"):
        ckpt.save(1, {"actor": small(1)}, {"x": np.zeros(2)})
    with pytest.raises(ValueError, match="not allowed"):
        ckpt.save(1, {"meta": small(1)}, {})
    assert ckpt.all_steps() == []


# ---------------------------------------------------------------------------------------------- retention
def test_keep_last_k_and_save_every(tmp_path):
    ckpt = Checkpointer(tmp_path, keep=2, save_every=2)
    saved = [ckpt.save(s, {"actor": small(s)}, {"s": s}) for s in range(1, 8)]
    assert saved == [False, True, False, True, False, True, False]
    ckpt.wait()
    assert ckpt.all_steps() == [4, 6]
    assert ckpt.save(7, {"actor": small(7)}, {"s": 7}, force=True)  # e.g. on SIGTERM
    assert not ckpt.save(7, {"actor": small(7)}, {"s": 7}, force=True)  # already there: no-op
    ckpt.wait()
    assert ckpt.all_steps() == [6, 7] and ckpt.latest_step() == 7
    assert sorted(os.listdir(tmp_path)) == ["6", "7"]
    step, arrays, meta = ckpt.restore(SMALL_ABSTRACT)
    assert step == 7 and meta == {"s": 7}
    assert_bit_equal(arrays["actor"], small(7))
    # the decision is Orbax's policy: the interval, for steps newer than the latest checkpoint
    assert [ckpt.should_save(s) for s in (6, 7, 8, 9, 10)] == [False, False, True, False, True]
    assert ckpt.should_save(9, force=True) and not ckpt.should_save(5, force=False)


# ---------------------------------------------------------------------------------------------- corruption
def _truncate_data(step_dir):
    f = max(data_files(step_dir), key=lambda p: p.stat().st_size)
    os.truncate(f, f.stat().st_size // 2)


def _bad_meta_json(step_dir):
    (step_dir / "meta" / "metadata").write_text('{"step": ')


def _missing_tensors(step_dir):
    for f in data_files(step_dir / "actor"):
        f.unlink()


def _bytes_changed_in_place(step_dir):  # not detected by Orbax itself: caught by the recorded checksums
    f = max(data_files(step_dir), key=lambda p: p.stat().st_size)
    with open(f, "r+b") as fh:
        fh.seek(f.stat().st_size // 2)
        fh.write(b"\0" * 64)


@pytest.mark.parametrize("corrupt", [_truncate_data, _bad_meta_json, _missing_tensors, _bytes_changed_in_place])
def test_corrupt_latest_falls_back_and_is_moved_aside(tmp_path, caplog, corrupt):
    save_steps(tmp_path, [1, 2, 3])
    corrupt(tmp_path / "3")
    files_before = sorted(p.relative_to(tmp_path / "3") for p in (tmp_path / "3").rglob("*"))

    ckpt = Checkpointer(tmp_path)
    with caplog.at_level(logging.ERROR, logger="tempo_jax.train.checkpoint"):
        step, arrays, meta = ckpt.restore(SMALL_ABSTRACT)
    assert step == 2 and meta == {"step": 2}
    assert_bit_equal(arrays["actor"], small(2))
    msg = caplog.text
    assert f"{tmp_path / '3'} is corrupt" in msg and "falling back" in msg and "3.corrupt-0" in msg

    moved = tmp_path / "3.corrupt-0"  # moved aside whole, nothing deleted
    assert sorted(p.relative_to(moved) for p in moved.rglob("*")) == files_before
    assert ckpt.all_steps() == [1, 2] and ckpt.latest_step() == 2

    # training resumes from 2 and saves step 3 again; a second corruption of 3 does not overwrite the first
    assert ckpt.save(3, {"actor": small(3)}, {"step": 3})
    ckpt.wait()
    assert ckpt.restore(SMALL_ABSTRACT)[0] == 3
    corrupt(tmp_path / "3")
    assert ckpt.restore(SMALL_ABSTRACT)[0] == 2
    assert sorted(os.listdir(tmp_path)) == ["1", "2", "3.corrupt-0", "3.corrupt-1"]


def test_all_corrupt_is_a_clear_error(tmp_path, caplog):
    save_steps(tmp_path, [1, 2])
    _truncate_data(tmp_path / "2")
    _bad_meta_json(tmp_path / "1")
    with caplog.at_level(logging.ERROR, logger="tempo_jax.train.checkpoint"):
        with pytest.raises(CheckpointRestoreError) as err:
            Checkpointer(tmp_path).restore(SMALL_ABSTRACT)
    text = str(err.value)
    assert str(tmp_path) in text and "step 2" in text and "step 1" in text and "JSONDecodeError" in text
    assert sorted(os.listdir(tmp_path)) == ["1.corrupt-0", "2.corrupt-0"]


def test_a_step_unreadable_on_another_process_is_given_up_here_too(tmp_path, monkeypatch, caplog):
    """Multi-process: a shard only one process reads can be the broken one; every process must then give
    up that step together (the agreement is faked here: 'another process' fails the first step tried)."""
    import tempo_jax.train.checkpoint as checkpoint

    save_steps(tmp_path, [1, 2])
    local_failures = []
    monkeypatch.setattr(checkpoint, "any_process", lambda flag: local_failures.append(flag) or len(local_failures) == 1)
    with caplog.at_level(logging.ERROR, logger="tempo_jax.train.checkpoint"):
        step, arrays, meta = Checkpointer(tmp_path).restore(SMALL_ABSTRACT)
    assert step == 1 and meta == {"step": 1} and local_failures == [False, False]  # both read fine here
    assert_bit_equal(arrays["actor"], small(1))
    assert "could not be read on another process" in caplog.text
    assert sorted(os.listdir(tmp_path)) == ["1", "2.corrupt-0"]


def test_read_only_restore_falls_back_without_moving_or_creating_anything(tmp_path, caplog):
    save_steps(tmp_path, [1, 2, 3])
    _truncate_data(tmp_path / "3")
    (tmp_path / "4.orbax-checkpoint-tmp-123").mkdir()  # a half-written save: a writer would clean it up
    listing = sorted(os.listdir(tmp_path))
    with caplog.at_level(logging.ERROR, logger="tempo_jax.train.checkpoint"):
        step, arrays, _ = Checkpointer(tmp_path, read_only=True).restore(SMALL_ABSTRACT)
    assert step == 2 and "left in place" in caplog.text
    assert_bit_equal(arrays["actor"], small(2))
    assert sorted(os.listdir(tmp_path)) == listing
    reader = Checkpointer(tmp_path, read_only=True)
    assert not reader.should_save(4, force=True) and not reader.save(4, {"actor": small(4)}, {}, force=True)
    assert sorted(os.listdir(tmp_path)) == listing
    with pytest.raises(CheckpointRestoreError, match="no checkpoint directory"):
        Checkpointer(tmp_path / "absent", read_only=True)
    assert not (tmp_path / "absent").exists()


@pytest.mark.parametrize(
    "failure",
    [
        PermissionError(13, "Permission denied"),
        OSError(5, "Input/output error"),
        ValueError("NOT_FOUND: Error opening file: PERMISSION_DENIED: open failed"),
    ],
)
def test_storage_failure_is_not_taken_for_corruption(tmp_path, monkeypatch, failure):
    """An unreadable mount (EACCES, EIO, a TensorStore PERMISSION_DENIED) says nothing about the files:
    the restore stops and no healthy checkpoint is renamed."""
    save_steps(tmp_path, [1, 2])
    monkeypatch.setattr(Checkpointer, "_read_step", lambda self, step, abstract: (_ for _ in ()).throw(failure))
    with pytest.raises(
        CheckpointRestoreError,
        match=r"the storage failed, not necessarily the checkpoint, so nothing "
        r"was moved",
    ):
        Checkpointer(tmp_path).restore(SMALL_ABSTRACT)
    assert sorted(os.listdir(tmp_path)) == ["1", "2"]


def test_explicit_corrupt_step_is_not_substituted(tmp_path):
    save_steps(tmp_path, [1, 2])
    _truncate_data(tmp_path / "2")
    ckpt = Checkpointer(tmp_path)
    with pytest.raises(CheckpointRestoreError, match=r"2 could not be restored"):
        ckpt.restore(SMALL_ABSTRACT, step=2)
    assert ckpt.all_steps() == [1, 2]  # left in place for inspection


def test_kill_during_save_leaves_only_an_ignored_tmp_dir(tmp_path):
    """SIGKILL right before Orbax's final rename: every byte written, yet step 2 must not count."""
    script = textwrap.dedent(f"""
        import os, signal, jax.numpy as jnp
        from orbax.checkpoint._src.path import atomicity
        from tempo_jax.train.checkpoint import Checkpointer
        ck = Checkpointer({str(tmp_path)!r})
        ck.save(1, {{"actor": {{"w": jnp.ones((16, 16))}}}}, {{"step": 1}}); ck.wait()
        original = atomicity.AtomicRenameTemporaryPath.finalize
        async def finalize(self):
            if self._final_path.name == "2":
                os.kill(os.getpid(), signal.SIGKILL)
            return await original(self)
        atomicity.AtomicRenameTemporaryPath.finalize = finalize
        ck.save(2, {{"actor": {{"w": jnp.full((16, 16), 2.0)}}}}, {{"step": 2}}); ck.wait()
        print("not killed")
    """)
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env["XLA_FLAGS"] = env.get("XLA_FLAGS", "").replace("--xla_force_host_platform_device_count=8", "")
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr[-2000:]
    tmp_dirs = [p.name for p in tmp_path.iterdir() if p.name.startswith("2.orbax-checkpoint-tmp")]
    assert tmp_dirs and not (tmp_path / "2").exists()

    ckpt = Checkpointer(tmp_path)
    assert ckpt.latest_step() == 1 and ckpt.all_steps() == [1]
    step, arrays, meta = ckpt.restore({"actor": {"w": jax.ShapeDtypeStruct((16, 16), jnp.float32)}})
    assert step == 1 and meta == {"step": 1} and float(arrays["actor"]["w"][0, 0]) == 1.0
    assert ckpt.save(2, {"actor": {"w": jnp.full((16, 16), 2.0)}}, {"step": 2})
    ckpt.wait()
    assert ckpt.all_steps() == [1, 2]
    assert sorted(os.listdir(tmp_path)) == ["1", "2"]  # the stale tmp dir was cleaned up on open


# ---------------------------------------------------------------------------------------------- resharding
def _shard_like(tree, mesh, spec_fn):
    return jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=NamedSharding(mesh, spec_fn(x))),
        jax.eval_shape(lambda: tree),
    )


def test_restore_onto_a_different_sharding(tmp_path, states):
    actor, _ = states
    devices = np.array(jax.devices()[:8])
    assert devices.size == 8, "tests/conftest.py should configure 8 fake CPU devices"
    mesh_a = Mesh(devices, ("fsdp",))
    mesh_b = Mesh(devices.reshape(2, 4), ("data", "tensor"))

    def spec_a(x):  # shard dim 0 over 8 where it divides
        return P("fsdp") if x.ndim and x.shape[0] % 8 == 0 else P()

    def spec_b(x):  # shard the last dim over 4, replicate over 'data'
        return P(*([None] * (x.ndim - 1)), "tensor") if x.ndim and x.shape[-1] % 4 == 0 else P()

    saved_state = jax.tree.map(lambda x, s: jax.device_put(x, s.sharding), actor, _shard_like(actor, mesh_a, spec_a))
    assert any(
        len(x.sharding.device_set) == 8 and not x.sharding.is_fully_replicated for x in jax.tree.leaves(saved_state)
    )
    ckpt = Checkpointer(tmp_path)
    ckpt.save(1, {"actor": saved_state}, {})
    ckpt.wait()

    target = _shard_like(actor, mesh_b, spec_b)
    step, arrays, _ = ckpt.restore({"actor": target})
    for got, want in zip(jax.tree.leaves(arrays["actor"]), jax.tree.leaves(target)):
        assert got.sharding == want.sharding
    assert_bit_equal(arrays["actor"], actor)

    # and onto one device (no sharding given in the abstract)
    _, arrays, _ = ckpt.restore(
        {"actor": jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), jax.eval_shape(lambda: actor))}
    )
    assert all(len(x.sharding.device_set) == 1 for x in jax.tree.leaves(arrays["actor"]))
    assert_bit_equal(arrays["actor"], actor)


# ---------------------------------------------------------------------------------------------- preemption
def test_preemption_guard_turns_sigterm_into_a_flag():
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    with PreemptionGuard() as guard:
        assert not guard.requested and not guard.should_stop()
        os.kill(os.getpid(), signal.SIGTERM)
        assert guard.requested and guard.signal_name == "SIGTERM" and guard.should_stop()
    assert {s: signal.getsignal(s) for s in before} == before


def test_preemption_guard_sigint_then_second_signal_forces():
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        with PreemptionGuard() as guard:
            signal.raise_signal(signal.SIGINT)
            assert guard.requested and guard.signal_name == "SIGINT"
            signal.raise_signal(signal.SIGINT)  # impatient second Ctrl-C: the previous handler runs
            pytest.fail("second SIGINT should have raised KeyboardInterrupt")
    assert signal.getsignal(signal.SIGINT) is before


def test_preemption_guard_can_swallow_repeats_and_be_requested():
    with PreemptionGuard(second_signal_forces=False) as guard:
        signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGTERM)
        assert guard.requested and guard.signal_name == "SIGTERM"
    with PreemptionGuard() as guard:
        guard.request("time budget")
        assert guard.should_stop() and guard.signal_name == "time budget"
