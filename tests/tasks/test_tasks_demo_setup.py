"""The demo's recommended settings: disjoint data, a valid model config, tokenizer agreement."""
from __future__ import annotations

import jax
from flax import nnx

from tempo_jax.tasks import arithmetic as A
from tempo_jax.tasks.demo_setup import DemoSetup, quick_setup
from tempo_jax.tasks.tokenizer import build_tokenizer, load


def test_datasets_are_disjoint_and_sized():
    setup = DemoSetup()
    data = setup.datasets()
    assert len(data["sft"]) == setup.sft_count and len(data["dl"]) == setup.dl_count
    assert len(data["dl_heldout"]) == setup.dl_heldout_count and len(data["du"]) == setup.du_count
    texts = {name: {r["problem"] for r in recs} for name, recs in data.items()}
    names = sorted(texts)
    for i, a in enumerate(names):
        assert len(texts[a]) == len(data[a])
        for b in names[i + 1:]:
            assert not texts[a] & texts[b], (a, b)
    assert {r["level"] for r in data["du"]} == set(setup.du_levels)
    assert {r["level"] for r in data["dl"]} == set(setup.dl_levels)
    assert data == DemoSetup().datasets()  # deterministic


def test_model_and_tokenizer_agree(tmp_path):
    setup = DemoSetup()
    tok = load(build_tokenizer(tmp_path / "tok"))
    setup.check_tokenizer(tok)
    cfg = setup.model_config()
    assert cfg.eos_ids == (tok.eos_token_id, tok.convert_tokens_to_ids("<|im_end|>"))
    assert cfg.pad_token_id == tok.pad_token_id and cfg.vocab_size >= len(tok)
    abstract = nnx.eval_shape(setup.new_model)  # shapes only, nothing allocated
    n_params = sum(x.size for x in jax.tree.leaves(nnx.state(abstract, nnx.Param)))
    assert n_params == cfg.num_params() < 200_000
    longest = max(len(tok(setup.prompt(r["problem"]))["input_ids"]) + setup.max_new_tokens
                  for r in A.make_problems(max(setup.du_levels), 20, seed=0, split="test"))
    assert longest <= cfg.max_position_embeddings
    kw = setup.sft_kwargs(heldout=[{"problem": "Compute 1+1.", "solution": "=\\boxed{2}"}])
    assert kw["steps"] == setup.sft_steps and kw["eval_records"]
    assert kw["stop_at_exact_match"] == setup.sft_stop_at_exact_match


def test_quick_setup_is_smaller():
    q = quick_setup()
    assert q.sft_steps < DemoSetup().sft_steps and q.du_count <= DemoSetup().du_count
    assert quick_setup(seed=3).seed == 3


def test_calibration_helpers():
    from tempo_jax.tasks.calibrate import _override, markdown, plurality

    assert plurality(["3", None, "4", "4", "3"]) == "3"  # tie: first seen
    assert plurality([None, None]) is None and plurality(["7", "8", "8"]) == "8"
    assert _override("du_levels=(4, 5)") == ("du_levels", (4, 5))
    assert _override("sft_lr=0.003") == ("sft_lr", 0.003)
    row = {"level": 4, "avg@16": 0.2, "pass@8": 0.7, "maj": 0.25, "greedy": 0.3, "maj_wrong_some_right": 0.5,
           "distinct_answers": 5.0}
    table = markdown({"setup": {"eval_n": 16}, "levels": [row]})
    assert "| 4 | 0.200 | 0.700 | 0.250 | 0.300 | 0.500 | 5.0 |" in table
