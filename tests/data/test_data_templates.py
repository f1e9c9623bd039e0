"""Prompt templates against the official jinja templates (Qwen3, Qwen2.5, Llama 3.1, OLMo 2/3);
verl messages in prompts; tokenizer loading; length policy."""

import json
import pathlib

import pytest

from tempo_jax.data import templates as T
from tempo_jax.data.records import read_verl
from tempo_jax.errors import UserError
from tempo_jax.models.tokenizer import load_tokenizer

CHAT_TEMPLATES = pathlib.Path(__file__).parent / "chat_templates"  # provenance: its README.md


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


# ----------------------------------------------------------------------------- auto: the tokenizer's own template

LLAMA3_SPECIAL = {
    "bos_token": "<|begin_of_text|>",
    "additional_special_tokens": ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
}
# family -> (shared tokenizer, template fixture (None: its own), special tokens to add,
#            text the template adds without a system message, whether a system message replaces it)
FAMILIES = {
    "qwen3": ("qwen3", None, {}, None, False),
    "qwen2.5": ("qwen3", "qwen2_5_7b_instruct", {}, "You are Qwen, created by Alibaba Cloud.", True),
    "llama3.1": ("olmo_dolma2", "llama3_1_8b_instruct", LLAMA3_SPECIAL, "Cutting Knowledge Date: December 2023", False),
    "olmo2": ("olmo_dolma2", "olmo2_instruct", {"bos_token": "<|endoftext|>"}, None, False),
    "olmo3": ("olmo_dolma2", "olmo3_instruct", {}, "You are OLMo, a helpful function-calling AI assistant", True),
    "olmo3_think": ("olmo_dolma2", "olmo3_think", {}, "You are a helpful AI assistant.", True),
}
SYSTEM = "You are a careful mathematician. Answer with one number."


def family_tokenizer(data_dir, family):
    shared, fixture, special, _, _ = FAMILIES[family]
    tok = load_tokenizer(data_dir / "tokenizers" / shared)
    if special:
        tok.add_special_tokens(special)
    if fixture:
        tok.chat_template = (CHAT_TEMPLATES / f"{fixture}.jinja").read_text(encoding="utf-8")
    return tok


def official_ids(tok, messages, **switches) -> list[int]:
    out = tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=True, **switches)
    return list(out["input_ids"] if hasattr(out, "keys") else out)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_auto_gives_the_official_template_token_ids(data_dir, family):
    tok = family_tokenizer(data_dir, family)
    default, replaced = FAMILIES[family][3:]
    records = [{"id": str(i), "problem": p, "answer": "1"} for i, p in enumerate(PROBLEMS)]
    records += [  # verl rows: their own system prompt, in the prompt as given
        {
            "id": f"s{i}",
            "problem": p,
            "answer": "1",
            "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": p}],
        }
        for i, p in enumerate(PROBLEMS)
    ]
    kept, _ = T.encode_records(records, tok, "auto")
    assert len(kept) == len(records)
    for rec in kept:
        user = {"role": "user", "content": f"{rec['problem'].rstrip()} {T.BOXED_INSTRUCTION}"}
        want = [{"role": "system", "content": SYSTEM}, user] if "messages" in rec else [user]
        assert rec["prompt_ids"] == official_ids(tok, want), rec["id"]
        if default is not None:  # the checkpoint's default system text, as the model was trained
            assert (default in rec["prompt"]) == ("messages" not in rec or not replaced)
        assert (SYSTEM in rec["prompt"]) == ("messages" in rec)
    if tok.bos_token:  # the template writes BOS; encoding must not add a second one
        assert kept[0]["prompt_ids"].count(tok.bos_token_id) == 1


@pytest.mark.parametrize("thinking", [True, False])
@pytest.mark.parametrize("system", [None, SYSTEM])
def test_named_qwen3_equals_auto_on_the_qwen3_tokenizer(qwen_tok, thinking, system):
    auto = T.get_template("auto", enable_thinking=thinking, system=system)
    named = T.get_template("qwen3", enable_thinking=thinking, system=system)
    for problem in PROBLEMS:
        assert auto.render(problem, qwen_tok) == named.render(problem)
    recs = [{"id": str(i), "problem": p, "answer": "1"} for i, p in enumerate(PROBLEMS)]
    assert T.encode_records(recs, qwen_tok, auto)[1].input_ids == T.encode_records(recs, qwen_tok, named)[1].input_ids
    user = {"role": "user", "content": f"Q {T.BOXED_INSTRUCTION}"}
    want = ([{"role": "system", "content": system}] if system else []) + [user]
    assert qwen_tok(auto.render("Q", qwen_tok), add_special_tokens=False)["input_ids"] == official_ids(
        qwen_tok, want, enable_thinking=thinking
    )


def test_a_verl_rows_system_message_reaches_the_prompt(data_dir, tmp_path):
    row = {
        "data_source": "math",
        "prompt": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "What is $2+3$?"}],
        "reward_model": {"ground_truth": "5"},
    }
    path = tmp_path / "verl.jsonl"
    path.write_text(json.dumps(row) + "\n")
    recs, _ = read_verl(path)
    assert recs[0]["problem"] == "What is $2+3$?"  # grading and diagnostics still read the problem
    qwen = family_tokenizer(data_dir, "qwen3")
    auto, _ = T.encode_records(recs, qwen, "auto")
    named, _ = T.encode_records(recs, qwen, "qwen3")
    assert auto[0]["prompt"] == named[0]["prompt"]
    assert auto[0]["prompt"].startswith(f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\nWhat is $2+3$?")
    qwen25 = family_tokenizer(data_dir, "qwen2.5")  # the row's system prompt replaces Qwen2.5's default one
    prompt = T.encode_records(recs, qwen25, "auto")[0][0]["prompt"]
    assert SYSTEM in prompt and "You are Qwen" not in prompt
    # an explicit system= replaces the row's; plain writes it before the question
    assert "Be brief." in T.render_records(recs, "auto", tokenizer=qwen, system="Be brief.")[0]
    assert SYSTEM not in T.render_records(recs, "auto", tokenizer=qwen, system="Be brief.")[0]
    assert T.render_records(recs, "plain") == [f"{SYSTEM}\n\nWhat is $2+3$? {T.BOXED_INSTRUCTION}"]


def test_what_a_named_template_cannot_write_is_an_error(qwen_tok):
    few_shot = [
        {"role": "user", "content": "1+1?"},
        {"role": "assistant", "content": "2"},
        {"role": "user", "content": "2+2?"},
    ]
    rec = {"id": "a", "problem": "2+2?", "answer": "4", "messages": few_shot}
    with pytest.raises(T.TemplateError, match="template 'qwen3' cannot write this prompt.*role 'assistant'"):
        T.render_records([rec], "qwen3")
    with pytest.raises(T.TemplateError, match="template 'plain' writes an optional system message and one user"):
        T.render_records([rec], "plain")
    text = T.render_records([rec], "auto", tokenizer=qwen_tok)[0]  # the chat template writes the turns
    assert text.endswith(f"<|im_start|>user\n2+2? {T.BOXED_INSTRUCTION}<|im_end|>\n<|im_start|>assistant\n")
    assert "<|im_start|>assistant\n2<|im_end|>" in text


def test_auto_without_a_chat_template_or_thinking_switch_is_a_clear_error(olmo_tok, data_dir):
    with pytest.raises(UserError) as err:  # the bare dolma2 tokenizer.json has no chat template
        T.encode_records([{"id": "a", "problem": "Q", "answer": "1"}], olmo_tok, "auto")
    msg = str(err.value)
    assert "tokenizer" in msg and "olmo_dolma2 has no chat template" in msg
    assert "data.template=plain" in msg and "named template (qwen3," in msg
    with pytest.raises(T.TemplateError, match="pass the tokenizer"):
        T.render_prompt("Q", "auto")
    qwen25 = family_tokenizer(data_dir, "qwen2.5")
    assert T.render_prompt("Q", "auto", tokenizer=qwen25, enable_thinking=True) == T.render_prompt(
        "Q", "auto", tokenizer=qwen25
    )  # thinking on is every template's default: nothing to pass
    with pytest.raises(T.TemplateError, match="has no enable_thinking switch"):
        T.render_prompt("Q", "auto", tokenizer=qwen25, enable_thinking=False)
