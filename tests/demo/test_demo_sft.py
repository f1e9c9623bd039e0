"""Stage 0 (SFT): sequence encoding, a decreasing loss, early stopping, and a parseable greedy answer."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx

from tempo_jax.demo.sft import batch_indices, encode_sft, make_schedule, sft_train
from tempo_jax.demo.tasks import arithmetic as A
from tempo_jax.demo.tasks.tokenizer import build_tokenizer, load
from tempo_jax.models.config import ModelConfig, RopeConfig
from tempo_jax.models.decoder import CausalLM
from tempo_jax.sampling.generate import generate
from tempo_jax.sampling.methods import Greedy


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return load(build_tokenizer(tmp_path_factory.mktemp("tok")))


def tiny_model(tok, seed=0) -> CausalLM:
    cfg = ModelConfig(
        model_type="qwen3",
        vocab_size=320,
        hidden_size=32,
        intermediate_size=96,
        num_layers=2,
        num_heads=2,
        num_kv_heads=1,
        head_dim=16,
        rope=RopeConfig(theta=10000.0),
        qk_norm="head",
        tie_word_embeddings=True,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        max_position_embeddings=128,
    )
    return CausalLM(cfg, nnx.Rngs(seed))


def test_encode_marks_only_solution_tokens(tok):
    recs = A.make_problems(2, 3, seed=0, split="sft") + A.make_problems(4, 2, seed=0, split="sft")
    data = encode_sft(recs, tok)
    assert data.tokens.shape[1] % 16 == 0 and data.tokens.dtype == np.int32
    for i, r in enumerate(recs):
        prompt = tok(A.format_prompt(r["problem"]), add_special_tokens=False)["input_ids"]
        solution = tok(r["solution"], add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
        n = len(prompt) + len(solution)
        assert list(data.tokens[i, :n]) == prompt + solution
        assert data.valid[i, :n].all() and not data.valid[i, n:].any()
        assert not data.targets[i, : len(prompt)].any() and data.targets[i, len(prompt) : n].all()
        assert not data.targets[i, n:].any() and (data.tokens[i, n:] == tok.pad_token_id).all()
    assert data.num_target_tokens == sum(len(tok(r["solution"])["input_ids"]) + 1 for r in recs)
    with pytest.raises(ValueError, match="max_len"):
        encode_sft(recs, tok, max_len=8)
    with pytest.raises(ValueError):
        encode_sft([], tok)


def test_schedule_and_batches():
    sched = make_schedule(1e-2, 100, 10, final_lr_fraction=0.1)
    assert float(sched(0)) == 0.0 and float(sched(10)) == pytest.approx(1e-2)
    assert float(sched(100)) == pytest.approx(1e-3, rel=1e-3)
    idx = batch_indices(10, 7, 4, seed=0)
    assert idx.shape == (7, 4)
    assert sorted(idx.ravel()[:10]) == list(range(10))  # first epoch is a permutation
    assert (idx == batch_indices(10, 7, 4, seed=0)).all()


def test_sft_learns_and_greedy_output_parses(tok):
    records = A.make_mixture((1, 2), 128, seed=0, split="sft")
    heldout = A.make_problems(2, 16, seed=0, split="val")
    model = tiny_model(tok)
    before = jax.tree.map(np.array, nnx.state(model, nnx.Param))
    seen = []
    model, metrics = sft_train(
        model,
        tok,
        records,
        steps=160,
        batch_size=16,
        lr=1e-2,
        seed=0,
        log_fn=lambda step, row: seen.append(step),
        eval_records=heldout,
        eval_every=80,
    )
    loss = metrics["loss"]
    assert len(loss) == 160 == metrics["steps_run"] and seen == list(range(160))
    assert np.isfinite(loss).all()
    assert np.mean(loss[-10:]) < 0.5 * np.mean(loss[:10])
    assert [e["step"] for e in metrics["eval"]] == [80, 160]
    assert metrics["eval"][-1]["loss"] < metrics["eval"][0]["loss"] + 0.5
    after = nnx.state(model, nnx.Param)
    assert any(not np.allclose(a, b) for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after)))

    # greedy decoding of the trained model: stops with EOS and ends in a parseable integer box
    problems = A.make_problems(1, 4, seed=1, split="test") + A.make_problems(2, 4, seed=1, split="test")
    prompts = [tok(A.format_prompt(p["problem"]), add_special_tokens=False)["input_ids"] for p in problems]
    out = generate(
        model, prompts, n=1, max_new_tokens=24, method=Greedy(), stop_ids=[tok.eos_token_id], pad_id=tok.pad_token_id
    )
    texts = tok.batch_decode([t[:n] for t, n in zip(out.tokens, out.lengths)], skip_special_tokens=True)
    assert out.eos.all(), texts
    for text in texts:
        answer = A.boxed_answer(text)
        assert answer is not None and answer.isdigit(), text
        assert text.startswith("=") and text.endswith("}")


def test_early_stop_and_bad_arguments(tok):
    records = A.make_problems(2, 16, seed=0, split="sft")
    model = tiny_model(tok, seed=1)
    model, metrics = sft_train(
        model,
        tok,
        records,
        steps=50,
        batch_size=8,
        lr=1e-3,
        seed=0,
        eval_records=records[:4],
        eval_every=2,
        stop_at_exact_match=0.0,
    )
    assert metrics["steps_run"] == 2 and len(metrics["loss"]) == 2 and len(metrics["eval"]) == 1
    with pytest.raises(ValueError, match="eval_records"):
        sft_train(model, tok, records, steps=2, batch_size=2, lr=1e-3, stop_at_exact_match=0.5)
    with pytest.raises(ValueError):
        sft_train(model, tok, records, steps=0, batch_size=2, lr=1e-3)
