"""The continuous-batching engine against the static one and against transformers.

A row's draws depend only on (seed, row, token index), so from the same logits both engines
sample the same tokens: greedy and sampled outputs, finish reasons and lengths must be equal,
log-probs equal to float rounding (the ring attends over its slots in another order). Rows are
many more than slots, so slots are refilled many times and the ring's write index wraps around.
The sampling distribution is also checked directly (chi-square of first tokens against the
model's softmax), and the log-probs against transformers' teacher-forced forward pass.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx
from scipy import special, stats

from tempo_jax.models.decoder import CausalLM
from tempo_jax.models.hf_io import from_hf
from tempo_jax.parallel.mesh import make_mesh
from tempo_jax.sampling.continuous import default_slots, generate_continuous, ring_length
from tempo_jax.sampling.engines import sample
from tempo_jax.sampling.generate import generate
from tempo_jax.sampling.methods import Greedy, Sampling
from tempo_jax.train.tiny import tiny_model_config

PAD = 0
STOPS = (3, 7, 11, 19)  # frequent enough that some rows stop before their budget
# 3 prompts x n=4: one budget per row, the longest (24) late in the queue so the ring wraps
BUDGETS = np.array([3, 9, 17, 5, 11, 2, 20, 7, 13, 1, 24, 15])


def _both(model, prompts, method, slots, budgets=BUDGETS, **kw):
    args = dict(n=4, method=method, stop_ids=STOPS, pad_id=PAD, rng=jax.random.key(3), return_sampling_logprobs=True)
    args.update(kw)
    static = generate(model, list(prompts), max_new_tokens=budgets, **args)
    cont, st = generate_continuous(model, list(prompts), max_new_tokens=budgets, slots=slots, **args)
    return static, cont, st


def _assert_same(static, cont, atol=2e-5):
    np.testing.assert_array_equal(cont.tokens, static.tokens)
    np.testing.assert_array_equal(cont.lengths, static.lengths)
    np.testing.assert_array_equal(cont.eos, static.eos)
    np.testing.assert_array_equal(cont.mask, static.mask)
    assert cont.finish_reasons == static.finish_reasons
    np.testing.assert_array_equal(cont.prompt_tokens, static.prompt_tokens)
    np.testing.assert_array_equal(cont.prompt_index, static.prompt_index)
    np.testing.assert_allclose(cont.logprobs, static.logprobs, atol=atol)
    if static.sampling_logprobs is not None:
        np.testing.assert_allclose(cont.sampling_logprobs, static.sampling_logprobs, atol=atol)


@pytest.mark.parametrize("slots", [1, 3, 5, 12])
def test_greedy_equals_static_for_any_slot_count(qwen3, prompts, slots):
    static, cont, st = _both(qwen3, prompts, Greedy(), slots)
    _assert_same(static, cont)
    assert st.slots == slots and st.ring_len == ring_length(16, 24)
    if slots < 12:
        assert st.inserts > 1  # slots were refilled
    if slots >= 3:
        assert st.shrinks >= 1  # the last rows drained on fewer slots
    if slots == 1:
        assert st.decode_steps > st.ring_len  # the write index wrapped around the ring
    if slots == 12:  # one insert of every row: each of the 3 prompts prefilled once (+1 padding)
        assert st.inserts == 1 and st.insert_rows == 16 and st.prefilled_prompts == 4
    assert 0 < st.utilisation(int(cont.lengths.sum())) <= 1


@pytest.mark.parametrize(
    "method", [Sampling(), Sampling(temperature=0.7, top_k=40), Sampling(temperature=1.3, top_p=0.8)], ids=str
)
def test_sampling_equals_static(qwen3, prompts, method):
    static, cont, _ = _both(qwen3, prompts, method, slots=3)
    _assert_same(static, cont)
    assert len({tuple(t) for t in cont.tokens}) > 6  # rows really differ


def test_padded_vocabulary_model(checkpoints, prompts):
    """Llama 3 rope scaling and a vocabulary no sampling block divides."""
    model = from_hf(checkpoints.get("llama")[0])
    static, cont, _ = _both(model, prompts, Sampling(), slots=2)
    _assert_same(static, cont)


def test_sliding_window_layers(olmo3_overrides):
    """OLMo 3-style sliding-window layers: the ring orders keys by age, so the window holds."""
    cfg = tiny_model_config(64, **olmo3_overrides)
    model = CausalLM(cfg, nnx.Rngs(1))
    prompts = ([5, 17, 42], [9, 3, 27, 14, 21, 8, 13, 40, 41, 50])
    static, cont, _ = _both(model, prompts, Sampling(), slots=3, budgets=np.array([9, 30]), stop_ids=())
    _assert_same(static, cont)


def test_budgets_are_exact_and_prompts_rows_in_order(qwen3, prompts):
    _, cont, _ = _both(qwen3, prompts, Sampling(), slots=2, stop_ids=())
    np.testing.assert_array_equal(cont.lengths, BUDGETS)
    assert cont.finish_reasons == ["length"] * 12 and not cont.eos.any()
    for r, b in enumerate(BUDGETS):
        assert (cont.tokens[r, b:] == PAD).all() and (cont.logprobs[r, b:] == 0).all()
        assert (cont.logprobs[r, :b] < 0).all()
    np.testing.assert_array_equal(cont.prompt_index, np.repeat(np.arange(3), 4))


def test_refill_threshold_does_not_change_the_output(qwen3, prompts):
    args = dict(n=4, max_new_tokens=BUDGETS, method=Sampling(), stop_ids=STOPS, pad_id=PAD, rng=jax.random.key(9))
    one, st1 = generate_continuous(qwen3, list(prompts), slots=6, refill=1, **args)
    all_, st6 = generate_continuous(qwen3, list(prompts), slots=6, refill=6, **args)
    again, _ = generate_continuous(qwen3, list(prompts), slots=6, refill=1, **args)
    np.testing.assert_array_equal(one.tokens, all_.tokens)
    np.testing.assert_array_equal(one.tokens, again.tokens)  # bit-reproducible
    np.testing.assert_array_equal(one.logprobs, again.logprobs)
    assert st1.inserts > st6.inserts


def test_logprobs_match_transformers_teacher_forcing(checkpoints, prompts, hf_pad, teacher_forced):
    path, hf_model = checkpoints.get("qwen3")
    model = from_hf(path)
    out, _ = generate_continuous(
        model,
        list(prompts),
        n=4,
        max_new_tokens=BUDGETS,
        method=Sampling(temperature=0.8),
        stop_ids=STOPS,
        pad_id=PAD,
        rng=jax.random.key(4),
        slots=3,
        return_sampling_logprobs=True,
    )
    logits = teacher_forced(hf_model, out.prompt_tokens, out.prompt_valid, out.tokens)
    for got, scale in ((out.logprobs, 1.0), (out.sampling_logprobs, 0.8)):
        logp = special.log_softmax(logits / scale, axis=-1)
        want = np.take_along_axis(logp, out.tokens[..., None], axis=-1)[..., 0]
        np.testing.assert_allclose(got[out.mask], want[out.mask], atol=2e-4)


def test_first_tokens_follow_the_models_distribution(checkpoints):
    """400 samples of one prompt through 7 slots (inserted at many ring positions): the first
    token's frequencies against transformers' softmax, chi-square over tokens expected >= 5 times."""
    path, hf_model = checkpoints.get("qwen3")
    torch = pytest.importorskip("torch")
    prompt = [9, 3, 77, 64, 21]
    rows = 400
    out, st = generate_continuous(
        from_hf(path),
        [prompt],
        n=rows,
        max_new_tokens=np.tile([1, 6, 2, 9], rows // 4),
        method=Sampling(),
        stop_ids=(),
        pad_id=PAD,
        rng=jax.random.key(11),
        slots=7,
    )
    assert st.inserts > 10
    with torch.no_grad():
        logits = hf_model(input_ids=torch.tensor([prompt])).logits[0, -1].double().numpy()
    p = np.exp(logits - logits.max())
    p /= p.sum()
    counts = np.bincount(out.tokens[:, 0], minlength=len(p))
    big = p * rows >= 5
    observed = np.append(counts[big], counts[~big].sum())
    expected = np.append(p[big] * rows, p[~big].sum() * rows)
    assert big.sum() >= 3
    assert stats.chisquare(observed, expected).pvalue > 1e-3


def test_mesh_equals_one_device(checkpoints, prompts):
    if len(jax.devices()) < 8:
        pytest.skip("needs 8 (fake) devices")
    path, _ = checkpoints.get("qwen3")
    args = dict(n=4, max_new_tokens=BUDGETS, method=Sampling(), stop_ids=STOPS, pad_id=PAD, rng=jax.random.key(2))
    one, _ = generate_continuous(from_hf(path), list(prompts), slots=4, **args)
    mesh = make_mesh((2, 2, 2))
    sharded, st = generate_continuous(from_hf(path, mesh=mesh), list(prompts), slots=3, mesh=mesh, **args)
    assert st.slots == 4  # rounded up to whole slots per batch shard (data x fsdp = 4)
    np.testing.assert_array_equal(sharded.tokens, one.tokens)
    np.testing.assert_allclose(sharded.logprobs, one.logprobs, atol=2e-5)


def test_engine_switch_and_bad_input(qwen3, prompts):
    args = dict(n=2, max_new_tokens=5, method=Greedy(), stop_ids=(), pad_id=PAD)
    via_switch = sample(qwen3, list(prompts), engine="continuous", slots=2, **args)
    static = sample(qwen3, list(prompts), engine="static", **args)
    np.testing.assert_array_equal(via_switch.tokens, static.tokens)
    np.testing.assert_array_equal(static.tokens, generate(qwen3, list(prompts), **args).tokens)
    with pytest.raises(ValueError, match="unknown rollout engine 'paged'"):
        sample(qwen3, list(prompts), engine="paged", **args)
    with pytest.raises(ValueError, match="at least one decode slot"):
        generate_continuous(qwen3, list(prompts), slots=-2, **args)
    assert default_slots(256) == 64 and default_slots(3) == 1
