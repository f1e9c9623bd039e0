"""Metrics against brute force, hand-computed examples and NumPy."""

import itertools
import math
from collections import defaultdict

import numpy as np
import pytest

from tempo_jax.eval import metrics as M


def test_pass_at_k_matches_subset_enumeration():
    for n in range(1, 9):
        for c in range(n + 1):
            items = [True] * c + [False] * (n - c)
            for k in range(1, n + 1):
                subsets = list(itertools.combinations(range(n), k))
                brute = sum(any(items[i] for i in s) for s in subsets) / len(subsets)
                assert M.pass_at_k(n, c, k) == pytest.approx(brute, abs=1e-12), (n, c, k)


def test_pass_at_k_stable_for_large_n():
    n, c, k = 1000, 3, 16
    exact = 1 - math.comb(n - c, k) / math.comb(n, k)
    assert M.pass_at_k(n, c, k) == pytest.approx(exact, rel=1e-12)
    assert M.pass_at_k(16, 0, 16) == 0.0 and M.pass_at_k(16, 1, 16) == 1.0
    with pytest.raises(ValueError):
        M.pass_at_k(4, 1, 8)
    correct = np.array([[1, 0, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]], dtype=bool)
    assert M.avg_at_n(correct) == pytest.approx((0.25 + 1 + 0) / 3)
    pk = M.pass_at_ks(correct, ks=(1, 2, 4, 8))
    assert set(pk) == {1, 2, 4} and pk[1] == pytest.approx(M.avg_at_n(correct))
    assert pk[2] == pytest.approx((0.5 + 1 + 0) / 3) and pk[4] == pytest.approx(2 / 3)


def test_maj_at_k_hand_example():
    # answers A, A, B; A is right. Draws with replacement, ties -> first seen (uniform in expectation).
    ans, ok = ["A", "A", "B"], [True, True, False]
    assert M.maj_at_k(ans, ok, 1) == pytest.approx(2 / 3)
    # k=2: AA 4/9 -> 1; BB 1/9 -> 0; AB/BA 4/9 -> tie, A wins half the time -> 2/9.  Total 6/9.
    assert M.maj_at_k(ans, ok, 2) == pytest.approx(6 / 9)
    # k=3: A wins iff it gets >= 2 of 3 draws: 3 (2/3)^2 (1/3) + (2/3)^3 = 20/27.
    assert M.maj_at_k(ans, ok, 3) == pytest.approx(20 / 27)
    # minority correct: answers 1, 2, 2, 2 with "1" right -> k=3 wins only with >= 2 ones (or 1-1 ties impossible).
    assert M.maj_at_k(["1", "2", "2", "2"], [True, False, False, False], 3) == pytest.approx(
        3 * (1 / 4) ** 2 * (3 / 4) + (1 / 4) ** 3
    )
    # None (no answer) is a vote; its group is wrong.
    assert M.maj_at_k([None, None, "5"], [False, False, True], 1) == pytest.approx(1 / 3)


def _verl_maj(answers, correct, k, n_bootstrap=1000, seed=42):
    """The reference's bootstrap_metric + calc_maj_val, written out (global np.random.seed)."""
    np.random.seed(seed)
    vals = []
    for _ in range(n_bootstrap):
        idx = np.random.choice(len(answers), size=k, replace=True)
        vote2vals = defaultdict(list)
        for i in idx:
            vote2vals[answers[i]].append(correct[i])
        cnt = {a: len(v) for a, v in vote2vals.items()}
        vals.append(vote2vals[max(cnt, key=cnt.get)][0])
    return float(np.mean(vals))


def test_maj_at_k_exact_vs_enumeration_and_bootstrap():
    rng = np.random.default_rng(0)
    for _ in range(15):
        n, k = int(rng.integers(1, 6)), int(rng.integers(1, 5))
        ans = [str(a) for a in rng.integers(0, 3, size=n)]
        ok = [a == "0" for a in ans]
        brute = np.mean(
            [
                M._maj_first_seen([ans[i] for i in seq], [ok[i] for i in seq])
                for seq in itertools.product(range(n), repeat=k)
            ]
        )
        assert M.maj_at_k(ans, ok, k) == pytest.approx(brute, abs=1e-12)
    ans = [str(a) for a in rng.integers(0, 5, size=16)]
    ok = [a in ("0", "3") for a in ans]
    for k in (2, 8, 16):
        boot = M.maj_at_k(ans, ok, k, method="bootstrap")
        assert boot == _verl_maj(ans, ok, k)  # bit-for-bit the reference
        assert boot == pytest.approx(M.maj_at_k(ans, ok, k), abs=0.05)  # MC noise around the exact value


def test_best_worst_at_k():
    ok = [True, False, False, True, False]
    for k in (1, 2, 3):
        seqs = list(itertools.product(ok, repeat=k))
        best, worst = M.best_worst_at_k(ok, k)
        assert best == pytest.approx(np.mean([max(s) for s in seqs]))
        assert worst == pytest.approx(np.mean([min(s) for s in seqs]))
        b_boot, w_boot = M.best_worst_at_k(ok, k, method="bootstrap")
        assert b_boot == pytest.approx(best, abs=0.05) and w_boot == pytest.approx(worst, abs=0.05)
    b_ref, _ = M.bootstrap_reduce([float(x) for x in ok], 3, np.max)
    assert M.best_worst_at_k(ok, 3, method="bootstrap")[0] == pytest.approx(b_ref)


def test_auroc_hand_examples():
    assert M.auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    # ties: pos {0.5, 0.9} vs neg {0.5, 0.2}: 0.5 (tie) + 1 + 1 + 1 = 3.5 of 4 pairs.
    assert M.auroc([0.5, 0.5, 0.2, 0.9], [1, 0, 0, 1]) == pytest.approx(0.875)
    assert M.auroc([0.3, 0.3, 0.3], [1, 0, 1]) == pytest.approx(0.5)
    assert M.auroc([0.9, 0.1], [0, 1]) == 0.0
    assert math.isnan(M.auroc([0.1, 0.2], [1, 1])) and math.isnan(M.auroc([0.1, 0.2], [0, 0]))
    assert math.isnan(M.auroc([0.1, float("nan"), 0.3], [1, 0, 1]))  # not ranked as the largest score
    rng = np.random.default_rng(1)
    s, y = rng.integers(0, 5, size=60).astype(float), rng.random(60) < 0.4
    pairs = [(1.0 if a > b else 0.5 if a == b else 0.0) for a in s[y] for b in s[~y]]
    assert M.auroc(s, y) == pytest.approx(np.mean(pairs))


def test_brier_ece_hand_example():
    values, labels = [-1.0, 0.0, 0.5, 1.0], [0, 1, 1, 1]  # p = 0, .5, .75, 1
    assert M.brier_score(values, labels) == pytest.approx((0 + 0.25 + 0.0625 + 0) / 4)
    # bins: p=0 -> |0-0|; p=.5 -> |1-.5| * 1/4; p=.75 -> |1-.75| * 1/4; p=1 (last bin) -> 0
    assert M.expected_calibration_error(values, labels) == pytest.approx(0.125 + 0.0625)
    # two in one bin: p=.62,.68 (bin 6) with labels 1,0 -> |0.5-0.65| * 2/2
    assert M.expected_calibration_error([0.24, 0.36], [1, 0]) == pytest.approx(0.15)
    assert M.value_to_prob([-3.0, 3.0]).tolist() == [0.0, 1.0]  # clipped


def test_explained_variance_vs_numpy():
    rng = np.random.default_rng(2)
    y = np.where(rng.random(100) < 0.3, 1.0, -1.0)
    v = 0.6 * y + 0.3 * rng.standard_normal(100)
    assert M.explained_variance(v, y) == pytest.approx(1 - np.var(y - v) / np.var(y))
    assert math.isnan(M.explained_variance(v, np.ones(100)))
    cm = M.critic_metrics(v, y > 0)
    assert cm["explained_var"] == pytest.approx(M.explained_variance(v, y))
    assert 0.9 < cm["auroc"] <= 1.0


def test_summarize_keys():
    correct = np.array([[1, 0, 0, 1], [0, 0, 0, 0]], dtype=bool)
    answers = [["3", "4", "4", "3"], [None, "7", "8", "9"]]
    out = M.summarize(
        correct,
        answers,
        lengths=[[10, 20, 30, 40], [5, 5, 5, 100]],
        finish_reasons=[["stop"] * 4, ["stop", "length", "stop", "stop"]],
        values=[[0.5, -0.5, -0.5, 0.5], [-1, -1, -1, 0]],
        ks=(1, 2, 4, 8),
    )
    assert out["avg@4"] == pytest.approx(0.25) and "pass@8" not in out and out["pass@4"] == 0.5
    assert out["distinct_answers"] == pytest.approx(2.5) and out["no_answer_frac"] == pytest.approx(1 / 8)
    assert out["length/max"] == 100 and out["length/median"] == pytest.approx(15)
    assert out["finish/stop"] == 7 and out["finish/length"] == 1
    assert out["critic/auroc"] == pytest.approx(1.0) and "maj@4" in out and "best@2" in out


def test_within_question_auroc_by_hand_and_against_brute_force():
    scores = [[0.9, 0.1, 0.5], [0.2, 0.8], [0.3, 0.3, 0.3]]
    correct = [[1, 0, 0], [1, 0], [1, 1, 1]]  # q0: 1.0, q1: 0.0, q2 has one class only (skipped)
    value, n = M.within_question_auroc(scores, correct)
    assert n == 2 and value == pytest.approx(0.5)
    rng = np.random.default_rng(0)
    s = rng.normal(size=(20, 16))
    y = rng.random((20, 16)) < 0.4
    per_q = []
    for si, yi in zip(s, y):
        pos, neg = si[yi], si[~yi]
        if len(pos) and len(neg):
            per_q.append(np.mean([(p > q) + 0.5 * (p == q) for p in pos for q in neg]))
    assert M.within_question_auroc(s, y)[0] == pytest.approx(np.mean(per_q))
    assert math.isnan(M.within_question_auroc([[1.0, 2.0]], [[1, 1]])[0])


def test_answer_frequency_plurality_and_majority_wrong():
    assert M.answer_frequency(["4", "4", None, "5"]).tolist() == [0.5, 0.5, 0.0, 0.25]
    assert M.plurality_answer([None, "5", "4", "4", "5"]) == "5"  # tie: first seen
    assert M.plurality_answer([None, None]) is None
    answers = [["3", "3", "7"], ["1", "2", "2"], [None, None, "9"]]
    correct = [[0, 0, 1], [0, 1, 1], [0, 0, 0]]
    # q0: plurality "3" wrong, one sample right -> counts; q1: plurality right; q2: nothing right
    assert M.maj_wrong_some_right(answers, correct) == pytest.approx(1 / 3)


def test_summarize_within_question_keys():
    answers = [["3", "3", "7", "7"], ["1", "2", "2", "2"]]
    correct = np.array([[0, 0, 1, 1], [0, 1, 1, 1]], bool)
    values = [[-1.0, -0.5, 0.5, 0.2], [0.9, 0.1, 0.2, 0.3]]
    out = M.summarize(correct, answers, values=values)
    assert out["critic/auroc_within"] == pytest.approx((1.0 + 0.0) / 2)
    assert out["critic/auroc_within_questions"] == 2
    # frequency: q0 ties (0.5 everywhere) -> 0.5; q1 the three right answers agree -> 1.0
    assert out["frequency/auroc_within"] == pytest.approx(0.75)
    assert out["maj_wrong_some_right"] == pytest.approx(0.5)  # q0's plurality "3" is wrong
