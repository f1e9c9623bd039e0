"""The sampler against transformers on the same weights: greedy output token for token (Qwen3 and
Llama 3, left-padded prompts of different lengths, an EOS id that occurs), log-probs against a
teacher-forced forward, and 8 sharded fake CPU devices against 1 device."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from tempo_jax.models.hf_io import from_hf
from tempo_jax.parallel.mesh import make_mesh
from tempo_jax.sampling.generate import generate
from tempo_jax.sampling.methods import Greedy, Sampling

torch = pytest.importorskip("torch")

PAD = 0
WIDTH = 16  # the bucket our left padding picks for the 12-token longest prompt
MAX_NEW = 24


def _hf_generate(hf_model, ids, mask, eos):
    with torch.no_grad():
        out = hf_model.generate(
            input_ids=torch.from_numpy(ids),
            attention_mask=torch.from_numpy(mask),
            do_sample=False,
            max_new_tokens=MAX_NEW,
            eos_token_id=eos,
            pad_token_id=PAD,
        )
    return out[:, ids.shape[1] :].numpy()


def _pick_eos(free_run: np.ndarray) -> int:
    """A token the greedy rows emit (not as their first token) in some rows but not all: with it as
    EOS, some rows finish with 'eos' and others run to the length limit."""
    for row in free_run:
        for t in row[2:]:
            hit = [t in r[1:] and t not in r[:1] for r in free_run]
            if 0 < sum(hit) < len(free_run):
                return int(t)
    raise AssertionError(f"no usable EOS candidate in {free_run}")


@pytest.fixture(scope="module", params=["qwen3", "llama"])
def greedy_case(request, checkpoints, prompts, hf_pad):
    path, hf_model = checkpoints.get(request.param)
    ids, mask = hf_pad(prompts, WIDTH)
    hf_model.generation_config.eos_token_id = None
    free = _hf_generate(hf_model, ids, mask, eos=None)
    assert free.shape == (len(prompts), MAX_NEW)
    eos = _pick_eos(free)
    ref = _hf_generate(hf_model, ids, mask, eos=eos)
    model = from_hf(path)
    ours = generate(model, list(prompts), max_new_tokens=MAX_NEW, method=Greedy(), stop_ids=(eos,), pad_id=PAD)
    return dict(case=request.param, free=free, eos=eos, ref=ref, ours=ours, path=path, hf=hf_model, ids=ids, mask=mask)


def test_greedy_run_is_not_degenerate(greedy_case):
    free = greedy_case["free"]
    for row in free:  # random weights at a larger scale: greedy does not repeat one token
        assert len(set(row.tolist())) >= 4, row
    assert len({tuple(r) for r in free.tolist()}) == len(free)


def test_greedy_matches_transformers_token_for_token(greedy_case):
    ref, ours = greedy_case["ref"], greedy_case["ours"]
    assert ours.tokens.shape == (3, MAX_NEW)
    # transformers stops once every row has finished; the rest of our buffer must be padding.
    np.testing.assert_array_equal(ours.tokens[:, : ref.shape[1]], ref)
    assert (ours.tokens[:, ref.shape[1] :] == PAD).all()


def test_eos_rows_end_there_are_masked_after_and_report_finish_reasons(greedy_case):
    ours, eos = greedy_case["ours"], greedy_case["eos"]
    stopped = (greedy_case["free"] == eos).any(axis=1)
    assert 0 < stopped.sum() < len(stopped)  # both finish reasons occur
    assert ours.finish_reasons == ["eos" if s else "length" for s in stopped]
    for r in range(len(stopped)):
        n = ours.lengths[r]
        np.testing.assert_array_equal(ours.mask[r], np.arange(MAX_NEW) < n)
        if stopped[r]:
            first = int(np.argmax(greedy_case["free"][r] == eos))
            assert n == first + 1 and ours.tokens[r, n - 1] == eos  # the stop token is part of the response
            assert (ours.tokens[r, n:] == PAD).all()
            assert (ours.logprobs[r, n:] == 0).all()
        else:
            assert n == MAX_NEW and eos not in ours.tokens[r]
    assert (ours.logprobs[ours.mask] < 0).all()


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def _gather(x: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    return np.take_along_axis(x, tokens[..., None], axis=-1)[..., 0]


def test_greedy_logprobs_match_teacher_forcing(greedy_case, teacher_forced):
    ours = greedy_case["ours"]
    logits = teacher_forced(greedy_case["hf"], ours.prompt_tokens, ours.prompt_valid, ours.tokens)
    ref = _gather(_log_softmax(logits), ours.tokens)
    np.testing.assert_allclose(ours.logprobs[ours.mask], ref[ours.mask], atol=1e-4)


@pytest.mark.parametrize(
    "method", [Sampling(), Sampling(temperature=0.7, top_k=20, top_p=0.9)], ids=["plain", "t0.7_k20_p0.9"]
)
def test_sampled_logprobs_match_teacher_forcing(method, checkpoints, prompts, teacher_forced):
    path, hf_model = checkpoints.get("qwen3")
    out = generate(
        from_hf(path),
        list(prompts),
        n=2,
        max_new_tokens=16,
        method=method,
        stop_ids=(),
        pad_id=PAD,
        rng=jax.random.key(3),
        return_sampling_logprobs=True,
    )
    assert out.mask.all() and (out.lengths == 16).all()
    logits = teacher_forced(hf_model, out.prompt_tokens, out.prompt_valid, out.tokens)
    np.testing.assert_allclose(out.logprobs, _gather(_log_softmax(logits), out.tokens), atol=1e-4)
    transformed = np.asarray(method.transform(jax.numpy.asarray(logits)))
    expected = _gather(_log_softmax(transformed), out.tokens)
    assert np.isfinite(expected).all()  # every sampled token is inside the kept (top-k / top-p) set
    np.testing.assert_allclose(out.sampling_logprobs, expected, atol=1e-4)
    if method.is_plain:
        np.testing.assert_array_equal(out.sampling_logprobs, out.logprobs)
    else:
        assert np.abs(out.sampling_logprobs - out.logprobs).max() > 0.1


def test_eight_sharded_devices_give_the_single_device_greedy_output(greedy_case):
    if len(jax.devices()) < 8:
        pytest.skip("needs 8 (fake) devices")
    path, eos = greedy_case["path"], greedy_case["eos"]
    mesh = make_mesh((2, 2, 2))
    sharded = from_hf(path, mesh=mesh)
    q = sharded.model.layers[0].self_attn.q_proj.kernel[...]
    assert len(q.sharding.device_set) == 8 and not q.sharding.is_fully_replicated
    # 12 rows (4 | 12: rows sharded over data x fsdp); 40 new tokens over two cache windows [32, 55],
    # so the resize between decode segments runs sharded too.
    args = dict(n=4, max_new_tokens=40, method=Greedy(), stop_ids=(eos,), pad_id=PAD, min_window=1)
    on_mesh = generate(sharded, _prompts(greedy_case), mesh=mesh, **args)
    single = generate(from_hf(path), _prompts(greedy_case), **args)
    np.testing.assert_array_equal(on_mesh.tokens, single.tokens)
    np.testing.assert_array_equal(on_mesh.lengths, single.lengths)
    np.testing.assert_allclose(on_mesh.logprobs, single.logprobs, atol=1e-5)
    np.testing.assert_array_equal(single.tokens[::4, :MAX_NEW], greedy_case["ours"].tokens)


def _prompts(case) -> list[list[int]]:
    ids, mask = case["ids"], case["mask"]
    return [row[m.astype(bool)].tolist() for row, m in zip(ids, mask)]
