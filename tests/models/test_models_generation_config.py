"""generation_config.json: read with a checkpoint (its ids come before config.json's and the
tokenizer's in the stop/pad rule) and written by every export, so transformers reads the same ids."""

from __future__ import annotations

import json
import os

import pytest
import transformers

from tempo_jax.models.hf_config import CheckpointError, config_from_hf, generation_config_dict, read_generation_config
from tempo_jax.models.hf_io import from_hf, to_hf
from tempo_jax.models.tokenizer import load_tokenizer, stop_and_pad_ids
from tempo_jax.train.tiny import tiny_hf_model

# Qwen3's generation_config.json as published (its config.json has eos_token_id 151645 only).
QWEN3_GENERATION = {
    "bos_token_id": 151643,
    "do_sample": True,
    "eos_token_id": [151645, 151643],
    "pad_token_id": 151643,
    "temperature": 0.6,
    "top_k": 20,
    "top_p": 0.95,
    "transformers_version": "4.51.0",
}


def _write_json(path, obj) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(obj, fh)


def _read_json(path):
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


@pytest.fixture
def qwen3_like(tmp_path):
    """A tiny checkpoint whose config.json says eos 151645 (no pad), with Qwen3's generation config."""
    path = tiny_hf_model(str(tmp_path / "qwen3_like"), eos_token_id=151645, pad_token_id=None, bos_token_id=None)
    _write_json(os.path.join(path, "generation_config.json"), QWEN3_GENERATION)
    return path


@pytest.fixture(scope="module")
def qwen_tokenizer(data_dir):
    return load_tokenizer(data_dir / "tokenizers" / "qwen3")  # eos <|im_end|> 151645, pad 151643


def test_generation_config_ids_come_first_in_its_order(qwen3_like, qwen_tokenizer):
    cfg = from_hf(qwen3_like).cfg
    assert cfg.eos_ids == (151645,)  # config.json
    assert cfg.generation_eos_token_id == (151645, 151643) and cfg.generation_pad_token_id == 151643
    assert cfg.generation_bos_token_id == 151643
    assert cfg.stop_ids == (151645, 151643)
    assert stop_and_pad_ids(qwen_tokenizer, cfg) == ((151645, 151643), 151643)
    # generation_config.json's order wins over config.json's
    reordered = cfg.replace(generation_eos_token_id=(151643, 151645))
    assert stop_and_pad_ids(qwen_tokenizer, reordered) == ((151643, 151645), 151643)
    # the sampling defaults are kept (as JSON text: the config stays hashable), metadata is not
    assert json.loads(cfg.generation_extras) == {"do_sample": True, "temperature": 0.6, "top_k": 20, "top_p": 0.95}
    hash(cfg)


def test_without_generation_config_the_rule_is_unchanged(qwen3_like, qwen_tokenizer):
    os.remove(os.path.join(qwen3_like, "generation_config.json"))
    assert read_generation_config(qwen3_like) is None
    cfg = from_hf(qwen3_like).cfg
    assert cfg.generation_eos_token_id is None and cfg.generation_extras is None
    assert stop_and_pad_ids(qwen_tokenizer, cfg) == ((151645,), 151643)  # the tokenizer's pad


def test_pad_precedence_generation_config_then_tokenizer_then_config(data_dir, qwen3_like):
    olmo = load_tokenizer(data_dir / "tokenizers" / "olmo_dolma2")  # eos 100257, pad 100277
    base = from_hf(qwen3_like).cfg.replace(eos_token_id=100257, pad_token_id=1, generation_eos_token_id=None)
    assert stop_and_pad_ids(olmo, base.replace(generation_pad_token_id=5)) == ((100257, 100265), 5)
    assert stop_and_pad_ids(olmo, base.replace(generation_pad_token_id=None)) == ((100257, 100265), 100277)
    olmo.pad_token = None
    assert stop_and_pad_ids(olmo, base.replace(generation_pad_token_id=5)) == ((100257, 100265), 5)
    assert stop_and_pad_ids(olmo, base.replace(generation_pad_token_id=None)) == ((100257, 100265), 1)
    assert base.replace(generation_pad_token_id=None).declared_pad_id == 1


def test_export_writes_generation_config_that_transformers_reads(qwen3_like, tmp_path):
    model = from_hf(qwen3_like)
    out = to_hf(model, tmp_path / "export")
    written = _read_json(os.path.join(out, "generation_config.json"))
    assert written == {k: v for k, v in QWEN3_GENERATION.items() if k != "transformers_version"}
    gen = transformers.GenerationConfig.from_pretrained(out, local_files_only=True)
    assert gen.eos_token_id == [151645, 151643] and gen.pad_token_id == 151643 and gen.bos_token_id == 151643
    assert gen.temperature == 0.6 and gen.top_k == 20 and gen.top_p == 0.95 and gen.do_sample
    assert from_hf(out).cfg == model.cfg  # the generation fields round-trip


def test_export_writes_the_ids_sampling_used(qwen3_like, qwen_tokenizer, tmp_path):
    """What export_final passes: the full rule's result (here with <|im_end|> from the tokenizer)."""
    model = from_hf(qwen3_like)
    stops, pad = stop_and_pad_ids(qwen_tokenizer, model.cfg.replace(generation_eos_token_id=151643))
    assert stops == (151643, 151645)
    out = to_hf(model, tmp_path / "export", stop_ids=stops, pad_id=pad)
    gen = transformers.GenerationConfig.from_pretrained(out, local_files_only=True)
    assert gen.eos_token_id == [151643, 151645] and gen.pad_token_id == 151643
    assert stop_and_pad_ids(qwen_tokenizer, from_hf(out).cfg) == (stops, pad)


def test_export_without_a_source_generation_config_writes_only_ids(tmp_path):
    path = tiny_hf_model(str(tmp_path / "tiny"))  # config.json: eos 1, pad 0; no sampling defaults
    written = _read_json(os.path.join(path, "generation_config.json"))
    assert written == {"eos_token_id": 1, "pad_token_id": 0}
    gen = transformers.GenerationConfig.from_pretrained(path, local_files_only=True)
    assert gen.eos_token_id == 1 and gen.pad_token_id == 0 and not gen.do_sample
    cfg = from_hf(path).cfg
    assert cfg.stop_ids == (1,) and cfg.generation_extras is None
    assert generation_config_dict(cfg.replace(generation_eos_token_id=None, eos_token_id=(1, 3))) == {
        "eos_token_id": [1, 3],
        "pad_token_id": 0,
    }


def test_config_from_hf_without_generation_is_unchanged():
    hf = {"model_type": "qwen3", "vocab_size": 64, "hidden_size": 16, "intermediate_size": 32}
    hf.update(num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1, head_dim=8, eos_token_id=2)
    cfg = config_from_hf(hf)
    assert cfg.stop_ids == (2,) and cfg.generation_eos_token_id is None
    assert config_from_hf(hf, generation={"eos_token_id": 5}).stop_ids == (5, 2)


def test_bad_generation_config_is_named(qwen3_like):
    path = os.path.join(qwen3_like, "generation_config.json")
    _write_json(path, {"eos_token_id": "</s>"})
    with pytest.raises(CheckpointError, match="eos_token_id must be a token id or a list of ids"):
        from_hf(qwen3_like)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("{not json")
    with pytest.raises(CheckpointError, match="generation_config.json is not valid JSON"):
        from_hf(qwen3_like)
