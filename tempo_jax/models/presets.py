"""Architecture presets for the checkpoints TEMPO is run on, with abstract instantiation.

Every value is the one in the published ``config.json`` of the Hugging Face checkpoint named
by the key (vocab, hidden, intermediate, layers, heads, kv heads, head_dim, rope, tying,
eps, context length, special ids). ``abstract_model`` builds a model with ``nnx.eval_shape``
(``jax.ShapeDtypeStruct`` leaves, nothing allocated), which is how paper-scale configs are
planned and counted on a laptop. Loading real weights goes through ``hf_io.from_hf``, which
reads the checkpoint's own config.json; these presets are for planning, tests and dry runs.
"""

from __future__ import annotations

import math
from typing import Any

import jax
from flax import nnx

from tempo_jax.models.config import FULL, SLIDING, ConfigError, ModelConfig, RopeConfig
from tempo_jax.models.critic import Critic
from tempo_jax.models.decoder import CausalLM


def _qwen3(hidden: int, intermediate: int, layers: int, heads: int, tie: bool) -> ModelConfig:
    # Qwen/Qwen3-{0.6B,1.7B,4B,8B,14B} config.json: vocab 151936, head_dim 128, 8 KV heads,
    # rope_theta 1e6 (no scaling), rms_norm_eps 1e-6, max_position_embeddings 40960,
    # bos 151643, eos 151645 (<|im_end|>); 0.6B/1.7B/4B tie the embeddings, 8B/14B do not.
    return ModelConfig(
        model_type="qwen3",
        vocab_size=151936,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_layers=layers,
        num_heads=heads,
        num_kv_heads=8,
        head_dim=128,
        rope=RopeConfig(theta=1_000_000.0),
        rms_norm_eps=1e-6,
        qk_norm="head",
        qkv_bias=False,
        tie_word_embeddings=tie,
        max_position_embeddings=40960,
        bos_token_id=151643,
        eos_token_id=151645,
    )


def _olmo3_7b() -> ModelConfig:
    # allenai/Olmo-3-1025-7B config.json: vocab 100278, hidden 4096, intermediate 11008, 32 layers,
    # 32 heads = 32 KV heads (head_dim 128), rms_norm_eps 1e-6, max_position_embeddings 65536,
    # sliding_window 4096 on three of every four layers (layer_types: sliding x3, full), rope_theta
    # 5e5 with YaRN (factor 8, original 8192, attention_factor 1.2079441541679836, beta 32/1) on
    # the full-attention layers only; sliding layers use plain rope (transformers' Olmo3Config
    # applies rope_scaling to rope_parameters["full_attention"]). eos 100257, pad 100277.
    layers = 32
    layer_types = tuple(SLIDING if (i + 1) % 4 else FULL for i in range(layers))
    return ModelConfig(
        model_type="olmo3",
        vocab_size=100278,
        hidden_size=4096,
        intermediate_size=11008,
        num_layers=layers,
        num_heads=32,
        num_kv_heads=32,
        head_dim=128,
        rope=RopeConfig(
            theta=500_000.0,
            type="yarn",
            factor=8.0,
            original_max_position_embeddings=8192,
            beta_fast=32.0,
            beta_slow=1.0,
            attention_factor=1.2079441541679836,
        ),
        sliding_rope=RopeConfig(theta=500_000.0),
        rms_norm_eps=1e-6,
        qk_norm="full",
        norm_placement="post",
        layer_types=layer_types,
        sliding_window=4096,
        tie_word_embeddings=False,
        max_position_embeddings=65536,
        eos_token_id=100257,
        pad_token_id=100277,
    )


PRESETS: dict[str, ModelConfig] = {
    "Qwen3-0.6B": _qwen3(hidden=1024, intermediate=3072, layers=28, heads=16, tie=True),
    "Qwen3-1.7B": _qwen3(hidden=2048, intermediate=6144, layers=28, heads=16, tie=True),
    "Qwen3-4B": _qwen3(hidden=2560, intermediate=9728, layers=36, heads=32, tie=True),
    "Qwen3-8B": _qwen3(hidden=4096, intermediate=12288, layers=36, heads=32, tie=False),
    "Qwen3-14B": _qwen3(hidden=5120, intermediate=17408, layers=40, heads=40, tie=False),
    # Qwen/Qwen2.5-7B config.json: qkv bias, 28 heads / 4 KV heads (head_dim 128), rope_theta 1e6,
    # max_position_embeddings 131072 (use_sliding_window false), bos = eos = 151643 (base model).
    "Qwen2.5-7B": ModelConfig(
        model_type="qwen2",
        vocab_size=152064,
        hidden_size=3584,
        intermediate_size=18944,
        num_layers=28,
        num_heads=28,
        num_kv_heads=4,
        head_dim=128,
        rope=RopeConfig(theta=1_000_000.0),
        rms_norm_eps=1e-6,
        qkv_bias=True,
        tie_word_embeddings=False,
        max_position_embeddings=131072,
        bos_token_id=151643,
        eos_token_id=151643,
    ),
    "OLMo-3-7B": _olmo3_7b(),
    # meta-llama/Llama-3.1-8B config.json: llama3 rope scaling (factor 8, low 1, high 4, original
    # 8192) on theta 5e5, rms_norm_eps 1e-5, max_position_embeddings 131072, bos 128000, eos 128001.
    "Llama-3.1-8B": ModelConfig(
        model_type="llama",
        vocab_size=128256,
        hidden_size=4096,
        intermediate_size=14336,
        num_layers=32,
        num_heads=32,
        num_kv_heads=8,
        head_dim=128,
        rope=RopeConfig(
            theta=500_000.0,
            type="llama3",
            factor=8.0,
            low_freq_factor=1.0,
            high_freq_factor=4.0,
            original_max_position_embeddings=8192,
        ),
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        max_position_embeddings=131072,
        bos_token_id=128000,
        eos_token_id=128001,
    ),
}

# Case-insensitive aliases: HF repo ids and the spellings people type.
_ALIASES = {
    "qwen/qwen3-0.6b": "Qwen3-0.6B",
    "qwen/qwen3-1.7b": "Qwen3-1.7B",
    "qwen/qwen3-4b": "Qwen3-4B",
    "qwen/qwen3-8b": "Qwen3-8B",
    "qwen/qwen3-14b": "Qwen3-14B",
    "qwen/qwen2.5-7b": "Qwen2.5-7B",
    "allenai/olmo-3-1025-7b": "OLMo-3-7B",
    "allenai/olmo-3-7b": "OLMo-3-7B",
    "olmo3-7b": "OLMo-3-7B",
    "meta-llama/llama-3.1-8b": "Llama-3.1-8B",
    "meta-llama/meta-llama-3.1-8b": "Llama-3.1-8B",
}


def preset_names() -> list[str]:
    return list(PRESETS)


def get_preset(name: str, **overrides: Any) -> ModelConfig:
    """The preset ``name`` (case-insensitive; HF repo ids accepted) with ModelConfig ``overrides``
    (e.g. ``param_dtype="bfloat16"``, ``scan_layers=True``)."""
    key = name if name in PRESETS else None
    if key is None:
        lowered = name.lower()
        key = next((k for k in PRESETS if k.lower() == lowered), None) or _ALIASES.get(lowered)
    if key is None:
        raise ConfigError(f"unknown model preset {name!r}; available presets: {', '.join(PRESETS)}")
    cfg = PRESETS[key]
    if not overrides:
        return cfg
    bad = sorted(set(overrides) - {f.name for f in cfg.__dataclass_fields__.values()})
    if bad:
        raise ConfigError(f"unknown ModelConfig field(s) {bad} for preset {key!r}")
    return cfg.replace(**overrides)


def abstract_model(name_or_cfg: str | ModelConfig, critic: bool = False, **overrides: Any) -> CausalLM | Critic:
    """The actor (or critic) of a preset/config built with ``nnx.eval_shape``: every parameter is a
    ``jax.ShapeDtypeStruct``, so no memory is allocated whatever the model size."""
    cfg = get_preset(name_or_cfg, **overrides) if isinstance(name_or_cfg, str) else name_or_cfg.replace(**overrides)
    cls = Critic if critic else CausalLM
    return nnx.eval_shape(lambda: cls(cfg, nnx.Rngs(0)))


def count_params(model: nnx.Module | nnx.State) -> int:
    """Number of parameters (``nnx.Param`` leaves) of a model or state, abstract or concrete."""
    state = nnx.state(model, nnx.Param) if isinstance(model, nnx.Module) else model
    return int(sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(state)))


def param_bytes(model: nnx.Module | nnx.State) -> int:
    """Bytes the parameters occupy at their dtype (abstract or concrete)."""
    state = nnx.state(model, nnx.Param) if isinstance(model, nnx.Module) else model
    return int(sum(math.prod(leaf.shape) * leaf.dtype.itemsize for leaf in jax.tree.leaves(state)))
