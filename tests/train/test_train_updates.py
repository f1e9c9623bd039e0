"""M-step / E-step updates (tempo_jax/train/updates.py) checked against hand re-derivations.

The updates are where the training numbers come from: a mini-batch gradient accumulated over
micro-batches, scaled, clipped and applied by AdamW, with non-finite mini-batches skipped.
Every test here compares the jitted update with an independent computation on a tiny random
model: the mini-batch loss written out in full (the registered loss over the whole mini-batch,
``jax.grad``, the same optax optimizer), or the same update with another micro-batch split.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from tempo_jax.models.critic import Critic
from tempo_jax.models.decoder import CausalLM
from tempo_jax.rl.losses import gspo
from tempo_jax.rl.value_losses import seq_clip
from tempo_jax.train.optim import make_optimizer
from tempo_jax.train.state import create_train_state
from tempo_jax.train.tiny import tiny_model_config
from tempo_jax.train.updates import UpdateSpec, make_e_step, make_logprob_fn, make_m_step, make_value_fn

# On CPU, donation of the state can be refused with a warning; that is not what is tested here.
pytestmark = pytest.mark.filterwarnings("ignore:Some donated buffers were not usable")

VOCAB, PAD = 48, 0
P, T = 6, 7  # prompt / response lengths of the batches
LR = 1e-3
# Loss options, as keyword arguments of make_m_step / make_e_step.
ACTOR_OPTS = dict(clip_low=0.2, clip_high=0.2, agg="seq-mean-token-mean", entropy_coef=0.01)
CRITIC_OPTS = dict(cliprange_value=0.1, agg="seq-mean-token-mean", labeled_only=True)
PARAM_TOL = dict(rtol=1e-5, atol=1e-6)
# Metric sums (e.g. approx_kl = sum of old - new log-probs) add up ~20 log-probs of magnitude ~3
# computed with another matmul batching: float32 noise of a few 1e-6.
METRIC_TOL = dict(rtol=1e-5, atol=2e-5)


# ----------------------------------------------------------------------------- models and batches


def _sharpen(model, scale=20.0):
    """Scale the matrices of a fresh model (init std 0.02 -> 0.4) so its outputs depend visibly on
    the inputs (a near-uniform policy would make wrong log-probs look right)."""
    graphdef, params = nnx.split(model, nnx.Param)
    params = jax.tree.map(lambda x: x * scale if x.ndim >= 2 else x, params)
    return nnx.merge(graphdef, params)


@pytest.fixture(scope="module")
def tx():
    # eps 1e-4 rather than 1e-8: on a first AdamW step an entry with a gradient near 0 moves by
    # lr * g / (|g| + eps), which with eps = 1e-8 turns float32 summation-order noise of 1e-9 in g
    # into a parameter difference of ~lr / 20. The gradients themselves are compared through the
    # optimizer state (mu = (1 - b1) g, nu = (1 - b2) g^2).
    return make_optimizer(LR, eps=1e-4)


def _config():
    # One layer, no q/k norm: the update machinery does not depend on the architecture, and this
    # halves the compile time of each update program (the forward tests use the full tiny model).
    return tiny_model_config(VOCAB, num_layers=1, qk_norm="none")


@pytest.fixture(scope="module")
def actor_state(tx):
    cfg = _config()
    return create_train_state(_sharpen(CausalLM(cfg, nnx.Rngs(0))), tx)


@pytest.fixture(scope="module")
def critic_state(tx):
    cfg = _config()
    return create_train_state(_sharpen(Critic(cfg, nnx.Rngs(1))), tx)


def _sequences(rows, seed, resp_lengths=None):
    """Left-padded prompts of varied length, right-padded responses (pad after the end)."""
    rs = np.random.RandomState(seed)
    plen = rs.randint(1, P + 1, rows)
    plen[0] = P
    prompt_valid = np.arange(P)[None] >= (P - plen)[:, None]
    prompt_tokens = np.where(prompt_valid, rs.randint(2, VOCAB, (rows, P)), PAD)
    if resp_lengths is None:
        resp_lengths = rs.randint(1, T + 1, rows)
        resp_lengths[0] = T
    mask = np.arange(T)[None] < np.asarray(resp_lengths)[:, None]
    response_tokens = np.where(mask, rs.randint(2, VOCAB, (rows, T)), PAD)
    return rs, dict(
        prompt_tokens=jnp.asarray(prompt_tokens, jnp.int32),
        prompt_valid=jnp.asarray(prompt_valid),
        response_tokens=jnp.asarray(response_tokens, jnp.int32),
        response_mask=jnp.asarray(mask),
    )


def actor_batch(actor_state, rows, seed, resp_lengths=None):
    """Rollouts with old log-probs near the current ones (some GSPO ratios clipped) and
    per-sequence advantages."""
    graphdef, state = actor_state
    rs, b = _sequences(rows, seed, resp_lengths)
    logp, _ = make_logprob_fn(graphdef, rows)(state.params, b)
    m = np.asarray(b["response_mask"])
    old = np.asarray(logp) + 0.3 * rs.randn(rows, T)
    adv = np.repeat(rs.randn(rows, 1), T, axis=1)
    b["old_logprobs"] = jnp.asarray(np.where(m, old, 0.0), jnp.float32)
    b["advantages"] = jnp.asarray(np.where(m, adv, 0.0), jnp.float32)
    return b


def critic_batch(critic_state, rows, seed, labeled=None):
    graphdef, state = critic_state
    rs, b = _sequences(rows, seed)
    values = np.asarray(make_value_fn(graphdef, rows)(state.params, b))
    m = np.asarray(b["response_mask"])
    b["values"] = jnp.asarray(np.where(m, values + 0.3 * rs.randn(rows, T), 0.0), jnp.float32)
    b["returns"] = jnp.asarray(np.where(m, np.repeat(rs.randint(0, 2, (rows, 1)), T, 1), 0.0), jnp.float32)
    labeled = rs.rand(rows) < 0.7 if labeled is None else np.asarray(labeled, bool)
    b["is_labeled"] = jnp.asarray(labeled)
    return b


# ----------------------------------------------------------------------------- the updates under test


def _copy(tree):
    """A fresh copy (the update donates its state argument)."""
    return jax.tree.map(lambda x: jnp.array(x, copy=True), tree)


@functools.cache
def _m_step(graphdef, tx, spec):
    return make_m_step(graphdef, tx, spec, "gspo", **ACTOR_OPTS)


@functools.cache
def _e_step(graphdef, tx, spec):
    return make_e_step(graphdef, tx, spec, "seq_clip", **CRITIC_OPTS)


def run_m(actor_state, tx, spec, batch, seed=0):
    graphdef, state = actor_state
    new, summary, sums = _m_step(graphdef, tx, spec)(_copy(state), batch, jax.random.key(seed))
    return jax.device_get(new), jax.device_get(summary), jax.device_get(sums)


def run_e(critic_state, tx, spec, batch, seed=0):
    graphdef, state = critic_state
    new, summary, sums = _e_step(graphdef, tx, spec)(_copy(state), batch, jax.random.key(seed))
    return jax.device_get(new), jax.device_get(summary), jax.device_get(sums)


# ----------------------------------------------------------------------------- hand re-derivation


def ref_logprobs(actor, b):
    """log pi(y_t | x, y_<t) and the entropy from the full-sequence logits of CausalLM.__call__."""
    tokens = jnp.concatenate([b["prompt_tokens"], b["response_tokens"]], axis=1)
    valid = jnp.concatenate([b["prompt_valid"], jnp.ones_like(b["response_mask"])], axis=1)
    logits, _ = actor(tokens, None, valid)
    logits = logits[:, P - 1 : P + T - 1]
    logp_all = jax.nn.log_softmax(logits, axis=-1)
    logp = jnp.take_along_axis(logp_all, b["response_tokens"][..., None], axis=-1)[..., 0]
    return logp, -jnp.sum(jnp.exp(logp_all) * logp_all, axis=-1)


def ref_values(critic, b):
    tokens = jnp.concatenate([b["prompt_tokens"], b["response_tokens"]], axis=1)
    valid = jnp.concatenate([b["prompt_valid"], jnp.ones_like(b["response_mask"])], axis=1)
    return critic(tokens, None, valid)[:, P - 1 : P + T - 1]


def actor_loss_out(graphdef, params, b):
    logp, ent = ref_logprobs(nnx.merge(graphdef, params), b)
    return gspo(logp, b["old_logprobs"], b["advantages"], b["response_mask"], entropy=ent, **ACTOR_OPTS)


def critic_loss_out(graphdef, params, b):
    v = ref_values(nnx.merge(graphdef, params), b)
    return seq_clip(v, b["values"], b["returns"], b["response_mask"], b["is_labeled"], **CRITIC_OPTS)


def _rows(b, lo, hi):
    return {k: v[lo:hi] for k, v in b.items()}


def reference_update(loss_out, graphdef, tx, state, batch, mini_rows, weighting="exact", micro_rows=None):
    """Mini-batches in order (no shuffle), each one optax step on the gradient of

    exact: sum(numerator) / max(sum(denominator), 1) over the whole mini-batch;
    verl:  sum over micro-batches k of numerator_k / max(denominator_k, 1) * micro_rows / mini_rows.

    Returns (params, opt_state, losses, grad norms, metric sums, exact losses); the last are the
    exact mini-batch losses whatever ``weighting`` (to show that the weightings differ)."""
    micro_rows = micro_rows or mini_rows

    def loss(params, mb):
        total, num, den, metrics = 0.0, 0.0, 0.0, None
        for lo in range(0, mini_rows, micro_rows):
            out = loss_out(graphdef, params, _rows(mb, lo, lo + micro_rows))
            total = total + out.numerator / jnp.maximum(out.denominator, 1.0) * (micro_rows / mini_rows)
            num, den = num + out.numerator, den + out.denominator
            metrics = out.metrics if metrics is None else jax.tree.map(jnp.add, metrics, out.metrics)
        exact = num / jnp.maximum(den, 1.0)
        return (exact if weighting == "exact" else total), (metrics, jax.lax.stop_gradient(exact))

    @jax.jit
    def step(params, opt_state, mb):
        (value, (metrics, exact)), grads = jax.value_and_grad(loss, has_aux=True)(params, mb)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value, optax.tree.norm(grads), metrics, exact

    params, opt_state = state.params, state.opt_state
    losses, norms, sums, exacts = [], [], None, []
    for lo in range(0, batch["response_mask"].shape[0], mini_rows):
        params, opt_state, value, norm, metrics, exact = step(params, opt_state, _rows(batch, lo, lo + mini_rows))
        losses.append(float(value))
        norms.append(float(norm))
        exacts.append(float(exact))
        sums = metrics if sums is None else jax.tree.map(jnp.add, sums, metrics)
    return jax.device_get(params), jax.device_get(opt_state), losses, norms, jax.device_get(sums), exacts


# ----------------------------------------------------------------------------- comparisons


def assert_trees_close(a, b, **tol):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(la, lb):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), **(tol or PARAM_TOL))


def trees_equal(a, b) -> bool:
    assert jax.tree.structure(a) == jax.tree.structure(b)
    return all(
        np.array_equal(np.asarray(x), np.asarray(y), equal_nan=True)
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
    )


def max_change(a, b) -> float:
    return max(
        float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))
    )


# ----------------------------------------------------------------------------- (a) micro-batch split


def test_actor_update_is_exactly_invariant_to_the_micro_batch_split(actor_state, tx):
    # micro_rows 1 and 2 of a 4-row mini-batch against micro_rows 4, i.e. the whole mini-batch in
    # one pass (here the hand-derived update; the M-step's own micro_rows=4 is checked against the
    # same derivation in the next test).
    graphdef, state = actor_state
    batch = actor_batch(actor_state, 4, seed=1)
    params, opt_state, losses, norms, ref_sums, _ = reference_update(actor_loss_out, graphdef, tx, state, batch, 4)
    assert max_change(params, state.params) > 0.5 * LR  # the update moves the parameters
    for micro in (1, 2):
        new, summary, sums = run_m(actor_state, tx, UpdateSpec(4, micro, shuffle=False), batch)
        assert_trees_close(new.params, params)
        assert_trees_close(new.opt_state, opt_state)
        assert int(new.step) == 1
        np.testing.assert_allclose(summary["loss"], losses[0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(summary["grad_norm"], norms[0], rtol=1e-5)
        assert float(summary["skipped_updates"]) == 0 and float(summary["optimizer_steps"]) == 1
        assert_trees_close(sums, ref_sums, **METRIC_TOL)


# ----------------------------------------------------------------------------- (b) hand re-derivation


def test_m_step_equals_the_hand_derived_minibatch_gradient_and_adamw(actor_state, tx):
    # Two mini-batches of 4 rows, each one micro-batch: two AdamW steps on the exact mini-batch losses.
    graphdef, state = actor_state
    batch = actor_batch(actor_state, 8, seed=3)
    new, summary, sums = run_m(actor_state, tx, UpdateSpec(4, 4, shuffle=False), batch)
    params, opt_state, losses, norms, ref_sums, _ = reference_update(actor_loss_out, graphdef, tx, state, batch, 4)
    assert_trees_close(new.params, params)
    assert_trees_close(new.opt_state, opt_state)
    assert int(new.step) == 2
    np.testing.assert_allclose(summary["loss"], np.mean(losses), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(summary["grad_norm"], np.mean(norms), rtol=1e-5)
    assert min(norms) > 1.0  # global-norm clipping (at 1.0) is part of what is compared
    assert_trees_close(sums, ref_sums, **METRIC_TOL)
    assert float(summary["optimizer_steps"]) == 8 / 4 and float(summary["skipped_updates"]) == 0
    assert 0 < float(sums["clip_fraction"][0]) < float(sums["clip_fraction"][1])  # some ratios clipped, not all


def test_e_step_equals_the_hand_derived_minibatch_gradient_for_any_micro_split(critic_state, tx):
    # Labeled rows spread 0 / 1 / 2 over the micro-batches of two: the exact loss is one seq-mean
    # over the 3 labeled rows of the mini-batch, whatever the split.
    graphdef, state = critic_state
    batch = critic_batch(critic_state, 6, seed=4, labeled=[0, 0, 1, 0, 1, 1])
    new, summary, sums = run_e(critic_state, tx, UpdateSpec(6, 2, shuffle=False), batch)
    params, opt_state, losses, norms, ref_sums, _ = reference_update(critic_loss_out, graphdef, tx, state, batch, 6)
    assert max_change(params, state.params) > 0.5 * LR
    assert_trees_close(new.params, params)
    assert_trees_close(new.opt_state, opt_state)
    np.testing.assert_allclose(summary["loss"], losses[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(summary["grad_norm"], norms[0], rtol=1e-5)
    assert_trees_close(sums, ref_sums, **METRIC_TOL)
    assert float(sums["vf_loss"][1]) == 3.0  # only the labeled sequences are in the loss
    assert float(sums["vf_clip_fraction"][0]) > 0  # the sequence-level value clip is exercised


# ----------------------------------------------------------------------------- (c) verl weighting


def test_verl_weighting_of_the_policy_loss(actor_state, tx):
    # Responses of very different lengths under token-mean: per-micro-batch token means weighted
    # micro/mini differ from the exact token mean of the mini-batch.
    opts = dict(ACTOR_OPTS, agg="token-mean")
    graphdef, state = actor_state
    batch = actor_batch(actor_state, 4, seed=5, resp_lengths=[7, 1, 1, 2])
    spec = UpdateSpec(4, 2, shuffle=False, loss_weighting="verl")
    new, summary, _ = jax.device_get(
        make_m_step(graphdef, tx, spec, "gspo", **opts)(_copy(state), batch, jax.random.key(0))
    )

    def loss_out(graphdef, params, b):
        logp, ent = ref_logprobs(nnx.merge(graphdef, params), b)
        return gspo(logp, b["old_logprobs"], b["advantages"], b["response_mask"], entropy=ent, **opts)

    params, opt_state, losses, norms, _, exact = reference_update(loss_out, graphdef, tx, state, batch, 4, "verl", 2)
    assert_trees_close(new.params, params)
    assert_trees_close(new.opt_state, opt_state)
    np.testing.assert_allclose(summary["loss"], losses[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(summary["grad_norm"], norms[0], rtol=1e-5)
    assert abs(losses[0] - exact[0]) > 0.05 * abs(exact[0])  # the two weightings differ on this batch


def test_verl_weighting_of_the_value_loss(critic_state, tx):
    graphdef, state = critic_state
    batch = critic_batch(critic_state, 6, seed=4, labeled=[0, 0, 1, 0, 1, 1])
    spec = UpdateSpec(6, 2, shuffle=False, loss_weighting="verl")
    new, summary, _ = jax.device_get(
        make_e_step(graphdef, tx, spec, "seq_clip", **CRITIC_OPTS)(_copy(state), batch, jax.random.key(0))
    )
    params, opt_state, losses, norms, _, exact = reference_update(
        critic_loss_out, graphdef, tx, state, batch, 6, "verl", 2
    )
    assert_trees_close(new.params, params)
    assert_trees_close(new.opt_state, opt_state)
    np.testing.assert_allclose(summary["loss"], losses[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(summary["grad_norm"], norms[0], rtol=1e-5)
    assert abs(losses[0] - exact[0]) > 0.05 * abs(exact[0])


# ----------------------------------------------------------------------------- (d) non-finite skip


def test_a_nan_advantage_skips_its_minibatch_and_only_it(actor_state, tx):
    graphdef, state = actor_state
    spec = UpdateSpec(4, 4, shuffle=False)
    batch = actor_batch(actor_state, 8, seed=7)
    assert bool(batch["response_mask"][1, 0]) and bool(batch["response_mask"][5, 0])

    # NaN in both mini-batches: nothing moves, and both skips are counted.
    bad = dict(batch, advantages=batch["advantages"].at[1, 0].set(jnp.nan).at[5, 0].set(jnp.nan))
    new, summary, _ = run_m(actor_state, tx, spec, bad)
    assert trees_equal(new.params, state.params)
    assert trees_equal(new.opt_state, state.opt_state)
    assert int(new.step) == 0
    assert float(summary["skipped_updates"]) == 2 and float(summary["optimizer_steps"]) == 2

    # NaN in the first mini-batch only: the result is the second one's update from the start state.
    bad = dict(batch, advantages=batch["advantages"].at[1, 0].set(jnp.nan))
    new, summary, _ = run_m(actor_state, tx, spec, bad)
    second, _, _ = run_m(actor_state, tx, UpdateSpec(4, 2, shuffle=False), _rows(batch, 4, 8))
    assert float(summary["skipped_updates"]) == 1 and float(summary["optimizer_steps"]) == 2
    assert int(new.step) == 1
    assert_trees_close(new.params, second.params)
    assert_trees_close(new.opt_state, second.opt_state)
    assert max_change(new.params, state.params) > 0.5 * LR


def test_nan_at_padding_positions_does_not_skip(actor_state, tx):
    batch = actor_batch(actor_state, 4, seed=8, resp_lengths=[7, 3, 5, 2])
    pad = ~np.asarray(batch["response_mask"])
    noisy = dict(
        batch,
        advantages=jnp.where(pad, jnp.nan, batch["advantages"]),
        old_logprobs=jnp.where(pad, jnp.nan, batch["old_logprobs"]),
    )
    spec = UpdateSpec(4, 2, shuffle=False)
    clean, clean_summary, _ = run_m(actor_state, tx, spec, batch)
    new, summary, _ = run_m(actor_state, tx, spec, noisy)
    assert float(summary["skipped_updates"]) == 0
    assert trees_equal(new.params, clean.params)
    np.testing.assert_array_equal(summary["loss"], clean_summary["loss"])


# ----------------------------------------------------------------------------- (e) epochs and steps


def test_epochs_repeat_the_pass_and_shuffling_moves_rows_together(actor_state, tx):
    # Two epochs of one (shuffled) mini-batch = two plain one-epoch updates in a row: shuffling
    # only reorders the rows of a mini-batch, which leaves the exact loss unchanged, unless a key
    # were permuted differently from the others.
    graphdef, state = actor_state
    batch = actor_batch(actor_state, 4, seed=9)
    two, summary, _ = run_m(actor_state, tx, UpdateSpec(4, 2, epochs=2, shuffle=True), batch, seed=3)
    assert float(summary["optimizer_steps"]) == 2 * 4 / 4 and float(summary["skipped_updates"]) == 0
    assert int(two.step) == 2
    once, _, _ = run_m(actor_state, tx, UpdateSpec(4, 2, shuffle=False), batch)
    twice, _, _ = run_m((graphdef, jax.tree.map(jnp.asarray, once)), tx, UpdateSpec(4, 2, shuffle=False), batch)
    assert_trees_close(two.params, twice.params)
    assert_trees_close(two.opt_state, twice.opt_state)
    assert max_change(two.params, once.params) > 0.5 * LR
    # epochs x mini-batches: 8 rollouts in mini-batches of 4 are 2 steps an epoch
    _, summary, _ = run_m(actor_state, tx, UpdateSpec(4, 4, shuffle=False), actor_batch(actor_state, 8, seed=9))
    assert float(summary["optimizer_steps"]) == 8 / 4


# ----------------------------------------------------------------------------- (f) UpdateSpec.check


def test_update_spec_check():
    UpdateSpec(4, 2).check(8, "actor")
    UpdateSpec(4, 4, loss_weighting="verl").check(4, "critic")
    with pytest.raises(ValueError, match=r"actor: 10 rollouts do not split into mini-batches of 4"):
        UpdateSpec(4, 2).check(10, "actor")
    with pytest.raises(ValueError, match=r"critic: mini-batch of 4 rows does not split into micro-batches of 3"):
        UpdateSpec(4, 3).check(8, "critic")
    with pytest.raises(ValueError, match="loss_weighting must be 'exact' or 'verl'"):
        UpdateSpec(4, 2, loss_weighting="mean").check(8, "actor")
