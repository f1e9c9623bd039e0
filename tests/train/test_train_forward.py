"""Training forwards (tempo_jax/train/forward.py) against independent re-derivations.

``response_logprobs`` / ``response_values`` read a left-padded prompt followed by a right-padded
response. The references here run the model on each row WITHOUT left padding (prompt tokens,
then response, then right padding, positions 0, 1, ...), take the full-sequence logits and do
the log-softmax, gather and entropy in NumPy float64. The sampler (``generate``, with a KV cache)
must give the same log-probs for the tokens it drew as the trainer's teacher-forced pass.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tempo_jax.models.critic import Critic
from tempo_jax.models.decoder import CausalLM
from tempo_jax.sampling.generate import generate
from tempo_jax.sampling.methods import Sampling
from tempo_jax.train.forward import micro_batched, response_logprobs, response_values
from tempo_jax.train.tiny import tiny_model_config
from tempo_jax.train.updates import make_logprob_fn, make_value_fn

VOCAB, PAD = 64, 0
P, T = 7, 6


def _sharpen(model, scale=20.0):
    """Scale the matrices of a fresh model (init std 0.02 -> 0.4): a near-uniform policy would let a
    wrong gather or a shifted position look right."""
    graphdef, params = nnx.split(model, nnx.Param)
    params = jax.tree.map(lambda x: x * scale if x.ndim >= 2 else x, params)
    return nnx.merge(graphdef, params)


@pytest.fixture(scope="module")
def actor():
    return _sharpen(CausalLM(tiny_model_config(VOCAB), nnx.Rngs(0)))


@pytest.fixture(scope="module")
def critic():
    return _sharpen(Critic(tiny_model_config(VOCAB), nnx.Rngs(1)))


def make_batch(rows, seed):
    """Prompts of 1..P tokens left-padded to P; responses of 1..T tokens, pad after the end."""
    rs = np.random.RandomState(seed)
    plen = rs.randint(1, P + 1, rows)
    plen[:2] = (P, 1)
    tlen = rs.randint(1, T + 1, rows)
    tlen[:2] = (2, T)
    prompt_valid = np.arange(P)[None] >= (P - plen)[:, None]
    mask = np.arange(T)[None] < tlen[:, None]
    return dict(
        prompt_tokens=np.where(prompt_valid, rs.randint(2, VOCAB, (rows, P)), PAD).astype(np.int32),
        prompt_valid=prompt_valid,
        response_tokens=np.where(mask, rs.randint(2, VOCAB, (rows, T)), PAD).astype(np.int32),
        response_mask=mask,
    )


def unpadded(batch):
    """Each row as [its prompt tokens | the response slots | right padding] (positions 0, 1, ...),
    and the index of its first response slot."""
    rows, width = batch["prompt_tokens"].shape
    tlen = batch["response_tokens"].shape[1]
    plen = np.asarray(batch["prompt_valid"]).sum(axis=1)
    tokens = np.full((rows, width + tlen), PAD, np.int32)
    for i in range(rows):
        tokens[i, : plen[i]] = batch["prompt_tokens"][i, width - plen[i] :]
        tokens[i, plen[i] : plen[i] + tlen] = batch["response_tokens"][i]
    return tokens, plen


def shifted(per_position, plen, tlen):
    """[R, T, ...] from [R, L, ...]: response slot t is read at position plen + t - 1."""
    idx = plen[:, None] + np.arange(tlen)[None] - 1
    return np.take_along_axis(per_position, idx.reshape(idx.shape + (1,) * (per_position.ndim - 2)), axis=1)


# Module-level jitted passes (graphdef static) so that tests with the same shapes share one compile.


@functools.partial(jax.jit, static_argnums=0)
def _full_logits(graphdef, params, tokens):
    return nnx.merge(graphdef, params)(tokens)[0]


@functools.partial(jax.jit, static_argnums=0)
def _full_values(graphdef, params, tokens):
    return nnx.merge(graphdef, params)(tokens)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _trainer_logprobs(graphdef, with_entropy, params, *args):
    return response_logprobs(nnx.merge(graphdef, params), *args, with_entropy=with_entropy)


@functools.partial(jax.jit, static_argnums=0)
def _trainer_values(graphdef, params, *args):
    return response_values(nnx.merge(graphdef, params), *args)


def reference_logprobs(model, batch):
    """log pi(y_t | x, y_<t) and the entropy of pi, float64 NumPy from the full-sequence logits."""
    tokens, plen = unpadded(batch)
    logits = np.asarray(_full_logits(*nnx.split(model, nnx.Param), jnp.asarray(tokens)), np.float64)
    logits = shifted(logits, plen, batch["response_tokens"].shape[1])  # [R, T, V]
    z = logits - logits.max(axis=-1, keepdims=True)
    logp_all = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    responses = np.asarray(batch["response_tokens"], np.int64)
    logp = np.take_along_axis(logp_all, responses[..., None], axis=-1)[..., 0]
    return logp, -(np.exp(logp_all) * logp_all).sum(axis=-1)


def reference_values(model, batch, shift=0):
    """V_t read at position plen + t - 1 (+ ``shift``) of the full-sequence values."""
    tokens, plen = unpadded(batch)
    values = np.asarray(_full_values(*nnx.split(model, nnx.Param), jnp.asarray(tokens)), np.float64)
    return shifted(values, plen + shift, batch["response_tokens"].shape[1])


# Another batching of the same float32 matmuls (micro-batches, fused or not): a few ulps of values ~5.
TOL = dict(rtol=1e-5, atol=1e-5)
KEYS = ("prompt_tokens", "prompt_valid", "response_tokens", "response_mask")


def _args(batch):
    return tuple(jnp.asarray(batch[k]) for k in KEYS)


def trainer_logprobs(model, batch, with_entropy=True):
    graphdef, params = nnx.split(model, nnx.Param)
    logp, ent = _trainer_logprobs(graphdef, with_entropy, params, *_args(batch))
    return np.asarray(logp), (None if ent is None else np.asarray(ent))


def trainer_values(model, batch):
    graphdef, params = nnx.split(model, nnx.Param)
    return np.asarray(_trainer_values(graphdef, params, *_args(batch)))


ROWS = 8  # one batch shape for the forward tests: their compiles are shared


# ----------------------------------------------------------------------------- (a) re-derivation


def test_response_logprobs_and_entropy_equal_a_full_sequence_rederivation(actor):
    batch = make_batch(ROWS, seed=0)
    m = batch["response_mask"]
    logp, ent = trainer_logprobs(actor, batch)
    ref_logp, ref_ent = reference_logprobs(actor, batch)
    np.testing.assert_allclose(logp[m], ref_logp[m], rtol=1e-5, atol=2e-5)
    np.testing.assert_allclose(ent[m], ref_ent[m], rtol=1e-5, atol=2e-5)
    assert np.isfinite(logp).all() and np.isfinite(ent).all()  # padding slots too
    # The model is far from uniform and the log-probs vary: a wrong gather would show.
    assert ref_ent[m].max() < 0.8 * np.log(VOCAB) and np.ptp(ref_logp[m]) > 1.0
    # Left padding matters: treating the pads as prompt tokens changes the log-probs.
    wrong, _ = trainer_logprobs(actor, dict(batch, prompt_valid=np.ones_like(batch["prompt_valid"])))
    assert np.abs(wrong[m] - ref_logp[m]).max() > 0.1
    # Without entropy: the same log-probs and no entropy.
    lp, none = trainer_logprobs(actor, batch, with_entropy=False)
    assert none is None
    np.testing.assert_allclose(lp[m], logp[m], **TOL)


def test_response_values_equal_a_full_sequence_rederivation(critic):
    batch = make_batch(ROWS, seed=1)
    m = batch["response_mask"]
    values = trainer_values(critic, batch)
    ref = reference_values(critic, batch)
    np.testing.assert_allclose(values[m], ref[m], rtol=1e-5, atol=2e-5)
    assert np.isfinite(values).all()
    assert np.std(ref[m]) > 0.1  # values differ across positions: a one-slot shift would show
    # V_t is read one position earlier: V_0 is the value after the last prompt token.
    assert np.abs(reference_values(critic, batch, shift=1)[m] - values[m]).max() > 0.1


# ----------------------------------------------------------------------------- (b) micro-batches


def test_micro_batched_forwards_are_independent_of_the_micro_size(actor, critic):
    # make_logprob_fn / make_value_fn (the trainer's no-grad passes) over 1, 2, 4 or all 8 rows at
    # a time give the plain forward's result, rows in place.
    batch = make_batch(ROWS, seed=2)
    jbatch = {k: jnp.asarray(v) for k, v in batch.items()}
    direct_lp, direct_ent = trainer_logprobs(actor, batch)
    direct_v = trainer_values(critic, batch)
    a_graphdef, a_params = nnx.split(actor, nnx.Param)
    c_graphdef, c_params = nnx.split(critic, nnx.Param)
    for micro in (1, 2, ROWS):
        lp, ent = make_logprob_fn(a_graphdef, micro)(a_params, jbatch)
        np.testing.assert_allclose(lp, direct_lp, **TOL, err_msg=f"micro={micro}")
        np.testing.assert_allclose(ent, direct_ent, **TOL, err_msg=f"micro={micro}")
    for micro in (2, ROWS):
        v = make_value_fn(c_graphdef, micro)(c_params, jbatch)
        np.testing.assert_allclose(v, direct_v, **TOL, err_msg=f"micro={micro}")


def test_micro_batched_keeps_rows_in_order_and_rejects_a_bad_split():
    x = jnp.arange(24.0).reshape(6, 4)
    batch = {"x": x, "y": jnp.arange(6) * 10}

    def fn(b):  # a pytree out, with a row-dependent and a row-reducing part
        return {"s": b["x"].sum(-1) + b["y"], "t": (b["x"] * 2, b["y"][:, None] + b["x"])}

    want = fn(batch)
    for micro in (1, 2, 3, 6):
        got = jax.jit(functools.partial(micro_batched, fn), static_argnums=1)(batch, micro)
        jax.tree.map(np.testing.assert_array_equal, got, want)
    with pytest.raises(ValueError, match="6 rows do not split into micro-batches of 4"):
        micro_batched(fn, batch, 4)


# ----------------------------------------------------------------------------- (c) sampler vs trainer


def test_sampler_logprobs_equal_teacher_forced_trainer_logprobs(actor):
    rs = np.random.RandomState(3)
    prompts = [list(rs.randint(10, VOCAB, n)) for n in (3, 9, 1, 6)]
    stop = tuple(range(2, 10))  # ~1/8 of the vocabulary: some rows end early, some run to the limit
    out = generate(
        actor,
        prompts,
        n=2,
        max_new_tokens=12,
        method=Sampling(temperature=1.0, top_k=-1, top_p=1.0),
        stop_ids=stop,
        pad_id=PAD,
        rng=jax.random.key(5),
        return_sampling_logprobs=True,
    )
    m = out.mask
    assert 0 < out.eos.sum() < len(out.eos) and m.sum() > 20
    batch = dict(
        prompt_tokens=out.prompt_tokens, prompt_valid=out.prompt_valid, response_tokens=out.tokens, response_mask=m
    )
    logp, ent = trainer_logprobs(actor, batch)
    np.testing.assert_allclose(out.logprobs[m], logp[m], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out.sampling_logprobs[m], out.logprobs[m], rtol=1e-6, atol=1e-6)  # plain sampling
    assert (out.logprobs[~m] == 0).all()
    assert np.ptp(logp[m]) > 1.0  # the sampled tokens' log-probs vary: matching them is not trivial
    # ... and both equal the NumPy re-derivation from the full-sequence logits, entropy included.
    ref_logp, ref_ent = reference_logprobs(actor, batch)
    np.testing.assert_allclose(out.logprobs[m], ref_logp[m], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(ent[m], ref_ent[m], rtol=1e-5, atol=2e-5)
