"""The synthetic arithmetic task: determinism, disjoint splits, correct answers and solutions."""

from __future__ import annotations

import collections
import re

import pytest

from tempo_jax.demo.tasks import arithmetic as A

EXPR = re.compile(r"\d+(?:[+\-*]\d+)*")


def independent_value(expr: str) -> int:
    """Python's own evaluation of a validated integer expression (+, -, * with precedence)."""
    assert EXPR.fullmatch(expr), expr
    return eval(expr, {"__builtins__": {}}, {})  # digits and + - * only, checked above


def test_generation_is_deterministic_and_ids_stable():
    a = A.make_problems(3, 40, seed=7, split="train")
    b = A.make_problems(3, 40, seed=7, split="train")
    assert a == b
    c = A.make_problems(3, 40, seed=8, split="train")
    assert [r["problem"] for r in a] != [r["problem"] for r in c]
    # asking for more extends the list; ids depend only on the text
    longer = A.make_problems(3, 60, seed=7, split="train")
    assert longer[:40] == a
    for r in a:
        assert r["id"] == A.problem_id(r["problem"], 3, "train")
        assert re.fullmatch(r"arith-L3-train-[0-9a-f]{12}", r["id"])
    assert len({r["id"] for r in longer}) == len(longer)
    assert len({r["problem"] for r in longer}) == len(longer)


def test_record_schema():
    for r in A.make_problems(2, 5, seed=0, split="test"):
        assert set(r) == {"id", "problem", "answer", "solution", "level", "split"}
        assert isinstance(r["answer"], str) and r["level"] == 2 and r["split"] == "test"
        assert r["problem"].startswith("Compute ") and r["problem"].endswith(".")


def test_splits_never_overlap():
    texts = collections.defaultdict(set)
    for split in A.SPLITS:
        for level in (2, 3, 4, 5):
            for seed in (0, 1):
                for r in A.make_problems(level, 60, seed=seed, split=split):
                    assert A.split_of(r["problem"]) == split
                    texts[split].add(r["problem"])
    for s1 in A.SPLITS:
        for s2 in A.SPLITS:
            if s1 < s2:
                assert not texts[s1] & texts[s2], (s1, s2)


@pytest.mark.parametrize("level", sorted(A.LEVELS))
def test_answers_and_solutions_are_correct(level):
    spec = A.LEVELS[level]
    count = 10 if level == 1 else 40
    for r in A.make_problems(level, count, seed=3, split="sft"):
        expr = A.expression_of(r["problem"])
        value = independent_value(expr)
        assert r["answer"] == str(value)
        assert len(re.findall(r"[+\-*]", expr)) == spec.num_ops
        lines = r["solution"].split("\n")
        assert r["solution"].endswith("\\boxed{" + r["answer"] + "}")
        assert lines[-1] == "=\\boxed{" + r["answer"] + "}"
        assert A.boxed_answer(r["solution"]) == r["answer"]
        # every line is "=" + an expression with one operation fewer and the same value
        n_ops = spec.num_ops
        for line in lines[:-1]:
            body = line[1:]
            assert line.startswith("=") and independent_value(body) == value
            n_ops -= 1
            assert len(re.findall(r"[+\-*]", body)) == n_ops
            assert all(0 <= int(x) <= spec.max_value for x in re.findall(r"\d+", body))
        assert n_ops == 1


def test_multiplication_precedence_and_custom_levels():
    assert A.solution_steps("2+3*4-5") == ["2+3*4-5", "2+12-5", "14-5", "9"]
    assert A.format_solution("2+3*4") == "=2+12\n=\\boxed{14}"
    spec = A.LevelSpec(num_ops=3, max_operand=9, ops="+-*", max_value=99)
    for r in A.make_problems(spec, 30, seed=0, split="train"):
        assert int(r["answer"]) == independent_value(A.expression_of(r["problem"]))
        assert r["id"].startswith("arith-Lx-train-")
    with pytest.raises(ValueError):
        A.LevelSpec(num_ops=0, max_operand=9)
    with pytest.raises(ValueError):
        A.LevelSpec(num_ops=1, max_operand=9, ops="/")
    with pytest.raises(ValueError):
        A.tokenize_expression("1+(2)")


def test_small_levels_raise_or_are_topped_up():
    with pytest.raises(ValueError, match="distinct problems"):
        A.make_problems(1, 200, seed=0, split="test", max_misses=2000)
    few = A.make_problems(1, 200, seed=0, split="test", strict=False)
    assert 0 < len(few) < 200
    mix = A.make_mixture((1, 3), 300, seed=0, split="test")
    counts = collections.Counter(r["level"] for r in mix)
    assert sum(counts.values()) == 300 and counts[1] == len(few) and counts[3] == 300 - len(few)
    assert mix == A.make_mixture((1, 3), 300, seed=0, split="test")
    with pytest.raises(ValueError, match="repeat"):
        A.make_mixture((2, 2), 10)
    only3 = A.make_mixture((2, 3), 20, seed=0, split="train", weights=(0, 1))
    assert {r["level"] for r in only3} == {3}
    with pytest.raises(ValueError):
        A.make_problems(2, 1, split="dev")


def test_prompt_matches_the_data_template():
    from tempo_jax.data.templates import render_prompt

    problem = A.make_problems(3, 1, seed=0)[0]["problem"]
    assert A.format_prompt(problem) == render_prompt(problem, "qwen3", instruction=None)
    assert A.format_prompt(problem) == "<|im_start|>user\n" + problem + "<|im_end|>\n<|im_start|>assistant\n"


def test_boxed_answer_and_is_correct():
    assert A.boxed_answer("=3+4\n=\\boxed{7}") == "7"
    assert A.boxed_answer("\\boxed{1} then \\boxed{ 12 }") == "12"
    assert A.boxed_answer("no box") is None
    assert A.is_correct("=\\boxed{07}", "7") and not A.is_correct("=\\boxed{8}", "7")
    assert not A.is_correct("=\\boxed{x}", "7") and not A.is_correct("", "7")


def test_phrasings_share_expressions_and_splits():
    c = A.make_problems(3, 30, seed=5, split="val")
    e = A.make_problems(3, 30, seed=5, split="val", verb="Evaluate")
    assert [A.expression_of(r["problem"]) for r in c] == [A.expression_of(r["problem"]) for r in e]
    assert all(r["problem"].startswith("Evaluate ") and A.verb_of(r["problem"]) == "Evaluate" for r in e)
    assert all(A.split_of(r["problem"]) == "val" for r in e)  # the split follows the expression
    assert {r["id"] for r in c}.isdisjoint(r["id"] for r in e)
    with pytest.raises(ValueError, match="unknown phrasing"):
        A.problem_text("1+2", "Solve")
    with pytest.raises(ValueError, match="not an arithmetic problem"):
        A.expression_of("Solve 1+2.")
