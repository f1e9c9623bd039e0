"""Advantage estimators (pure JAX, jittable), registered by name in ``ADVANTAGES``.

Shapes: rows are trajectories (B), columns are padded response positions (T).
Every estimator has the signature::

    fn(scores [B], values [B,T], response_mask [B,T], is_labeled [B], group_ids [B], **options)
        -> AdvantageOutput(advantages [B,T] f32, returns [B,T] f32)

``scores`` is the outcome reward R of each trajectory (±1 in TEMPO); ``values`` are the
critic's V_t = V(x, y_<t) from before this step's update; ``group_ids`` are ints (any values)
identifying the n rollouts of one prompt. Options are keyword-only and specific to each
estimator; an option an estimator does not have is a ``TypeError`` (no silently ignored knobs).
Both outputs are exactly zero where ``response_mask == 0``. Outputs are ``stop_gradient``-ed
(advantages are targets, as under ``torch.no_grad`` in the reference).

Reference: TEMPO_SPEC.md §1.4 (``em_token``, ``em``) and verl's ``compute_gae_advantage_return``
/ ``compute_grpo_outcome_advantage``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from tempo_jax.rl.arrays import f32, mask_f32
from tempo_jax.rl.options import WHITEN_MODES, EmTokenOptions, GaeOptions, GroupNormOptions
from tempo_jax.rl.registry import ADVANTAGES

WHITEN_EPS = 1e-8  # verl masked_whiten: (x - mean) * rsqrt(var + 1e-8)


class AdvantageOutput(NamedTuple):
    advantages: jax.Array  # [B, T] float32, 0 where response_mask == 0
    returns: jax.Array  # [B, T] float32, 0 where response_mask == 0 (critic target)


# ----------------------------------------------------------------------------- helpers


def _bool_rows(is_labeled) -> jax.Array:
    return jnp.asarray(is_labeled).reshape(-1) > 0


def masked_mean(x: jax.Array, mask: jax.Array, axis=None) -> jax.Array:
    """Mean of ``x`` over positions where ``mask`` is 1 (0 if there are none)."""
    m = mask_f32(mask)
    total = jnp.sum(jnp.where(m > 0, x, 0.0), axis=axis)
    return total / jnp.maximum(jnp.sum(m, axis=axis), 1.0)


def masked_whiten(x: jax.Array, mask: jax.Array, *, eps: float = WHITEN_EPS) -> jax.Array:
    """One whitening over all valid positions of the whole array, as verl's
    ``masked_whiten(shift_mean=True)``: ``(x - mean) / sqrt(unbiased_var + eps)``, the mean is
    not added back; the result is multiplied by the mask.

    Departure: verl raises if fewer than 2 positions are valid; under ``jit`` we cannot, so the
    Bessel factor uses ``max(n - 1, 1)`` (a single valid token whitens to 0).
    """
    m = mask_f32(mask)
    x = jnp.where(m > 0, f32(x), 0.0)
    n = jnp.sum(m)
    mean = jnp.sum(x) / jnp.maximum(n, 1.0)
    centred = jnp.where(m > 0, x - mean, 0.0)
    var = jnp.sum(centred * centred) / jnp.maximum(n - 1.0, 1.0)
    return centred * jax.lax.rsqrt(var + eps) * m


def last_valid_index(response_mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(index of the last valid position of each row, whether the row has any) — index 0 for
    empty rows. For right-padded masks this equals ``mask.sum(-1) - 1`` (the reference)."""
    m = mask_f32(response_mask)
    pos = jnp.arange(m.shape[-1], dtype=jnp.int32)
    last = jnp.max(jnp.where(m > 0, pos[None, :], -1), axis=-1)
    return jnp.maximum(last, 0), last >= 0


def value_at_last_token(values: jax.Array, response_mask: jax.Array) -> jax.Array:
    """V_T: the value at each row's last valid response position (0 for an empty row)."""
    last, has_any = last_valid_index(response_mask)
    v_t = jnp.take_along_axis(f32(values), last[:, None], axis=-1)[:, 0]
    return jnp.where(has_any, v_t, 0.0)


def group_mean_std(x: jax.Array, group_ids: jax.Array, *, singleton_mean: str = "zero") -> tuple[jax.Array, jax.Array]:
    """Per-row mean and unbiased std of ``x`` over the row's group (rows with equal
    ``group_ids``). Jittable for arbitrary int ids (a B×B equality mask; elementwise sums, no
    matmul, so it stays exact on TPU's reduced-precision matmul default).

    A group of one row gets std 1 and mean 0 (``singleton_mean="zero"``, verl's GRPO) or the
    row's own value (``"self"``, the reference ``em`` estimator, which makes its advantage 0).
    """
    x = f32(x).reshape(-1)
    g = jnp.asarray(group_ids).reshape(-1)
    same = (g[:, None] == g[None, :]).astype(jnp.float32)  # [B, B]
    count = jnp.sum(same, axis=1)
    mean = jnp.sum(same * x[None, :], axis=1) / count
    dev = (x[None, :] - mean[:, None]) * same
    var = jnp.sum(dev * dev, axis=1) / jnp.maximum(count - 1.0, 1.0)
    std = jnp.sqrt(var)
    single = count <= 1.0
    if singleton_mean == "zero":
        mean = jnp.where(single, 0.0, mean)
    elif singleton_mean == "self":
        mean = jnp.where(single, x, mean)
    else:
        raise ValueError(f"singleton_mean must be 'zero' or 'self', got {singleton_mean!r}")
    std = jnp.where(single, 1.0, std)
    return mean, std


def _check_whiten(whiten: str) -> None:
    if whiten not in WHITEN_MODES:
        raise ValueError(f"whiten must be 'global' or 'none', got {whiten!r}")


def _out(adv: jax.Array, ret: jax.Array, m: jax.Array) -> AdvantageOutput:
    adv = jnp.where(m > 0, adv, 0.0).astype(jnp.float32)
    ret = jnp.where(m > 0, ret, 0.0).astype(jnp.float32)
    return AdvantageOutput(jax.lax.stop_gradient(adv), jax.lax.stop_gradient(ret))


# ----------------------------------------------------------------------------- estimators


@ADVANTAGES.register("em_token", options=EmTokenOptions)
def em_token(
    scores: jax.Array,
    values: jax.Array,
    response_mask: jax.Array,
    is_labeled: jax.Array,
    group_ids: jax.Array | None = None,
    *,
    whiten: str = "global",
) -> AdvantageOutput:
    """TEMPO's token-level EM advantage (spec §1.4, reference ``compute_em_token_advantage``).

    * terminal target z = R for labeled rows, z = V_T (value at the last valid response
      token, **no clamp**) for unlabeled rows;
    * raw A_t = (z − V_t)·m_t;
    * ``whiten="global"`` (reference): ONE masked whitening over every valid token of the
      whole batch, labeled and unlabeled together — ``(A − mean)/sqrt(unbiased var + 1e-8)``,
      mean not added back — then ×mask. So an unlabeled row's raw-0 last token becomes −mean/std.
      No per-group normalisation, no discounting.
    * ``whiten="none"``: departure from the reference — raw A·m, for ablations.
    * returns = z at every valid token (the critic target; unlabeled returns are masked out of
      the value loss by ``labeled_only``).

    ``group_ids`` is unused (kept for the common signature). Departure: V_T is read at the last
    valid position; the reference reads ``mask.sum(-1) − 1`` — identical for right-padded masks.
    """
    _check_whiten(whiten)
    m = mask_f32(response_mask)
    v = jnp.where(m > 0, f32(values), 0.0)
    r = f32(scores).reshape(-1)
    z = jnp.where(_bool_rows(is_labeled), r, value_at_last_token(v, m))
    raw = (z[:, None] - v) * m
    adv = masked_whiten(raw, m) if whiten == "global" else raw
    return _out(adv, jnp.broadcast_to(z[:, None], m.shape), m)


@ADVANTAGES.register("em", options=GroupNormOptions)
def em(
    scores: jax.Array,
    values: jax.Array,
    response_mask: jax.Array,
    is_labeled: jax.Array,
    group_ids: jax.Array,
    *,
    eps: float = 1e-6,
    norm_by_std: bool = True,
) -> AdvantageOutput:
    """Sequence-level EM advantage (reference ``compute_em_outcome_advantage``, used by the
    HiPhO script): score = R (labeled) or clamp(V_T, −1, 1) (unlabeled); GRPO normalisation
    within each group — (s − mean)/(unbiased std + eps), or s − mean if not ``norm_by_std`` —
    broadcast over valid tokens. A group of one row gets advantage 0 (the reference uses the
    row's own score as the mean there, unlike ``grpo``). returns = R (labeled) / V_t (unlabeled).
    """
    m = mask_f32(response_mask)
    v = jnp.where(m > 0, f32(values), 0.0)
    r = f32(scores).reshape(-1)
    labeled = _bool_rows(is_labeled)
    s = jnp.where(labeled, r, jnp.clip(value_at_last_token(v, m), -1.0, 1.0))
    mean, std = group_mean_std(s, group_ids, singleton_mean="self")
    a = (s - mean) / (std + eps) if norm_by_std else s - mean
    ret = jnp.where(labeled[:, None], r[:, None], v)
    return _out(jnp.broadcast_to(a[:, None], m.shape), ret, m)


def _gae_raw(rewards: jax.Array, values: jax.Array, m: jax.Array, gamma: float, lam: float):
    """verl's GAE recursion, masked positions carry (next value, running GAE) through."""

    def step(carry, xs):
        next_v, last_gae = carry
        r_t, v_t, m_t = xs
        delta = r_t + gamma * next_v - v_t
        gae = delta + gamma * lam * last_gae
        next_v = v_t * m_t + (1.0 - m_t) * next_v
        last_gae = gae * m_t + (1.0 - m_t) * last_gae
        return (next_v, last_gae), last_gae

    b = rewards.shape[0]
    init = (jnp.zeros((b,), jnp.float32), jnp.zeros((b,), jnp.float32))
    _, adv_t = jax.lax.scan(step, init, (rewards.T, values.T, m.T), reverse=True)
    return adv_t.T


@ADVANTAGES.register("gae", options=GaeOptions)
def gae(
    scores: jax.Array,
    values: jax.Array,
    response_mask: jax.Array,
    is_labeled: jax.Array | None = None,
    group_ids: jax.Array | None = None,
    *,
    gamma: float = 1.0,
    lam: float = 1.0,
    whiten: str = "global",
) -> AdvantageOutput:
    """GAE as verl's ``compute_gae_advantage_return``: the outcome reward R sits on the last
    valid response token, δ_t = r_t + γV_{t+1} − V_t, A_t = δ_t + γλA_{t+1} (masked positions
    skipped); returns = A (before whitening) + V; then one global masked whitening of A
    (``whiten="none"`` skips it — a departure, for ablations). With γ = λ = 1, A_t = R − V_t and
    returns = R, i.e. exactly ``em_token`` on an all-labeled batch (stage-1 RLVR / PPO baseline);
    that case is computed in closed form instead of a length-T reverse scan.

    ``is_labeled`` and ``group_ids`` are unused: every row is treated as labeled (stage 1 runs on
    D_L only).
    """
    _check_whiten(whiten)
    m = mask_f32(response_mask)
    v = jnp.where(m > 0, f32(values), 0.0)
    last, has_any = last_valid_index(m)
    r = jnp.where(has_any, f32(scores).reshape(-1), 0.0)
    if gamma == 1.0 and lam == 1.0:
        # closed form (the recursion telescopes): A_t = R − V_t at every valid t. Same numbers,
        # without a length-T sequential scan in the step.
        raw = (r[:, None] - v) * m
    else:
        rewards = jax.nn.one_hot(last, m.shape[-1], dtype=jnp.float32) * r[:, None]
        raw = _gae_raw(rewards, v, m, float(gamma), float(lam)) * m
    ret = raw + v
    adv = masked_whiten(raw, m) if whiten == "global" else raw
    return _out(adv, ret, m)


@ADVANTAGES.register("grpo", options=GroupNormOptions)
def grpo(
    scores: jax.Array,
    values: jax.Array | None,
    response_mask: jax.Array,
    is_labeled: jax.Array | None,
    group_ids: jax.Array,
    *,
    eps: float = 1e-6,
    norm_by_std: bool = True,
) -> AdvantageOutput:
    """GRPO outcome advantage (verl ``compute_grpo_outcome_advantage``): (r − group mean) /
    (group unbiased std + eps), or r − mean if not ``norm_by_std`` (Dr.GRPO), broadcast over
    valid tokens; returns = advantages (as verl). A group of one row uses mean 0, std 1 (verl).
    ``values`` and ``is_labeled`` are unused (TTRL/EMPO run on D_U with their own rewards).
    """
    m = mask_f32(response_mask)
    r = f32(scores).reshape(-1)
    mean, std = group_mean_std(r, group_ids, singleton_mean="zero")
    a = (r - mean) / (std + eps) if norm_by_std else r - mean
    adv = jnp.broadcast_to(a[:, None], m.shape)
    return _out(adv, adv, m)
