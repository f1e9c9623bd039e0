"""The rollout's reward step under each prompt's grading task, and the config key that maps
data sources to tasks."""

import json

import numpy as np
import pytest

from tempo_jax.rewards import Grader
from tempo_jax.train.config import RecipeError, grader_task_map, set_path, validate
from tempo_jax.train.rollout import method_rewards


@pytest.fixture(scope="module")
def grader():
    return Grader(mode="inprocess")


def test_ttrl_and_empo_extract_and_compare_with_each_groups_task(grader):
    texts = [
        # group 0: multiple choice, 3 of 4 samples choose B in different spellings
        "The answer is (B).",
        "Answer: B",
        "\\boxed{B}",
        "The answer is (C).",
        # group 1: math, the boxed answers
        "\\boxed{5}",
        "\\boxed{05}",
        "The answer is 5.",  # no box: no answer under math
        "\\boxed{6}",
    ]
    scores = np.full(len(texts), -1.0, np.float32)
    tasks = ["multiple_choice", "math"]
    rewards, facts = method_rewards("ttrl_voting", scores, texts, 4, grader, tasks)
    np.testing.assert_array_equal(rewards, [1, 1, 1, 0, 1, 1, 0, 0])
    assert facts["majority_answer"] == ["B", "5"]
    rewards, _ = method_rewards("ttrl_exact", scores, texts, 4, grader, tasks)
    np.testing.assert_array_equal(rewards, [1, 1, 1, 0, 1, 1, 0, 0])
    rewards, facts = method_rewards("empo_entropy", scores, texts, 4, grader, tasks)
    np.testing.assert_allclose(rewards, [0.75, 0.75, 0.75, 0.25, 0.5, 0.5, 0.25, 0.25])
    # without tasks every group is math: only "\\boxed{B}" has an answer, so no majority
    _, facts = method_rewards("ttrl_voting", scores, texts, 4, grader)
    assert facts["max_frequency"].tolist() == [0.25, 0.5]


def test_logic_grid_groups_cluster_solutions(grader):
    sol = {"House 1": {"Name": "Alice"}, "House 2": {"Name": "Bob"}}
    swapped = {"House 1": {"Name": "Bob"}, "House 2": {"Name": "Alice"}}
    texts = [f"Reasoning.\n{json.dumps({'solution': s})}" for s in (sol, sol, swapped, sol)]
    rewards, facts = method_rewards("empo_entropy", np.zeros(4, np.float32), texts, 4, grader, ["logic_grid"])
    np.testing.assert_allclose(rewards, [0.75, 0.75, 0.25, 0.75])


def test_grader_tasks_config(tiny_config):
    cfg = tiny_config("ttrl")
    assert cfg.grader.tasks == "" and cfg.grader.default_task == "math"
    assert grader_task_map(cfg).task_for("bbh_navigate") == "exact_match"
    set_path(cfg, "grader.tasks", "my_quiz:multiple_choice")
    validate(cfg)
    assert grader_task_map(cfg).task_for("my_quiz_v2") == "multiple_choice"
    set_path(cfg, "grader.tasks", "my_quiz:essay")
    with pytest.raises(RecipeError, match="grader.tasks.*unknown grading task 'essay'; registered: .*multiple_choice"):
        validate(cfg)
    set_path(cfg, "grader.tasks", "")
    set_path(cfg, "grader.default_task", "essay")
    with pytest.raises(RecipeError, match="unknown grading task 'essay'"):
        validate(cfg)
