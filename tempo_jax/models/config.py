"""Model configuration for the decoder family (Qwen3, Qwen2/2.5, Llama 3, OLMo 2/3).

One frozen dataclass describes every supported architecture; the differences between
families are a handful of switches (qkv bias, q/k norm style, norm placement, sliding
layers, rope scaling) rather than separate model classes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp

from tempo_jax.errors import UserError

FULL = "full_attention"
SLIDING = "sliding_attention"
ATTENTION_IMPLS = ("xla", "cudnn", "splash", "auto", "dot_product_xla", "splash_interpret")
SUPPORTED_MODEL_TYPES = ("qwen3", "qwen2", "llama", "olmo2", "olmo3")


class ConfigError(UserError, ValueError):
    """A model configuration that cannot work; the message says what to change."""


@dataclasses.dataclass(frozen=True)
class RopeConfig:
    """Rotary embedding parameters exactly as the HF config states them (never assumed)."""

    theta: float
    type: str = "default"  # default | linear | llama3 | yarn
    factor: float = 1.0
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_max_position_embeddings: int | None = None
    beta_fast: float | None = None
    beta_slow: float | None = None
    attention_factor: float | None = None
    mscale: float | None = None
    mscale_all_dim: float | None = None
    truncate: bool = True

    def to_hf(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rope_type": self.type, "rope_theta": self.theta}
        if self.type == "linear":
            out["factor"] = self.factor
        elif self.type == "llama3":
            out.update(
                factor=self.factor,
                low_freq_factor=self.low_freq_factor,
                high_freq_factor=self.high_freq_factor,
                original_max_position_embeddings=self.original_max_position_embeddings,
            )
        elif self.type == "yarn":
            out.update(factor=self.factor, original_max_position_embeddings=self.original_max_position_embeddings)
            for key in ("beta_fast", "beta_slow", "attention_factor", "mscale", "mscale_all_dim"):
                if getattr(self, key) is not None:
                    out[key] = getattr(self, key)
            if not self.truncate:
                out["truncate"] = False
        return out


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture + numerics of one decoder. Family switches:

    * qwen3: per-head RMSNorm on q and k (``qk_norm="head"``), no qkv bias;
    * qwen2: qkv bias;
    * llama: optional ``llama3`` rope scaling;
    * olmo2: norms after attention and MLP (``norm_placement="post"``), RMSNorm on the full
      q and k projections (``qk_norm="full"``);
    * olmo3: olmo2 + sliding-window attention on the layers ``layer_types`` marks.
    """

    model_type: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rope: RopeConfig
    sliding_rope: RopeConfig | None = None  # rope of sliding layers when it differs (OLMo 3)
    rms_norm_eps: float = 1e-6
    qkv_bias: bool = False
    qk_norm: str = "none"  # none | head | full
    norm_placement: str = "pre"  # pre | post
    layer_types: tuple[str, ...] = ()
    sliding_window: int | None = None
    tie_word_embeddings: bool = False
    max_position_embeddings: int = 32768
    bos_token_id: int | None = None
    eos_token_id: int | tuple[int, ...] | None = None
    pad_token_id: int | None = None
    # generation_config.json's ids (None: the checkpoint had none) and its other keys (temperature,
    # top_p, ...) as JSON text (a string keeps the config hashable); exports write them back.
    generation_bos_token_id: int | None = None
    generation_eos_token_id: int | tuple[int, ...] | None = None
    generation_pad_token_id: int | None = None
    generation_extras: str | None = None
    param_dtype: str = "float32"
    dtype: str = "float32"  # compute dtype
    remat: bool = False
    scan_layers: bool = False
    attention_chunk: int = 0  # queries per attention block on long sequences (0: all at once)
    # whole-sequence self-attention kernel: xla | cudnn | splash | auto (models/attention_kernels.py);
    # dot_product_xla and splash_interpret run the cuDNN and splash glue on a CPU (for tests)
    attention_impl: str = "xla"

    def __post_init__(self):
        if not self.layer_types:
            object.__setattr__(self, "layer_types", (FULL,) * self.num_layers)
        self.validate()

    def validate(self) -> None:
        if self.model_type not in SUPPORTED_MODEL_TYPES:
            raise ConfigError(f"unknown model_type {self.model_type!r}; supported: {', '.join(SUPPORTED_MODEL_TYPES)}")
        if self.num_heads % self.num_kv_heads:
            raise ConfigError(f"num_heads={self.num_heads} must be a multiple of num_kv_heads={self.num_kv_heads}")
        if len(self.layer_types) != self.num_layers:
            raise ConfigError(f"layer_types has {len(self.layer_types)} entries for {self.num_layers} layers")
        bad = set(self.layer_types) - {FULL, SLIDING}
        if bad:
            raise ConfigError(f"unsupported layer types {sorted(bad)}; expected {FULL!r} or {SLIDING!r}")
        if SLIDING in self.layer_types and not self.sliding_window:
            raise ConfigError("layer_types marks sliding layers but sliding_window is not set")
        if self.qk_norm not in ("none", "head", "full"):
            raise ConfigError(f"qk_norm must be none|head|full, got {self.qk_norm!r}")
        if self.norm_placement not in ("pre", "post"):
            raise ConfigError(f"norm_placement must be pre|post, got {self.norm_placement!r}")
        if self.attention_impl not in ATTENTION_IMPLS:
            raise ConfigError(
                f"attention_impl must be one of {', '.join(ATTENTION_IMPLS)}, got {self.attention_impl!r}"
            )
        if self.attention_chunk < 0:
            raise ConfigError(f"attention_chunk must be >= 0 (0 = no chunking), got {self.attention_chunk}")
        for name in ("param_dtype", "dtype"):
            if getattr(self, name) not in ("float32", "bfloat16", "float16"):
                raise ConfigError(f"{name} must be float32, bfloat16 or float16, got {getattr(self, name)!r}")

    @property
    def jnp_dtype(self):
        return jnp.dtype(self.dtype)

    @property
    def jnp_param_dtype(self):
        return jnp.dtype(self.param_dtype)

    @property
    def eos_ids(self) -> tuple[int, ...]:
        """config.json's eos ids."""
        return _as_ids(self.eos_token_id)

    @property
    def stop_ids(self) -> tuple[int, ...]:
        """The stop ids the checkpoint declares: generation_config.json's eos ids, then config.json's
        (order kept, no repeats); the tokenizer's are added by ``models.tokenizer.stop_and_pad_ids``."""
        return tuple(dict.fromkeys(_as_ids(self.generation_eos_token_id) + self.eos_ids))

    @property
    def declared_pad_id(self) -> int | None:
        """generation_config.json's pad id, else config.json's."""
        return self.generation_pad_token_id if self.generation_pad_token_id is not None else self.pad_token_id

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **changes)

    def num_params(self, include_value_head: bool = False) -> int:
        """Parameter count computed from the shapes (matches the instantiated model)."""
        h, d = self.hidden_size, self.head_dim
        q, kv = self.num_heads * d, self.num_kv_heads * d
        attn = h * q + 2 * h * kv + q * h
        if self.qkv_bias:
            attn += q + 2 * kv
        if self.qk_norm == "head":
            attn += 2 * d
        elif self.qk_norm == "full":
            attn += q + kv
        mlp = 3 * h * self.intermediate_size
        per_layer = attn + mlp + 2 * h
        total = self.num_layers * per_layer + self.vocab_size * h + h
        if include_value_head:
            total += h + 1
        elif not self.tie_word_embeddings:
            total += self.vocab_size * h
        return total


def _as_ids(value: int | tuple[int, ...] | None) -> tuple[int, ...]:
    if value is None:
        return ()
    if isinstance(value, int):
        return (value,)
    return tuple(int(v) for v in value)
