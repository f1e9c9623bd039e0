"""Prompt templates, tokenizer loading and prompt encoding with a length policy.

The user turn is ``"{problem} {instruction}"`` with the DeepScaleR/reference instruction
:data:`BOXED_INSTRUCTION` (not appended twice when the problem already ends with it, as verl
prompts often do). Templates (by name, see :data:`TEMPLATES`):

* ``qwen3`` / ``qwen3_nothink``: the Qwen3 chat format built by hand,
  ``[<|im_start|>system\\n{system}<|im_end|>\\n]<|im_start|>user\\n{content}<|im_end|>\\n<|im_start|>assistant\\n``
  plus ``<think>\\n\\n</think>\\n\\n`` when thinking is off -- byte-identical to the official
  Qwen3 jinja template with ``add_generation_prompt=True`` and ``enable_thinking`` True/False.
* ``olmo``: the same ChatML layout with OLMo's ``<|im_start|>``/``<|im_end|>`` tokens (OLMo 2/3
  instruct); ``olmo3_think`` adds the ``<think>`` generation prefix of OLMo-3 Think. OLMo's
  official templates insert a default system message when none is given; pass
  ``system=OLMO3_THINK_SYSTEM`` (or your own) to reproduce that -- we add none by default.
* ``plain``: no special tokens, just the user content (for base models), plus ``suffix``.

Length policy (``encode_prompts``): ``filter`` drops prompts longer than ``max_prompt_len``
tokens (count reported and logged), ``left_truncate`` keeps the last ``max_prompt_len``
tokens, ``error`` raises.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

log = logging.getLogger(__name__)

BOXED_INSTRUCTION = "Let's think step by step and output the final answer within \\boxed{}."
OLMO3_THINK_SYSTEM = (
    "You are Olmo, a helpful AI assistant built by Ai2. Your date cutoff is December 2024, "
    "and your model weights are available at https://huggingface.co/allenai."
)
QWEN3_NO_THINK = "<think>\n\n</think>\n\n"
LENGTH_POLICIES = ("filter", "left_truncate", "error")


def user_content(problem: str, instruction: str | None = BOXED_INSTRUCTION) -> str:
    """``"{problem} {instruction}"`` (DeepScaleR style); idempotent on already-instructed text."""
    if not instruction:
        return problem
    p = problem.rstrip()
    if p.endswith(instruction):
        return p
    return f"{p} {instruction}"


def chatml(messages: Sequence[dict], *, add_generation_prompt: bool = True, generation_prefix: str = "") -> str:
    """Render system/user messages in ChatML (the Qwen3 / OLMo layout)."""
    out = []
    for i, m in enumerate(messages):
        role, content = m.get("role"), m.get("content")
        if role not in ("system", "user"):
            raise ValueError(f"message {i}: role {role!r} not supported in prompts (use 'system' or 'user')")
        if not isinstance(content, str):
            raise ValueError(f"message {i}: content must be a string, got {type(content).__name__}")
        out.append(f"<|im_start|>{role}\n{content}<|im_end|>\n")
    if add_generation_prompt:
        out.append("<|im_start|>assistant\n" + generation_prefix)
    return "".join(out)


def qwen3_chat(messages: Sequence[dict], *, enable_thinking: bool = True, add_generation_prompt: bool = True) -> str:
    """The official Qwen3 template's output for system/user messages (no tools, no history)."""
    return chatml(
        messages,
        add_generation_prompt=add_generation_prompt,
        generation_prefix="" if enable_thinking else QWEN3_NO_THINK,
    )


@dataclasses.dataclass(frozen=True)
class PromptTemplate:
    """How a problem becomes a prompt string. ``chat=False`` is the plain template."""

    name: str
    chat: bool = True
    generation_prefix: str = ""
    system: str | None = None
    instruction: str | None = BOXED_INSTRUCTION
    suffix: str = ""  # plain template only: appended after the user content

    def messages(self, problem: str) -> list[dict]:
        msgs = [{"role": "system", "content": self.system}] if self.system is not None else []
        return msgs + [{"role": "user", "content": user_content(problem, self.instruction)}]

    def render(self, problem: str) -> str:
        if not self.chat:
            prefix = f"{self.system}\n\n" if self.system else ""
            return prefix + user_content(problem, self.instruction) + self.suffix
        return chatml(self.messages(problem), generation_prefix=self.generation_prefix)

    def __call__(self, problem: str) -> str:
        return self.render(problem)


TEMPLATES: dict[str, PromptTemplate] = {
    "qwen3": PromptTemplate("qwen3"),
    "qwen3_nothink": PromptTemplate("qwen3_nothink", generation_prefix=QWEN3_NO_THINK),
    "olmo": PromptTemplate("olmo"),
    "olmo3_think": PromptTemplate("olmo3_think", generation_prefix="<think>"),
    "plain": PromptTemplate("plain", chat=False),
}


def get_template(
    template: str | PromptTemplate = "qwen3", *, enable_thinking: bool | None = None, **overrides: Any
) -> PromptTemplate:
    """A template by name (or as given), with field overrides (``system=``, ``instruction=``...).

    ``enable_thinking=False`` on ``qwen3`` selects ``qwen3_nothink`` (and vice versa).
    """
    if isinstance(template, str):
        if template not in TEMPLATES:
            raise ValueError(f"unknown prompt template {template!r}; choose one of {sorted(TEMPLATES)}")
        tpl = TEMPLATES[template]
    else:
        tpl = template
    if enable_thinking is not None:
        if tpl.name not in ("qwen3", "qwen3_nothink"):
            raise ValueError(f"enable_thinking applies to the qwen3 templates, not {tpl.name!r}")
        tpl = dataclasses.replace(
            tpl,
            name="qwen3" if enable_thinking else "qwen3_nothink",
            generation_prefix="" if enable_thinking else QWEN3_NO_THINK,
        )
    return dataclasses.replace(tpl, **overrides) if overrides else tpl


def render_prompt(problem: str, template: str | PromptTemplate = "qwen3", **kwargs: Any) -> str:
    return get_template(template, **kwargs).render(problem)


def render_records(records: Sequence[dict], template: str | PromptTemplate = "qwen3", **kwargs: Any) -> list[str]:
    tpl = get_template(template, **kwargs)
    return [tpl.render(r["problem"]) for r in records]


# ----------------------------------------------------------------------------- prompt encoding


@dataclasses.dataclass
class EncodedPrompts:
    """Token ids of the kept prompts; ``indices[i]`` is the input position of ``input_ids[i]``."""

    input_ids: list[list[int]]
    indices: list[int]
    n_input: int
    n_filtered: int = 0
    n_truncated: int = 0
    policy: str = "filter"
    max_prompt_len: int | None = None

    @property
    def lengths(self) -> list[int]:
        return [len(x) for x in self.input_ids]

    def summary(self) -> str:
        return (
            f"{len(self.input_ids)}/{self.n_input} prompts kept (policy={self.policy}, "
            f"max_prompt_len={self.max_prompt_len}, filtered={self.n_filtered}, truncated={self.n_truncated})"
        )


def encode_prompts(
    prompts: Sequence[str],
    tokenizer,
    *,
    max_prompt_len: int | None = None,
    policy: str = "filter",
    add_special_tokens: bool = False,
) -> EncodedPrompts:
    """Tokenise rendered prompts and apply the length policy (see module docstring).

    Templates already contain their special tokens, hence ``add_special_tokens=False``.
    """
    if policy not in LENGTH_POLICIES:
        raise ValueError(f"unknown prompt-length policy {policy!r}; choose one of {LENGTH_POLICIES}")
    if max_prompt_len is not None and max_prompt_len <= 0:
        raise ValueError(f"max_prompt_len must be positive, got {max_prompt_len}")
    ids = tokenizer(list(prompts), add_special_tokens=add_special_tokens)["input_ids"] if prompts else []
    out = EncodedPrompts([], [], n_input=len(prompts), policy=policy, max_prompt_len=max_prompt_len)
    for i, x in enumerate(ids):
        x = list(x)
        if max_prompt_len is not None and len(x) > max_prompt_len:
            if policy == "filter":
                out.n_filtered += 1
                continue
            if policy == "error":
                raise ValueError(
                    f"prompt {i} has {len(x)} tokens > max_prompt_len={max_prompt_len}; "
                    "raise the limit or use policy='filter' / 'left_truncate'"
                )
            x = x[-max_prompt_len:]
            out.n_truncated += 1
        out.input_ids.append(x)
        out.indices.append(i)
    if out.n_filtered or out.n_truncated:
        log.info("prompt length policy: %s", out.summary())
    return out


def encode_records(
    records: Sequence[dict],
    tokenizer,
    template: str | PromptTemplate = "qwen3",
    *,
    max_prompt_len: int | None = None,
    policy: str = "filter",
    **template_kwargs: Any,
) -> tuple[list[dict], EncodedPrompts]:
    """Render + encode records; returns the kept records (each with ``prompt`` and ``prompt_ids``)."""
    prompts = render_records(records, template, **template_kwargs)
    enc = encode_prompts(prompts, tokenizer, max_prompt_len=max_prompt_len, policy=policy)
    kept = [{**records[i], "prompt": prompts[i], "prompt_ids": ids} for i, ids in zip(enc.indices, enc.input_ids)]
    return kept, enc
