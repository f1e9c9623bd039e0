"""Value losses: hand examples, NumPy re-derivation, labeled-only masking, exact micro-batching."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tempo_jax.rl import (
    VALUE_LOSSES,
    explained_variance,
    explained_variance_from_moments,
    reduce_metrics,
    seq_clip,
    sum_outputs,
    token_clip,
)

TOL = dict(rtol=1e-5, atol=1e-6)
STATIC = ("cliprange_value", "agg", "labeled_only")


def _jit_pair(fn):
    def numerator(v, *args, **kw):
        return fn(v, *args, **kw).numerator

    return jax.jit(fn, static_argnames=STATIC), jax.jit(jax.grad(numerator), static_argnames=STATIC)


SEQ, SEQ_GRAD = _jit_pair(seq_clip)
TOK, TOK_GRAD = _jit_pair(token_clip)


# ----------------------------------------------------------------------------- NumPy reference


def np_value_loss(V, old, R, M, L, c, agg, kind, labeled_only=True):
    rows, per_seq, toks, clipped_seq = [], [], [], []
    for i in range(len(V)):
        n = int(M[i].sum())
        if n == 0 or (labeled_only and not L[i]):
            continue
        v, o, r = V[i, :n], old[i, :n], R[i, :n]
        if kind == "seq":
            d = v.mean() - o.mean()
            dc = np.clip(d, -c, c)
            vc = v + (dc - d)
            clipped_seq.append(d != dc)
        else:
            vc = o + np.clip(v - o, -c, c)
        tok_loss = np.maximum((v - r) ** 2, (vc - r) ** 2)
        rows.append(i)
        per_seq.append(tok_loss.mean())
        toks.extend(tok_loss)
    if agg == "seq-mean-token-mean":
        return 0.5 * sum(per_seq), len(per_seq), clipped_seq
    return 0.5 * sum(toks), len(toks), clipped_seq


def random_inputs(seed, B=10, T=6):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, T + 1, size=B)
    lengths[-1] = 0
    M = (np.arange(T)[None] < lengths[:, None]).astype(np.float32)
    old = rng.uniform(-1, 1, size=(B, T)).astype(np.float32)
    V = (old + rng.normal(size=(B, T)) * 0.15).astype(np.float32)
    R = np.repeat(rng.choice([-1.0, 1.0], size=(B, 1)), T, 1).astype(np.float32)
    L = rng.uniform(size=B) < 0.6
    L[0], L[1] = True, False
    return V, old, R, M, L


# ----------------------------------------------------------------------------- seq_clip


def _hand_inputs():
    # row 0 (labeled): V = [0.5, 0.7] (mean 0.6), V_old = [0.2, 0.4] (mean 0.3): d = 0.3 -> 0.1,
    #   V_clip = V - 0.2 = [0.3, 0.5]; R = 1: (V-R)^2 = [0.25, 0.09], (Vc-R)^2 = [0.49, 0.25]
    #   -> max = [0.49, 0.25], token mean 0.37
    # row 1 (labeled, 1 token): V = -0.5, V_old = -0.45: d = -0.05 (not clipped); R = -1: 0.25
    # row 2 (unlabeled): ignored with labeled_only
    V = jnp.array([[0.5, 0.7], [-0.5, 3.0], [0.0, 0.0]])
    old = jnp.array([[0.2, 0.4], [-0.45, 0.0], [5.0, 5.0]])
    R = jnp.array([[1.0, 1.0], [-1.0, -1.0], [0.3, 0.3]])
    M = jnp.array([[1, 1], [1, 0], [1, 1]])
    L = jnp.array([True, True, False])
    return V, old, R, M, L


def test_seq_clip_hand_example():
    V, old, R, M, L = _hand_inputs()
    out = SEQ(V, old, R, M, L)
    np.testing.assert_allclose(out.numerator, 0.5 * (0.37 + 0.25), **TOL)
    assert float(out.denominator) == 2.0
    r = reduce_metrics(out.metrics)
    assert r["vf_clip_fraction"] == 0.5  # one of the two labeled sequences
    np.testing.assert_allclose(r["vpred_mean"], (0.5 + 0.7 - 0.5) / 3, **TOL)
    np.testing.assert_allclose(r["vf_loss"], 0.5 * 0.62 / 2, **TOL)
    tm = SEQ(V, old, R, M, L, agg="token-mean")
    np.testing.assert_allclose(tm.numerator, 0.5 * (0.49 + 0.25 + 0.25), **TOL)
    assert float(tm.denominator) == 3.0
    # gradient (numerator): row 0 uses V_clip_t = V_t - mean(V) + const, so
    #   d/dV_j mean_t (Vc_t - R)^2 = (Vc_j - R) - mean_t(Vc_t - R) = [-0.7 + 0.6, -0.5 + 0.6]
    #   -> ×0.5 = [-0.05, 0.05]; row 1: 0.5 × 2 (V - R) = 0.5; row 2 and pads: 0
    g = SEQ_GRAD(V, old, R, M, L)
    np.testing.assert_allclose(g, [[-0.05, 0.05], [0.5, 0.0], [0.0, 0.0]], **TOL)


def test_seq_clip_all_rows_when_not_labeled_only():
    V, old, R, M, L = _hand_inputs()
    out = SEQ(V, old, R, M, L, labeled_only=False)
    # row 2: d = 0 - 5 = -5 -> -0.1, V_clip = [4.9, 4.9]; R = 0.3: max(0.09, 4.6^2) = 21.16
    np.testing.assert_allclose(out.numerator, 0.5 * (0.37 + 0.25 + 21.16), rtol=1e-5)
    assert float(out.denominator) == 3.0


@pytest.mark.parametrize("agg", ["seq-mean-token-mean", "token-mean"])
@pytest.mark.parametrize("kind", ["seq", "tok"])
def test_value_losses_match_numpy(agg, kind):
    V, old, R, M, L = random_inputs(0)
    c = 0.1
    fn = SEQ if kind == "seq" else TOK
    out = fn(V, old, R, M, L, cliprange_value=c, agg=agg)
    num, den, clipped = np_value_loss(V.astype(float), old.astype(float), R, M, L, c, agg, kind)
    np.testing.assert_allclose(out.numerator, num, rtol=1e-5)
    assert float(out.denominator) == den
    if kind == "seq":
        assert 0 < sum(clipped) < len(clipped)  # the example exercises both branches
        np.testing.assert_allclose(reduce_metrics(out.metrics)["vf_clip_fraction"], np.mean(clipped))


def test_token_clip_hand_example():
    # V = [0.5, 0.35], V_old = [0.2, 0.4], c = 0.1 -> V_clip = [0.3, 0.35]; R = 1:
    # (V-R)^2 = [0.25, 0.4225], (Vc-R)^2 = [0.49, 0.4225] -> max [0.49, 0.4225]
    V, old = jnp.array([[0.5, 0.35]]), jnp.array([[0.2, 0.4]])
    R, M, L = jnp.ones((1, 2)), jnp.ones((1, 2)), jnp.array([True])
    out = TOK(V, old, R, M, L, agg="token-mean")
    np.testing.assert_allclose(out.numerator, 0.5 * (0.49 + 0.4225), **TOL)
    assert float(out.denominator) == 2.0
    assert reduce_metrics(out.metrics)["vf_clip_fraction"] == 0.5
    # gradient: token 0 clipped (0), token 1: 0.5 × 2 (0.35 - 1) = -0.65
    np.testing.assert_allclose(TOK_GRAD(V, old, R, M, L, agg="token-mean"), [[0.0, -0.65]], **TOL)


def test_no_labeled_rows_gives_zero_loss():
    V, old, R, M, _ = random_inputs(1)
    out = SEQ(V, old, R, M, np.zeros(len(V), bool))
    assert float(out.numerator) == 0.0 and float(out.denominator) == 0.0 and float(out.loss()) == 0.0
    assert np.all(np.asarray(SEQ_GRAD(V, old, R, M, np.zeros(len(V), bool))) == 0)


@pytest.mark.parametrize("name", ["seq_clip", "token_clip"])
@pytest.mark.parametrize("agg", ["seq-mean-token-mean", "token-mean"])
def test_value_microbatch_sums_give_whole_batch_loss_and_grad(name, agg):
    rng = np.random.default_rng(2)
    _, old, R, M, L = random_inputs(3)
    B, T = M.shape
    feats = rng.normal(size=(B, T, 3)).astype(np.float32)
    w = jnp.asarray(rng.normal(size=(3,)), jnp.float32)
    fn = VALUE_LOSSES.get(name)

    @jax.jit
    def out_and_grad(w, feats, old, R, M, L):
        def f(w):
            o = fn(jnp.tanh(feats @ w), old, R, M, L, agg=agg)
            return o.numerator, o

        (_, o), g = jax.value_and_grad(f, has_aux=True)(w)
        return o, g

    def run(rows, pad_to):
        def pad(x):
            x = np.asarray(x)[rows]
            return np.concatenate([x, np.zeros((pad_to - len(x),) + x.shape[1:], x.dtype)])

        return out_and_grad(w, *map(pad, (feats, old, R, M, L)))

    whole, g_whole = run(np.arange(B), B)
    parts = [np.arange(0, 1), np.arange(1, 5), np.arange(5, 7), np.arange(7, 10)]
    outs, grads = zip(*[run(p, 4) for p in parts])
    total = sum_outputs(outs)
    assert float(total.denominator) == float(whole.denominator) > 0
    np.testing.assert_allclose(total.numerator / total.denominator, whole.loss(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(sum(grads) / total.denominator, g_whole / whole.denominator, rtol=1e-5, atol=1e-7)
    a, b = reduce_metrics(whole.metrics), reduce_metrics(*[o.metrics for o in outs])
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(
        explained_variance_from_moments(a), explained_variance_from_moments(b), rtol=1e-4, atol=1e-6
    )


def test_explained_variance_pieces():
    # perfect critic -> 1; constant critic at the mean return -> 0
    R = jnp.array([[1.0, 1.0], [-1.0, -1.0]])
    M, L = jnp.ones((2, 2)), jnp.array([True, True])
    perfect = reduce_metrics(SEQ(R, R, R, M, L).metrics)
    np.testing.assert_allclose(explained_variance_from_moments(perfect), 1.0, atol=1e-5)
    const = reduce_metrics(SEQ(jnp.zeros((2, 2)), jnp.zeros((2, 2)), R, M, L).metrics)
    np.testing.assert_allclose(explained_variance_from_moments(const), 0.0, atol=1e-5)


def test_explained_variance_of_arrays_matches_the_moments_version():
    rng = np.random.default_rng(0)
    R = jnp.asarray(np.where(rng.random((4, 6)) < 0.5, 1.0, -1.0), jnp.float32)
    V = jnp.asarray(0.5 * np.asarray(R) + 0.3 * rng.standard_normal((4, 6)), jnp.float32)
    M, L = jnp.ones((4, 6)), jnp.ones(4, bool)
    from_moments = explained_variance_from_moments(reduce_metrics(SEQ(V, V, R, M, L).metrics), eps=0.0)
    np.testing.assert_allclose(explained_variance(np.asarray(V), np.asarray(R)), from_moments, rtol=1e-4)
    assert np.isnan(explained_variance(np.asarray(V), np.ones(24)))
    assert explained_variance(np.asarray(V), np.ones(24), if_constant=0.0) == 0.0
    assert explained_variance(np.ones(3, np.float32), np.array([1.0, 2.0, 3.0], np.float32)) == pytest.approx(
        1 - np.var([0.0, 1.0, 2.0]) / np.var([1.0, 2.0, 3.0])
    )


def test_eager_equals_jit_and_unknown_name_raises():
    V, old, R, M, L = _hand_inputs()
    np.testing.assert_allclose(seq_clip(V, old, R, M, L).numerator, SEQ(V, old, R, M, L).numerator, rtol=1e-6)
    with pytest.raises(ValueError, match="unknown value loss 'clip'; known: seq_clip, token_clip"):
        VALUE_LOSSES.get("clip")
