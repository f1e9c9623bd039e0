"""Sampling methods on hand-computed examples, and the inverse-CDF draw against its distribution."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tempo_jax.sampling.methods import Greedy, Sampling, TopK, TopP, draw

NEG = -np.inf


def _t(method, logits) -> np.ndarray:
    return np.asarray(method.transform(jnp.asarray([logits], jnp.float32)))[0]


def test_temperature_divides_the_logits():
    np.testing.assert_allclose(_t(Sampling(temperature=2.0), [1.0, 2.0, 3.0]), [0.5, 1.0, 1.5])
    np.testing.assert_allclose(_t(Sampling(temperature=0.5), [1.0, -2.0]), [2.0, -4.0])
    np.testing.assert_array_equal(_t(Sampling(), [1.0, 2.0, 3.0]), [1.0, 2.0, 3.0])


def test_top_k_keeps_the_k_largest():
    np.testing.assert_array_equal(_t(TopK(2), [1.0, 3.0, 2.0, 0.0]), [NEG, 3.0, 2.0, NEG])
    np.testing.assert_array_equal(_t(TopK(1), [1.0, 3.0, 2.0, 0.0]), [NEG, 3.0, NEG, NEG])
    np.testing.assert_array_equal(_t(TopK(4), [1.0, 3.0, 2.0, 0.0]), [1.0, 3.0, 2.0, 0.0])  # k = V: off
    np.testing.assert_array_equal(_t(TopK(0), [1.0, 3.0, 2.0, 0.0]), [1.0, 3.0, 2.0, 0.0])  # k <= 0: off


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = [0.5, 0.3, 0.15, 0.05]
    logits = list(np.log(probs))
    # mass strictly above each token: 0, 0.5, 0.8, 0.95 -> kept while < p
    assert np.isfinite(_t(TopP(0.7), logits)).tolist() == [True, True, False, False]
    assert np.isfinite(_t(TopP(0.5), logits)).tolist() == [True, False, False, False]
    assert np.isfinite(_t(TopP(0.81), logits)).tolist() == [True, True, True, False]
    assert np.isfinite(_t(TopP(0.01), logits)).tolist() == [True, False, False, False]  # the top token always stays
    assert np.isfinite(_t(TopP(1.0), logits)).all()
    # order does not matter: the same set on shuffled logits
    assert np.isfinite(_t(TopP(0.7), [logits[2], logits[0], logits[3], logits[1]])).tolist() == [
        False,
        True,
        False,
        True,
    ]


def test_methods_compose_temperature_then_top_k_then_top_p():
    logits = [2.0, 1.0, 0.0, -1.0, -9.0]
    # T=0.5 -> [4, 2, 0, -2, -18]; top-k 3 -> [4, 2, 0]; probs over them e^4, e^2, e^0 / Z =
    # 0.867, 0.117, 0.016: top-p 0.95 keeps the first two (mass above the third is 0.984).
    out = _t(Sampling(temperature=0.5, top_k=3, top_p=0.95), logits)
    np.testing.assert_array_equal(out, [4.0, 2.0, NEG, NEG, NEG])
    # Without the temperature the same top-p keeps three: probs over [2, 1, 0] are 0.665, 0.245,
    # 0.090 (mass above the third: 0.910 < 0.95).
    out = _t(Sampling(top_k=3, top_p=0.95), logits)
    np.testing.assert_array_equal(out, [2.0, 1.0, 0.0, NEG, NEG])


def test_invalid_settings_fail_loudly():
    with pytest.raises(ValueError, match="temperature"):
        Sampling(temperature=0.0)
    with pytest.raises(ValueError, match="top_p"):
        Sampling(top_p=0.0)


def test_greedy_picks_the_first_maximum_with_its_model_logprob():
    logits = jnp.asarray([[0.0, 3.0, 3.0, 1.0], [5.0, -1.0, 2.0, 0.0]])
    tok, lp, slp = Greedy().sample_with_logprobs(jax.random.key(0), logits)
    np.testing.assert_array_equal(tok, [1, 0])
    np.testing.assert_allclose(
        lp,
        [3.0 - math.log(1 + 2 * math.e**3 + math.e), 5 - math.log(math.e**5 + math.e**-1 + math.e**2 + 1)],
        rtol=1e-6,
    )
    np.testing.assert_array_equal(slp, [0.0, 0.0])
    np.testing.assert_array_equal(_t(Greedy(), [0.0, 3.0, 3.0, 1.0]), [NEG, 0.0, NEG, NEG])


@pytest.mark.parametrize("vocab", [512, 300], ids=["blocks", "padded"])
def test_draw_follows_the_distribution_and_never_draws_masked_tokens(vocab):
    rows = 40000
    rng = np.random.default_rng(0)
    base = rng.normal(size=vocab).astype(np.float32) * 2
    base[rng.permutation(vocab)[: vocab // 3]] = -np.inf  # a third of the vocabulary outside the kept set
    logits = jnp.broadcast_to(jnp.asarray(base), (rows, vocab))
    tok, m, total = jax.jit(draw)(jax.random.key(1), logits)
    tok = np.asarray(tok)
    assert np.isfinite(base[tok]).all()
    p = np.exp(base - base.max())
    p /= p.sum()
    np.testing.assert_allclose(np.asarray(m)[0], base.max())
    np.testing.assert_allclose(np.asarray(total)[0], np.exp(base - base.max()).sum(), rtol=1e-5)
    freq = np.bincount(tok, minlength=vocab) / rows
    sigma = np.sqrt(p * (1 - p) / rows)
    assert (np.abs(freq - p) <= 5 * sigma + 1e-4).all()
    # a one-hot row always draws its only token; a row of ties draws each with equal chance
    one = np.full((4, vocab), -np.inf, np.float32)
    one[:, vocab - 1] = 0.0
    np.testing.assert_array_equal(np.asarray(draw(jax.random.key(2), jnp.asarray(one))[0]), vocab - 1)


def test_sampling_logprobs_are_log_softmax_of_the_transformed_logits():
    logits = jax.random.normal(jax.random.key(0), (64, 300)) * 3
    for method in (Sampling(), Sampling(temperature=0.6), Sampling(top_k=7), Sampling(temperature=1.3, top_p=0.8)):
        tok, lp, slp = method.sample_with_logprobs(jax.random.key(5), logits)
        ref = jnp.take_along_axis(jax.nn.log_softmax(logits), tok[:, None], axis=-1)[:, 0]
        sref = jnp.take_along_axis(jax.nn.log_softmax(method.transform(logits)), tok[:, None], axis=-1)[:, 0]
        np.testing.assert_allclose(lp, ref, atol=1e-5)
        np.testing.assert_allclose(slp, sref, atol=1e-5)
        assert np.isfinite(np.asarray(slp)).all()
        np.testing.assert_array_equal(method.sample(jax.random.key(5), logits), tok)
