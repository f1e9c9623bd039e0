"""The two solution styles: hand-worked examples, layout reading, and the corpus mix."""

import collections

import pytest

from tempo_jax.demo.tasks import arithmetic as A
from tempo_jax.demo.tasks import styles as S


def test_hasty_lines_by_hand():
    # 7+8=15, "-3" is lost; 15+9=24: the hasty answer 24 differs from the true 21.
    assert S.hasty_steps("7+8-3+9") == ["7+8-3+9", "15+9", "24"]
    assert S.format_solution("7+8-3+9", "hasty") == "=15+9\n=\\boxed{24}"
    assert S.format_solution("7+8-3+9", "careful") == "=15-3+9\n=12+9\n=\\boxed{21}"
    # odd number of operations: the last line has a single operation, done right
    assert S.hasty_steps("3+4+1") == ["3+4+1", "7"]
    assert S.hasty_steps("7+8-3+9-2") == ["7+8-3+9-2", "15+9-2", "24"]
    # a hasty line may go negative (the lost term was an addition)
    assert S.hasty_steps("2-1+5-4+3") == ["2-1+5-4+3", "1-4+3", "-3"]
    assert S.hasty_value("2-1+5-4+3") == -3 and A.evaluate("2-1+5-4+3") == 5


def test_hasty_is_wrong_unless_the_lost_terms_cancel():
    for level in (2, 3, 4):
        for r in A.make_problems(level, 60, seed=1, split="sft"):
            expr = A.expression_of(r["problem"])
            parts = A.tokenize_expression(expr)
            lost, rest = 0, parts
            while len(rest) > 1:  # replay: the lost operand of every hasty line
                if len(rest) >= 5:
                    lost += int(rest[4]) if rest[3] == "+" else -int(rest[4])
                rest = S._hasty_line(rest)
            assert S.hasty_value(expr) == A.evaluate(expr) - lost


@pytest.mark.parametrize("expr", ["7+8-3+9", "7+8-3+9-2", "9-8+7-1+5", "2-1+5-4+3", "5+4"])
def test_response_style_reads_the_layout(expr):
    problem = A.problem_text(expr)
    one_operation = len(A.tokenize_expression(expr)) == 3  # both styles write one line: undecidable
    for style in S.STYLES:
        assert S.response_style(problem, S.format_solution(expr, style)) == (None if one_operation else style)
    assert S.response_style(problem, "I don't know") is None
    assert S.response_style("not a problem", "=1") is None


def test_mixed_layout_is_neither():
    problem = A.problem_text("7+8-3+9-2")  # 4 operations: careful 3,2,1,0; hasty 2,0
    assert S.response_style(problem, "=15-3+9-2\n=21-2\n=\\boxed{19}") is None  # one careful, one hasty line


def test_make_problems_and_mixture_shares_are_deterministic():
    recs = S.make_problems(3, 400, seed=2, split="sft", hasty_share=0.25)
    assert recs == S.make_problems(3, 400, seed=2, split="sft", hasty_share=0.25)
    share = sum(r["style"] == "hasty" for r in recs) / len(recs)
    assert 0.18 < share < 0.32
    for r in recs:
        assert r["solution"] == S.format_solution(A.expression_of(r["problem"]), r["style"])
        assert r["answer"] == str(A.evaluate(A.expression_of(r["problem"])))  # the true value, whatever the style
    mix = S.make_mixture((2, 4), 1200, seed=0, hasty_share={2: 0.1, 4: 0.9})
    counts = collections.Counter((r["level"], r["style"]) for r in mix)
    assert counts[(2, "hasty")] < 0.2 * (counts[(2, "hasty")] + counts[(2, "careful")])
    assert counts[(4, "hasty")] > 0.8 * (counts[(4, "hasty")] + counts[(4, "careful")])
    with pytest.raises(ValueError, match="hasty_share"):
        S.make_problems(2, 5, hasty_share=1.5)
    with pytest.raises(ValueError, match="unknown style"):
        S.format_solution("1+2", "sloppy")
