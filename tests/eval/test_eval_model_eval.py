"""End-to-end model evaluation: a tiny random Qwen3-architecture model with the real Qwen3 tokenizer
on aime24 -> table, samples JSONL, PNG; critic V_T values and calibration; the HF-dir entry point."""

from __future__ import annotations

import json
import math
import time
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tempo_jax.data.templates import render_prompt
from tempo_jax.data.tfds_builders import load_records
from tempo_jax.eval.model_eval import eval_main, evaluate_model, make_grader_fn, make_sample_fn, make_value_fn
from tempo_jax.eval.runner import evaluate
from tempo_jax.models.config import ModelConfig, RopeConfig
from tempo_jax.models.critic import critic_from_actor
from tempo_jax.models.decoder import CausalLM
from tempo_jax.models.hf_io import to_hf
from tempo_jax.models.tokenizer import check_vocab, load_tokenizer, stop_and_pad_ids
from tempo_jax.rewards import Grader
from tempo_jax.sampling.methods import Sampling

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
N, LIMIT, MAX_NEW = 4, 4, 16
SAMPLE_KEYS = {
    "question_id",
    "sample",
    "answer",
    "response",
    "extracted",
    "correct",
    "length",
    "finish_reason",
    "value",
}


@pytest.fixture(scope="module")
def tokenizer(data_dir):
    path = data_dir / "tokenizers" / "qwen3"
    if not path.exists():
        pytest.skip(f"no Qwen3 tokenizer at {path}")
    return load_tokenizer(path)


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tfds")  # prepare aime24 once for the module


@pytest.fixture(scope="module")
def actor(tokenizer):
    # Qwen3 architecture (per-head q/k norm, tied embeddings) with the tokenizer's vocabulary but a
    # tiny body: the cost is the [rows, 151669] logits, not the layers.
    cfg = ModelConfig(
        model_type="qwen3",
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_layers=1,
        num_heads=2,
        num_kv_heads=1,
        head_dim=8,
        rope=RopeConfig(theta=1e6),
        qk_norm="head",
        tie_word_embeddings=True,
        max_position_embeddings=1024,
        bos_token_id=151643,
        eos_token_id=151645,
    )
    return CausalLM(cfg, nnx.Rngs(0))


def _in_unit(v) -> bool:
    return isinstance(v, float) and 0.0 <= v <= 1.0


def _read_jsonl(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def hash_grader(responses, answers):
    """Deterministic, mixed correctness (a random model is never right): AUROC etc. are defined."""
    correct = np.array([zlib.crc32(r.encode()) % 3 == 0 for r in responses])
    return correct, [None if not r else r[:4] for r in responses]


def test_evaluate_model_on_aime24(actor, tokenizer, data_dir, tfds_dir, tmp_path):
    t0 = time.perf_counter()
    out = tmp_path / "out"
    results = evaluate_model(
        actor,
        tokenizer,
        ["aime24"],
        out_dir=out,
        n=N,
        max_new_tokens=MAX_NEW,
        limit=LIMIT,
        data_dir=data_dir,
        tfds_dir=tfds_dir,
        seed=0,
        template="qwen3",
    )
    elapsed = time.perf_counter() - t0
    res = results["aime24"]
    m = res.metrics
    assert m["n_questions"] == LIMIT and m["n_samples"] == N and m["prompts_filtered"] == 0
    for key in ("avg@4", "pass@1", "pass@2", "pass@4", "maj@4", "best@4", "worst@4", "no_answer_frac"):
        assert _in_unit(m[key]), (key, m[key])
    assert not any(k.startswith("critic/") for k in m)
    assert 1 <= m["length/min"] <= m["length/max"] <= MAX_NEW
    assert m.get("finish/eos", 0) + m.get("finish/length", 0) == LIMIT * N

    ids = [r["id"] for r in load_records("aime24", data_dir=data_dir, tfds_dir=tfds_dir)[:LIMIT]]
    rows = _read_jsonl(out / "aime24_samples.jsonl")
    assert len(rows) == LIMIT * N and set(rows[0]) == SAMPLE_KEYS
    assert [r["question_id"] for r in rows] == [i for i in ids for _ in range(N)]
    assert [r["sample"] for r in rows[:N]] == list(range(N))
    assert all(isinstance(r["response"], str) and isinstance(r["correct"], bool) for r in rows)
    assert all(r["value"] is None and 1 <= r["length"] <= MAX_NEW for r in rows)
    assert all(r["extracted"] is None or isinstance(r["extracted"], str) for r in rows)
    assert len({r["response"] for r in rows}) > 1  # samples differ (T=1.0)

    table = (out / "results.md").read_text()
    assert "| aime24 |" in table and "avg@4" in table and "pass@4" in table and "n=4" in table
    assert "| aime24 |" in (out / "aime24_results.md").read_text()
    for png in (out / "pass_at_k.png", out / "aime24_pass_at_k.png"):
        data = png.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 1000
    summary = json.loads((out / "results.json").read_text())
    assert summary["settings"]["n"] == N and summary["datasets"]["aime24"]["metrics"]["n_questions"] == LIMIT
    assert elapsed < 120, f"e2e evaluation took {elapsed:.1f}s"

    # Same seed -> same samples (sampling keys depend on seed, dataset and call index only).
    again = evaluate_model(
        actor,
        tokenizer,
        "aime24",
        out_dir=tmp_path / "again",
        n=N,
        max_new_tokens=MAX_NEW,
        limit=LIMIT,
        data_dir=data_dir,
        tfds_dir=tfds_dir,
        seed=0,
        grader=hash_grader,
        plot=False,
    )["aime24"]
    assert [s["response"] for s in again.samples] == [s["response"] for s in res.samples]


def test_evaluate_model_with_critic(actor, tokenizer, data_dir, tfds_dir, tmp_path):
    critic = critic_from_actor(actor, seed=1)
    out = tmp_path / "out"
    res = evaluate_model(
        actor,
        tokenizer,
        ["aime24"],
        out_dir=out,
        n=N,
        max_new_tokens=MAX_NEW,
        limit=LIMIT,
        data_dir=data_dir,
        tfds_dir=tfds_dir,
        critic=critic,
        grader=hash_grader,
        seed=3,
    )["aime24"]
    m = res.metrics
    assert 0 < m["avg@4"] < 1  # the hash grader gives both classes
    for key in ("critic/auroc", "critic/brier", "critic/ece", "critic/explained_var", "critic/value_mean"):
        assert key in m and math.isfinite(m[key]), (key, m.get(key))
    assert 0.0 <= m["critic/auroc"] <= 1.0 and 0.0 <= m["critic/ece"] <= 1.0 and 0.0 <= m["critic/brier"] <= 4.0
    rows = _read_jsonl(out / "aime24_samples.jsonl")
    assert all(isinstance(r["value"], float) and math.isfinite(r["value"]) for r in rows)
    assert len({r["value"] for r in rows}) > 1
    assert "auroc" in (out / "results.md").read_text()


def test_value_fn_reads_v_before_last_token(actor, tokenizer, data_dir, tfds_dir):
    """V_T = critic value at the position before the response's last token, on the unpadded sequence."""
    critic = critic_from_actor(actor, seed=2)
    probs = [r["problem"] for r in load_records("aime24", data_dir=data_dir, tfds_dir=tfds_dir)[:LIMIT]]
    # Same sampler shapes as the evaluations above (no new compile); values in blocks of 3 rows.
    sample_fn = make_sample_fn(
        actor,
        tokenizer,
        max_new_tokens=MAX_NEW,
        method=Sampling(),
        batch_prompts=LIMIT,
        seed=5,
        template="qwen3",
        value_fn=make_value_fn(critic, rows_per_call=3),
        return_tokens=True,
    )
    out = sample_fn(probs, N)
    assert [len(x) for x in out] == [N] * LIMIT
    first_prompt = tokenizer(render_prompt(probs[0], "qwen3"), add_special_tokens=False)["input_ids"]
    assert out[0][0]["prompt_tokens"] == list(first_prompt)
    flat = [s for samples in out for s in samples]
    seqs = [s["prompt_tokens"] + s["tokens"] for s in flat]
    width = max(len(x) for x in seqs)
    # Right padding does not change earlier positions (causal), so one batched call suffices.
    graphdef, state = nnx.split(critic)
    forward = jax.jit(lambda st, x: nnx.merge(graphdef, st)(x))  # eager NNX would take seconds
    direct = np.asarray(forward(state, jnp.asarray([x + [0] * (width - len(x)) for x in seqs], jnp.int32)))
    for s, seq, row in zip(flat, seqs, direct):
        assert len(s["tokens"]) == s["length"]
        assert s["value"] == pytest.approx(float(row[len(seq) - 2]), abs=1e-4)
        assert s["text"] == tokenizer.decode(s["tokens"], skip_special_tokens=True)


def test_eval_main_from_hf_dirs_with_length_filter(actor, tokenizer, data_dir, tfds_dir, tmp_path):
    actor_dir = to_hf(actor, tmp_path / "actor")
    critic_dir = to_hf(critic_from_actor(actor), tmp_path / "critic")
    recs = load_records("aime24", data_dir=data_dir, tfds_dir=tfds_dir)[: LIMIT + 1]
    lengths = [
        len(tokenizer(render_prompt(r["problem"], "qwen3"), add_special_tokens=False)["input_ids"]) for r in recs
    ]
    cap = sorted(lengths)[-2]  # exactly the longest prompt does not fit
    assert sorted(lengths)[-1] > cap
    out = tmp_path / "out"
    results = eval_main(
        actor_dir,
        "aime24",
        out,
        critic_dir=critic_dir,
        tokenizer_path=data_dir / "tokenizers" / "qwen3",
        n=N,
        max_new_tokens=MAX_NEW,
        limit=LIMIT + 1,
        data_dir=data_dir,
        tfds_dir=tfds_dir,
        max_prompt_tokens=cap,
        grader=hash_grader,
    )
    m = results["aime24"].metrics
    assert m["n_questions"] == LIMIT and m["prompts_filtered"] == 1 and "critic/auroc" in m
    table = (out / "results.md").read_text()
    assert "1 over-long questions not evaluated" in table and str(actor_dir) in table
    kept = {r["question_id"] for r in _read_jsonl(out / "aime24_samples.jsonl")}
    assert recs[int(np.argmax(lengths))]["id"] not in kept and len(kept) == LIMIT


def test_grader_fn_and_stop_ids(tokenizer, actor):
    from tempo_jax.rewards.grader import Grader

    with Grader(num_workers=1, timeout_s=5.0, mode="inprocess") as g:
        correct, extracted = make_grader_fn(g)(["so \\boxed{204}", "\\boxed{3}", "no answer"], ["204", "4", "1"])
    assert correct.tolist() == [True, False, False] and extracted == ["204", "3", None]
    assert stop_and_pad_ids(tokenizer, actor.cfg) == ((151645,), 151643)  # the rule make_sample_fn uses
    with pytest.raises(ValueError, match="vocab_size"):
        check_vocab(tokenizer, 1000)


def test_grader_fn_grades_and_extracts_each_row_by_its_data_source():
    fn = make_grader_fn(Grader(mode="inprocess"))
    responses = ["Thus the answer is (B).", "\\boxed{4}", "So the answer is True."]
    ok, extracted = fn(responses, ["B", "4", "True"], data_sources=["agieval/lsat-ar", "math500", "bbh/navigate"])
    assert ok.tolist() == [True, True, True] and extracted == ["B", "4", "True"]
    ok, _ = fn(responses, ["B", "4", "True"])  # no data source: every row is maths (boxed answers only)
    assert ok.tolist() == [False, True, False]
    questions = [
        {"id": "q", "problem": "p", "answer": "B", "data_source": "agieval/lsat-ar"},
        {"id": "m", "problem": "p", "answer": "4", "data_source": "math500"},
    ]
    texts = {"q": "The answer is (B).", "m": "\\boxed{4}"}
    result = evaluate(
        questions,
        lambda prompts, n: [[{"text": texts[p], "length": 3}] * n for p in prompts],
        fn,
        n=2,
        ks=(1,),
        prompt_fn=lambda q: q["id"],
    )
    assert result.metrics["avg@2"] == 1.0  # the runner hands each row's data_source to the grader


def test_continuous_engine_evaluates_like_the_static_one(actor, tokenizer, data_dir, tfds_dir, tmp_path):
    """``engine="continuous"`` (3 decode slots for 16 rows per call) writes the same samples."""
    common = dict(n=N, max_new_tokens=MAX_NEW, limit=LIMIT, data_dir=data_dir, tfds_dir=tfds_dir, template="qwen3")
    evaluate_model(actor, tokenizer, ["aime24"], out_dir=tmp_path / "static", **common)
    evaluate_model(
        actor, tokenizer, ["aime24"], out_dir=tmp_path / "cont", engine="continuous", decode_slots=3, **common
    )
    static = _read_jsonl(tmp_path / "static" / "aime24_samples.jsonl")
    cont = _read_jsonl(tmp_path / "cont" / "aime24_samples.jsonl")
    keys = ("question_id", "sample", "response", "length", "finish_reason", "correct")
    assert [[r[k] for k in keys] for r in cont] == [[r[k] for k in keys] for r in static]
