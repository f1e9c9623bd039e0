"""Value (critic) losses (pure JAX, jittable), registered by name in ``VALUE_LOSSES``.

Signature::

    fn(values [B,T], old_values [B,T], returns [B,T], response_mask [B,T], is_labeled [B], *,
       cliprange_value=0.1, agg="seq-mean-token-mean", labeled_only=True) -> LossOutput

``values`` are the critic's current predictions (differentiable), ``old_values`` the values
from before the update (the ones the advantages used), ``returns`` the targets (z from the
advantage estimator). The 0.5 factor is included in the numerator. With ``labeled_only`` only
rows with ``is_labeled`` enter the loss (TEMPO's E-step, spec §1.3); a micro-batch without a
labeled row has numerator = denominator = 0 (``LossOutput.loss()`` is then 0).

Metrics (``(sum, count)`` pairs over the rows in the loss): vf_loss, vf_clip_fraction,
vpred_mean, and the explained-variance pieces returns_mean, returns_sq_mean, vf_error_mean,
vf_error_sq_mean (error = returns − values); ``explained_variance_from_moments`` combines
reduced pieces. ``explained_variance`` is the same fraction on host arrays (logged step metrics,
evaluation's critic calibration).

Departure from the reference: its micro-batch loss is a seq-mean over the labeled rows of the
micro-batch scaled by (rows in micro-batch)/(rows in mini-batch), which weights labeled rows
unevenly across micro-batches; ours is the exact seq-mean over the labeled rows of the whole
mini-batch, whatever the split.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from tempo_jax.rl.arrays import mask_f32, stop_grad
from tempo_jax.rl.losses import LossOutput, Metrics, aggregate, token_metric
from tempo_jax.rl.options import ValueClipOptions
from tempo_jax.rl.registry import VALUE_LOSSES


def _prepare(values, old_values, returns, response_mask, is_labeled, labeled_only):
    m = mask_f32(response_mask)
    if labeled_only:
        m = m * (jnp.asarray(is_labeled).reshape(-1, 1) > 0).astype(jnp.float32)
    v = jnp.where(m > 0, jnp.asarray(values, jnp.float32), 0.0)
    old = stop_grad(jnp.where(m > 0, jnp.asarray(old_values, jnp.float32), 0.0))
    ret = stop_grad(jnp.where(m > 0, jnp.asarray(returns, jnp.float32), 0.0))
    return v, old, ret, m


def _finish(v, ret, v_clipped, m, agg, clip_metric) -> LossOutput:
    l1 = (v - ret) ** 2
    l2 = (v_clipped - ret) ** 2
    num, den = aggregate(jnp.maximum(l1, l2), m, agg)
    num = 0.5 * num
    err = ret - v
    metrics: Metrics = {
        "vf_loss": (stop_grad(num), stop_grad(den)),
        "vf_clip_fraction": clip_metric(l1, l2),
        "vpred_mean": token_metric(v, m),
        "returns_mean": token_metric(ret, m),
        "returns_sq_mean": token_metric(ret * ret, m),
        "vf_error_mean": token_metric(err, m),
        "vf_error_sq_mean": token_metric(err * err, m),
    }
    return LossOutput(num, stop_grad(den), metrics)


@VALUE_LOSSES.register("seq_clip", options=ValueClipOptions)
def seq_clip(
    values: jax.Array,
    old_values: jax.Array,
    returns: jax.Array,
    response_mask: jax.Array,
    is_labeled: jax.Array,
    *,
    cliprange_value: float = 0.1,
    agg: str = "seq-mean-token-mean",
    labeled_only: bool = True,
) -> LossOutput:
    """TEMPO's sequence-level value clip (spec §1.3, the active reference ``compute_value_loss``).

    Per sequence: d = mean_t(V) − mean_t(V_old), d_c = clip(d, −c, c), V_clip = V + (d_c − d)
    at every token (the whole sequence is shifted; the gradient still flows through the
    within-sequence deviations of V). Token loss = max((V − R)², (V_clip − R)²), aggregated with
    ``agg``, times 0.5. vf_clip_fraction = fraction of sequences with d clipped (the reference
    weights it by tokens).
    """
    v, old, ret, m = _prepare(values, old_values, returns, response_mask, is_labeled, labeled_only)
    count = jnp.sum(m, axis=-1)
    has_any = count > 0
    denom = jnp.maximum(count, 1.0)
    d = jnp.sum(v, axis=-1) / denom - jnp.sum(old, axis=-1) / denom
    d_c = jnp.clip(d, -cliprange_value, cliprange_value)
    v_clipped = v + (d_c - d)[:, None]

    def clip_metric(l1, l2):
        clipped = ((d_c != d) & has_any).astype(jnp.float32)
        return stop_grad(jnp.sum(clipped)), stop_grad(jnp.sum(has_any.astype(jnp.float32)))

    return _finish(v, ret, v_clipped, m, agg, clip_metric)


@VALUE_LOSSES.register("token_clip", options=ValueClipOptions)
def token_clip(
    values: jax.Array,
    old_values: jax.Array,
    returns: jax.Array,
    response_mask: jax.Array,
    is_labeled: jax.Array,
    *,
    cliprange_value: float = 0.1,
    agg: str = "seq-mean-token-mean",
    labeled_only: bool = True,
) -> LossOutput:
    """Standard per-token PPO value clip (verl's original ``compute_value_loss``):
    V_clip = V_old + clip(V − V_old, −c, c); loss = 0.5·agg(max((V − R)², (V_clip − R)²)).
    vf_clip_fraction = fraction of tokens where the clipped term is larger (verl)."""
    v, old, ret, m = _prepare(values, old_values, returns, response_mask, is_labeled, labeled_only)
    v_clipped = old + jnp.clip(v - old, -cliprange_value, cliprange_value)

    def clip_metric(l1, l2):
        return token_metric((l2 > l1).astype(jnp.float32), m)

    return _finish(v, ret, v_clipped, m, agg, clip_metric)


def _fraction_explained(var_error, var_returns):
    """The explained-variance formula: 1 − Var(R − V) / Var(R)."""
    return 1.0 - var_error / var_returns


def explained_variance(values, returns, *, if_constant: float = float("nan")) -> float:
    """1 − Var(R − V)/Var(R) of host arrays (population variances, flattened); ``if_constant``
    when Var(R) is 0 (or NaN) or there are no values. Computed in the inputs' float dtype (float64 for
    Python numbers and integer arrays)."""
    v, r = np.asarray(values), np.asarray(returns)
    dtype = np.result_type(v, r, np.float32)
    v, r = v.astype(dtype).reshape(-1), r.astype(dtype).reshape(-1)
    var_r = np.var(r)
    if r.size == 0 or not var_r > 0:  # constant (or NaN) returns
        return float(if_constant)
    return float(_fraction_explained(np.var(r - v), var_r))


def explained_variance_from_moments(reduced: Mapping[str, float], eps: float = 1e-5) -> float:
    """1 − Var(R − V)/(Var(R) + eps) from the ``reduce_metrics`` output of a value loss (verl's
    vf_explained_var; population variances from first and second moments, so micro-batch sums
    combine exactly)."""
    var_err = reduced["vf_error_sq_mean"] - reduced["vf_error_mean"] ** 2
    var_ret = reduced["returns_sq_mean"] - reduced["returns_mean"] ** 2
    return _fraction_explained(var_err, var_ret + eps)
