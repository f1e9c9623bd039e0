"""Policy losses (pure JAX, jittable), registered by name in ``POLICY_LOSSES``.

Every loss returns ``LossOutput(numerator, denominator, metrics)`` rather than a mean, so
averages stay exact under mini-/micro-batching: for micro-batches k of one mini-batch,

    loss = Σ_k numerator_k / Σ_k denominator_k

is exactly the whole-batch loss, and since denominators do not depend on parameters,
``Σ_k grad(numerator_k) / Σ_k denominator_k`` is exactly the whole-batch gradient.
Metrics are ``name -> (sum, count)`` pairs that aggregate the same way (``reduce_metrics``).

Aggregation modes (``agg``):
* ``"seq-mean-token-mean"``: numerator = Σ over sequences with ≥1 valid token of
  mean_t(loss); denominator = number of such sequences.
* ``"token-mean"``: numerator = Σ over valid tokens; denominator = number of valid tokens.
* ``"seq-mean-token-sum"``: numerator = Σ over sequences of Σ_t(loss); denominator = number
  of sequences with ≥1 valid token.

Departure from verl: verl averages inside each micro-batch and rescales by micro-batch size,
which is exact only for equal-sized micro-batches and (for seq-mean) counts empty rows; ours
is exact for any split and ignores rows with no valid token.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from tempo_jax.rl.arrays import mask_f32, stop_grad
from tempo_jax.rl.options import AGG_MODES, GspoOptions, PpoOptions
from tempo_jax.rl.registry import POLICY_LOSSES

KL_TYPES = ("kl", "k1", "abs", "mse", "k2", "low_var_kl", "k3")

Metrics = dict  # name -> (sum, count), both f32 scalars


class LossOutput(NamedTuple):
    numerator: jax.Array  # f32 scalar; differentiable
    denominator: jax.Array  # f32 scalar count; constant w.r.t. parameters
    metrics: Metrics  # name -> (sum, count)

    def loss(self) -> jax.Array:
        """numerator / denominator, 0 when nothing is valid (e.g. no labeled row)."""
        return self.numerator / jnp.maximum(self.denominator, 1.0)


# ----------------------------------------------------------------------------- helpers


def aggregate(loss_mat: jax.Array, mask: jax.Array, agg: str) -> tuple[jax.Array, jax.Array]:
    """(numerator, denominator) of ``loss_mat`` [B,T] over valid positions; see module doc."""
    m = mask_f32(mask)
    x = jnp.where(m > 0, loss_mat, 0.0)
    if agg == "token-mean":
        return jnp.sum(x), jnp.sum(m)
    tok_count = jnp.sum(m, axis=-1)
    has_any = tok_count > 0
    seq_sum = jnp.sum(x, axis=-1)
    if agg == "seq-mean-token-mean":
        per_seq = jnp.where(has_any, seq_sum / jnp.maximum(tok_count, 1.0), 0.0)
    elif agg == "seq-mean-token-sum":
        per_seq = seq_sum
    else:
        raise ValueError(f"unknown loss aggregation {agg!r}; known: {', '.join(AGG_MODES)}")
    return jnp.sum(per_seq), jnp.sum(has_any.astype(jnp.float32))


def token_metric(x: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(Σ x over valid tokens, #valid tokens), gradient-stopped."""
    m = mask_f32(mask)
    return stop_grad(jnp.sum(jnp.where(m > 0, x, 0.0))), stop_grad(jnp.sum(m))


def sum_outputs(outputs: Sequence[LossOutput]) -> LossOutput:
    """Sum numerators, denominators and metric pairs of several (micro-batch) outputs."""
    outputs = list(outputs)
    if not outputs:
        raise ValueError("sum_outputs needs at least one LossOutput")
    return jax.tree_util.tree_map(lambda *xs: sum(xs[1:], xs[0]), *outputs)


def reduce_metrics(*metric_dicts: Mapping[str, tuple]) -> dict[str, float]:
    """Host-side: sum ``(sum, count)`` pairs over dicts (e.g. micro-batches) and divide.
    A metric with total count 0 is reported as NaN (nothing to average)."""
    sums: dict[str, list[float]] = {}
    for d in metric_dicts:
        for k, (s, c) in d.items():
            acc = sums.setdefault(k, [0.0, 0.0])
            acc[0] += float(np.asarray(s))
            acc[1] += float(np.asarray(c))
    return {k: (s / c if c > 0 else float("nan")) for k, (s, c) in sums.items()}


def kl_penalty(logprobs: jax.Array, ref_logprobs: jax.Array, kl_type: str = "low_var_kl") -> jax.Array:
    """Per-token KL estimate between the current and the reference policy (verl
    ``kl_penalty_forward``): "kl"/"k1" = logp − ref; "abs"; "mse"/"k2" = ½(logp − ref)²;
    "low_var_kl"/"k3" = exp(ref − logp) − (ref − logp) − 1 with the log-ratio clamped to
    ±20 and the result to [−10, 10]."""
    diff = logprobs - ref_logprobs
    if kl_type in ("kl", "k1"):
        return diff
    if kl_type == "abs":
        return jnp.abs(diff)
    if kl_type in ("mse", "k2"):
        return 0.5 * diff * diff
    if kl_type in ("low_var_kl", "k3"):
        kl = jnp.clip(-diff, -20.0, 20.0)
        return jnp.clip(jnp.exp(kl) - kl - 1.0, -10.0, 10.0)
    raise ValueError(f"unknown kl_type {kl_type!r}; known: {', '.join(KL_TYPES)}")


def _regularised(
    pg_losses: jax.Array,
    m: jax.Array,
    logprobs: jax.Array,
    agg: str,
    entropy,
    entropy_coef: float,
    ref_logprobs,
    kl_coef: float,
    kl_type: str,
    metrics: Metrics,
) -> LossOutput:
    """Add entropy bonus and KL loss per token (same aggregation, so they stay linear in the
    numerator — verl: pg_loss − entropy_coef·agg(entropy) + kl_coef·agg(kl)); aggregate."""
    pg_num, den = aggregate(pg_losses, m, agg)
    metrics["pg_loss"] = (stop_grad(pg_num), stop_grad(den))
    total = pg_losses
    if entropy is not None:
        ent = jnp.where(m > 0, jnp.asarray(entropy, jnp.float32), 0.0)
        metrics["entropy"] = token_metric(ent, m)
        if entropy_coef:
            total = total - entropy_coef * ent
    elif entropy_coef:
        raise ValueError("entropy_coef != 0 needs the per-token `entropy`")
    if ref_logprobs is not None:
        ref = stop_grad(jnp.where(m > 0, jnp.asarray(ref_logprobs, jnp.float32), 0.0))
        kl = kl_penalty(logprobs, ref, kl_type)
        metrics["kl_loss"] = token_metric(kl, m)
        if kl_coef:
            total = total + kl_coef * kl
    elif kl_coef:
        raise ValueError("kl_coef != 0 needs `ref_logprobs` (a reference policy)")
    num, den = aggregate(total, m, agg)
    return LossOutput(num, stop_grad(den), metrics)


def _prepare(logprobs, old_logprobs, advantages, response_mask):
    m = mask_f32(response_mask)
    # Sanitise padding before any exp(): a -inf/NaN log-prob at a pad must not leak a NaN
    # into the value or the gradient (the masked `where` alone would not stop it).
    lp = jnp.where(m > 0, jnp.asarray(logprobs, jnp.float32), 0.0)
    old = jnp.where(m > 0, jnp.asarray(old_logprobs, jnp.float32), 0.0)
    adv = jnp.where(m > 0, jnp.asarray(advantages, jnp.float32), 0.0)
    return lp, stop_grad(old), stop_grad(adv), m


# ----------------------------------------------------------------------------- losses


@POLICY_LOSSES.register("gspo", options=GspoOptions)
def gspo(
    logprobs: jax.Array,
    old_logprobs: jax.Array,
    advantages: jax.Array,
    response_mask: jax.Array,
    *,
    clip_low: float = 3e-4,
    clip_high: float = 5e-4,
    agg: str = "seq-mean-token-mean",
    clip_ratio_c: float | None = None,
    logratio_clamp: float = 10.0,
    entropy: jax.Array | None = None,
    entropy_coef: float = 0.0,
    ref_logprobs: jax.Array | None = None,
    kl_coef: float = 0.0,
    kl_type: str = "low_var_kl",
) -> LossOutput:
    """GSPO (spec §1.5, verl ``compute_policy_loss_gspo``).

    s_i = exp(mean_t(logp − old_logp)) over the valid tokens of sequence i, applied per token
    in straight-through form log s_i,t = sg(log s_i) + logp_t − sg(logp_t) (value s_i, gradient
    through each token's log-prob), clamped at ``logratio_clamp`` (≤ 10) before exp; loss per
    token = max(−A·s, −A·clip(s, 1 − clip_low, 1 + clip_high)).

    Departures: verl forces ``seq-mean-token-mean`` whatever the config says; we honour
    ``agg`` (default ``seq-mean-token-mean``, the reference setting). GSPO has no dual clip:
    a non-None ``clip_ratio_c`` is an error rather than silently ignored.
    Metrics: clip_fraction (tokens), approx_kl (verl ppo_kl = mean(old − new)), pg_loss,
    seq_ratio (mean s_i over sequences), entropy / kl_loss when given.
    """
    if clip_ratio_c is not None:
        raise ValueError("gspo has no dual clip; set clip_ratio_c=None (it is a 'ppo' option)")
    lp, old, adv, m = _prepare(logprobs, old_logprobs, advantages, response_mask)
    log_ratio = lp - old
    tok_count = jnp.sum(m, axis=-1)
    seq_log_ratio = jnp.sum(log_ratio * m, axis=-1) / jnp.maximum(tok_count, 1.0)
    log_s = stop_grad(seq_log_ratio)[:, None] + lp - stop_grad(lp)
    s = jnp.exp(jnp.minimum(log_s, logratio_clamp))
    pg1 = -adv * s
    pg2 = -adv * jnp.clip(s, 1.0 - clip_low, 1.0 + clip_high)
    pg_losses = jnp.maximum(pg1, pg2)

    has_any = (tok_count > 0).astype(jnp.float32)
    seq_ratio = jnp.exp(jnp.minimum(seq_log_ratio, logratio_clamp)) * has_any
    metrics: Metrics = {
        "clip_fraction": token_metric((pg2 > pg1).astype(jnp.float32), m),
        "approx_kl": token_metric(-log_ratio, m),
        "seq_ratio": (stop_grad(jnp.sum(seq_ratio)), stop_grad(jnp.sum(has_any))),
    }
    return _regularised(pg_losses, m, lp, agg, entropy, entropy_coef, ref_logprobs, kl_coef, kl_type, metrics)


@POLICY_LOSSES.register("ppo", options=PpoOptions)
def ppo(
    logprobs: jax.Array,
    old_logprobs: jax.Array,
    advantages: jax.Array,
    response_mask: jax.Array,
    *,
    clip_low: float = 3e-4,
    clip_high: float = 5e-4,
    agg: str = "seq-mean-token-mean",
    clip_ratio_c: float | None = None,
    logratio_clamp: float = 10.0,
    entropy: jax.Array | None = None,
    entropy_coef: float = 0.0,
    ref_logprobs: jax.Array | None = None,
    kl_coef: float = 0.0,
    kl_type: str = "low_var_kl",
) -> LossOutput:
    """PPO-clip with a per-token ratio (verl ``compute_policy_loss_vanilla``).

    r_t = exp(clamp(logp − old_logp, ±logratio_clamp)); loss = max(−A·r, −A·clip(r, 1 − clip_low,
    1 + clip_high)); with ``clip_ratio_c`` (> 1, e.g. 3.0) the dual clip caps the loss of
    negative-advantage tokens at −A·clip_ratio_c (verl). ``clip_ratio_c=None`` turns dual clip
    off (verl always applies it, default 3.0 — pass 3.0 to match).

    Departure: verl clamps the log-ratio to ±20; pass ``logratio_clamp=20.0`` to match.
    Metrics: clip_fraction, clip_fraction_lower (dual clip), approx_kl (of the clamped
    log-ratio, as verl), pg_loss, entropy/kl_loss.
    """
    if clip_ratio_c is not None and not clip_ratio_c > 1.0:
        raise ValueError(f"clip_ratio_c (dual clip) must be > 1.0, got {clip_ratio_c}")
    lp, old, adv, m = _prepare(logprobs, old_logprobs, advantages, response_mask)
    log_ratio = jnp.clip(lp - old, -logratio_clamp, logratio_clamp)
    ratio = jnp.exp(log_ratio)
    pg1 = -adv * ratio
    pg2 = -adv * jnp.clip(ratio, 1.0 - clip_low, 1.0 + clip_high)
    clipped1 = jnp.maximum(pg1, pg2)
    metrics: Metrics = {
        "clip_fraction": token_metric((pg2 > pg1).astype(jnp.float32), m),
        "approx_kl": token_metric(-log_ratio, m),
    }
    if clip_ratio_c is not None:
        pg3 = -adv * clip_ratio_c
        clipped2 = jnp.minimum(pg3, clipped1)
        pg_losses = jnp.where(adv < 0, clipped2, clipped1)
        lower = ((clipped1 > pg3) & (adv < 0)).astype(jnp.float32)
        metrics["clip_fraction_lower"] = token_metric(lower, m)
    else:
        pg_losses = clipped1
    return _regularised(pg_losses, m, lp, agg, entropy, entropy_coef, ref_logprobs, kl_coef, kl_type, metrics)


PolicyLossFn = Callable[..., LossOutput]
