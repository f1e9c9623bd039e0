"""The demo's task settings: disjoint data, the style mix, a valid model config, tokenizer agreement."""

from __future__ import annotations

import collections

import jax
import pytest
from flax import nnx

from tempo_jax.demo.tasks import arithmetic as A
from tempo_jax.demo.tasks.demo_setup import DemoSetup, quick_setup
from tempo_jax.demo.tasks.tokenizer import build_tokenizer, load


def test_datasets_are_disjoint_sized_and_seeded():
    setup = DemoSetup()
    data = setup.datasets()
    assert len(data["sft"]) == setup.sft_count and len(data["dl"]) == setup.dl_count
    assert len(data["dl_heldout"]) == setup.dl_heldout_count and len(data["du"]) == setup.du_count
    texts = {name: {r["problem"] for r in recs} for name, recs in data.items()}
    names = sorted(texts)
    for i, a in enumerate(names):
        assert len(texts[a]) == len(data[a])
        for b in names[i + 1 :]:
            assert not texts[a] & texts[b], (a, b)
    assert {r["level"] for r in data["du"]} == set(setup.du_levels)
    assert {r["level"] for r in data["dl"]} == set(setup.dl_levels)
    assert data == DemoSetup().datasets()  # deterministic
    other = DemoSetup(seed=1).datasets()
    assert {r["problem"] for r in other["du"]} != texts["du"]  # the seed draws other questions


def test_sft_corpus_mixes_styles_per_phrasing():
    setup = DemoSetup()
    data = setup.datasets()
    counts = collections.Counter((A.verb_of(r["problem"]), r["style"]) for r in data["sft"])
    for verb, share in zip(setup.sft_verbs, setup.sft_hasty_share):
        total = counts[(verb, "hasty")] + counts[(verb, "careful")]
        assert abs(total - setup.sft_count / 2) <= 1 and abs(counts[(verb, "hasty")] / total - share) < 0.03
    # D_L and D_U come from different phrasings; no expression is shared between any two sets
    assert {A.verb_of(r["problem"]) for r in data["dl"] + data["dl_heldout"]} == {setup.dl_verb}
    assert {A.verb_of(r["problem"]) for r in data["du"]} == {setup.du_verb}
    exprs = {k: {A.expression_of(r["problem"]) for r in v} for k, v in data.items() if k != "sft_heldout"}
    for a in exprs:
        for b in exprs:
            assert a == b or not exprs[a] & exprs[b], (a, b)
    with pytest.raises(ValueError, match="one entry per phrasing"):
        DemoSetup(sft_hasty_share=(0.5,))
    with pytest.raises(ValueError, match="one entry per level"):
        DemoSetup(sft_weights=(1.0,))


def test_model_and_tokenizer_agree(tmp_path):
    setup = DemoSetup()
    tok = load(build_tokenizer(tmp_path / "tok"))
    setup.check_tokenizer(tok)
    cfg = setup.model_config()
    assert cfg.eos_ids == (tok.eos_token_id, tok.convert_tokens_to_ids("<|im_end|>"))
    assert cfg.pad_token_id == tok.pad_token_id and cfg.vocab_size >= len(tok)
    abstract = nnx.eval_shape(setup.new_model)  # shapes only, nothing allocated
    n_params = sum(x.size for x in jax.tree.leaves(nnx.state(abstract, nnx.Param)))
    assert n_params == cfg.num_params() < 400_000
    longest = max(
        len(tok(setup.prompt(r["problem"]))["input_ids"]) + setup.max_new_tokens
        for r in A.make_problems(max(setup.du_levels), 20, seed=0, split="test")
    )
    assert longest <= cfg.max_position_embeddings
    held = [{"problem": "Compute 1+1.", "solution": "=\\boxed{2}"}]
    kw = setup.sft_kwargs(heldout=held)
    assert kw["steps"] == setup.sft_steps and kw["eval_records"] == held and "stop_at_exact_match" not in kw


def test_quick_setup_is_smaller():
    q = quick_setup()
    assert q.sft_steps < DemoSetup().sft_steps and q.du_count <= DemoSetup().du_count
    assert q.model_config().num_params() < DemoSetup().model_config().num_params()
    assert quick_setup(seed=3).seed == 3
