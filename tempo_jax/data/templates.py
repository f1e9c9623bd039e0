"""Prompt templates, tokenizer loading and prompt encoding with a length policy.

The user turn is ``"{problem} {instruction}"`` with the DeepScaleR/reference instruction
:data:`BOXED_INSTRUCTION` (not appended twice when the problem already ends with it, as verl
prompts often do). A record's own ``instruction`` (the non-math benchmarks' answer formats,
:mod:`tempo_jax.data.benchmarks`) replaces the template's default one; an instruction chosen
explicitly (``instruction=``, ``data.instruction``) applies to every record. An instruction that
starts with whitespace (``"\\n\\n..."``) follows the problem without the joining space.
A record's chat ``messages`` (a verl row's ``prompt``: all its system/user
messages, in order) are rendered as given, the instruction added to the last user message; a
``system=`` override replaces the row's system messages. Templates (by name, see :data:`TEMPLATES`):

* ``auto`` (the default of ``data.template``): the checkpoint tokenizer's own chat template,
  ``tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)``, with
  ``enable_thinking`` passed where the template reads it -- so a model's default system message
  (Qwen2.5, OLMo 3, Llama 3's date header) is in the prompt as the model was trained. A tokenizer
  without a chat template is a :class:`TemplateError`: use ``plain`` (base models) or a named one.
* ``qwen3`` / ``qwen3_nothink``: the Qwen3 chat format built by hand,
  ``[<|im_start|>system\\n{system}<|im_end|>\\n]<|im_start|>user\\n{content}<|im_end|>\\n<|im_start|>assistant\\n``
  plus ``<think>\\n\\n</think>\\n\\n`` when thinking is off -- byte-identical to the official
  Qwen3 jinja template with ``add_generation_prompt=True`` and ``enable_thinking`` True/False.
* ``olmo``: the same ChatML layout with OLMo's ``<|im_start|>``/``<|im_end|>`` tokens (OLMo 3
  instruct; OLMo 2 instruct uses another, Tulu-style format: use ``auto``); ``olmo3_think`` adds the
  ``<think>`` generation prefix of OLMo-3 Think. OLMo's official templates insert a default
  system message when none is given; these named ones add none (``auto`` does, as the checkpoint's
  template says), pass ``system=OLMO3_THINK_SYSTEM`` (or your own) to add one.
* ``plain``: no special tokens, just the user content (for base models), plus ``suffix``.

Named templates are explicit overrides of ``auto``; they keep a row's system messages too, and a
row they cannot write (an assistant turn; for ``plain`` anything but [system,] user) is a
:class:`TemplateError`.

Length policy (``encode_prompts``): ``filter`` drops prompts longer than ``max_prompt_len``
tokens (count reported and logged), ``left_truncate`` keeps the last ``max_prompt_len``
tokens, ``error`` raises.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from typing import Any

import jinja2

from tempo_jax.errors import UserError

log = logging.getLogger(__name__)

BOXED_INSTRUCTION = "Let's think step by step and output the final answer within \\boxed{}."
OLMO3_THINK_SYSTEM = (
    "You are Olmo, a helpful AI assistant built by Ai2. Your date cutoff is December 2024, "
    "and your model weights are available at https://huggingface.co/allenai."
)
QWEN3_NO_THINK = "<think>\n\n</think>\n\n"
LENGTH_POLICIES = ("filter", "left_truncate", "error")
AUTO = "auto"  # the tokenizer's own chat template


class TemplateError(UserError, ValueError):
    """A prompt the chosen template cannot render; the message says which setting to change."""


def user_content(problem: str, instruction: str | None = BOXED_INSTRUCTION) -> str:
    """``"{problem} {instruction}"`` (DeepScaleR style); idempotent on already-instructed text."""
    if not instruction:
        return problem
    p = problem.rstrip()
    if p.endswith(instruction):
        return p
    return p + ("" if instruction[:1].isspace() else " ") + instruction


def tokenizer_name(tokenizer) -> str:
    """What error messages call a tokenizer: its path (``name_or_path``), else its class."""
    return str(getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__)


def chat_template_text(tokenizer) -> str | None:
    """The tokenizer's own chat template (its ``default`` one when it has several), or ``None``."""
    text = getattr(tokenizer, "chat_template", None)
    if isinstance(text, dict):
        text = text.get("default")
    return text if isinstance(text, str) and text else None


def apply_tokenizer_template(messages: Sequence[dict], tokenizer, *, enable_thinking: bool | None = None) -> str:
    """``tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)`` with
    the tokenizer's own template; ``enable_thinking`` is passed where the template reads it."""
    if tokenizer is None:
        raise TemplateError(f"template {AUTO!r} renders prompts with the tokenizer's chat template; pass the tokenizer")
    name, text = tokenizer_name(tokenizer), chat_template_text(tokenizer)
    if text is None:
        raise TemplateError(
            f"tokenizer {name} has no chat template, and data.template={AUTO} (the default) renders prompts "
            "with it; set data.template=plain for a base model (no chat format) or a named template "
            f"({', '.join(t for t in TEMPLATES if t != AUTO)}); with tempo-jax eval, --template plain"
        )
    switches = {}
    if enable_thinking is not None:
        if "enable_thinking" in text:
            switches["enable_thinking"] = enable_thinking
        elif not enable_thinking:
            raise TemplateError(
                f"the chat template of tokenizer {name} has no enable_thinking switch, so "
                "data.enable_thinking=False cannot turn thinking off; leave it True or set a named data.template"
            )
    try:
        return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True, **switches)
    except jinja2.TemplateError as err:
        raise TemplateError(
            f"the chat template of tokenizer {name} cannot render a prompt ({err}); check the data's "
            "messages or set a named data.template"
        ) from err


def plain_text(messages: Sequence[dict], name: str = "plain") -> str:
    """The plain layout ``[{system}\\n\\n]{user}``; other message lists need a chat template."""
    roles = [m["role"] for m in messages]
    if roles not in (["user"], ["system", "user"]):
        raise TemplateError(
            f"template {name!r} writes an optional system message and one user message, not the "
            f"messages {roles}; use a chat template (data.template={AUTO} or a named one) for this data"
        )
    system = messages[0]["content"] if len(messages) == 2 else ""
    return (f"{system}\n\n" if system else "") + messages[-1]["content"]


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
    """How a problem (or a record's chat messages) becomes a prompt string.

    ``chat=False`` is the plain template; ``tokenizer_template=True`` (``auto``) renders with the
    tokenizer's own chat template, passing ``enable_thinking`` where that template reads it.
    """

    name: str
    chat: bool = True
    generation_prefix: str = ""
    system: str | None = None
    instruction: str | None = BOXED_INSTRUCTION
    suffix: str = ""  # plain template only: appended after the user content
    tokenizer_template: bool = False
    enable_thinking: bool | None = None  # tokenizer_template only
    record_instructions: bool = True  # a record's own "instruction" replaces `instruction`

    def messages(self, problem: str, messages: Sequence[dict] | None = None) -> list[dict]:
        """The prompt's messages: ``messages`` (a record's own, in order) with the instruction added
        to the last user message, else ``[system] + user``; ``system`` replaces the row's system ones."""
        if not messages:
            msgs = [{"role": "system", "content": self.system}] if self.system is not None else []
            return msgs + [{"role": "user", "content": user_content(problem, self.instruction)}]
        out = [{"role": m["role"], "content": m["content"]} for m in messages]
        users = [i for i, m in enumerate(out) if m["role"] == "user"]
        if not users:
            raise TemplateError(f"a prompt's messages have no 'user' message (roles {[m['role'] for m in out]})")
        out[users[-1]]["content"] = user_content(out[users[-1]]["content"], self.instruction)
        if self.system is not None:
            out = [{"role": "system", "content": self.system}] + [m for m in out if m["role"] != "system"]
        return out

    def render(self, problem: str, tokenizer=None, *, messages: Sequence[dict] | None = None) -> str:
        """The prompt text; ``tokenizer`` is needed by ``auto`` only."""
        msgs = self.messages(problem, messages)
        if self.tokenizer_template:
            text = apply_tokenizer_template(msgs, tokenizer, enable_thinking=self.enable_thinking)
            return text + self.generation_prefix
        if not self.chat:
            return plain_text(msgs, self.name) + self.suffix
        try:
            return chatml(msgs, generation_prefix=self.generation_prefix)
        except ValueError as err:
            raise TemplateError(
                f"template {self.name!r} cannot write this prompt ({err}); use data.template={AUTO} "
                "(the tokenizer's own chat template)"
            ) from None

    def render_record(self, record: dict, tokenizer=None) -> str:
        """A record's prompt: its ``messages`` when it has them (verl rows), else its ``problem``; with
        the record's own ``instruction`` ("" = none) unless this template's was chosen explicitly."""
        own = record.get("instruction")
        tpl = self
        if self.record_instructions and isinstance(own, str):
            tpl = dataclasses.replace(self, instruction=own or None)
        return tpl.render(record["problem"], tokenizer, messages=record.get("messages"))

    def __call__(self, problem: str) -> str:
        return self.render(problem)


TEMPLATES: dict[str, PromptTemplate] = {
    AUTO: PromptTemplate(AUTO, tokenizer_template=True),
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

    ``enable_thinking=False`` on ``qwen3`` selects ``qwen3_nothink`` (and vice versa); on ``auto``
    it is passed to the tokenizer's chat template. An ``instruction=`` override applies to every
    record, their own ``instruction`` fields included (``record_instructions=False``).
    """
    if "instruction" in overrides:
        overrides.setdefault("record_instructions", False)
    if isinstance(template, str):
        if template not in TEMPLATES:
            raise TemplateError(f"unknown prompt template {template!r}; choose one of {sorted(TEMPLATES)}")
        tpl = TEMPLATES[template]
    else:
        tpl = template
    if enable_thinking is not None and tpl.tokenizer_template:
        tpl = dataclasses.replace(tpl, enable_thinking=enable_thinking)
    elif enable_thinking is not None:
        if tpl.name not in ("qwen3", "qwen3_nothink"):
            raise TemplateError(f"enable_thinking applies to the {AUTO} and qwen3 templates, not {tpl.name!r}")
        tpl = dataclasses.replace(
            tpl,
            name="qwen3" if enable_thinking else "qwen3_nothink",
            generation_prefix="" if enable_thinking else QWEN3_NO_THINK,
        )
    return dataclasses.replace(tpl, **overrides) if overrides else tpl


def render_prompt(problem: str, template: str | PromptTemplate = "qwen3", *, tokenizer=None, **kwargs: Any) -> str:
    return get_template(template, **kwargs).render(problem, tokenizer)


def render_records(
    records: Sequence[dict], template: str | PromptTemplate = "qwen3", *, tokenizer=None, **kwargs: Any
) -> list[str]:
    """Each record's prompt (its ``messages`` when it has them); ``tokenizer`` is needed by ``auto``."""
    tpl = get_template(template, **kwargs)
    return [tpl.render_record(r, tokenizer) for r in records]


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
    prompts = render_records(records, template, tokenizer=tokenizer, **template_kwargs)
    enc = encode_prompts(prompts, tokenizer, max_prompt_len=max_prompt_len, policy=policy)
    kept = [{**records[i], "prompt": prompts[i], "prompt_ids": ids} for i, ids in zip(enc.indices, enc.input_ids)]
    return kept, enc
