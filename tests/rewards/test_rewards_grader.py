"""The grader: labelled (pred, gold) pairs through the pool and in-process, and the public API."""

import json
import pathlib
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from tempo_jax.rewards import Grader
from tempo_jax.rewards.equivalence import EquivalenceConfig, is_equivalent, quick_verdict

T, F = True, False
# (prediction, gold, expected): every family the brief names, hand-labelled.
LABELLED = [
    # integers with leading zeros
    ("025", "25", T),
    ("0025", "25", T),
    ("25", "025", T),
    ("250", "25", F),
    ("007", "7", T),
    ("-05", "-5", T),
    # fractions vs decimals
    ("\\frac{1}{2}", "0.5", T),
    ("0.5", "\\frac{1}{2}", T),
    ("1/2", "\\frac12", T),
    ("\\frac{1}{3}", "0.333", T),
    ("\\frac{1}{3}", "0.33", F),
    ("\\frac{2}{4}", "\\frac{1}{2}", T),
    ("0.75", "\\frac{3}{4}", T),
    ("\\frac{1}{3}", "\\frac{1}{4}", F),
    ("2.50", "2.5", T),
    (".5", "0.5", T),
    ("\\frac{7}{2}", "3.5", T),
    # \frac vs \dfrac / \tfrac
    ("\\dfrac{3}{4}", "\\frac{3}{4}", T),
    ("\\tfrac{3}{4}", "\\frac34", T),
    ("\\dfrac{\\sqrt{3}}{2}", "\\frac{\\sqrt3}{2}", T),
    ("-\\dfrac{1}{2}", "-\\frac{1}{2}", T),
    ("\\dfrac{1}{2}", "\\frac{1}{3}", F),
    # units and \text{}
    ("204 \\text{ minutes}", "204", T),
    ("10\\text{ cm}^2", "10", T),
    ("\\text{5 dollars}", "5", T),
    ("\\$5.00", "5", T),
    ("12 \\mbox{ inches}", "12", T),
    ("\\textbf{(B)}", "B", T),
    ("\\text{(C)}", "B", F),
    ("\\mathrm{7}", "7", T),
    ("5 \\text{ meters}", "6", F),
    ("18\\text{ square units}", "18", T),
    # tuples and intervals
    ("(1,2)", "(1, 2)", T),
    ("\\left(1, 2\\right)", "(1,2)", T),
    ("(2,1)", "(1,2)", F),
    ("[1,2)", "[1, 2)", T),
    ("(1,2]", "(1,2)", F),
    ("(-\\infty, 3]", "(-\\infty,3]", T),
    ("[0, \\frac{1}{2}]", "[0,0.5]", T),
    ("(\\frac{1}{2}, \\sqrt{2})", "(0.5, \\sqrt 2)", T),
    ("\\{1, 2, 3\\}", "\\{3,2,1\\}", T),
    ("1, 2", "2, 1", T),
    ("(1,2,3)", "(1,2)", F),
    ("(3, -4)", "(3,4)", F),
    ("\\left[ -2, \\dfrac{1}{2} \\right)", "[-2, 1/2)", T),
    # sqrt and pi forms
    ("2\\sqrt{2}", "\\sqrt{8}", T),
    ("\\sqrt{8}", "2\\sqrt2", T),
    ("\\frac{\\sqrt{2}}{2}", "\\frac{1}{\\sqrt{2}}", T),
    ("1.732", "\\sqrt{3}", T),
    ("\\sqrt{3}", "\\sqrt{2}", F),
    ("6.2832", "2\\pi", T),
    ("\\frac{\\pi}{2}", "\\frac{1}{2}\\pi", T),
    ("\\pi r^2", "r^2\\pi", T),
    ("3\\pi", "3", F),
    ("4\\sqrt{3}\\pi", "4\\pi\\sqrt{3}", T),
    ("\\sqrt[3]{8}", "2", T),
    # degrees
    ("30^\\circ", "30", T),
    ("30^{\\circ}", "30", T),
    ("30°", "30", T),
    ("30 \\text{ degrees}", "30", T),
    ("45^\\circ", "30", F),
    # percent
    ("50\\%", "50", T),
    ("50\\%", "0.5", T),
    ("25\\%", "\\frac{1}{4}", T),
    ("12.5\\%", "12.5", T),
    ("50\\%", "0.05", F),
    # equations, "=" retry, algebra
    ("x = 5", "5", T),
    ("k=3", "3", T),
    ("a+b=7", "7", T),
    ("y=2x+3", "2x+3", T),
    ("x^2+2x+1", "(x+1)^2", T),
    ("2x+1", "2x-1", F),
    # big numbers and separators
    ("1,000", "1000", T),
    ("1{,}000", "1000", T),
    ("10^{3}", "1000", T),
    ("1.2\\times10^{3}", "1200", T),
    ("2^{10}", "1024", T),
    # plainly wrong
    ("42", "204", F),
    ("0", "1", F),
    ("", "5", F),
    ("\\frac{1}{2}", "2", F),
    ("abc", "204", F),
    ("999", "1000", F),
    ("999.9", "1000", F),
    ("204.5", "204", F),
    ("-204", "204", F),
    ("\\infty", "0", F),
    # matrices, infinity
    ("\\begin{pmatrix}1\\\\2\\end{pmatrix}", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", T),
    ("\\infty", "\\infty", T),
]


@pytest.fixture(scope="module")
def grader():
    with Grader(num_workers=2, timeout_s=5.0) as g:
        yield g


def test_enough_labelled_pairs():
    assert len(LABELLED) >= 60
    assert sum(e for _, _, e in LABELLED) >= 30 and sum(not e for _, _, e in LABELLED) >= 20


def test_labelled_pairs_pool(grader):
    got = grader.equivalent_pairs([(p, g) for p, g, _ in LABELLED])
    wrong = [(p, g, e) for (p, g, e), r in zip(LABELLED, got) if r != e]
    assert not wrong, wrong
    assert grader.pool.stats.timeouts == 0 and grader.pool.stats.crashes == 0


def test_labelled_pairs_inprocess_agree():
    g = Grader(mode="inprocess")
    got = g.equivalent_pairs([(p, g_) for p, g_, _ in LABELLED])
    assert got == [e for _, _, e in LABELLED]


def test_quick_verdicts_need_no_worker():
    assert quick_verdict("025", "25") is True
    assert quick_verdict("42", "204") is False  # two different integers
    assert quick_verdict("", "5") is False
    assert quick_verdict("1" * 2000, "1") is False
    assert quick_verdict("\\frac{1}{3}", "0.333") is None  # needs sympy / math-verify


def test_grade_extracts_last_box(grader):
    responses = [
        "We get 24 first, but recheck... so the answer is $\\boxed{025}$.",
        "Thus \\boxed{24} no wait \\boxed{26}.",
        "I could not finish.",
        "Answer: \\boxed{\\frac{50}{2}}",
        "\\boxed{}",
    ]
    answers = ["25", "25", "25", "\\boxed{25}", "25"]
    out = grader.grade(responses, answers)
    assert out.dtype == np.bool_ and out.shape == (5,)
    assert out.tolist() == [True, False, False, True, False]
    rewards = grader.outcome_rewards(responses, answers)
    assert rewards.dtype == np.float32 and rewards.tolist() == [1.0, -1.0, -1.0, 1.0, -1.0]
    with pytest.raises(ValueError):
        grader.grade(["a"], [])


def test_repeated_pairs_are_graded_once(grader):
    before = grader.pool.stats.tasks
    pairs = [("\\frac{4}{8}", "0.5")] * 8 + [("0.25", "\\frac14")] * 8 + [("7", "7")] * 8
    assert grader.equivalent_pairs(pairs) == [True] * 24
    assert grader.last_call_stats == {"pairs": 24, "distinct": 3, "sent_to_workers": 2}
    assert grader.pool.stats.tasks - before == 2


def test_aime_answers_real_data(grader, data_dir):
    answers = [json.loads(line)["answer"] for line in (data_dir / "aime24.jsonl").open()]
    right = [f"Reasoning... the final answer is \\boxed{{{a}}}." for a in answers]
    padded = [f"\\boxed{{{int(a):03d}}}" for a in answers]  # AIME style "025"
    shifted = [f"\\boxed{{{(int(a) + 1) % 1000}}}" for a in answers]
    assert grader.grade(right, answers).all()
    assert grader.grade(padded, answers).all()
    assert not grader.grade(shifted, answers).any()


def test_config_knobs_are_used():
    strict = Grader(mode="inprocess", config=EquivalenceConfig(rel_tol=1e-6, use_math_verify=False))
    assert strict.equivalent_pairs([("0.333", "\\frac{1}{3}")]) == [False]
    assert is_equivalent("0.333", "\\frac{1}{3}")
    short = Grader(mode="inprocess", config=EquivalenceConfig(max_chars=3))
    assert short.equivalent_pairs([("1000", "1000")]) == [False]
    with pytest.raises(ValueError):
        Grader(mode="threads")


def test_calling_process_stays_light_and_workers_exit_with_it():
    """Pool mode: sympy/math-verify load only in the workers; no close() needed at exit."""
    script = textwrap.dedent("""
        import sys
        from tempo_jax.rewards import Grader
        if __name__ == "__main__":
            g = Grader(num_workers=1, timeout_s=5.0)
            ok = g.grade(["\\\\boxed{\\\\frac{1}{3}}"], ["0.333"]).tolist()
            print(ok, "sympy" in sys.modules, "math_verify" in sys.modules, *g.pool.pids)
    """)
    root = pathlib.Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=root)
    assert out.returncode == 0, out.stderr
    ok, has_sympy, has_mv, pid = out.stdout.split()
    assert (ok, has_sympy, has_mv) == ("[True]", "False", "False")
    deadline = time.monotonic() + 10
    while pathlib.Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pathlib.Path(f"/proc/{pid}").exists()
