"""Policy losses: hand examples, NumPy re-derivations (value and gradient), exact micro-batching."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tempo_jax.rl import POLICY_LOSSES, gspo, ppo, reduce_metrics, sum_outputs
from tempo_jax.rl.losses import aggregate, kl_penalty

TOL = dict(rtol=1e-5, atol=1e-6)

# Tests call jitted losses (one compile per shape/options) — eager op-by-op dispatch compiles
# every primitive separately and is several times slower on the first call.
STATIC = ("clip_low", "clip_high", "agg", "clip_ratio_c", "logratio_clamp", "entropy_coef", "kl_coef", "kl_type")


def _jit_pair(fn):
    def numerator(x, *args, **kw):
        return fn(x, *args, **kw).numerator

    return jax.jit(fn, static_argnames=STATIC), jax.jit(jax.grad(numerator), static_argnames=STATIC)


GSPO, GSPO_GRAD = _jit_pair(gspo)
PPO, PPO_GRAD = _jit_pair(ppo)
JIT = {"gspo": (GSPO, GSPO_GRAD), "ppo": (PPO, PPO_GRAD)}


# ----------------------------------------------------------------------------- NumPy references


def np_agg(loss, m, agg):
    if agg == "token-mean":
        return (loss * m).sum(), m.sum()
    rows = [i for i in range(len(m)) if m[i].sum() > 0]
    if agg == "seq-mean-token-mean":
        return sum((loss[i] * m[i]).sum() / m[i].sum() for i in rows), len(rows)
    return sum((loss[i] * m[i]).sum() for i in rows), len(rows)


def np_gspo(lp, old, A, m, lo, hi, agg, clamp=10.0):
    """Value and d(numerator)/d(logp) of GSPO, row by row."""
    B, T = lp.shape
    loss = np.zeros((B, T))
    dloss = np.zeros((B, T))  # d loss_t / d logp_t (straight-through: only own token)
    clipped = np.zeros((B, T))
    for i in range(B):
        n = m[i].sum()
        if n == 0:
            continue
        log_s = ((lp[i] - old[i]) * m[i]).sum() / n
        for t in range(T):
            if not m[i, t]:
                continue
            s = np.exp(min(log_s, clamp))
            ds = 0.0 if log_s > clamp else s
            a = A[i, t]
            pg1, pg2 = -a * s, -a * np.clip(s, 1 - lo, 1 + hi)
            loss[i, t] = max(pg1, pg2)
            clipped[i, t] = pg2 > pg1
            inside = 1 - lo <= s <= 1 + hi
            dloss[i, t] = -a * ds if (inside or pg1 > pg2) else 0.0
    num, den = np_agg(loss, m, agg)
    w = np.ones((B, 1)) if agg != "seq-mean-token-mean" else 1.0 / np.maximum(m.sum(1, keepdims=True), 1)
    return num, den, dloss * w * m, clipped


def np_ppo(lp, old, A, m, lo, hi, c, agg, clamp=10.0):
    B, T = lp.shape
    loss = np.zeros((B, T))
    dloss = np.zeros((B, T))
    for i in range(B):
        for t in range(T):
            if not m[i, t]:
                continue
            lr = lp[i, t] - old[i, t]
            r = np.exp(np.clip(lr, -clamp, clamp))
            dr = r if abs(lr) < clamp else 0.0
            a = A[i, t]
            pg1, pg2 = -a * r, -a * np.clip(r, 1 - lo, 1 + hi)
            inside = 1 - lo <= r <= 1 + hi
            tok_loss, d = (pg1, -a * dr) if (pg1 > pg2 or inside) else (pg2, 0.0)
            if c is not None and a < 0 and -a * c < tok_loss:
                tok_loss, d = -a * c, 0.0
            loss[i, t], dloss[i, t] = tok_loss, d
    num, den = np_agg(loss, m, agg)
    w = np.ones((B, 1)) if agg != "seq-mean-token-mean" else 1.0 / np.maximum(m.sum(1, keepdims=True), 1)
    return num, den, dloss * w * m


def random_inputs(seed, B=10, T=6, scale=0.3):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, T + 1, size=B)
    lengths[-1] = 0  # one empty row: ignored by every aggregation
    m = (np.arange(T)[None] < lengths[:, None]).astype(np.float32)
    old = -rng.uniform(0.1, 3.0, size=(B, T)).astype(np.float32)
    lp = (old + rng.normal(size=(B, T)) * scale).astype(np.float32)
    A = np.repeat(rng.normal(size=(B, 1)), T, 1).astype(np.float32)
    A[:2] += rng.normal(size=(2, T)).astype(np.float32)  # token-varying advantages too (em_token)
    return lp, old, A, m


# ----------------------------------------------------------------------------- gspo


def test_gspo_hand_example():
    # row 0: logp - old = [0.2, -0.1] -> s = exp(0.05) = 1.051271; A = +1:
    #        max(-1.051271, -clip(s) = -1.0005) = -1.0005 on both tokens (clipped)
    # row 1: one valid token, logp - old = -0.1 -> s = exp(-0.1) = 0.904837; A = -1:
    #        max(0.904837, 0.9997) = 0.9997 (clipped)
    # seq-mean-token-mean: (-1.0005) + 0.9997 = -0.0008 over 2 sequences
    lp = jnp.array([[-1.0, -2.0], [-0.5, -np.inf]])
    old = jnp.array([[-1.2, -1.9], [-0.4, 0.0]])
    A = jnp.array([[1.0, 1.0], [-1.0, 0.0]])
    m = jnp.array([[1, 1], [1, 0]])
    out = GSPO(lp, old, A, m)
    np.testing.assert_allclose(out.numerator, -0.0008, atol=1e-6)
    assert float(out.denominator) == 2.0
    np.testing.assert_allclose(out.loss(), -0.0004, atol=1e-6)
    r = reduce_metrics(out.metrics)
    assert r["clip_fraction"] == 1.0  # 3 of 3 valid tokens
    np.testing.assert_allclose(r["approx_kl"], -(0.2 - 0.1 - 0.1) / 3, atol=1e-6)
    np.testing.assert_allclose(r["seq_ratio"], (np.exp(0.05) + np.exp(-0.1)) / 2, rtol=1e-6)
    np.testing.assert_allclose(r["pg_loss"], -0.0004, atol=1e-6)
    eager = gspo(lp, old, A, m)  # the plain (un-jitted) function gives the same
    np.testing.assert_allclose(eager.numerator, out.numerator, rtol=1e-6)
    tm = GSPO(lp, old, A, m, agg="token-mean")
    np.testing.assert_allclose(tm.numerator, 2 * -1.0005 + 0.9997, atol=1e-6)
    assert float(tm.denominator) == 3.0


def test_gspo_on_policy_gradient_by_hand():
    # logp == old -> s = 1 (inside the clip) -> loss_t = -A_t * s, d/dlogp_t = -A_t * s / |y|
    lp = jnp.array([[-1.0, -2.0, -0.5], [-0.3, -0.7, 0.0]])
    A = jnp.array([[1.0, 1.0, 1.0], [-2.0, -2.0, 0.0]])
    m = jnp.array([[1, 1, 1], [1, 1, 0]])
    g = GSPO_GRAD(lp, lp, A, m)
    np.testing.assert_allclose(g, [[-1 / 3, -1 / 3, -1 / 3], [1.0, 1.0, 0.0]], **TOL)


@pytest.mark.parametrize("agg", ["seq-mean-token-mean", "token-mean", "seq-mean-token-sum"])
@pytest.mark.parametrize("scale", [0.001, 0.3])  # mostly unclipped / mostly clipped
def test_gspo_matches_numpy(agg, scale):
    lp, old, A, m = random_inputs(1, scale=scale)
    lo, hi = 3e-3, 5e-3
    opts = dict(clip_low=lo, clip_high=hi, agg=agg)
    out = GSPO(lp, old, A, m, **opts)
    num, den, dnum, clipped = np_gspo(lp.astype(float), old.astype(float), A.astype(float), m, lo, hi, agg)
    np.testing.assert_allclose(out.numerator, num, rtol=1e-5, atol=1e-5)
    assert float(out.denominator) == den
    np.testing.assert_allclose(GSPO_GRAD(lp, old, A, m, **opts), dnum, rtol=1e-4, atol=1e-6)
    r = reduce_metrics(out.metrics)
    np.testing.assert_allclose(r["clip_fraction"], clipped.sum() / m.sum(), **TOL)
    np.testing.assert_allclose(r["approx_kl"], ((old - lp) * m).sum() / m.sum(), rtol=1e-5, atol=1e-6)


def test_gspo_logratio_clamp():
    # mean log-ratio 12 > 10: s = exp(10), and no gradient flows through the clamp
    lp, old = jnp.array([[2.0, 2.0]]), jnp.array([[-10.0, -10.0]])
    A, m = jnp.array([[-1.0, -1.0]]), jnp.ones((1, 2))
    out = GSPO(lp, old, A, m)
    np.testing.assert_allclose(out.numerator, np.exp(10.0), rtol=1e-5)
    np.testing.assert_allclose(GSPO_GRAD(lp, old, A, m), 0.0)


def test_gspo_rejects_dual_clip():
    with pytest.raises(ValueError, match="dual clip"):
        gspo(jnp.zeros((1, 2)), jnp.zeros((1, 2)), jnp.zeros((1, 2)), jnp.ones((1, 2)), clip_ratio_c=3.0)


# ----------------------------------------------------------------------------- ppo


def test_ppo_hand_example():
    # clip [0.8, 1.3], dual clip c = 3:
    # t0: r = 1.5, A = +1: max(-1.5, -1.3) = -1.3            (clipped)
    # t1: r = 0.5, A = +1: max(-0.5, -0.8) = -0.5
    # t2: r = 4.0, A = -1: max(4, 1.3) = 4 -> dual: min(3, 4) = 3   (lower clip)
    # t3: r = 0.5, A = -1: max(0.5, 0.8) = 0.8 -> min(3, 0.8) = 0.8 (clipped)
    ratios = np.array([[1.5, 0.5], [4.0, 0.5]])
    old = jnp.array([[-1.0, -2.0], [-0.5, -3.0]])
    lp = old + jnp.log(ratios)
    A = jnp.array([[1.0, 1.0], [-1.0, -1.0]])
    m = jnp.ones((2, 2))
    out = PPO(lp, old, A, m, clip_low=0.2, clip_high=0.3, clip_ratio_c=3.0, agg="token-mean")
    np.testing.assert_allclose(out.numerator, -1.3 - 0.5 + 3.0 + 0.8, **TOL)
    assert float(out.denominator) == 4.0
    r = reduce_metrics(out.metrics)
    assert r["clip_fraction"] == 0.5 and r["clip_fraction_lower"] == 0.25
    seq = PPO(lp, old, A, m, clip_low=0.2, clip_high=0.3, clip_ratio_c=3.0)
    np.testing.assert_allclose(seq.numerator, (-1.3 - 0.5) / 2 + (3.0 + 0.8) / 2, **TOL)
    assert float(seq.denominator) == 2.0
    # without dual clip t2 costs 4
    nodual = PPO(lp, old, A, m, clip_low=0.2, clip_high=0.3, agg="token-mean")
    np.testing.assert_allclose(nodual.numerator, -1.3 - 0.5 + 4.0 + 0.8, **TOL)
    # gradient: only t1 (r = 0.5, unclipped, A = 1) has one: d(-A r)/dlogp = -r = -0.5
    g = PPO_GRAD(lp, old, A, m, clip_low=0.2, clip_high=0.3, clip_ratio_c=3.0, agg="token-mean")
    np.testing.assert_allclose(g, [[0.0, -0.5], [0.0, 0.0]], **TOL)


@pytest.mark.parametrize("agg", ["seq-mean-token-mean", "token-mean"])
@pytest.mark.parametrize("c", [None, 3.0])
def test_ppo_matches_numpy(agg, c):
    lp, old, A, m = random_inputs(2, scale=0.8)
    lo, hi = 0.2, 0.28
    opts = dict(clip_low=lo, clip_high=hi, clip_ratio_c=c, agg=agg)
    out = PPO(lp, old, A, m, **opts)
    num, den, dnum = np_ppo(lp.astype(float), old.astype(float), A.astype(float), m, lo, hi, c, agg)
    np.testing.assert_allclose(out.numerator, num, rtol=1e-5, atol=1e-5)
    assert float(out.denominator) == den
    np.testing.assert_allclose(PPO_GRAD(lp, old, A, m, **opts), dnum, rtol=1e-4, atol=1e-6)


def test_ppo_rejects_bad_dual_clip():
    with pytest.raises(ValueError, match="> 1.0"):
        ppo(jnp.zeros((1, 2)), jnp.zeros((1, 2)), jnp.zeros((1, 2)), jnp.ones((1, 2)), clip_ratio_c=0.5)


# ----------------------------------------------------------------------------- entropy / KL


def test_entropy_and_kl_terms_hand_example():
    # on-policy (r = s = 1), A = 0 -> pg loss 0; token-mean over 2 tokens.
    # low_var_kl at logp = -1, ref = -1.5: k = ref - logp = -0.5 -> e^-0.5 + 0.5 - 1 = 0.1065307
    # at logp = -2, ref = -2: 0.  entropy [1.0, 3.0].
    lp = jnp.array([[-1.0, -2.0]])
    ref = jnp.array([[-1.5, -2.0]])
    ent = jnp.array([[1.0, 3.0]])
    m = jnp.ones((1, 2))
    kl0 = np.exp(-0.5) + 0.5 - 1
    for name in ("gspo", "ppo"):
        out = JIT[name][0](
            lp,
            lp,
            jnp.zeros((1, 2)),
            m,
            agg="token-mean",
            entropy=ent,
            entropy_coef=0.01,
            ref_logprobs=ref,
            kl_coef=0.1,
        )
        np.testing.assert_allclose(out.numerator, 0.1 * kl0 - 0.01 * 4.0, **TOL)
        r = reduce_metrics(out.metrics)
        np.testing.assert_allclose(r["entropy"], 2.0, **TOL)
        np.testing.assert_allclose(r["kl_loss"], kl0 / 2, **TOL)
        assert r["pg_loss"] == 0.0
    np.testing.assert_allclose(kl_penalty(lp, ref, "k1"), [[0.5, 0.0]], **TOL)
    np.testing.assert_allclose(kl_penalty(lp, ref, "mse"), [[0.125, 0.0]], **TOL)
    with pytest.raises(ValueError, match="kl_type"):
        kl_penalty(lp, ref, "full")
    with pytest.raises(ValueError, match="ref_logprobs"):
        GSPO(lp, lp, lp, m, kl_coef=0.1)
    with pytest.raises(ValueError, match="entropy"):
        GSPO(lp, lp, lp, m, entropy_coef=0.1)


# ----------------------------------------------------------------------------- micro-batching


def _model_logprobs(w, feats):
    return -jax.nn.softplus(feats @ w)  # a tiny shared-parameter "policy"


@pytest.mark.parametrize("name", ["gspo", "ppo"])
@pytest.mark.parametrize("agg", ["seq-mean-token-mean", "token-mean"])
def test_microbatch_sums_give_whole_batch_loss_and_grad(name, agg):
    rng = np.random.default_rng(3)
    B, T, D = 10, 6, 3
    _, _, A, m = random_inputs(4, B=B, T=T)
    feats = jnp.asarray(rng.normal(size=(B, T, D)), jnp.float32)
    w0 = jnp.asarray(rng.normal(size=(D,)), jnp.float32)
    old = _model_logprobs(w0, feats)
    w = w0 + 0.05 * jnp.asarray(rng.normal(size=(D,)), jnp.float32)  # slightly off-policy
    ref = _model_logprobs(w0 * 0.9, feats)
    ent = jnp.asarray(rng.uniform(0, 2, size=(B, T)), jnp.float32)
    opts = dict(agg=agg, clip_low=0.02, clip_high=0.03, entropy_coef=0.01, kl_coef=0.05)
    if name == "ppo":
        opts["clip_ratio_c"] = 3.0
    fn = functools.partial(POLICY_LOSSES.get(name), **opts)

    @jax.jit
    def out_and_grad(w, feats, old, A, m, ent, ref):
        def f(w):
            o = fn(_model_logprobs(w, feats), old, A, m, entropy=ent, ref_logprobs=ref)
            return o.numerator, o

        (_, o), g = jax.value_and_grad(f, has_aux=True)(w)
        return o, g

    def run(rows, pad_to):
        # micro-batches padded to a fixed row count with empty (mask 0) rows, as a jitted
        # trainer would do: the padding must contribute nothing
        def pad(x):
            x = np.asarray(x)[rows]
            return np.concatenate([x, np.zeros((pad_to - len(x),) + x.shape[1:], x.dtype)])

        return out_and_grad(w, *map(pad, (feats, old, A, m, ent, ref)))

    whole, whole_grad_num = run(np.arange(B), B)
    full_loss = whole.loss()
    full_grad = whole_grad_num / whole.denominator
    # uneven row and token counts; the last micro-batch's only row has no valid token
    parts = [np.arange(0, 3), np.arange(3, 4), np.arange(4, 8), np.arange(8, 9), np.arange(9, 10)]
    outs, grads = zip(*[run(p, 4) for p in parts])
    total = sum_outputs(outs)
    np.testing.assert_allclose(total.numerator / total.denominator, full_loss, rtol=1e-5, atol=1e-7)
    assert float(total.denominator) == float(whole.denominator)
    np.testing.assert_allclose(sum(grads) / total.denominator, full_grad, rtol=1e-5, atol=1e-7)
    # metrics aggregate exactly too
    a, b = reduce_metrics(whole.metrics), reduce_metrics(*[o.metrics for o in outs])
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-7)


# ----------------------------------------------------------------------------- misc


@pytest.mark.parametrize("name", ["gspo", "ppo"])
def test_padding_is_inert_even_with_inf_and_nan(name):
    lp, old, A, m = random_inputs(5)
    lp_bad = np.where(m > 0, lp, -np.inf).astype(np.float32)  # -inf / NaN at pads
    old_bad = np.where(m > 0, old, np.nan).astype(np.float32)
    loss, grad = JIT[name]
    clean = loss(lp, old, A, m)
    jitted = loss(lp_bad, old_bad, A, m)
    np.testing.assert_allclose(clean.numerator, jitted.numerator, rtol=1e-6)
    assert np.isfinite(float(jitted.numerator))
    g = grad(lp_bad, old_bad, A, m)
    assert np.all(np.isfinite(np.asarray(g))) and np.all(np.asarray(g)[m == 0] == 0)


def test_unknown_names_raise():
    with pytest.raises(ValueError, match="unknown policy loss 'grpo'; known: gspo, ppo"):
        POLICY_LOSSES.get("grpo")
    with pytest.raises(ValueError, match="unknown loss aggregation"):
        aggregate(jnp.zeros((1, 2)), jnp.ones((1, 2)), "seq-mean-token-sum-norm")


def test_empty_batch_loss_is_zero():
    out = GSPO(jnp.zeros((2, 3)), jnp.zeros((2, 3)), jnp.ones((2, 3)), jnp.zeros((2, 3)))
    assert float(out.denominator) == 0.0 and float(out.loss()) == 0.0
