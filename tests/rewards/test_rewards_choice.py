"""The multiple_choice task: AGIEval / GPQA / MMLU answer formats, extraction precedence, keys."""

import pytest

from tempo_jax.rewards import choice

# (response, extracted): the published formats and the usual variations.
EXTRACTED = [
    # AGIEval few-shot CoT: "... Therefore, the answer is (B)" on the last line
    ("Premise 2 rules out C and D. If A held, F would be first.\nTherefore, the answer is (B)", "B"),
    ("So the answer is B.", "B"),
    ("The correct answer is: (D) 12", "D"),
    # GPQA (simple-evals): "Answer: $LETTER" on the last line
    ("The reaction is an SN2 inversion, so the product is (R).\n\nAnswer: C", "C"),
    ("**Answer:** (A)", "A"),
    ("Answer:\n\nB", "B"),
    ("answer: b", "B"),
    ("the final answer is (c)", "C"),
    # \boxed{} (our prompts ask for it) wins over everything else
    ("The answer is (A)... no wait, recheck. $\\boxed{C}$", "C"),
    ("\\boxed{\\text{(E)}}", "E"),
    ("\\boxed{B) 6.02e23}", "B"),
    ("Final: \\boxed{J}", "J"),  # MMLU-Pro has ten options
    # a lone option letter on the last line
    ("Comparing the options, the first is wrong.\n(D)", "D"),
    ("Long reasoning.\n**B**", "B"),
    ("Long reasoning.\nB.", "B"),
    # text answers (for text golds); no answer at all
    ("The answer is Paris.", "Paris"),
    ("The answer is a bit unclear", "a bit unclear"),
    ("I am not sure.", None),
    ("", None),
    (None, None),
    # no first-capital-letter fallback: "I" and "A" are words
    ("I think A is plausible but I cannot decide", None),
]


@pytest.mark.parametrize("response,expected", EXTRACTED)
def test_extract(response, expected):
    assert choice.extract(response) == expected


def test_answer_phrase_beats_a_lone_last_line():
    assert choice.extract("The answer is (B).\nA") == "B"


@pytest.mark.parametrize(
    "pred,gold,same",
    [
        ("B", "B", True),
        ("(B)", "B", True),
        ("\\boxed{B}", "(B)", True),
        ("b)", "B", True),
        ("$\\text{B}$", "B", True),
        ("B. Paris", "B", True),
        ("B", "C", False),
        ("", "B", False),
        ("B", "", False),
        ("Paris", "paris.", True),  # text gold
        ("Paris", "London", False),
        ("A" * 2000, "A", False),  # too long
    ],
)
def test_quick_verdict_and_equivalent_agree(pred, gold, same):
    assert choice.quick_verdict(pred, gold) is same
    assert choice.equivalent(pred, gold) is same


def test_canonical_is_the_letter():
    keys = {choice.canonical(a) for a in ["(B)", "B", "\\boxed{B}", "**B**", "b)", "B) Paris"]}
    assert keys == {"B"}
    assert choice.canonical("") == "" and choice.canonical(None) == ""
    assert choice.canonical("  The Eiffel   Tower! ") == "the eiffel tower"


def test_option_text_becomes_its_letter():
    options = ["London", "Paris", "Berlin", "Madrid"]
    assert choice.to_letter("paris.", options) == "B"
    assert choice.to_letter("(C)", options) == "C"
    assert choice.to_letter("Rome", options) == "Rome"


def test_code_text_is_just_text():
    answer = choice.extract("The answer is __import__('os').system('touch pwned')")
    assert not choice.equivalent(answer, "A")
