"""The task tokenizer: deterministic, HF-loadable, exact round trip, digits as single tokens."""

from __future__ import annotations

import json

import pytest

from tempo_jax.demo.tasks import arithmetic as A
from tempo_jax.demo.tasks import tokenizer as T


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory):
    return T.build_tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.fixture(scope="module")
def tok(tok_dir):
    return T.load(tok_dir)


def test_files_and_determinism(tok_dir, tmp_path):
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        assert (tok_dir / name).is_file()
    again = T.build_tokenizer(tmp_path / "again")
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        assert (tok_dir / name).read_bytes() == (again / name).read_bytes(), name
    special = json.loads((tok_dir / "special_tokens_map.json").read_text())
    assert special["eos_token"] == "<|endoftext|>" and special["pad_token"] == "<|pad|>"


def test_loads_through_transformers(tok_dir, tok):
    from transformers import AutoTokenizer

    auto = AutoTokenizer.from_pretrained(str(tok_dir), local_files_only=True)
    assert len(auto) == len(tok) <= T.MAX_VOCAB
    assert auto.eos_token == "<|endoftext|>" and auto.eos_token_id == 1
    assert auto.pad_token == "<|pad|>" and auto.pad_token_id == 0
    assert auto.convert_tokens_to_ids("<|im_start|>") == 2 and auto.convert_tokens_to_ids("<|im_end|>") == 3
    problem = "Compute 3+4."
    chat = auto.apply_chat_template([{"role": "user", "content": problem}], tokenize=False, add_generation_prompt=True)
    assert chat == A.format_prompt(problem)
    # the project's loader (data.templates) takes it too
    from tempo_jax.models.tokenizer import load_tokenizer

    assert load_tokenizer(tok_dir).encode("=12+3") == auto.encode("=12+3")


def test_save_pretrained_round_trip(tok, tmp_path):
    """A checkpoint directory written with ``save_pretrained`` (as the demo exports) reloads."""
    from transformers import AutoTokenizer

    tok.save_pretrained(str(tmp_path))
    again = AutoTokenizer.from_pretrained(str(tmp_path), local_files_only=True)
    assert (again.eos_token_id, again.pad_token_id, len(again)) == (tok.eos_token_id, tok.pad_token_id, len(tok))
    text = A.format_prompt("Compute 1+2.") + "=\\boxed{3}"
    assert again(text)["input_ids"] == tok(text)["input_ids"]


def test_round_trip_and_digits(tok):
    r = A.make_problems(5, 1, seed=0, split="test")[0]
    prompt, response = A.format_prompt(r["problem"]), r["solution"] + tok.eos_token
    ids = tok(prompt + response, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == prompt + response
    assert tok.decode(ids, skip_special_tokens=True) == "user\n" + r["problem"] + "\nassistant\n" + r["solution"]
    # prompt and response tokenised apart give the same ids as together (no merge crosses them)
    apart = tok(prompt, add_special_tokens=False)["input_ids"] + tok(response, add_special_tokens=False)["input_ids"]
    assert apart == ids
    assert ids[0] == 2 and ids[-1] == 1
    for text in ("Ünïcödé ✓ \\boxed{x}  \t tabs", "", "12345678901234567890", "a\n\n=b"):
        assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    for number in ("0", "7", "42", "905"):
        pieces = tok.convert_ids_to_tokens(tok(number, add_special_tokens=False)["input_ids"])
        assert pieces == list(number)


def test_compact_on_task_text(tok):
    r = A.make_problems(4, 1, seed=0, split="test")[0]
    n_prompt = len(tok(A.format_prompt(r["problem"]), add_special_tokens=False)["input_ids"])
    n_response = len(tok(r["solution"], add_special_tokens=False)["input_ids"])
    assert n_prompt <= 20 and n_response <= 30


def test_vocab_size_is_checked():
    with pytest.raises(ValueError):
        T.train_tokenizer(["abc"], vocab_size=1024)
    with pytest.raises(ValueError):
        T.train_tokenizer(["abc"], vocab_size=200)
