"""generate(): seeds, the n samples of a prompt, stop tokens, the segmented decode over growing
cache windows, the per-layer cache layout, scanned layers, the cache budget, a bfloat16 cache."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tempo_jax.models.cache import LayerKVCache, cache_bytes, init_layer_cache, to_layers, to_stacked
from tempo_jax.models.hf_io import from_hf
from tempo_jax.sampling.generate import cache_windows, generate, prefill
from tempo_jax.sampling.memory import CacheTooLargeError
from tempo_jax.sampling.methods import Greedy, Sampling
from tempo_jax.sampling.padding import left_pad

PAD = 0
T = 16


def _run(model, prompts, seed, **kw):
    args = dict(n=4, max_new_tokens=T, method=Sampling(), stop_ids=(), pad_id=PAD, rng=jax.random.key(seed))
    args.update(kw)
    return generate(model, list(prompts), **args)


def test_same_seed_same_samples_other_seed_other_samples(qwen3, prompts):
    a, b, c = _run(qwen3, prompts, 7), _run(qwen3, prompts, 7), _run(qwen3, prompts, 8)
    np.testing.assert_array_equal(a.tokens, b.tokens)
    np.testing.assert_array_equal(a.logprobs, b.logprobs)
    assert (a.tokens != c.tokens).mean() > 0.5


def test_the_n_samples_of_a_prompt_differ(qwen3, prompts):
    out = _run(qwen3, prompts, 7)
    assert out.tokens.shape == (12, T)
    np.testing.assert_array_equal(out.prompt_index, np.repeat([0, 1, 2], 4))
    np.testing.assert_array_equal(out.prompt_tokens[::4], left_pad(list(prompts), PAD)[0])
    for i in range(3):
        rows = {tuple(r) for r in out.tokens[4 * i : 4 * i + 4].tolist()}
        assert len(rows) == 4, f"prompt {i}: samples repeat"


def test_stop_tokens_end_rows_and_everything_after_is_padding(qwen3, prompts):
    stops = (3, 7, 11, 19, 23, 29, 31, 37)  # frequent enough that some rows stop, not all
    out = _run(qwen3, prompts, 1, stop_ids=stops, return_sampling_logprobs=True)
    assert 0 < out.eos.sum() < len(out.eos)
    for r in range(out.tokens.shape[0]):
        n = out.lengths[r]
        np.testing.assert_array_equal(out.mask[r], np.arange(T) < n)
        assert not np.isin(out.tokens[r, : n - 1], stops).any()
        if out.eos[r]:
            assert out.finish_reasons[r] == "eos" and out.tokens[r, n - 1] in stops
        else:
            assert out.finish_reasons[r] == "length" and n == T
        assert (out.tokens[r, n:] == PAD).all()
        assert (out.logprobs[r, n:] == 0).all() and (out.sampling_logprobs[r, n:] == 0).all()
        assert (out.logprobs[r, :n] < 0).all()


def test_cache_windows():
    # grow x1.5 (multiples of 32) up to the full length 32 + 128 - 1, rounded up to a multiple of 16
    assert cache_windows(32, 128) == [64, 96, 160]
    assert cache_windows(32, 1024) == [64, 96, 160, 256, 384, 576, 1056]
    assert cache_windows(16, 24) == [48]  # a window within sqrt(1.5) of the full length (39) is skipped
    assert cache_windows(16, 40, min_window=1) == [32, 64]  # the first window holds the prompt and a new token
    assert cache_windows(100, 400, min_window=1, growth=2.0, align=64) == [128, 256, 512]
    assert cache_windows(16, 1) == [16]


def test_segmented_decode_over_growing_windows_equals_one_window(qwen3, prompts):
    kw = dict(max_new_tokens=40, return_sampling_logprobs=True)
    segmented = _run(qwen3, prompts, 2, min_window=1, **kw)  # windows [32, 55]: one resize
    single = _run(qwen3, prompts, 2, min_window=4096, **kw)
    np.testing.assert_array_equal(segmented.tokens, single.tokens)
    np.testing.assert_allclose(segmented.logprobs, single.logprobs, atol=1e-5)  # other reduction shapes
    # ... and stops between segments when every row has finished
    stopped = _run(qwen3, prompts, 2, min_window=1, max_new_tokens=40, stop_ids=tuple(range(1, 512, 2)))
    assert stopped.eos.all() and stopped.lengths.max() < 16


def test_pre_padded_prompts_and_a_single_new_token(qwen3, prompts):
    tokens, valid = left_pad(list(prompts), PAD, 16)
    a = generate(qwen3, (tokens, valid), max_new_tokens=1, method=Greedy(), stop_ids=(), pad_id=PAD)
    b = generate(qwen3, list(prompts), max_new_tokens=3, method=Greedy(), stop_ids=(), pad_id=PAD)
    assert a.tokens.shape == (3, 1) and (a.lengths == 1).all()
    np.testing.assert_array_equal(a.tokens[:, 0], b.tokens[:, 0])


def test_layer_cache_decode_matches_the_full_forward_and_the_stacked_cache(qwen3, prompts):
    tokens, valid = left_pad(list(prompts), PAD, 16)
    positions = np.maximum(np.cumsum(valid, axis=1) - 1, 0)
    full, _ = qwen3(tokens, positions, valid)
    split = 10
    for cache in (qwen3.init_cache(3, 20), init_layer_cache(qwen3.cfg, 3, 20)):
        steps = []
        pre, cache = qwen3(tokens[:, :split], positions[:, :split], valid[:, :split], cache)
        steps.append(np.asarray(pre))
        for t in range(split, 16):
            out, cache = qwen3(tokens[:, t : t + 1], positions[:, t : t + 1], valid[:, t : t + 1], cache)
            steps.append(np.asarray(out))
        incremental = np.concatenate(steps, axis=1)
        assert np.abs(incremental - np.asarray(full))[valid].max() < 1e-5
        assert int(cache.index) == 16
        layered = cache if isinstance(cache, LayerKVCache) else to_layers(cache)
        assert layered.k[0].shape == (3, 2, 20, 16)  # [batch, kv heads, slots, head dim]
        np.testing.assert_array_equal(
            np.asarray(to_stacked(layered).k), np.asarray(to_stacked(to_layers(to_stacked(layered))).k)
        )


def test_scanned_layers_sample_like_unrolled_ones(checkpoints, prompts):
    path, _ = checkpoints.get("llama")
    kw = dict(n=2, max_new_tokens=T, method=Sampling(), stop_ids=(), pad_id=PAD, rng=jax.random.key(4))
    plain = generate(from_hf(path), list(prompts), **kw)
    scanned = generate(from_hf(path, scan_layers=True), list(prompts), **kw)
    np.testing.assert_array_equal(plain.tokens, scanned.tokens)
    np.testing.assert_allclose(plain.logprobs, scanned.logprobs, atol=1e-5)


def test_a_cache_over_budget_fails_naming_the_largest_batch_that_fits(qwen3):
    cfg = qwen3.cfg
    prompt = [[5, 6, 7]] * 8
    total = cache_windows(16, 8)[-1]  # one window: the peak is one cache of rows x total slots
    budget = cache_bytes(cfg, 5, total)
    kw = dict(max_new_tokens=8, method=Greedy(), stop_ids=(), pad_id=PAD, memory_budget_bytes=budget)
    with pytest.raises(CacheTooLargeError, match="largest batch that fits is 5 sequences") as err:
        generate(qwen3, prompt, **kw)
    assert "8 sequences" in str(err.value) and "GiB" in str(err.value)
    assert generate(qwen3, prompt[:5], **kw).tokens.shape == (5, 8)
    with pytest.raises(CacheTooLargeError, match="is 5 sequences"):
        generate(qwen3, prompt[:6], **kw)
    # with n samples per prompt the message also counts prompts; prefill + fan-out raise the peak
    with pytest.raises(CacheTooLargeError) as err:
        generate(qwen3, prompt[:4], n=2, **kw)
    fits, prompts_fit = map(
        int, re.search(r"is (\d+) sequences \((\d+) prompts x 2 samples\)", str(err.value)).groups()
    )
    assert fits < 5 and prompts_fit == fits // 2


def test_bfloat16_kv_cache(checkpoints, prompts, teacher_forced):
    path, hf_model = checkpoints.get("qwen3")
    model = from_hf(path)
    tokens, valid = left_pad(list(prompts), PAD, 16)
    graphdef, state = nnx.split(model)
    carry = prefill(
        graphdef,
        state,
        jnp.asarray(tokens),
        jnp.asarray(valid),
        32,
        "bfloat16",
        None,
        1,
        4,
        Sampling(),
        (),
        PAD,
        False,
        jax.random.key(0),
    )
    assert all(k.dtype == jnp.bfloat16 for k in carry["cache"].k + carry["cache"].v)
    out = generate(
        model,
        list(prompts),
        n=2,
        max_new_tokens=T,
        method=Sampling(),
        stop_ids=(),
        pad_id=PAD,
        rng=jax.random.key(0),
        kv_cache_dtype="bfloat16",
    )
    assert out.mask.all()
    logits = teacher_forced(hf_model, out.prompt_tokens, out.prompt_valid, out.tokens)  # fp32 reference
    ref = jax.nn.log_softmax(jnp.asarray(logits))
    ref = np.take_along_axis(np.asarray(ref), out.tokens[..., None], axis=-1)[..., 0]
    err = np.abs(out.logprobs - ref)
    assert err.max() < 0.1 and err.max() > 0  # bf16 rounding of k/v: close, not bit-equal
