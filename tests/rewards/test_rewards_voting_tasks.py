"""TTRL voting and EMPO clustering under each prompt's own task (not the math equivalence)."""

import json

import numpy as np
import pytest

from tempo_jax.rewards import Grader, cluster_answers, empo_rewards, majority_correct, ttrl_rewards
from tempo_jax.rewards.tasks import get_task


@pytest.fixture(scope="module")
def grader():
    with Grader(num_workers=1, timeout_s=5.0) as g:
        yield g


def grid(**pets) -> str:
    table = {"House 1": {"Name": "Alice", "Pet": "cat"}, "House 2": {"Name": "Bob", "Pet": "dog"}}
    for house, pet in pets.items():
        table[f"House {house[1:]}"]["Pet"] = pet
    return json.dumps({"reasoning": "...", "solution": table})


def test_multiple_choice_spellings_are_one_vote(grader):
    answers = ["(B)", "B", "\\boxed{B}", "b)", "C", "C", ""]
    for mode in ("semantic", "exact"):
        (v,) = ttrl_rewards([answers], grader, mode=mode, task="multiple_choice")
        np.testing.assert_array_equal(v.rewards, [1, 1, 1, 1, 0, 0, 0])
        assert v.majority_frequency == pytest.approx(4 / 7)
        assert get_task("multiple_choice").canonical(v.majority_answer) == "B"
    # the math equivalence would not see "B. Paris" as B
    (math_vote,) = ttrl_rewards([["(B)", "B", "B. Paris"]], grader)
    (mc_vote,) = ttrl_rewards([["(B)", "B", "B. Paris"]], grader, task="multiple_choice")
    assert math_vote.cluster_sizes == (2, 1) and mc_vote.cluster_sizes == (3,)


def test_one_task_per_prompt(grader):
    per_prompt = [["(A)", "A", "B"], ["5", "05", "6"], ["true", "True", "False"]]
    votes = ttrl_rewards(per_prompt, grader, task=["multiple_choice", "math", "exact_match"])
    for v in votes:
        np.testing.assert_array_equal(v.rewards, [1, 1, 0])
    with pytest.raises(ValueError, match="prompts but"):
        ttrl_rewards(per_prompt, grader, task=["math"])
    right = majority_correct(votes, ["A", "5", "False"], grader, task=["multiple_choice", "math", "exact_match"])
    assert right.tolist() == [True, True, False]


def test_empo_clusters_json_solutions_cell_by_cell(grader):
    answers = [
        grid(),
        grid().replace('"Alice"', '"alice"'),  # same cells, other spelling
        json.dumps(
            {"solution": {"house 2": {"Pet": "dog", "Name": "Bob"}, "house 1": {"Name": "Alice", "Pet": "cat"}}}
        ),
        grid(h2="fish"),
        grid(h2="fish"),
        "",
    ]
    (r,) = empo_rewards([answers], grader, task="logic_grid")
    np.testing.assert_array_equal(r.cluster_ids, [0, 0, 0, 1, 1, 2])
    np.testing.assert_allclose(r.rewards, np.asarray([3, 3, 3, 2, 2, 1], np.float32) / 6)
    (c,) = cluster_answers([answers], grader, task="logic_grid")
    assert c.sizes.tolist() == [3, 2, 1]
    (as_math,) = cluster_answers([answers], grader)  # strings: the three spellings stay apart
    assert as_math.sizes.tolist() == [1, 1, 1, 2, 1]
    (v,) = ttrl_rewards([answers], grader, mode="exact", task="logic_grid")
    np.testing.assert_array_equal(v.rewards, [1, 1, 1, 0, 0, 0])


def test_math_default_is_unchanged_for_math_only_graders():
    """A grader that only knows ``equivalent_pairs(pairs)`` still serves the default task."""

    class PairsOnly:
        def equivalent_pairs(self, pairs):
            return [p == g for p, g in pairs]

    (v,) = ttrl_rewards([["1", "1", "2"]], PairsOnly())
    np.testing.assert_array_equal(v.rewards, [1, 1, 0])
    (e,) = empo_rewards([["1", "1", "2"]], PairsOnly())
    np.testing.assert_allclose(e.rewards, np.asarray([2, 2, 1], np.float32) / 3)
