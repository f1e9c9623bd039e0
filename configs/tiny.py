"""Tiny CPU recipes: ``--config=configs/tiny.py:<method>[,<variant>]``.

    methods:  stage1, tempo, tempo_frozen_critic, zero_rl_ppo, ttrl, empo
    variants: critic_every2 (critic recalibrated every 2 steps), em (sequence-level ``em`` estimator:
              group-normalised, clamped V_T) -- TEMPO ablations, for tempo and tempo_frozen_critic

A random 2-layer model and toy a+b problems, created on first use under runs/tiny_assets
(tempo_jax/train/tiny.py); 3 short steps, a checkpoint every step. E.g.
``tempo-jax train --config=configs/tiny.py:tempo --config.train.total_steps=10``.
"""

from tempo_jax.train.config import METHODS, RecipeError
from tempo_jax.train.tiny import tiny_recipe

VARIANTS = {
    "critic_every2": dict(algo__critic_update_every=2),
    "em": dict(algo__adv_estimator="em"),
}
TEMPO_METHODS = ("tempo", "tempo_frozen_critic")
USAGE = (
    f"write --config=configs/tiny.py:<method>[,<variant>] with method one of {', '.join(METHODS)} "
    f"and variant one of {', '.join(VARIANTS)} (for {' or '.join(TEMPO_METHODS)})"
)


def tiny(method: str, variant: str = "", **changes):
    if method not in METHODS:
        raise RecipeError(f"configs/tiny.py: unknown method {method!r}; {USAGE}")
    if variant and (variant not in VARIANTS or method not in TEMPO_METHODS):
        raise RecipeError(f"configs/tiny.py: unknown variant {variant!r} of {method}; {USAGE}")
    base = dict(run_dir=f"runs/tiny_{method}" + (f"_{variant}" if variant else ""))
    if method == "tempo_frozen_critic":
        base["train__critic_lr"] = 0.0  # the tiny recipes' critic lr is 1e-3; the ablation's is 0
    base.update(VARIANTS.get(variant, {}))
    base.update(changes)
    return tiny_recipe(method, **base)


def get_config(config_string: str):
    """``"<method>"`` or ``"<method>,<variant>"``, e.g. ``"tempo"``, ``"tempo,critic_every2"``."""
    parts = [p.strip() for p in config_string.split(",")]
    if not 1 <= len(parts) <= 2:
        raise RecipeError(f"configs/tiny.py:{config_string} is not <method>[,<variant>]; {USAGE}")
    return tiny(*parts)
