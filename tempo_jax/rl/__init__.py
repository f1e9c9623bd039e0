"""RL core: advantage estimators, policy/value losses (pure JAX) and group filters (NumPy).

Functions are registered by name (``ADVANTAGES``, ``POLICY_LOSSES``, ``VALUE_LOSSES``) so
configs select them with a string; ``REGISTRY.get(name)`` raises ``ValueError`` listing the
known names. This package never imports a model.
"""

from tempo_jax.rl.advantages import (
    AdvantageOutput,
    em,
    em_token,
    gae,
    group_mean_std,
    grpo,
    last_valid_index,
    masked_mean,
    masked_whiten,
    value_at_last_token,
)
from tempo_jax.rl.filters import GroupAccumulator, confidence_filter, constant_labeled_groups
from tempo_jax.rl.losses import (
    AGG_MODES,
    LossOutput,
    aggregate,
    gspo,
    kl_penalty,
    ppo,
    reduce_metrics,
    sum_outputs,
)
from tempo_jax.rl.registry import ADVANTAGES, POLICY_LOSSES, VALUE_LOSSES, Registry
from tempo_jax.rl.value_losses import explained_variance, explained_variance_from_moments, seq_clip, token_clip

__all__ = [
    "ADVANTAGES",
    "POLICY_LOSSES",
    "VALUE_LOSSES",
    "Registry",
    "AdvantageOutput",
    "em",
    "em_token",
    "gae",
    "grpo",
    "group_mean_std",
    "last_valid_index",
    "masked_mean",
    "masked_whiten",
    "value_at_last_token",
    "AGG_MODES",
    "LossOutput",
    "aggregate",
    "gspo",
    "ppo",
    "kl_penalty",
    "reduce_metrics",
    "sum_outputs",
    "seq_clip",
    "token_clip",
    "explained_variance",
    "explained_variance_from_moments",
    "GroupAccumulator",
    "confidence_filter",
    "constant_labeled_groups",
]
