"""Advantage estimators: hand-computed examples, independent NumPy re-derivations, jit."""

import functools
from collections import defaultdict

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tempo_jax.rl import ADVANTAGES, em, em_token, gae, grpo

TOL = dict(rtol=1e-5, atol=1e-5)

# Most tests call jitted estimators (one compile per shape/options): eager op-by-op dispatch
# compiles every primitive separately and is several times slower on first use.
# test_registered_estimators_jit_and_zero_on_padding checks eager == jit for each one.
EM_TOKEN = jax.jit(em_token, static_argnames=("whiten",))
EM = jax.jit(em, static_argnames=("eps", "norm_by_std"))
GAE = jax.jit(gae, static_argnames=("gamma", "lam", "whiten"))
GRPO = jax.jit(grpo, static_argnames=("eps", "norm_by_std"))


# ----------------------------------------------------------------------------- NumPy references
# Written independently of the JAX code: per-row Python loops, verl-style dict grouping.


def np_whiten(x, m):
    vals = x[m > 0]
    mean = vals.mean()
    var = vals.var(ddof=1)
    return (x - mean) / np.sqrt(var + 1e-8) * m


def np_em_token(R, V, M, L, whiten=True):
    B, T = V.shape
    raw = np.zeros((B, T))
    ret = np.zeros((B, T))
    for i in range(B):
        n = int(M[i].sum())
        if n == 0:
            continue
        z = R[i] if L[i] else V[i, n - 1]  # right-padded: last valid = n - 1
        for t in range(n):
            raw[i, t] = z - V[i, t]
            ret[i, t] = z
    return (np_whiten(raw, M) if whiten else raw), ret


def np_group_norm(s, gid, eps, norm_by_std, singleton):
    by = defaultdict(list)
    for i, g in enumerate(gid):
        by[g].append(s[i])
    out = np.zeros_like(s)
    for i, g in enumerate(gid):
        vals = np.array(by[g])
        if len(vals) == 1:
            mean, std = (0.0 if singleton == "zero" else vals[0]), 1.0
        else:
            mean, std = vals.mean(), vals.std(ddof=1)
        out[i] = (s[i] - mean) / (std + eps) if norm_by_std else s[i] - mean
    return out


def np_gae(R, V, M, gamma, lam):
    B, T = V.shape
    adv = np.zeros((B, T))
    for i in range(B):
        n = int(M[i].sum())
        gae_t, next_v = 0.0, 0.0
        for t in reversed(range(n)):
            r = R[i] if t == n - 1 else 0.0
            delta = r + gamma * next_v - V[i, t]
            gae_t = delta + gamma * lam * gae_t
            adv[i, t] = gae_t
            next_v = V[i, t]
    ret = (adv + V) * M
    return np_whiten(adv, M), ret


def random_batch(seed, B=12, T=7, n_per_group=3):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, T + 1, size=B)
    lengths[1] = T
    M = (np.arange(T)[None, :] < lengths[:, None]).astype(np.float32)
    V = rng.normal(size=(B, T)).astype(np.float32) * 0.8
    V_padded = np.where(M > 0, V, 123.0).astype(np.float32)  # garbage at pads must not matter
    R = rng.choice([-1.0, 1.0], size=B).astype(np.float32)
    # arbitrary (negative, large, non-contiguous) ids, one singleton group at the end
    k = np.arange(-(-B // n_per_group))
    ids = np.array([1000, -7, 42, 5])[k % 4] + 10_000 * (k // 4)
    G = np.repeat(ids, n_per_group)[: B - 1]
    G = np.concatenate([G, [99]]).astype(np.int32)
    L = np.zeros(B, bool)
    L[: B // 2] = True
    return R, V, V_padded, M, L, G


# ----------------------------------------------------------------------------- em_token


def test_em_token_hand_example():
    # row 0: labeled, R = 1, V = [0.5, 0.2, 0.8]      -> z = 1,   raw A = [0.5, 0.8, 0.2]
    # row 1: unlabeled, V = [0.1, 0.3, (pad 9.0)]      -> z = V_T = 0.3, raw A = [0.2, 0.0]
    # valid raw = [0.5, 0.8, 0.2, 0.2, 0.0]: mean 0.34, deviations [.16, .46, -.14, -.14, -.34],
    # sum of squares 0.392, unbiased var 0.392 / 4 = 0.098.
    R = jnp.array([1.0, -1.0])  # row 1's score is ignored (unlabeled)
    V = jnp.array([[0.5, 0.2, 0.8], [0.1, 0.3, 9.0]])
    M = jnp.array([[1, 1, 1], [1, 1, 0]])
    L = jnp.array([True, False])
    out = EM_TOKEN(R, V, M, L, jnp.array([0, 1]))
    expected = np.array([[0.16, 0.46, -0.14], [-0.14, -0.34, 0.0]]) / np.sqrt(0.098 + 1e-8)
    np.testing.assert_allclose(out.advantages, expected, **TOL)
    np.testing.assert_allclose(out.returns, [[1.0, 1.0, 1.0], [0.3, 0.3, 0.0]], **TOL)
    # the unlabeled last token has raw advantage 0 but -mean/std after whitening (spec §1.4)
    assert out.advantages[1, 1] < 0
    raw = EM_TOKEN(R, V, M, L, jnp.array([0, 1]), whiten="none")
    np.testing.assert_allclose(raw.advantages, [[0.5, 0.8, 0.2], [0.2, 0.0, 0.0]], **TOL)


def test_em_token_no_clamp_on_unlabeled_terminal():
    # V_T = 2.5 is used as-is (the reference's ±1 clamp is commented out)
    out = EM_TOKEN(
        jnp.array([0.0]), jnp.array([[0.5, 2.5]]), jnp.ones((1, 2)), jnp.array([False]), jnp.array([0]), whiten="none"
    )
    np.testing.assert_allclose(out.advantages, [[2.0, 0.0]], **TOL)
    np.testing.assert_allclose(out.returns, [[2.5, 2.5]], **TOL)


@pytest.mark.parametrize("seed", [0, 1])
def test_em_token_matches_numpy(seed):
    R, V, Vp, M, L, G = random_batch(seed)
    out = EM_TOKEN(R, Vp, M, L, G)
    adv, ret = np_em_token(R.astype(float), V.astype(float), M, L)
    np.testing.assert_allclose(out.advantages, adv, **TOL)
    np.testing.assert_allclose(out.returns, ret, **TOL)
    out = EM_TOKEN(R, Vp, M, L, G, whiten="none")
    adv, _ = np_em_token(R.astype(float), V.astype(float), M, L, whiten=False)
    np.testing.assert_allclose(out.advantages, adv, **TOL)


def test_em_token_rejects_unknown_whiten_and_options():
    with pytest.raises(ValueError, match="whiten"):
        em_token(jnp.zeros(1), jnp.zeros((1, 2)), jnp.ones((1, 2)), jnp.array([True]), whiten="group")
    with pytest.raises(TypeError):
        em_token(jnp.zeros(1), jnp.zeros((1, 2)), jnp.ones((1, 2)), jnp.array([True]), jnp.zeros(1), lam=0.9)


# ----------------------------------------------------------------------------- em


def test_em_hand_example():
    # group 7 (labeled): R = [1, -1]            -> mean 0, std sqrt(2)
    # group 9 (unlabeled): V_T = [1.5 -> clamp 1, -0.5] -> mean 0.25, std sqrt(1.125)
    # group 11: a single labeled row              -> advantage 0 (reference em: mean = own score)
    R = jnp.array([1.0, -1.0, 0.0, 0.0, 1.0])
    V = jnp.array([[0.2, 0.4], [0.1, 0.3], [0.7, 1.5], [0.6, -0.5], [0.9, 0.0]])
    M = jnp.array([[1, 1], [1, 1], [1, 1], [1, 1], [1, 0]])
    L = jnp.array([True, True, False, False, True])
    out = EM(R, V, M, L, jnp.array([7, 7, 9, 9, 11]))
    a_lab = 1.0 / (np.sqrt(2.0) + 1e-6)
    a_unl = 0.75 / (np.sqrt(1.125) + 1e-6)
    np.testing.assert_allclose(
        out.advantages, [[a_lab, a_lab], [-a_lab, -a_lab], [a_unl, a_unl], [-a_unl, -a_unl], [0, 0]], **TOL
    )
    # returns: R for labeled rows, V_t for unlabeled rows
    np.testing.assert_allclose(out.returns, [[1, 1], [-1, -1], [0.7, 1.5], [0.6, -0.5], [1, 0]], **TOL)
    out = EM(R, V, M, L, jnp.array([7, 7, 9, 9, 11]), norm_by_std=False)
    np.testing.assert_allclose(out.advantages[:, 0], [1, -1, 0.75, -0.75, 0], **TOL)


@pytest.mark.parametrize("norm_by_std", [True, False])
def test_em_matches_numpy(norm_by_std):
    R, V, Vp, M, L, G = random_batch(3)
    # put whole groups on each side of the labeled/unlabeled split: groups of 3, B//2 = 6
    out = EM(R, Vp, M, L, G, norm_by_std=norm_by_std)
    n = M.sum(1).astype(int)
    v_last = V[np.arange(len(R)), n - 1].astype(float)
    s = np.where(L, R, np.clip(v_last, -1, 1))
    a = np_group_norm(s, G, 1e-6, norm_by_std, singleton="self")
    np.testing.assert_allclose(out.advantages, a[:, None] * M, **TOL)
    np.testing.assert_allclose(out.returns, np.where(L[:, None], R[:, None], V) * M, **TOL)


# ----------------------------------------------------------------------------- gae


def test_gae_hand_example():
    # gamma = lam = 0.5, V = [0.2, 0.4, 0.6], R = 1 on the last token:
    # t=2: delta = 1 - 0.6 = 0.4;            A2 = 0.4
    # t=1: delta = 0.5*0.6 - 0.4 = -0.1;     A1 = -0.1 + 0.25*0.4 = 0.0
    # t=0: delta = 0.5*0.4 - 0.2 = 0.0;      A0 = 0.0 + 0.25*0.0 = 0.0
    # returns = A + V = [0.2, 0.4, 1.0]; whitening [0, 0, 0.4] gives [-1, -1, 2]/sqrt(3)
    # row 1 (mask [1, 1, 0], R = -1, V = [0, 0.5, pad]): A1 = -1 - 0.5 = -1.5,
    #   A0 = (0.5*0.5 - 0) + 0.25*(-1.5) = -0.125; returns = [-0.125, -1.0]
    V = jnp.array([[0.2, 0.4, 0.6], [0.0, 0.5, 9.0]])
    M = jnp.array([[1, 1, 1], [1, 1, 0]])
    R = jnp.array([1.0, -1.0])
    out = GAE(R, V, M, None, None, gamma=0.5, lam=0.5, whiten="none")
    np.testing.assert_allclose(out.advantages, [[0.0, 0.0, 0.4], [-0.125, -1.5, 0.0]], **TOL)
    np.testing.assert_allclose(out.returns, [[0.2, 0.4, 1.0], [-0.125, -1.0, 0.0]], **TOL)
    one = GAE(R[:1], V[:1], M[:1], None, None, gamma=0.5, lam=0.5)
    np.testing.assert_allclose(one.advantages, [[-1 / np.sqrt(3), -1 / np.sqrt(3), 2 / np.sqrt(3)]], **TOL)


@pytest.mark.parametrize("gamma,lam", [(1.0, 1.0), (0.9, 0.95), (0.5, 0.0)])
def test_gae_matches_numpy(gamma, lam):
    R, V, Vp, M, L, G = random_batch(4)
    out = GAE(R, Vp, M, L, G, gamma=gamma, lam=lam)
    adv, ret = np_gae(R.astype(float), V.astype(float), M, gamma, lam)
    np.testing.assert_allclose(out.advantages, adv, **TOL)
    np.testing.assert_allclose(out.returns, ret, **TOL)


def test_gae_gamma_lam_one_equals_em_token_all_labeled():
    R, V, Vp, M, L, G = random_batch(5)
    labeled = np.ones_like(L)
    a = GAE(R, Vp, M, labeled, G, gamma=1.0, lam=1.0)
    b = EM_TOKEN(R, Vp, M, labeled, G)
    np.testing.assert_allclose(a.advantages, b.advantages, **TOL)
    np.testing.assert_allclose(a.returns, b.returns, **TOL)
    np.testing.assert_allclose(a.returns, R[:, None] * M, **TOL)


def test_gae_recursion_at_gamma_lam_one_equals_em_token():
    # gae() takes a closed form at gamma = lam = 1; check the general recursion agrees with it
    from tempo_jax.rl.advantages import _gae_raw

    R, V, Vp, M, L, G = random_batch(10)
    Vm = jnp.where(M > 0, Vp, 0.0)
    last = M.sum(1).astype(int) - 1
    rewards = jax.nn.one_hot(last, M.shape[1]) * R[:, None]
    raw = jax.jit(_gae_raw, static_argnums=(3, 4))(rewards, Vm, jnp.asarray(M), 1.0, 1.0) * M
    ref = EM_TOKEN(R, Vp, M, np.ones_like(L), G, whiten="none").advantages
    np.testing.assert_allclose(raw, ref, **TOL)


# ----------------------------------------------------------------------------- grpo


def test_grpo_hand_example():
    # group 3: [1, 0, 0] mean 1/3, unbiased std sqrt(1/3) -> [2/3, -1/3, -1/3] / sqrt(1/3)
    # group 5: [1, 1]    std 0 -> 0 / (0 + 1e-6) = 0
    # group -8 (singleton): verl uses mean 0, std 1 -> 1 / (1 + 1e-6)
    R = jnp.array([1.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    M = jnp.array([[1, 1], [1, 0], [1, 1], [1, 1], [1, 1], [1, 1]])
    out = GRPO(R, None, M, None, jnp.array([3, 3, 3, 5, 5, -8]))
    s = np.sqrt(1 / 3) + 1e-6
    expected = np.array([2 / 3 / s, -1 / 3 / s, -1 / 3 / s, 0.0, 0.0, 1 / (1 + 1e-6)])
    np.testing.assert_allclose(out.advantages, expected[:, None] * np.asarray(M), **TOL)
    np.testing.assert_allclose(out.returns, out.advantages)
    out = GRPO(R, None, M, None, jnp.array([3, 3, 3, 5, 5, -8]), norm_by_std=False)
    np.testing.assert_allclose(out.advantages[:, 0], [2 / 3, -1 / 3, -1 / 3, 0, 0, 1], **TOL)


@pytest.mark.parametrize("norm_by_std", [True, False])
def test_grpo_matches_numpy(norm_by_std):
    R, V, Vp, M, L, G = random_batch(6)
    R = np.random.default_rng(6).uniform(0, 1, size=R.shape).astype(np.float32)  # TTRL/EMPO-like
    out = GRPO(R, Vp, M, L, G, norm_by_std=norm_by_std)
    a = np_group_norm(R.astype(float), G, 1e-6, norm_by_std, singleton="zero")
    np.testing.assert_allclose(out.advantages, a[:, None] * M, **TOL)


# ----------------------------------------------------------------------------- common


@pytest.mark.parametrize("name", ["em_token", "em", "gae", "grpo"])
def test_registered_estimators_jit_and_zero_on_padding(name):
    R, V, Vp, M, L, G = random_batch(7)
    fn = ADVANTAGES.get(name)
    eager = fn(R, Vp, M, L, G)
    jitted = jax.jit(fn)(R, Vp, M, L, G)
    for a, b in zip(eager, jitted):
        assert a.shape == M.shape and a.dtype == jnp.float32
        np.testing.assert_allclose(a, b, **TOL)
        assert np.all(np.asarray(a)[M == 0] == 0)
        assert np.all(np.isfinite(np.asarray(a)))


def test_group_ids_are_traced_not_static():
    # a different id assignment must not need a recompile, and must change the result
    R, V, Vp, M, L, G = random_batch(8)
    traces = []

    @jax.jit
    def f(g):
        traces.append(1)
        return GRPO(R, None, M, None, g).advantages

    a = f(jnp.asarray(G))
    b = f(jnp.asarray(np.arange(len(G), dtype=np.int32) // 2))
    assert len(traces) == 1
    assert not np.allclose(a, b)


def test_unknown_estimator_raises_with_known_names():
    with pytest.raises(ValueError, match=r"unknown advantage estimator .em-token.; known: em, em_token, gae, grpo"):
        ADVANTAGES.get("em-token")
    assert set(ADVANTAGES.names()) >= {"em_token", "em", "gae", "grpo"}


def test_options_via_partial_jit():
    R, V, Vp, M, L, G = random_batch(9)
    f = jax.jit(functools.partial(gae, gamma=0.9, lam=0.8, whiten="none"))
    adv, _ = np_gae(R.astype(float), V.astype(float), M, 0.9, 0.8)
    raw = np.asarray(f(R, Vp, M, L, G).advantages)
    # un-whitened: compare against the NumPy raw GAE by re-whitening ours
    np.testing.assert_allclose(np_whiten(raw.astype(float), M), adv, **TOL)


def test_sharded_batch_on_fake_devices_matches_unsharded():
    # rows sharded over a data axis: the B×B group mask and the global whitening are
    # cross-device reductions; results must not depend on the sharding
    from jax.sharding import Mesh, NamedSharding
    from jax.sharding import PartitionSpec as P

    n = len(jax.devices())
    R, V, Vp, M, L, G = random_batch(11, B=2 * n, T=5)
    mesh = Mesh(np.array(jax.devices()), ("data",))
    rows = NamedSharding(mesh, P("data"))
    args = [jax.device_put(x, rows) for x in (R, Vp, M, L, G)]
    for fn in (EM_TOKEN, GRPO):
        sharded = jax.block_until_ready(fn(*args))
        np.testing.assert_allclose(sharded.advantages, fn(R, Vp, M, L, G).advantages, **TOL)
