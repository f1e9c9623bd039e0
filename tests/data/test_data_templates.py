"""Prompt templates against the official Qwen3 jinja template; tokenizer loading; length policy."""

import pytest

from tempo_jax.data import templates as T
from tempo_jax.models.tokenizer import load_tokenizer


@pytest.fixture(scope="module")
def qwen_tok(data_dir):
    return load_tokenizer(data_dir / "tokenizers" / "qwen3")


@pytest.fixture(scope="module")
def olmo_tok(data_dir):
    return load_tokenizer(data_dir / "tokenizers" / "olmo_dolma2")


PROBLEMS = ["What is $1+1$?", "Find $x$ if\n\n$$\\frac{x}{2} = 3.$$ {Braces} <tags>  ", "日本語の問題です。"]


@pytest.mark.parametrize("thinking", [True, False])
@pytest.mark.parametrize("system", [None, "You are a careful mathematician."])
def test_qwen3_matches_official_template(qwen_tok, thinking, system):
    if not getattr(qwen_tok, "chat_template", None):
        pytest.skip("no chat template in the shared qwen3 tokenizer_config.json")
    tpl = T.get_template("qwen3", enable_thinking=thinking, system=system)
    for problem in PROBLEMS:
        ours = tpl.render(problem)
        theirs = qwen_tok.apply_chat_template(
            tpl.messages(problem), tokenize=False, add_generation_prompt=True, enable_thinking=thinking
        )
        assert ours == theirs
    assert T.render_prompt("hi", "qwen3_nothink") == T.render_prompt("hi", "qwen3", enable_thinking=False)


def test_user_content_and_other_templates():
    c = T.user_content("Compute 2+2.")
    assert c == "Compute 2+2. Let's think step by step and output the final answer within \\boxed{}."
    assert T.user_content(c) == c  # verl prompts that already carry the instruction
    assert T.render_prompt("Q", "plain") == "Q " + T.BOXED_INSTRUCTION
    assert T.render_prompt("Q", "plain", instruction=None, suffix="\nA:") == "Q\nA:"
    assert (
        T.render_prompt("Q", "olmo") == f"<|im_start|>user\nQ {T.BOXED_INSTRUCTION}<|im_end|>\n<|im_start|>assistant\n"
    )
    assert T.render_prompt("Q", "olmo3_think", system=T.OLMO3_THINK_SYSTEM).startswith(
        "<|im_start|>system\nYou are Olmo"
    )
    assert T.render_prompt("Q", "olmo3_think").endswith("<|im_start|>assistant\n<think>")
    with pytest.raises(ValueError, match="unknown prompt template"):
        T.get_template("llama9")
    with pytest.raises(ValueError, match="enable_thinking"):
        T.get_template("plain", enable_thinking=False)


def test_tokenizers_load(qwen_tok, olmo_tok):
    assert len(qwen_tok) == 151669 and qwen_tok.eos_token == "<|im_end|>" and qwen_tok.pad_token == "<|endoftext|>"
    assert len(olmo_tok) == 100278
    assert olmo_tok.eos_token_id == 100257 and olmo_tok.pad_token_id == 100277
    ids = olmo_tok(T.render_prompt("Q", "olmo"), add_special_tokens=False)["input_ids"]
    assert ids[0] == 100264 and 100265 in ids  # <|im_start|>, <|im_end|> are single tokens
    ids = qwen_tok(T.render_prompt("Q", "qwen3_nothink"), add_special_tokens=False)["input_ids"]
    assert ids[0] == 151644 and qwen_tok.convert_tokens_to_ids("<think>") in ids


def test_tokenizer_json_fallback(tmp_path, data_dir):
    (tmp_path / "tok").mkdir()
    (tmp_path / "tok" / "tokenizer.json").write_bytes(
        (data_dir / "tokenizers" / "olmo_dolma2" / "tokenizer.json").read_bytes()
    )
    (tmp_path / "tok" / "tokenizer_config.json").write_text("{not json")  # AutoTokenizer fails on this
    tok = load_tokenizer(tmp_path / "tok")
    assert len(tok) == 100278 and tok.pad_token == "<|pad|>"
    with pytest.raises(FileNotFoundError):
        load_tokenizer(tmp_path / "missing")


def test_length_policy(qwen_tok):
    recs = [{"id": str(i), "problem": "word " * (5 + 40 * i), "answer": "1"} for i in range(3)]
    prompts = T.render_records(recs, "qwen3")
    lengths = [len(qwen_tok(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    limit = (lengths[0] + lengths[1]) // 2 + 1
    enc = T.encode_prompts(prompts, qwen_tok, max_prompt_len=limit, policy="filter")
    assert enc.indices == [0] and enc.n_filtered == 2 and enc.lengths == [lengths[0]]
    assert "1/3 prompts kept" in enc.summary()
    enc = T.encode_prompts(prompts, qwen_tok, max_prompt_len=limit, policy="left_truncate")
    full = qwen_tok(prompts[2], add_special_tokens=False)["input_ids"]
    assert enc.indices == [0, 1, 2] and enc.n_truncated == 2 and enc.input_ids[2] == full[-limit:]
    with pytest.raises(ValueError, match="max_prompt_len"):
        T.encode_prompts(prompts, qwen_tok, max_prompt_len=limit, policy="error")
    with pytest.raises(ValueError, match="unknown prompt-length policy"):
        T.encode_prompts(prompts, qwen_tok, policy="truncate")
    kept, enc = T.encode_records(recs, qwen_tok, "qwen3", max_prompt_len=limit)
    assert [r["id"] for r in kept] == ["0"] and kept[0]["prompt_ids"] == enc.input_ids[0]
