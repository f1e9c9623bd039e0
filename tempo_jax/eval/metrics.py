"""Evaluation metrics over n samples per question (NumPy only).

Definitions (per question with n samples, c of them correct; datasets average over questions):

* ``avg@n`` -- mean correctness of the n samples (the paper's mean@16; equals pass@1).
* ``pass@k`` -- unbiased estimator 1 - C(n-c, k) / C(n, k) (= 1 when n - c < k), k <= n,
  evaluated in product form 1 - prod_{i=n-c+1}^{n} (1 - k/i) (no huge binomials).
* ``maj@k`` -- expected accuracy of the majority-voted answer among k samples drawn *with
  replacement* from the n (the reference's bootstrap, verl ``calc_maj_val``): votes are the
  extracted answer strings (``None`` = "no answer", a vote like any other); the winner is the
  most frequent answer, ties broken by first appearance -- which, since draws are i.i.d., is a
  uniformly random tied answer -- and the value is the correctness of the winner's first draw.
  ``method="exact"`` (default) computes this expectation exactly with a generating-function
  DP (cost O(k^2 * m * groups), m = distinct answers; always cheap for k <= a few hundred);
  ``method="bootstrap"`` reproduces the reference's estimate (1000 resamples,
  ``np.random.RandomState(42)``), which differs from the exact value by Monte-Carlo noise.
* ``best@k`` / ``worst@k`` -- expected max / min correctness of k draws with replacement
  (reference §3.1 bootstrap); exact closed forms 1-(1-p)^k and p^k for 0/1 values, p = c/n,
  or the same bootstrap with ``method="bootstrap"``. (best@k draws with replacement, so it is
  below pass@k, which draws without.)
* critic calibration: values V_T in [-1, 1] against correctness; ``explained_variance`` of
  the +/-1 targets, ``auroc`` (``scipy.stats.rankdata`` average ranks, so ties count 1/2; nan
  if one class is absent or a score is nan), ``brier`` and ``ece`` on probabilities
  p = clip((v + 1) / 2, 0, 1), ECE with 10 equal-width bins.
* within-question ranking -- ``within_question_auroc``: the AUROC of a score computed
  separately for every question that has both correct and wrong samples, then averaged over
  those questions (macro). It asks what a reward for unlabeled questions must do: prefer the
  right answers *of one question* over its wrong ones; a pooled AUROC also rewards knowing which
  questions are easy. Applied to the critic's V_T (``critic/auroc_within``) and to answer
  frequency, the share of the n samples with the same extracted answer, which is what majority
  voting ranks by (``frequency/auroc_within``; no answer scores 0).
* ``maj_wrong_some_right`` -- share of questions whose plurality answer over all n samples is
  wrong while some sample is right: where a reward better than voting has something to find.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Hashable, Sequence

import numpy as np
from scipy.stats import rankdata

from tempo_jax.rl.value_losses import explained_variance

DEFAULT_KS = (1, 2, 4, 8, 16)
N_BOOTSTRAP = 1000
BOOTSTRAP_SEED = 42

Bools = Sequence[bool] | np.ndarray  # one question's per-sample correctness (a list or a 1-D array)


def _as_bool_rows(correct) -> list[np.ndarray]:
    """[Q, n] array or a list of per-question 1-D arrays (n may differ) -> list of bool arrays."""
    if isinstance(correct, np.ndarray) and correct.ndim == 2:
        return [np.asarray(r, dtype=bool) for r in correct]
    return [np.asarray(r, dtype=bool).reshape(-1) for r in correct]


# ----------------------------------------------------------------------------- accuracy


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one question: 1 - C(n-c, k)/C(n, k); 1.0 if n - c < k."""
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got c={c}, n={n}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
    if n - c < k:
        return 1.0
    i = np.arange(n - c + 1, n + 1, dtype=np.float64)
    return float(1.0 - np.prod(1.0 - k / i))


def avg_at_n(correct) -> float:
    """Mean over questions of the mean correctness of each question's samples."""
    rows = _as_bool_rows(correct)
    return float(np.mean([r.mean() for r in rows])) if rows else float("nan")


def pass_at_ks(correct, ks: Sequence[int] = DEFAULT_KS) -> dict[int, float]:
    """Dataset pass@k for every k <= min(n) (larger k are left out)."""
    rows = _as_bool_rows(correct)
    n_min = min(len(r) for r in rows)
    return {k: float(np.mean([pass_at_k(len(r), int(r.sum()), k) for r in rows])) for k in ks if k <= n_min}


def bootstrap_reduce(
    values: Sequence, k: int, reduce_fn, *, n_bootstrap: int = N_BOOTSTRAP, seed: int = BOOTSTRAP_SEED
) -> tuple[float, float]:
    """verl's ``bootstrap_metric``: ``n_bootstrap`` draws of k indices with replacement, seeded
    like ``np.random.seed(seed)``; returns (mean, std) of ``reduce_fn`` over the draws."""
    rs = np.random.RandomState(seed)
    idx = rs.choice(len(values), size=(n_bootstrap, k), replace=True)
    vals = [reduce_fn([values[i] for i in row]) for row in idx]
    return float(np.mean(vals)), float(np.std(vals))


def _maj_first_seen(votes: Sequence[Hashable], vals: Sequence[float]) -> float:
    """verl ``calc_maj_val``: most frequent vote (ties: first seen); value of its first member."""
    counts: dict = {}
    first: dict = {}
    for v, x in zip(votes, vals):
        if v not in counts:
            counts[v], first[v] = 0, x
        counts[v] += 1
    best = max(counts, key=counts.__getitem__)
    return float(first[best])


def maj_at_k_exact(answers: Sequence[Hashable], correct: Bools, k: int) -> float:
    """Exact E[majority-vote correctness] of k draws with replacement (see module docstring).

    Groups g (distinct answers) have probability p_g = size_g / n and value v_g = mean
    correctness of their members. With the exponential generating function of the multinomial,
    P(counts) = k! prod p_g^{c_g} / c_g!; for each possible maximum count j we run a DP over
    groups tracking (total count, number of groups at count j) for the probability mass A and
    the mass weighted by the summed value of the tied groups B; the winner is uniform among
    the t tied groups, so E = k! * sum_j sum_{t>=1} B[k, t] / t.
    """
    n = len(answers)
    if n == 0 or len(correct) != n:
        raise ValueError("answers and correct must be non-empty and of equal length")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    groups: dict = collections.defaultdict(list)
    for a, c in zip(answers, correct):
        groups[a].append(float(c))
    p = np.array([len(v) / n for v in groups.values()])
    val = np.array([np.mean(v) for v in groups.values()])
    m = len(p)
    fact = np.array([math.factorial(i) for i in range(k + 1)], dtype=np.float64)
    cs = np.arange(k + 1)
    diff = cs[:, None] - cs[None, :]  # d - d'
    total = 0.0
    for j in range(1, k + 1):
        # A[d, t], B[d, t]: d = total count so far, t = number of groups with count exactly j.
        A = np.zeros((k + 1, m + 1))
        B = np.zeros((k + 1, m + 1))
        A[0, 0] = 1.0
        for g in range(m):
            terms = np.where(cs < j, p[g] ** cs / fact, 0.0)  # count below j
            tied = p[g] ** j / fact[j]  # count exactly j
            # Toeplitz T[d, d'] = terms[d - d'], so (T @ X)[d] = sum_c terms[c] X[d - c]
            T = np.where(diff >= 0, terms[np.clip(diff, 0, k)], 0.0)
            newA = T @ A
            newB = T @ B
            shiftA = np.zeros_like(A)
            shiftB = np.zeros_like(B)
            shiftA[j:, 1:] = A[: -j or None, :-1] * tied
            shiftB[j:, 1:] = (B[: -j or None, :-1] + val[g] * A[: -j or None, :-1]) * tied
            A, B = newA + shiftA, newB + shiftB
        t = np.arange(1, m + 1)
        total += float(np.sum(B[k, 1:] / t))
    return total * fact[k]


def maj_at_k(
    answers: Sequence[Hashable],
    correct: Bools,
    k: int,
    *,
    method: str = "exact",
    n_bootstrap: int = N_BOOTSTRAP,
    seed: int = BOOTSTRAP_SEED,
) -> float:
    """maj@k for one question; ``method`` is ``"exact"`` or ``"bootstrap"`` (reference)."""
    if method == "exact":
        return maj_at_k_exact(answers, correct, k)
    if method == "bootstrap":
        rs = np.random.RandomState(seed)
        idx = rs.choice(len(answers), size=(n_bootstrap, k), replace=True)
        vals = [_maj_first_seen([answers[i] for i in row], [correct[i] for i in row]) for row in idx]
        return float(np.mean(vals))
    raise ValueError(f"unknown maj@k method {method!r}; use 'exact' or 'bootstrap'")


def best_worst_at_k(
    correct: Bools,
    k: int,
    *,
    method: str = "exact",
    n_bootstrap: int = N_BOOTSTRAP,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """(best@k, worst@k) for one question: expected max/min correctness of k draws with replacement."""
    c = np.asarray(correct, dtype=np.float64)
    if method == "exact":
        q = float(c.mean())
        return 1.0 - (1.0 - q) ** k, q**k
    if method == "bootstrap":
        rs = np.random.RandomState(seed)
        idx = rs.choice(len(c), size=(n_bootstrap, k), replace=True)
        draws = c[idx]
        return float(draws.max(axis=1).mean()), float(draws.min(axis=1).mean())
    raise ValueError(f"unknown method {method!r}; use 'exact' or 'bootstrap'")


def distinct_answers(answers: Sequence[Hashable | None]) -> int:
    """Number of distinct extracted answers for one question (``None`` = no answer, not counted)."""
    return len({a for a in answers if a is not None})


def length_stats(lengths: Sequence[int] | np.ndarray) -> dict[str, float]:
    x = np.asarray(lengths, dtype=np.float64)
    if x.size == 0:
        return {"mean": float("nan"), "median": float("nan"), "max": float("nan"), "min": float("nan")}
    return {"mean": float(x.mean()), "median": float(np.median(x)), "max": float(x.max()), "min": float(x.min())}


def finish_reason_counts(reasons: Sequence[str]) -> dict[str, int]:
    return dict(sorted(collections.Counter(reasons).items()))


# ----------------------------------------------------------------------------- critic calibration


def auroc(scores, labels) -> float:
    """Area under the ROC curve of ``scores`` for boolean ``labels`` (Mann-Whitney U with
    average ranks for ties = probability a random positive outscores a random negative, ties
    counting 1/2). nan when all labels are equal, or when a score is nan."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels, dtype=bool).reshape(-1)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    r = rankdata(s, method="average")  # 1-based; nan everywhere if a score is nan
    return float((r[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def within_question_auroc(scores, correct) -> tuple[float, int]:
    """(mean per-question AUROC over questions with both classes, number of such questions);
    nan when no question has both. ``scores`` and ``correct`` are [Q][n] (n may differ)."""
    per_question = [auroc(s, c) for s, c in zip(scores, _as_bool_rows(correct))]
    defined = [a for a in per_question if not math.isnan(a)]
    return (float(np.mean(defined)) if defined else float("nan")), len(defined)


def answer_frequency(answers: Sequence[Hashable | None]) -> np.ndarray:
    """Per sample: the share of the question's samples with the same extracted answer (None -> 0)."""
    counts = collections.Counter(a for a in answers if a is not None)
    return np.array([counts[a] / len(answers) if a is not None else 0.0 for a in answers], dtype=np.float64)


def plurality_answer(answers: Sequence[Hashable | None]) -> Hashable | None:
    """The most frequent extracted answer (ties: first seen), None if no sample has one."""
    counts = collections.Counter(a for a in answers if a is not None)
    if not counts:
        return None
    best = max(counts.values())
    return next(a for a in answers if a is not None and counts[a] == best)


def maj_wrong_some_right(answers: Sequence[Sequence[Hashable | None]], correct) -> float:
    """Share of questions whose plurality answer is wrong (or absent) while some sample is right."""
    hits = []
    for ans, ok in zip(answers, _as_bool_rows(correct)):
        top = plurality_answer(ans)
        top_ok = top is not None and bool(ok[list(ans).index(top)])
        hits.append((not top_ok) and bool(ok.any()))
    return float(np.mean(hits)) if hits else float("nan")


def value_to_prob(values) -> np.ndarray:
    """Map critic values in [-1, 1] to probabilities (v + 1) / 2, clipped to [0, 1]."""
    return np.clip((np.asarray(values, dtype=np.float64) + 1.0) / 2.0, 0.0, 1.0)


def brier_score(values, labels) -> float:
    p = value_to_prob(values).reshape(-1)
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    return float(np.mean((p - y) ** 2)) if p.size else float("nan")


def expected_calibration_error(values, labels, n_bins: int = 10) -> float:
    """sum_b (n_b / N) |mean(y_b) - mean(p_b)|, bins [i/10, (i+1)/10), the last one closed."""
    p = value_to_prob(values).reshape(-1)
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    if p.size == 0:
        return float("nan")
    b = np.minimum((p * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for i in range(n_bins):
        sel = b == i
        if sel.any():
            ece += sel.mean() * abs(y[sel].mean() - p[sel].mean())
    return float(ece)


def critic_metrics(values, correct) -> dict[str, float]:
    """Calibration of V_T against correctness (targets +/-1 for explained variance)."""
    y = np.asarray(correct, dtype=bool).reshape(-1)
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    return {
        "explained_var": explained_variance(v, np.where(y, 1.0, -1.0)),
        "auroc": auroc(v, y),
        "brier": brier_score(v, y),
        "ece": expected_calibration_error(v, y),
        "value_mean": float(v.mean()) if v.size else float("nan"),
    }


# ----------------------------------------------------------------------------- all at once


def summarize(
    correct,
    answers=None,
    *,
    lengths=None,
    finish_reasons=None,
    values=None,
    ks: Sequence[int] = DEFAULT_KS,
    method: str = "exact",
) -> dict[str, float]:
    """All dataset metrics as a flat dict: ``avg@n``, ``pass@k``, ``maj@k``, ``best@k``, ``worst@k``,
    ``distinct_answers``, ``no_answer_frac``, ``length/*``, ``finish/*``, ``critic/*``.

    ``correct`` [Q, n] (or per-question lists), ``answers`` the extracted answers in the same
    shape, ``lengths``/``finish_reasons``/``values`` flat or nested in the same order.
    """
    rows = _as_bool_rows(correct)
    n_min = min(len(r) for r in rows)
    n_max = max(len(r) for r in rows)
    out: dict[str, float] = {"n_questions": len(rows), "n_samples": n_max}
    out[f"avg@{n_max}" if n_min == n_max else "avg@n"] = avg_at_n(rows)
    for k, v in pass_at_ks(rows, ks).items():
        out[f"pass@{k}"] = v
    kk = [k for k in ks if k <= n_min]
    for k in kk:
        bw = [best_worst_at_k(r, k, method=method) for r in rows]
        out[f"best@{k}"] = float(np.mean([b for b, _ in bw]))
        out[f"worst@{k}"] = float(np.mean([w for _, w in bw]))
    if answers is not None:
        ans = [list(a) for a in answers]
        for k in kk:
            out[f"maj@{k}"] = float(np.mean([maj_at_k(a, r, k, method=method) for a, r in zip(ans, rows)]))
        out["distinct_answers"] = float(np.mean([distinct_answers(a) for a in ans]))
        out["maj_wrong_some_right"] = maj_wrong_some_right(ans, rows)
        out["frequency/auroc_within"], _ = within_question_auroc([answer_frequency(a) for a in ans], rows)
        flat = [x for a in ans for x in a]
        out["no_answer_frac"] = float(np.mean([x is None for x in flat])) if flat else float("nan")
    if lengths is not None:
        flat_len = (
            np.concatenate([np.asarray(x, dtype=np.float64).reshape(-1) for x in lengths])
            if len(lengths)
            else np.zeros((0,), np.float64)
        )
        for key, v in length_stats(flat_len).items():
            out[f"length/{key}"] = v
    if finish_reasons is not None:
        flat_fr = [x for r in finish_reasons for x in ([r] if isinstance(r, str) else r)]
        for key, v in finish_reason_counts(flat_fr).items():
            out[f"finish/{key}"] = v
    if values is not None:
        flat_v = np.concatenate([np.asarray(x, dtype=np.float64).reshape(-1) for x in values])
        flat_c = np.concatenate(rows)
        for key, v in critic_metrics(flat_v, flat_c).items():
            out[f"critic/{key}"] = v
        out["critic/auroc_within"], out["critic/auroc_within_questions"] = within_question_auroc(
            [np.asarray(x, dtype=np.float64).reshape(-1) for x in values], rows
        )
    return out
