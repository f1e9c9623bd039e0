"""Optimizers as in the reference: AdamW, constant LR, global-norm clipping (TEMPO_SPEC §1.3, §1.5)."""

from __future__ import annotations

import optax


def make_optimizer(
    lr: float,
    weight_decay: float = 0.0,
    grad_clip: float = 1.0,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    warmup_steps: int = 0,
) -> optax.GradientTransformation:
    """AdamW with a constant learning rate (optional linear warm-up) after global-norm clipping.

    With ``lr == 0`` the update is exactly zero, so parameters stay bit-identical (a frozen
    critic, the reference's OLMo/Qwen3-8B setting).
    """
    if lr < 0:
        raise ValueError(f"learning rate must be >= 0, got {lr}")
    schedule = (
        optax.constant_schedule(lr)
        if warmup_steps <= 0
        else optax.join_schedules(
            [optax.linear_schedule(0.0, lr, warmup_steps), optax.constant_schedule(lr)], [warmup_steps]
        )
    )
    parts = [optax.clip_by_global_norm(grad_clip)] if grad_clip and grad_clip > 0 else []
    parts.append(optax.adamw(schedule, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay))
    return optax.chain(*parts)
