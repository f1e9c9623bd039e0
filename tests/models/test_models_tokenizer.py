"""Both shared tokenizers load through transformers from their local directories and round-trip."""

from __future__ import annotations

import pytest

from tempo_jax.models.config import ModelConfig, RopeConfig
from tempo_jax.models.tokenizer import TokenizerError, load_tokenizer, stop_and_pad_ids

TEXT = "Let x = 3. Then 2x + 1 = 7, so the answer is \\boxed{7}. Ünïcödé ✓"


def test_qwen3_tokenizer_round_trips(data_dir):
    tok = load_tokenizer(data_dir / "tokenizers" / "qwen3")  # vocab.json + merges.txt + tokenizer_config.json
    assert len(tok) == 151669
    assert tok.eos_token == "<|im_end|>" and tok.eos_token_id == 151645
    assert tok.pad_token_id == 151643
    ids = tok(TEXT)["input_ids"]
    assert ids and max(ids) < 151936  # fits the (padded) Qwen3 embedding
    assert tok.decode(ids) == TEXT
    assert tok.convert_tokens_to_ids("<|im_start|>") == 151644
    chat = tok.apply_chat_template([{"role": "user", "content": "1+1?"}], tokenize=False, add_generation_prompt=True)
    assert chat.startswith("<|im_start|>user\n1+1?<|im_end|>\n<|im_start|>assistant\n")


def test_olmo_dolma2_tokenizer_round_trips(data_dir):
    folder = data_dir / "tokenizers" / "olmo_dolma2"  # only tokenizer.json
    for tok in (load_tokenizer(folder), load_tokenizer(folder / "tokenizer.json")):
        assert len(tok) == 100278
        assert tok.eos_token == "<|endoftext|>" and tok.eos_token_id == 100257
        assert tok.pad_token == "<|pad|>" and tok.pad_token_id == 100277
        ids = tok(TEXT)["input_ids"]
        assert ids and max(ids) < 100278
        assert tok.decode(ids) == TEXT
        assert tok.decode(ids + [tok.eos_token_id], skip_special_tokens=True) == TEXT


def test_missing_tokenizer_is_named(tmp_path):
    with pytest.raises(TokenizerError, match="does not exist"):
        load_tokenizer(tmp_path / "nope")
    with pytest.raises(TokenizerError) as err:
        load_tokenizer(tmp_path)
    assert str(tmp_path) in str(err.value) and "tokenizer.json" in str(err.value)


def _model_cfg(eos, pad=None) -> ModelConfig:
    return ModelConfig(
        model_type="qwen3",
        vocab_size=151936,
        hidden_size=8,
        intermediate_size=8,
        num_layers=1,
        num_heads=1,
        num_kv_heads=1,
        head_dim=8,
        rope=RopeConfig(theta=1e6),
        eos_token_id=eos,
        pad_token_id=pad,
    )


def test_stop_and_pad_ids_add_the_chat_end_and_the_tokenizers_eos(data_dir):
    qwen = load_tokenizer(data_dir / "tokenizers" / "qwen3")  # eos is <|im_end|> 151645, pad 151643
    assert stop_and_pad_ids(qwen, _model_cfg(151645)) == ((151645,), 151643)
    assert stop_and_pad_ids(qwen, _model_cfg((151643, 151645))) == ((151643, 151645), 151643)
    olmo = load_tokenizer(data_dir / "tokenizers" / "olmo_dolma2")  # eos <|endoftext|>; ChatML turns end at <|im_end|>
    assert stop_and_pad_ids(olmo, _model_cfg(100257, pad=1)) == ((100257, 100265), 100277)
    olmo.pad_token = None
    assert stop_and_pad_ids(olmo, _model_cfg(100257, pad=1)) == ((100257, 100265), 1)
    assert stop_and_pad_ids(olmo, _model_cfg(None)) == ((100257, 100265), 100257)
