"""End-to-end trainer runs on the tiny model: every method, metrics, frozen critic, NaN guard."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tempo_jax.train.loop import Trainer, TrainingDiverged
from tempo_jax.train.metrics import read_metrics

METHODS = ["tempo", "stage1", "zero_rl_ppo", "ttrl", "empo"]
ALWAYS = [
    "reward/mean",
    "acc/all",
    "actor/loss",
    "actor/grad_norm",
    "actor/pg_loss",
    "actor/clip_fraction",
    "actor/approx_kl",
    "actor/entropy",
    "advantages/mean",
    "response_length/mean",
    "time/rollout",
    "time/grading",
    "time/m_step",
    "perf/rollout_tokens_per_s",
    "filter/kept_groups",
]
CRITIC = ["critic/loss", "critic/vf_loss", "critic/explained_var", "critic/vf_clip_fraction", "time/e_step"]


def _params(state):
    return [np.asarray(x) for x in jax.tree.leaves(state.params)]


@pytest.mark.parametrize("method", METHODS)
def test_each_method_runs_three_steps_with_finite_metrics(method, tiny_config):
    cfg = tiny_config(method)
    trainer = Trainer(cfg)
    actor_before = _params(trainer.actor.state)
    result = trainer.run()
    rows = [r for r in read_metrics(cfg.run_dir) if "actor/loss" in r]
    assert [r["step"] for r in rows] == [1, 2, 3]
    expected = ALWAYS + (CRITIC if method in ("tempo", "stage1", "zero_rl_ppo") else [])
    if method == "ttrl":
        expected.append("ttrl/label_accuracy")
    for row in rows:
        missing = [k for k in expected if k not in row]
        assert not missing, f"{method}: missing metrics {missing}"
        bad = {k: v for k, v in row.items() if isinstance(v, float) and not math.isfinite(v)}
        assert not bad, f"{method}: non-finite metrics {bad}"
        assert 0.0 <= row["acc/all"] <= 1.0
    assert result["stopped_by"] is None
    moved = any(not np.array_equal(a, b) for a, b in zip(actor_before, _params(trainer.actor.state)))
    # A random model never writes a boxed answer, so TTRL/EMPO rewards can all tie (zero
    # advantage): then, and only then, the actor must not move (weight decay is 0).
    signal = any(r.get("advantages/std", 0.0) > 0 for r in rows)
    assert moved == signal, f"{method}: actor moved={moved} but advantage signal={signal}"
    assert (trainer.critic is None) == (method in ("ttrl", "empo"))
    # one compile per update: the state's placement does not change after the first step
    for role in (trainer.actor, trainer.critic):
        if role is not None:
            assert role.update._cache_size() == 1


def test_tempo_batch_mixes_labeled_and_unlabeled(tiny_config):
    trainer = Trainer(tiny_config("tempo", train__total_steps=2, data__replicate_unlabeled_to=32))
    assert trainer.data_report == {"labeled": 32, "unlabeled": 8}
    trainer.run()
    rows = [r for r in read_metrics(trainer.run_dir) if "actor/loss" in r]
    assert any(0.0 < r["batch/labeled_fraction"] < 1.0 for r in rows)
    assert any("acc/labeled" in r and "acc/unlabeled" in r for r in rows)


def test_frozen_critic_is_bit_identical_and_actor_moves(tiny_config):
    trainer = Trainer(tiny_config("tempo_frozen_critic", train__critic_lr=0.0))
    critic_before = _params(trainer.critic.state)
    trainer.run()
    after = _params(trainer.critic.state)
    assert all(np.array_equal(a, b) for a, b in zip(critic_before, after))
    rows = [r for r in read_metrics(trainer.run_dir) if "actor/loss" in r]
    assert all(r["critic/updated"] == 0.0 for r in rows)


def test_e_step_touches_only_critic_and_m_step_only_actor(tiny_config):
    trainer = Trainer(tiny_config("tempo", train__total_steps=1))
    actor0, critic0 = _params(trainer.actor.state), _params(trainer.critic.state)
    real_actor_update = trainer.actor.update
    seen = {}

    def spy(state, batch, rng):
        # When the M-step starts, the E-step has run: critic moved, actor untouched.
        seen["actor_unchanged"] = all(np.array_equal(a, b) for a, b in zip(actor0, _params(trainer.actor.state)))
        seen["critic_changed"] = any(not np.array_equal(a, b) for a, b in zip(critic0, _params(trainer.critic.state)))
        critic_mid = _params(trainer.critic.state)
        out = real_actor_update(state, batch, rng)
        seen["critic_unchanged_by_m"] = all(
            np.array_equal(a, b) for a, b in zip(critic_mid, _params(trainer.critic.state))
        )
        return out

    trainer.actor.update = spy
    trainer.run()
    assert seen == {"actor_unchanged": True, "critic_changed": True, "critic_unchanged_by_m": True}
    assert any(not np.array_equal(a, b) for a, b in zip(actor0, _params(trainer.actor.state)))


def test_nan_updates_are_skipped_then_run_stops_with_checkpoint_intact(tiny_config):
    cfg = tiny_config("tempo", train__total_steps=6, train__max_consecutive_bad_steps=3)
    trainer = Trainer(cfg)
    advantages, steps = trainer.advantages, iter(range(1, 7))

    def nan_at_steps_2_to_4(dev):  # a fault from outside: NaN advantages at steps 2, 3 and 4
        adv, ret = advantages(dev)
        return (adv * jnp.nan, ret) if next(steps) in (2, 3, 4) else (adv, ret)

    trainer.advantages = nan_at_steps_2_to_4
    with pytest.raises(TrainingDiverged, match="last good checkpoint"):
        trainer.run()
    rows = {r["step"]: r for r in read_metrics(cfg.run_dir) if "actor/loss" in r}
    assert rows[1]["actor/skipped_updates"] == 0
    assert rows[2]["actor/skipped_updates"] == rows[2]["actor/optimizer_steps"] > 0
    assert rows[3]["train/consecutive_bad_steps"] == 2
    # Checkpoints up to step 3 exist; the failing step 4 saved nothing.
    assert trainer.checkpointer.latest_step() == 3
    # Skipped updates leave parameters untouched: restore step 1 and step 3 actors and compare.
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), trainer._arrays())
    _, s1, _ = trainer.checkpointer.restore(abstract, step=1)
    _, s3, _ = trainer.checkpointer.restore(abstract, step=3)
    assert all(np.array_equal(a, b) for a, b in zip(_params(s1["actor"]), _params(s3["actor"])))


def test_invalid_config_names_the_problem(tiny_config):
    cfg = tiny_config("tempo", train__train_batch_size=3, train__ppo_mini_batch_size=2)
    with pytest.raises(ValueError, match="multiple of"):
        Trainer(cfg)
    cfg = tiny_config("tempo", algo__policy_loss="nope")
    with pytest.raises(ValueError, match="nope"):
        Trainer(cfg)
    cfg = tiny_config("tempo", rollout__engine="paged")
    with pytest.raises(ValueError, match="rollout.engine='paged' must be one of static, continuous"):
        Trainer(cfg)
    cfg = tiny_config("tempo", rollout__decode_slots=-1)
    with pytest.raises(ValueError, match="rollout.decode_slots=-1"):
        Trainer(cfg)


def test_continuous_engine_trains_like_the_static_one(tiny_config):
    """rollout.engine=continuous draws the same rollouts (per-row keys): the same rewards, lengths
    and losses as the static engine, to float rounding (the ring attends in another order)."""
    rows = {}
    for engine in ("static", "continuous"):
        cfg = tiny_config("stage1", train__total_steps=2, rollout__engine=engine, rollout__decode_slots=3)
        cfg.run_dir = cfg.run_dir + "_" + engine
        Trainer(cfg).run()
        rows[engine] = [r for r in read_metrics(cfg.run_dir) if "actor/loss" in r]
    for s, c in zip(rows["static"], rows["continuous"]):
        for key in ("response_length/mean", "response_length/max", "acc/all", "reward/mean"):
            assert c[key] == s[key], key
        assert abs(c["actor/loss"] - s["actor/loss"]) < 1e-4
