"""A run's prompt template: data.template (default auto), the thinking switch and the instruction."""

import pytest

from tempo_jax.data.templates import QWEN3_NO_THINK, TemplateError
from tempo_jax.train.config import base_config
from tempo_jax.train.stream import run_template


def _cfg(**data):
    cfg = base_config()
    for key, value in data.items():
        cfg.data[key] = value
    return cfg


def test_the_default_is_the_tokenizers_own_chat_template_with_the_thinking_switch():
    tpl = run_template(_cfg())
    assert (tpl.name, tpl.tokenizer_template, tpl.enable_thinking) == ("auto", True, True)
    assert run_template(_cfg(enable_thinking=False)).enable_thinking is False
    assert run_template(_cfg(instruction="")).instruction is None


def test_named_templates_stay_explicit_overrides():
    assert run_template(_cfg(template="qwen3", enable_thinking=False)).generation_prefix == QWEN3_NO_THINK
    olmo = run_template(_cfg(template="olmo", enable_thinking=False))  # no switch there: not passed
    assert (olmo.name, olmo.tokenizer_template, olmo.enable_thinking) == ("olmo", False, None)
    with pytest.raises(TemplateError, match="unknown prompt template 'llama'"):
        run_template(_cfg(template="llama"))
