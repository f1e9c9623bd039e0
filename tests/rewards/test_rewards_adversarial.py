"""Adversarial model outputs: graded wrong within the timeout, nothing executed, pool survives."""

import os
import time

import pytest
from sympy.parsing import sympy_parser

from tempo_jax.rewards import Grader
from tempo_jax.rewards import equivalence as eq
from tempo_jax.rewards.equivalence import EquivalenceConfig

TIMEOUT_S = 2.0
MARGIN_S = 1.5  # kill + respawn bookkeeping on a loaded 2-core host

PAYLOADS = [
    "__import__('os').system('touch pwned')",
    '\\text{__import__("os").system("touch pwned")}',
    "eval(\"__import__('os').system('touch pwned')\")",
    "exec('import os; os.system(\"touch pwned\")')",
    "(lambda: __import__('os').system('touch pwned'))()",
    "os.system('touch pwned')",
    "1 + __import__('subprocess').call(['touch', 'pwned'])",
    "Symbol('x').__class__.__init__.__globals__['os'].system('touch pwned')",
    "x=__import__('os').system('touch pwned')",
]


def _adversarial_responses():
    tower = "\\boxed{9^{9^{9^{9}}}}"
    deep = "\\boxed{" + "{" * 10_000 + "1" + "}" * 10_000 + "}"
    megabyte = "I keep thinking. " * 62_000  # ~1 MB, no answer
    mega_box = "\\boxed{" + "9" * 1_000_000 + "}"
    rambling_then_wrong = "Hmm. " * 200_000 + "\\boxed{3}"  # 1 MB of text, wrong answer
    nested = "\\boxed{" + "(" * 14 + "1" + ")" * 14 + "}"  # slow for math-verify's parser
    factorial = "\\boxed{(10^{9})!}"
    return [
        (tower, "5"),
        (deep, "1"),
        (megabyte, "5"),
        (mega_box, "9"),
        (rambling_then_wrong, "5"),
        (nested, "2"),
        (factorial, "5"),
    ] + [(f"\\boxed{{{p}}}", "0") for p in PAYLOADS]


@pytest.fixture(scope="module")
def adv_dir(tmp_path_factory):
    """Workers run with the test's tmp dir as cwd, so a `touch pwned` would land there."""
    path = tmp_path_factory.mktemp("adversarial")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(path)
        yield path


@pytest.fixture(scope="module")
def adv_grader(adv_dir):
    with Grader(num_workers=2, timeout_s=TIMEOUT_S) as g:
        g.pool.wait_ready()
        yield g


def test_workers_run_in_tmp_dir(adv_grader, adv_dir):
    assert adv_grader.pool.map([()], fn=os.getcwd, kwargs={}) == [str(adv_dir)]


def test_each_adversarial_output_is_wrong_within_timeout(adv_grader, adv_dir):
    for response, gold in _adversarial_responses():
        t = time.perf_counter()
        assert adv_grader.grade([response], [gold]).tolist() == [False], response[:60]
        assert time.perf_counter() - t < TIMEOUT_S + MARGIN_S, response[:60]
    assert not (adv_dir / "pwned").exists()
    assert not os.path.exists("pwned")
    # ... and the pool still grades a normal pair correctly afterwards.
    assert adv_grader.grade(["so \\boxed{\\dfrac{1}{2}}"], ["0.5"]).tolist() == [True]


def test_adversarial_batch_in_one_call(adv_grader, adv_dir):
    cases = _adversarial_responses()
    responses = [r for r, _ in cases] + ["\\boxed{025}", "\\boxed{2\\sqrt{2}}"]
    golds = [g for _, g in cases] + ["25", "\\sqrt{8}"]
    t = time.perf_counter()
    out = adv_grader.grade(responses, golds).tolist()
    assert out == [False] * len(cases) + [True, True]
    assert time.perf_counter() - t < 2 * (TIMEOUT_S + MARGIN_S)
    assert not (adv_dir / "pwned").exists()


def test_hard_timeout_kills_a_stuck_worker(adv_dir):
    """With the in-worker soft timer switched off, only the hard wall-clock limit is left."""
    cfg = EquivalenceConfig(soft_timeout_s=None)
    with Grader(num_workers=2, timeout_s=1.5, config=cfg, keep_soft_timeout=True) as g:
        g.pool.wait_ready()
        pids = set(g.pool.pids)
        stuck = "\\boxed{" + "{" * 16 + "1" + "}" * 16 + "}"  # math-verify needs > 10 s
        t = time.perf_counter()
        assert g.grade([stuck, "\\boxed{7}"], ["2", "7"]).tolist() == [False, True]
        assert time.perf_counter() - t < 1.5 + MARGIN_S
        assert g.pool.stats.timeouts == 1 and g.pool.stats.respawns == 1
        assert len(pids - set(g.pool.pids)) == 1  # exactly one worker was replaced
        assert g.grade(["\\boxed{(1, 2)}"], ["(1,2)"]).tolist() == [True]


# --------------------------------------------------------------------------- no eval of model text


def test_whitelist_rejects_code():
    for s in [
        "__import__('os')",
        "os.system",
        "x.evalf",
        "lambda",
        "[1]",
        "'a'",
        "a_b",
        "eval(1)",
        "exec",
        "1;2",
        "1 if 2 else 3",
        "x@y",
        "sqrt.func",
        "1..2",
        "Symbol",
        "pi.n",
        "{1:2}",
        "`x`",
        "a\\b",
    ]:
        assert not eq.is_safe_expression(s), s
        assert eq.safe_parse(s) is None, s
    for s in ["2*x+1", "sqrt(2)/2", "((1)/(3))", "2**10", "3.5", "2pi", "oo"]:
        assert eq.is_safe_expression(s), s
        assert eq.safe_parse(s) is not None, s


def test_parse_expr_only_ever_sees_whitelisted_names(monkeypatch, tmp_path):
    """Every code object sympy evaluates during grading references only whitelisted names."""
    monkeypatch.chdir(tmp_path)
    # Library imports that sympify their own constants (e.g. the 'E' of sympy.physics.units'
    # exa prefix, loaded lazily by latex2sympy) happen before the spy goes in.
    import sympy.physics.units  # noqa: F401

    eq.warmup()
    seen = []
    real_eval_expr = sympy_parser.eval_expr

    def spy(code, local_dict, global_dict):
        names = set(code.co_names) if hasattr(code, "co_names") else set(compile(code, "<s>", "eval").co_names)
        seen.append(names)
        return real_eval_expr(code, local_dict, global_dict)

    monkeypatch.setattr(sympy_parser, "eval_expr", spy)
    inputs = (
        [(f"\\boxed{{{p}}}", "0") for p in PAYLOADS]
        + [(p, "0") for p in PAYLOADS]
        + [
            ("\\frac{1}{3}", "0.333"),
            ("2\\sqrt{2}", "\\sqrt{8}"),
            ("x^2+2x+1", "(x+1)^2"),
            ("(1, 2)", "(1,2)"),
            ("3.1416", "\\pi"),
            ("a+b=7", "7"),
            ("1/2 + 1/3", "5/6"),
        ]
    )
    for pred, gold in inputs:
        eq.is_equivalent(pred, gold)
    assert seen, "the sympy stage should have parsed something"
    allowed = eq.ALLOWED_CODE_NAMES
    for names in seen:
        assert names <= allowed, names - allowed
    assert not (tmp_path / "pwned").exists()


def test_inprocess_payloads_execute_nothing(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    called = []
    monkeypatch.setattr(os, "system", lambda *a, **k: called.append(a) or 0)
    g = Grader(mode="inprocess")
    assert not g.grade([f"\\boxed{{{p}}}" for p in PAYLOADS], ["0"] * len(PAYLOADS)).any()
    assert not called and not (tmp_path / "pwned").exists()
