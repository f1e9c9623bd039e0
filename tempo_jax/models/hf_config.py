"""Translate between Hugging Face ``config.json`` dicts and :class:`ModelConfig`.

Parsing goes through ``transformers.AutoConfig`` so every default (rope theta, layer types,
tied embeddings) is what transformers itself would use for that checkpoint: nothing assumed.
``generation_config.json`` (stop, pad and bos ids, sampling defaults) is read next to it into the
``generation_*`` fields, and written back on export.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import transformers

from tempo_jax import storage
from tempo_jax.errors import UserError
from tempo_jax.models.config import FULL, SLIDING, SUPPORTED_MODEL_TYPES, ConfigError, ModelConfig, RopeConfig

GENERATION_CONFIG = "generation_config.json"
_GENERATION_IDS = ("bos_token_id", "eos_token_id", "pad_token_id")
_GENERATION_METADATA = ("_from_model_config", "_commit_hash", "_original_object_hash", "transformers_version")
_ARCH = {"qwen3": "Qwen3", "qwen2": "Qwen2", "llama": "Llama", "olmo2": "Olmo2", "olmo3": "Olmo3"}


class CheckpointError(UserError, ValueError):
    """A checkpoint directory or file that cannot be loaded; the message names it."""


def read_hf_config(path: str | os.PathLike) -> dict[str, Any]:
    cfg_path = storage.join(path, "config.json")
    if not storage.isfile(cfg_path):
        raise CheckpointError(
            f"{cfg_path} not found: a Hugging Face checkpoint directory needs config.json "
            "next to its *.safetensors files"
        )
    try:
        return json.loads(storage.read_text(cfg_path))
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{cfg_path} is not valid JSON ({err})") from err


def read_generation_config(path: str | os.PathLike) -> dict[str, Any] | None:
    """``generation_config.json`` next to config.json as a dict; None when the directory has none."""
    gen_path = storage.join(path, GENERATION_CONFIG)
    if not storage.isfile(gen_path):
        return None
    try:
        gen = json.loads(storage.read_text(gen_path))
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{gen_path} is not valid JSON ({err})") from err
    if not isinstance(gen, dict):
        raise CheckpointError(f"{gen_path} must hold a JSON object, not {type(gen).__name__}")
    return gen


def generation_fields(gen: dict[str, Any] | None, source: str = GENERATION_CONFIG) -> dict[str, Any]:
    """The ModelConfig ``generation_*`` fields of a generation_config.json dict (none for None)."""
    if gen is None:
        return {}
    ids: dict[str, Any] = {}
    for key in _GENERATION_IDS:
        value = gen.get(key)
        if key == "eos_token_id" and isinstance(value, list):
            valid = all(_is_id(v) for v in value)
        else:
            valid = value is None or _is_id(value)
        if not valid:
            kind = "a token id or a list of ids" if key == "eos_token_id" else "a token id"
            raise CheckpointError(f"{source}: {key} must be {kind}, got {value!r}")
        ids[f"generation_{key}"] = _ids(value)
    extras = {k: v for k, v in gen.items() if k not in _GENERATION_IDS + _GENERATION_METADATA}
    ids["generation_extras"] = json.dumps(extras, sort_keys=True) if extras else None
    return ids


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def generation_config_dict(
    cfg: ModelConfig, stop_ids: Sequence[int] | None = None, pad_id: int | None = None
) -> dict[str, Any]:
    """A generation_config.json dict for ``cfg``: the source generation config's other keys kept as
    they were, ``eos_token_id`` = ``stop_ids`` (default ``cfg.stop_ids``; an int when there is one),
    ``pad_token_id`` = ``pad_id`` (default ``cfg.declared_pad_id``) and ``bos_token_id`` when known."""
    out: dict[str, Any] = json.loads(cfg.generation_extras) if cfg.generation_extras else {}
    bos = cfg.generation_bos_token_id if cfg.generation_bos_token_id is not None else cfg.bos_token_id
    stops = [int(s) for s in (cfg.stop_ids if stop_ids is None else stop_ids)]
    pad = cfg.declared_pad_id if pad_id is None else pad_id
    if bos is not None:
        out["bos_token_id"] = int(bos)
    if stops:
        out["eos_token_id"] = stops[0] if len(stops) == 1 else stops
    if pad is not None:
        out["pad_token_id"] = int(pad)
    return out


def _rope(params: dict[str, Any] | None, fallback_theta: float | None) -> RopeConfig:
    params = dict(params or {})
    theta = params.get("rope_theta", fallback_theta)
    if theta is None:
        raise ConfigError("the config has no rope_theta; set it in config.json")
    kind = params.get("rope_type", params.get("type", "default")) or "default"
    keys = (
        "factor",
        "low_freq_factor",
        "high_freq_factor",
        "original_max_position_embeddings",
        "beta_fast",
        "beta_slow",
        "attention_factor",
        "mscale",
        "mscale_all_dim",
        "truncate",
    )
    kwargs = {k: params[k] for k in keys if params.get(k) is not None}
    return RopeConfig(theta=float(theta), type=kind, **kwargs)


def config_from_hf(hf: dict[str, Any], *, generation: dict[str, Any] | None = None, **overrides: Any) -> ModelConfig:
    """ModelConfig from a HF config dict and, when the checkpoint has one, its generation_config.json
    dict (``generation``, see :func:`read_generation_config`); ``overrides`` set our own fields
    (dtypes, remat, scan)."""
    model_type = hf.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ConfigError(
            f"unknown model_type {model_type!r} in config.json; supported: {', '.join(SUPPORTED_MODEL_TYPES)}"
        )

    kwargs = {k: v for k, v in hf.items() if k != "model_type"}
    obj = transformers.AutoConfig.for_model(model_type, **kwargs)
    if getattr(obj, "mlp_bias", False):
        raise ConfigError("mlp_bias=True is not supported (no released Llama 3 uses it)")
    heads = obj.num_attention_heads
    head_dim = getattr(obj, "head_dim", None) or obj.hidden_size // heads
    layer_types = tuple(getattr(obj, "layer_types", None) or (FULL,) * obj.num_hidden_layers)
    rope_params = getattr(obj, "rope_parameters", None)
    fallback_theta = getattr(obj, "rope_theta", None)
    sliding_rope = None
    if rope_params is None:
        rope = _rope(getattr(obj, "rope_scaling", None), fallback_theta)
    elif FULL in rope_params or SLIDING in rope_params:
        rope = _rope(rope_params.get(FULL), fallback_theta)
        sliding_rope = _rope(rope_params.get(SLIDING), fallback_theta) if SLIDING in rope_params else None
    else:
        rope = _rope(rope_params, fallback_theta)
    if sliding_rope == rope:
        sliding_rope = None
    families: dict[str, dict[str, Any]] = {
        "qwen3": dict(qk_norm="head", qkv_bias=bool(getattr(obj, "attention_bias", False))),
        "qwen2": dict(qkv_bias=True),
        "llama": dict(qkv_bias=bool(getattr(obj, "attention_bias", False))),
        "olmo2": dict(qk_norm="full", norm_placement="post", qkv_bias=bool(getattr(obj, "attention_bias", False))),
        "olmo3": dict(qk_norm="full", norm_placement="post", qkv_bias=bool(getattr(obj, "attention_bias", False))),
    }
    family = families[model_type]
    uses_sliding = SLIDING in layer_types
    fields: dict[str, Any] = dict(
        model_type=model_type,
        vocab_size=obj.vocab_size,
        hidden_size=obj.hidden_size,
        intermediate_size=obj.intermediate_size,
        num_layers=obj.num_hidden_layers,
        num_heads=heads,
        num_kv_heads=getattr(obj, "num_key_value_heads", None) or heads,
        head_dim=head_dim,
        rope=rope,
        sliding_rope=sliding_rope,
        rms_norm_eps=float(obj.rms_norm_eps),
        layer_types=layer_types,
        sliding_window=getattr(obj, "sliding_window", None) if uses_sliding else None,
        tie_word_embeddings=bool(getattr(obj, "tie_word_embeddings", False)),
        max_position_embeddings=obj.max_position_embeddings,
        bos_token_id=getattr(obj, "bos_token_id", None),
        eos_token_id=_ids(getattr(obj, "eos_token_id", None)),
        pad_token_id=getattr(obj, "pad_token_id", None),
        **family,
        **generation_fields(generation),
    )
    fields.update(overrides)
    return ModelConfig(**fields)


def _ids(value):
    return tuple(value) if isinstance(value, list) else value


def hf_config_dict(cfg: ModelConfig, critic: bool = False) -> dict[str, Any]:
    """A config.json dict for ``cfg`` in the installed transformers' own format."""
    kwargs: dict[str, Any] = dict(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads,
        head_dim=cfg.head_dim,
        rms_norm_eps=cfg.rms_norm_eps,
        max_position_embeddings=cfg.max_position_embeddings,
        tie_word_embeddings=cfg.tie_word_embeddings,
        bos_token_id=cfg.bos_token_id,
        eos_token_id=list(cfg.eos_token_id) if isinstance(cfg.eos_token_id, tuple) else cfg.eos_token_id,
        pad_token_id=cfg.pad_token_id,
        hidden_act="silu",
    )
    if cfg.model_type in ("qwen3", "llama", "olmo2", "olmo3"):
        kwargs["attention_bias"] = cfg.qkv_bias
    if cfg.model_type == "olmo3":
        sliding = cfg.sliding_rope or cfg.rope
        kwargs["rope_parameters"] = {FULL: cfg.rope.to_hf(), SLIDING: sliding.to_hf()}
        kwargs["layer_types"] = list(cfg.layer_types)
        kwargs["sliding_window"] = cfg.sliding_window or 4096
    else:
        kwargs["rope_parameters"] = cfg.rope.to_hf()
        if SLIDING in cfg.layer_types:
            kwargs["layer_types"] = list(cfg.layer_types)
            kwargs["sliding_window"] = cfg.sliding_window
            kwargs["use_sliding_window"] = True
    obj = transformers.AutoConfig.for_model(cfg.model_type, **kwargs)
    arch = _ARCH[cfg.model_type]
    if critic:
        obj.num_labels = 1
        obj.architectures = [f"{arch}ForTokenClassification"]
    else:
        obj.architectures = [f"{arch}ForCausalLM"]
    obj.dtype = cfg.param_dtype
    out = obj.to_dict()
    return out
