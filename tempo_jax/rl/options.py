"""Typed options of the advantage estimators and losses, one frozen dataclass per function.

Each registered function declares its keyword options here (``Registry.register(name,
options=...)``); a config section holds exactly the chosen function's fields, so a knob the
function does not take cannot be set and silently ignored. Defaults are the reference's
(TEMPO_SPEC §2). Data arguments (per-token entropy, reference log-probs) are not options.
"""

from __future__ import annotations

import dataclasses
from typing import Literal, get_args

Whiten = Literal["global", "none"]
Agg = Literal["seq-mean-token-mean", "token-mean", "seq-mean-token-sum"]
WHITEN_MODES: tuple[str, ...] = get_args(Whiten)
AGG_MODES: tuple[str, ...] = get_args(Agg)


@dataclasses.dataclass(frozen=True)
class EmTokenOptions:
    """``em_token``: one masked whitening over the batch ("global", the reference) or none."""

    whiten: Whiten = "global"


@dataclasses.dataclass(frozen=True)
class GroupNormOptions:
    """``em`` and ``grpo``: (s − group mean) / (group std + eps), or s − mean without ``norm_by_std``."""

    eps: float = 1e-6
    norm_by_std: bool = True


@dataclasses.dataclass(frozen=True)
class GaeOptions:
    """``gae``: discount, GAE lambda and the final whitening (γ = λ = 1 is the reference's PPO)."""

    gamma: float = 1.0
    lam: float = 1.0
    whiten: Whiten = "global"


@dataclasses.dataclass(frozen=True)
class GspoOptions:
    """``gspo``: sequence-ratio clip range, aggregation, log-ratio clamp, entropy bonus, KL loss."""

    clip_low: float = 3e-4
    clip_high: float = 5e-4
    agg: Agg = "seq-mean-token-mean"
    logratio_clamp: float = 10.0
    entropy_coef: float = 0.0
    kl_coef: float = 0.0
    kl_type: str = "low_var_kl"


@dataclasses.dataclass(frozen=True)
class PpoOptions(GspoOptions):
    """``ppo``: GSPO's options plus the dual clip ``clip_ratio_c`` (None = off; verl uses 3.0)."""

    clip_ratio_c: float | None = None


@dataclasses.dataclass(frozen=True)
class ValueClipOptions:
    """``seq_clip`` and ``token_clip``: value clip range, aggregation, labeled rows only (TEMPO's E-step)."""

    cliprange_value: float = 0.1
    agg: Agg = "seq-mean-token-mean"
    labeled_only: bool = True


def as_kwargs(options) -> dict:
    """The options as the keyword arguments of their function."""
    return dataclasses.asdict(options)
