"""What a recipe costs, without compiling: its architecture, analytic FLOPs per program and the
bytes a sharded tree takes on one device (``tempo-jax plan`` and its report)."""

from __future__ import annotations

import math
import os

import jax

from tempo_jax.models.hf_config import config_from_hf, read_hf_config
from tempo_jax.models.presets import get_preset
from tempo_jax.train import programs as builders
from tempo_jax.train.config import model_overrides

GiB = 2**30
HEADROOM = 0.95  # plan to at most 95% of HBM (XLA and the runtime keep some for themselves)


def model_config_for(cfg):
    """The architecture to plan: ``model.preset`` (a preset name or a HF directory), else actor_hf."""
    overrides = model_overrides(cfg)
    source = cfg.model.get("preset", "") or cfg.model.actor_hf
    if not source:
        raise ValueError("set model.preset (e.g. Qwen3-14B) or model.actor_hf so plan knows the architecture")
    if os.path.isdir(source):
        return config_from_hf(read_hf_config(source), **overrides)
    return get_preset(source, **overrides)


def matmul_params(mc) -> int:
    """Parameters that take part in matmuls (the embedding lookup is not one; a tied head is)."""
    total = mc.num_params()
    if not mc.tie_word_embeddings:
        total -= mc.vocab_size * mc.hidden_size
    return total


def attention_flops(mc, q_len: int, kv_len: int) -> float:
    """QK^T and PV of one sequence over all layers, as our attention computes them (no causal skipping)."""
    return 4.0 * mc.num_layers * q_len * kv_len * mc.num_heads * mc.head_dim


def analytic_flops(mc, cfg) -> dict[str, float]:
    """FLOPs of each program at the recipe's shapes (the updates: every rollout row, every epoch)."""
    r, t = cfg.rollout, cfg.train
    prompts = builders.prompts_per_generate(cfg)
    rows_gen = prompts * r.n
    plen, tlen = cfg.data.max_prompt_tokens, r.max_new_tokens
    seq = plen + tlen
    rows = t.train_batch_size * r.n
    n_mm = matmul_params(mc)
    passes = (4.0 if mc.remat else 3.0) * t.ppo_epochs  # forward + backward (2x) + remat re-forward
    update = passes * rows * (2.0 * n_mm * seq + attention_flops(mc, seq, seq))
    return {
        "prefill": prompts * (2.0 * n_mm * plen + attention_flops(mc, plen, plen)),
        "decode_step": rows_gen * (2.0 * n_mm + attention_flops(mc, 1, plen + tlen - 1)),
        "e_step": update,
        "m_step": update,
        "forward_pass": rows * (2.0 * n_mm * seq + attention_flops(mc, seq, seq)),
    }


def shard_bytes(tree) -> int:
    """Bytes one device holds of a tree of ShapeDtypeStructs with shardings (the largest shard)."""
    total = 0
    for leaf in jax.tree.leaves(tree):
        shape = leaf.sharding.shard_shape(leaf.shape) if getattr(leaf, "sharding", None) is not None else leaf.shape
        total += math.prod(shape) * leaf.dtype.itemsize
    return total
