"""Tiny end-to-end fixtures: a character-level tokenizer, a random Qwen3-architecture model
exported as a HF directory, and toy `{id, problem, answer}` JSONL files.

They let the trainer, evaluator and CLI run for real in seconds on a CPU, with no download.
"""

from __future__ import annotations

import json
import os
import string
from typing import Any

from flax import nnx
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from tempo_jax.models.config import ModelConfig, RopeConfig
from tempo_jax.models.decoder import CausalLM
from tempo_jax.models.hf_io import to_hf
from tempo_jax.train.config import recipe

SPECIALS = ("<pad>", "<|endoftext|>", "<|im_start|>", "<|im_end|>")


def char_tokenizer(out_dir: str):
    """A character-level HF fast tokenizer over printable ASCII (+ specials); saved to ``out_dir``."""
    vocab = {tok: i for i, tok in enumerate(SPECIALS)}
    for ch in string.printable:
        vocab.setdefault(ch, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    tok.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        eos_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    os.makedirs(out_dir, exist_ok=True)
    fast.save_pretrained(out_dir)
    return fast


def tiny_model_config(vocab_size: int, **overrides) -> ModelConfig:
    fields: dict[str, Any] = dict(
        model_type="qwen3",
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_layers=2,
        num_heads=4,
        num_kv_heads=2,
        head_dim=8,
        rope=RopeConfig(theta=10000.0),
        qk_norm="head",
        tie_word_embeddings=True,
        eos_token_id=1,
        pad_token_id=0,
        max_position_embeddings=2048,
    )
    fields.update(overrides)
    return ModelConfig(**fields)


def tiny_hf_model(out_dir: str, seed: int = 0, **overrides) -> str:
    """A random tiny model + char tokenizer saved together as one HF directory."""
    tokenizer = char_tokenizer(out_dir)
    cfg = tiny_model_config(len(tokenizer), **overrides)
    to_hf(CausalLM(cfg, nnx.Rngs(seed)), out_dir)
    return out_dir


def toy_problems(path: str, count: int, start: int = 0) -> str:
    """``a+b`` problems as `{id, problem, answer}` JSONL."""
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(start, start + count):
            a, b = i % 7 + 1, (3 * i) % 5 + 1
            fh.write(json.dumps({"id": f"toy-{i}", "problem": f"{a}+{b}", "answer": str(a + b)}) + "\n")
    return path


def ensure_tiny_assets(root: str = "runs/tiny_assets") -> dict[str, str]:
    """Create (once) a tiny random model + tokenizer and toy D_L / D_U files under ``root``.

    Used by the ``configs/tiny.py:<method>`` recipes so they run on a clean checkout.
    """
    paths = {
        "model": os.path.join(root, "model"),
        "labeled": os.path.join(root, "labeled.jsonl"),
        "unlabeled": os.path.join(root, "unlabeled.jsonl"),
    }
    if not os.path.isfile(os.path.join(paths["model"], "config.json")):
        tiny_hf_model(paths["model"])
    if not os.path.isfile(paths["labeled"]):
        toy_problems(paths["labeled"], 32)
    if not os.path.isfile(paths["unlabeled"]):
        toy_problems(paths["unlabeled"], 8, start=100)
    return paths


def tiny_recipe(method: str, assets: dict[str, str] | None = None, **changes):
    """A complete config for ``method`` on the tiny assets: 3 short steps, checkpoint every step."""
    paths = assets or ensure_tiny_assets()
    base = dict(
        run_dir=f"runs/tiny_{method}",
        model__actor_hf=paths["model"],
        data__labeled=paths["labeled"],
        data__unlabeled=paths["unlabeled"],
        data__template="plain",
        data__max_prompt_tokens=96,
        rollout__n=4,
        rollout__max_new_tokens=16,
        train__total_steps=3,
        train__train_batch_size=4,
        train__ppo_mini_batch_size=2,
        train__actor_lr=1e-3,
        train__critic_lr=1e-3,
        algo__policy_options__clip_low=0.2,
        algo__policy_options__clip_high=0.2,
        algo__filter_groups=False,
        eval__test_freq=0,
        checkpoint__save_every=1,
        log__progress_bar=False,
    )
    base.update(changes)
    return recipe(method, **base)
