"""TTRL voting and EMPO entropy rewards on hand-computed examples."""

import math

import numpy as np
import pytest

from tempo_jax.rewards import Grader, cluster_answers, empo_rewards, majority_correct, ttrl_rewards
from tempo_jax.rewards.extract import extract_answers
from tempo_jax.rewards.normalize import normalize_answer


class StringGrader:
    """Equivalence = equal normalised strings; counts calls so batching can be checked."""

    def __init__(self):
        self.calls = 0
        self.pairs = []

    def equivalent_pairs(self, pairs):
        self.calls += 1
        pairs = list(pairs)
        self.pairs.extend(pairs)
        return [bool(normalize_answer(p)) and normalize_answer(p) == normalize_answer(g) for p, g in pairs]


class TableGrader:
    """Explicit, asymmetric relation: (pred, gold) pairs that are equivalent."""

    def __init__(self, true_pairs):
        self.true_pairs = set(true_pairs)

    def equivalent_pairs(self, pairs):
        return [pair in self.true_pairs for pair in pairs]


def f32(*xs):
    return np.asarray(xs, np.float32)


def test_ttrl_majority_with_empties():
    # clusters {5,5} {3,3} {7} {""}: two maximal clusters of size 2 → both win (tie)
    (r,) = ttrl_rewards([["5", "05", "3", "3", "7", ""]], StringGrader())
    np.testing.assert_array_equal(r.rewards, f32(1, 1, 1, 1, 0, 0))
    assert r.majority_answer == "5" and r.majority_frequency == pytest.approx(2 / 6)
    assert r.cluster_sizes == (2, 2, 1, 1)
    np.testing.assert_array_equal(r.cluster_ids, [0, 0, 1, 1, 2, 3])
    np.testing.assert_allclose(r.frequencies, f32(2, 2, 2, 2, 1, 1) / 6)


def test_ttrl_clear_majority():
    (r,) = ttrl_rewards([["7", "12", "12", "12", "7", "", "9", "12"]], StringGrader())
    np.testing.assert_array_equal(r.rewards, f32(0, 1, 1, 1, 0, 0, 0, 1))
    assert r.majority_answer == "12" and r.majority_frequency == 0.5


def test_ttrl_all_distinct_and_all_empty_get_all_ones():
    distinct, empty = ttrl_rewards([["1", "2", "3", "4"], ["", None, ""]], StringGrader())
    np.testing.assert_array_equal(distinct.rewards, f32(1, 1, 1, 1))
    assert distinct.majority_answer == "1" and distinct.majority_frequency == 0.25
    np.testing.assert_array_equal(empty.rewards, f32(1, 1, 1))
    assert empty.majority_answer == "" and empty.cluster_sizes == (1, 1, 1)


def test_ttrl_first_non_empty_maximal_cluster_is_the_label():
    (r,) = ttrl_rewards([["", "4", "6"]], StringGrader())
    assert r.majority_answer == "4"
    np.testing.assert_array_equal(r.rewards, f32(1, 1, 1))


def test_greedy_clustering_matches_representatives_only():
    # b ~ a and c ~ b, but c !~ a: c does not join a's cluster (representative = first member).
    g = TableGrader({("b", "a"), ("c", "b")})
    (c,) = cluster_answers([["a", "b", "c"]], g)
    np.testing.assert_array_equal(c.cluster_ids, [0, 0, 1])
    assert c.representatives == ("a", "c")
    # direction: the later answer is the prediction, the representative the gold
    (c,) = cluster_answers([["a", "b"]], TableGrader({("a", "b")}))
    np.testing.assert_array_equal(c.cluster_ids, [0, 1])


def test_whole_batch_is_one_grader_call():
    g = StringGrader()
    out = ttrl_rewards([["1", "1", "2"], ["3", "", "3"], ["x", "y"]], g)
    assert g.calls == 1 and len(out) == 3
    # only pairs of non-empty answers, later answer first
    assert ("3", "3") in g.pairs and all(p and q for p, q in g.pairs)


def test_exact_mode_differs_from_semantic():
    answers = [["\\frac{1}{2}", "0.5", "3", "3", ""]]
    g = Grader(mode="inprocess")
    (sem,) = ttrl_rewards(answers, g)
    np.testing.assert_array_equal(sem.rewards, f32(1, 1, 1, 1, 0))  # {1/2, 0.5} ties {3, 3}
    (ex,) = ttrl_rewards(answers, g, mode="exact")
    np.testing.assert_array_equal(ex.rewards, f32(0, 0, 1, 1, 0))  # string majority "3"
    assert ex.majority_answer == "3" and ex.majority_frequency == pytest.approx(2 / 5)
    # exact majority, then the verifier scores equivalent spellings as correct
    (ex2,) = ttrl_rewards([["2", "2", "02", "\\frac{4}{2}", "5"]], g, mode="exact")
    np.testing.assert_array_equal(ex2.rewards, f32(1, 1, 1, 1, 0))
    (none,) = ttrl_rewards([["", ""]], g, mode="exact")
    assert none.majority_answer == "" and none.rewards.tolist() == [0.0, 0.0]
    with pytest.raises(ValueError):
        ttrl_rewards(answers, g, mode="plurality")


def test_semantic_clusters_with_the_real_grader():
    answers = [["12", "012", "12.0", "\\frac{24}{2}", "7", "7", "", ""]]
    g = Grader(mode="inprocess")
    (r,) = ttrl_rewards(answers, g)
    np.testing.assert_array_equal(r.rewards, f32(1, 1, 1, 1, 0, 0, 0, 0))
    assert r.cluster_sizes == (4, 2, 1, 1) and r.majority_answer == "12"
    (e,) = empo_rewards(answers, g)
    np.testing.assert_allclose(e.rewards, f32(4, 4, 4, 4, 2, 2, 1, 1) / 8)
    assert majority_correct([r], ["12"], g).tolist() == [True]
    assert majority_correct([r], ["13"], g).tolist() == [False]


def test_empo_rewards_hand_computed():
    (e,) = empo_rewards([["5", "05", "3", "3", "7", ""]], StringGrader())
    np.testing.assert_allclose(e.rewards, f32(2, 2, 2, 2, 1, 1) / 6)
    p = np.array([2, 2, 1, 1]) / 6
    assert e.semantic_entropy == pytest.approx(float(-(p * np.log(p)).sum()))
    assert e.max_frequency == pytest.approx(1 / 3) and not e.filtered
    distinct, empty, same = empo_rewards([["1", "2", "3", "4"], ["", "", ""], ["9", "9"]], StringGrader())
    np.testing.assert_allclose(distinct.rewards, f32(0.25, 0.25, 0.25, 0.25))
    assert distinct.semantic_entropy == pytest.approx(math.log(4))
    np.testing.assert_allclose(empty.rewards, f32(1, 1, 1) / 3)  # empties get 1/n
    np.testing.assert_allclose(same.rewards, f32(1, 1))
    assert same.semantic_entropy == 0.0


def test_empo_thresholds_are_off_by_default_and_optional():
    answers = [["5", "05", "3", "3", "7", ""], ["9", "9", "9", "1"]]
    low, high = empo_rewards(answers, StringGrader(), min_max_frequency=0.5)
    assert low.filtered and not low.rewards.any()
    np.testing.assert_allclose(low.frequencies, f32(2, 2, 2, 2, 1, 1) / 6)  # still reported
    assert not high.filtered and high.rewards.tolist() == [0.75, 0.75, 0.75, 0.25]
    low, high = empo_rewards(answers, StringGrader(), max_entropy=1.0)
    assert low.filtered and not high.filtered  # H = 1.33 vs 0.56 nats


def test_voting_through_the_pool_in_one_batch():
    responses = [
        ["so \\boxed{12}", "\\boxed{012}", "\\boxed{7}", "nothing"],
        ["\\boxed{\\frac{1}{2}}", "\\boxed{0.5}", "\\boxed{0.50}", "\\boxed{1/3}"],
    ]
    answers = [extract_answers(r) for r in responses]
    with Grader(num_workers=2, timeout_s=5.0) as g:
        calls = []
        real_map = g.pool.map
        g.pool.map = lambda items, **kw: calls.append(len(items)) or real_map(items, **kw)
        a, b = ttrl_rewards(answers, g)
    # 12 candidate pairs; 7 are settled in-process (equal strings, distinct integers), the other
    # 5 (e.g. 0.5 vs \frac{1}{2}, 1/3 vs 0.5) go to the workers in a single map call.
    assert calls == [5]
    np.testing.assert_array_equal(a.rewards, f32(1, 1, 0, 0))
    np.testing.assert_array_equal(b.rewards, f32(1, 1, 1, 0))
    assert b.majority_answer == "\\frac{1}{2}"
