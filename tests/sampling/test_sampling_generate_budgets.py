"""generate() with per-row length budgets (``max_new_tokens`` per prompt or per row): each row
stops exactly at its budget, its tokens are the prefix of a longer budget's, the decode loop exits
once every row is done, other budgets under the same cap reuse the compiled programs, the n
samples of a prompt share its budget, and bad budgets fail with a ValueError.

The randomness of a token is the row's own key for that token index
(:func:`~tempo_jax.sampling.methods.row_keys`): it depends on the seed, the row and the token
index, never on the budgets, so sampled rows are prefix-equal too (same prompts, same n, same rng)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tempo_jax.models.hf_io import from_hf
from tempo_jax.parallel.mesh import make_mesh
from tempo_jax.sampling.generate import decode, generate, prefill, row_budgets
from tempo_jax.sampling.methods import Greedy, Sampling
from tempo_jax.sampling.padding import left_pad

PAD = 0
CAP = 24


def _run(model, prompts, budgets, **kw):
    args = dict(n=2, method=Sampling(), stop_ids=(), pad_id=PAD, rng=jax.random.key(5), return_sampling_logprobs=True)
    args.update(kw)
    return generate(model, list(prompts), max_new_tokens=budgets, **args)


def _check_rows(out, budgets):
    """Lengths, mask, padding and finish reasons of every row against its budget."""
    budgets = np.asarray(budgets)
    assert out.tokens.shape == (len(budgets), budgets.max())
    assert (out.lengths <= budgets).all() and (out.lengths >= 1).all()
    for r, b in enumerate(budgets):
        n = out.lengths[r]
        np.testing.assert_array_equal(out.mask[r], np.arange(budgets.max()) < n)
        assert (out.tokens[r, n:] == PAD).all() and (out.logprobs[r, n:] == 0).all()
        assert (out.logprobs[r, :n] < 0).all()
        if not out.eos[r]:
            assert n == b and out.finish_reasons[r] == "length"


def test_each_row_stops_exactly_at_its_prompts_budget(qwen3, prompts):
    out = _run(qwen3, prompts, [3, CAP, 9])
    budgets = np.repeat([3, CAP, 9], 2)  # the n samples of a prompt share its budget
    _check_rows(out, budgets)
    np.testing.assert_array_equal(out.lengths, budgets)
    assert out.finish_reasons == ["length"] * 6 and not out.eos.any()
    assert (out.sampling_logprobs[out.mask] < 0).all() and (out.sampling_logprobs[~out.mask] == 0).all()


def test_budgets_with_stop_tokens(qwen3, prompts):
    stops = (3, 7, 11, 19, 23, 29, 31, 37)  # frequent enough that some rows stop before their budget
    budgets = np.arange(1, 13) * 2  # one per row: 3 prompts x n=4
    out = _run(qwen3, prompts, budgets, n=4, stop_ids=stops)
    _check_rows(out, budgets)
    assert 0 < out.eos.sum() < 12 and (out.lengths < budgets).any() and (out.lengths == budgets).any()
    for r in np.flatnonzero(out.eos):
        assert out.tokens[r, out.lengths[r] - 1] in stops and out.finish_reasons[r] == "eos"


@pytest.mark.parametrize("method", [Greedy(), Sampling()], ids=["greedy", "sampling"])
def test_a_budget_gives_the_prefix_of_a_longer_one(qwen3, prompts, method):
    full = _run(qwen3, prompts, CAP, method=method)
    # same cap (same programs, same windows): bit-identical prefixes
    short = _run(qwen3, prompts, [5, CAP, 11], method=method)
    # a smaller cap (other windows, other reduction shapes): same tokens, log-probs to rounding
    small_cap = _run(qwen3, prompts, [4, 7, 13], method=method, min_window=1)
    for out, exact in ((short, True), (small_cap, False)):
        assert not out.eos.any()
        for r in range(6):
            n = out.lengths[r]
            np.testing.assert_array_equal(out.tokens[r, :n], full.tokens[r, :n])
            for got, want in ((out.logprobs, full.logprobs), (out.sampling_logprobs, full.sampling_logprobs)):
                np.testing.assert_allclose(got[r, :n], want[r, :n], atol=0 if exact else 1e-5, rtol=0)
    np.testing.assert_array_equal(short.tokens[2:4], full.tokens[2:4])  # the full-budget rows are unchanged


def test_per_prompt_and_per_row_budgets_agree(qwen3, prompts):
    per_prompt = _run(qwen3, prompts, np.array([6, 2, 10]), n=3)
    per_row = _run(qwen3, prompts, np.repeat([6, 2, 10], 3), n=3)
    np.testing.assert_array_equal(per_prompt.lengths, np.repeat([6, 2, 10], 3))
    np.testing.assert_array_equal(per_prompt.tokens, per_row.tokens)
    np.testing.assert_array_equal(per_prompt.logprobs, per_row.logprobs)


def test_the_loop_exits_when_every_row_is_within_budget_and_budgets_do_not_recompile(qwen3, prompts):
    graphdef, state = nnx.split(qwen3)
    tokens, valid = map(jnp.asarray, left_pad(list(prompts), PAD))
    args = (graphdef, state, tokens, valid, 48, None, None, 2, CAP, Greedy(), (), PAD, False, jax.random.key(0))

    def steps_run(budgets):
        carry = prefill(*args, jnp.asarray(budgets, jnp.int32))
        carry = decode(graphdef, state, carry, jnp.asarray(CAP, jnp.int32), jax.random.key(0), Greedy(), (), PAD)
        assert bool(carry["done"].all())
        np.testing.assert_array_equal(carry["lengths"], budgets)
        return int(carry["step"])

    assert steps_run([2, 3, 1, 4, 2, 2]) == 4  # stops after the longest budget, not at the cap
    sizes = (prefill._cache_size(), decode._cache_size())
    assert steps_run([CAP, 1, 7, 7, 3, 9]) == CAP
    assert steps_run([1] * 6) == 1  # every row done after the prefill's token: no decode step
    assert (prefill._cache_size(), decode._cache_size()) == sizes  # budgets are traced, not static


def test_budgets_on_eight_sharded_devices(checkpoints, prompts):
    if len(jax.devices()) < 8:
        pytest.skip("needs 8 (fake) devices")
    path, _ = checkpoints.get("qwen3")
    mesh = make_mesh((2, 2, 2))
    args = dict(n=4, method=Greedy(), stop_ids=(), pad_id=PAD, min_window=1)  # windows [32, 55]: one resize
    on_mesh = generate(from_hf(path, mesh=mesh), list(prompts), max_new_tokens=[5, 40, 17], mesh=mesh, **args)
    single = generate(from_hf(path), list(prompts), max_new_tokens=[5, 40, 17], **args)
    np.testing.assert_array_equal(on_mesh.lengths, np.repeat([5, 40, 17], 4))
    np.testing.assert_array_equal(on_mesh.tokens, single.tokens)
    np.testing.assert_allclose(on_mesh.logprobs, single.logprobs, atol=1e-5)


@pytest.mark.parametrize(
    "budgets, n, match",
    [
        (0, 1, r"need 1 <= max_new_tokens"),
        (-3, 2, r"need 1 <= max_new_tokens"),
        ([4, 0, 2], 1, r"max_new_tokens\[1\] = 0"),
        (np.array([4, 2, 5, -1, 1, 1]), 2, r"max_new_tokens\[3\] = -1"),
        ([4, 2], 1, r"has 2 budgets; need 3 \(one per prompt\)$"),
        ([4, 2, 3, 3], 2, r"has 4 budgets; need 3 \(one per prompt\) or 6 \(one per row\)"),
        ([4.0, 2.0, 3.0], 1, r"1-D sequence of ints"),
        ([[4, 2, 3]], 1, r"1-D sequence of ints"),
        ([True, True, True], 1, r"1-D sequence of ints"),
        (8, 0, r"need n >= 1"),
    ],
)
def test_invalid_budgets_fail_clearly(qwen3, prompts, budgets, n, match):
    with pytest.raises(ValueError, match=match):
        row_budgets(budgets, 3, n)
    with pytest.raises(ValueError, match=match):
        generate(qwen3, list(prompts), n=n, max_new_tokens=budgets, stop_ids=(), pad_id=PAD)


def test_row_budgets():
    np.testing.assert_array_equal(row_budgets(7, 2, 3), [7] * 6)
    np.testing.assert_array_equal(row_budgets([1, 9], 2, 3), [1, 1, 1, 9, 9, 9])
    np.testing.assert_array_equal(row_budgets(np.arange(1, 7), 2, 3), np.arange(1, 7))
    np.testing.assert_array_equal(row_budgets((np.int64(4), 5), 2, 1), [4, 5])
    assert row_budgets([3, 4], 2, 2).dtype == np.int32
