"""A run's prompts: its template, D_L / D_U encoded with the tokenizer, mixed into the step stream."""

from __future__ import annotations

import logging

import ml_collections

from tempo_jax.data.mixing import MixedStream
from tempo_jax.data.templates import AUTO, PromptTemplate, encode_records, get_template
from tempo_jax.train.config import RecipeError
from tempo_jax.train.data_roles import load_roles

log = logging.getLogger(__name__)


def run_template(cfg: ml_collections.ConfigDict) -> PromptTemplate:
    """The prompt template of a run: data.template, thinking switch and instruction. The thinking
    switch goes to the qwen3 templates and to ``auto`` (the tokenizer's chat template, where it reads it)."""
    takes_thinking = cfg.data.template.startswith("qwen3") or cfg.data.template == AUTO
    thinking = cfg.data.enable_thinking if takes_thinking else None
    overrides = {}
    if cfg.data.instruction != "default":
        overrides["instruction"] = cfg.data.instruction or None
    return get_template(cfg.data.template, enable_thinking=thinking, **overrides)


def encode(records: list[dict], tokenizer, cfg: ml_collections.ConfigDict) -> list[dict]:
    """Records with ``prompt_ids`` (template + tokenizer + length policy); warns about dropped ones."""
    kept, enc = encode_records(
        records, tokenizer, run_template(cfg), max_prompt_len=cfg.data.max_prompt_tokens, policy=cfg.data.prompt_policy
    )
    if enc.n_filtered:
        log.warning(
            "%d of %d prompts were longer than data.max_prompt_tokens=%d and were filtered out",
            enc.n_filtered,
            len(records),
            cfg.data.max_prompt_tokens,
        )
    return kept


def build_stream(cfg: ml_collections.ConfigDict, tokenizer) -> tuple[MixedStream, dict[str, int]]:
    labeled, unlabeled = load_roles(cfg)
    labeled = encode(labeled, tokenizer, cfg) if labeled else []
    unlabeled = encode(unlabeled, tokenizer, cfg) if unlabeled else []
    if not labeled and not unlabeled:
        raise RecipeError("no prompts left after loading and the prompt-length policy; check data.* settings")
    stream = MixedStream(
        labeled,
        unlabeled,
        batch_size=cfg.train.train_batch_size,
        seed=cfg.seed,
        replicate_unlabeled_to=(cfg.data.replicate_unlabeled_to or None) if unlabeled else None,
    )
    return stream, {"labeled": len(labeled), "unlabeled": len(unlabeled)}
