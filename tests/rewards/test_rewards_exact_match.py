"""The exact_match task on BIG-Bench Hard targets: "So the answer is X." and the normalisation."""

import pytest

from tempo_jax.rewards import exact_match as em

# (BBH task, chain-of-thought ending as in BBH's cot-prompts, target)
BBH = [
    ("boolean_expressions", "not ( True ) and ( True ) = False and True = False. So the answer is False.", "False"),
    ("date_understanding", "Today is 01/02/2021... one week ago is 12/26/2020. So the answer is (B).", "(B)"),
    (
        "word_sorting",
        "Sorted: apple banana cherry zebra. So the answer is apple banana cherry zebra.",
        "apple banana cherry zebra",
    ),
    ("multistep_arithmetic_two", "A = -7 * 6 = -42. So the answer is -42.", "-42"),
    ("object_counting", "1 + 1 + 2 + 3 = 7. So the answer is 7.", "7"),
    ("sports_understanding", "Joao Moutinho is a soccer player. So the answer is no.", "no"),
    ("formal_fallacies", "The argument is deductively valid. So the answer is valid.", "valid"),
    ("navigate", "We end at the origin. So the answer is Yes.", "Yes"),
    ("dyck_languages", "Closing in order: ) ] }. So the answer is ) ] }.", ") ] }"),
    ("boxed", "Thus \\boxed{True}", "True"),
]


@pytest.mark.parametrize("task,response,target", BBH, ids=[b[0] for b in BBH])
def test_published_format_is_right(task, response, target):
    answer = em.extract(response)
    assert answer is not None
    assert em.quick_verdict(answer, target) and em.equivalent(answer, target)


@pytest.mark.parametrize(
    "pred,gold,same",
    [
        ("A", "(A)", True),  # option label with or without parentheses
        ("(a)", "(A)", True),
        ("A)", "(A)", True),
        ("(A) 12/26/2020", "(A)", True),  # label followed by the option's text
        ("(B)", "(A)", False),
        ("true", "True", True),
        ("**True**", "True", True),
        ("Yes", "True", False),  # no synonyms
        ("3.0", "3", True),
        ("+3", "3", True),
        ("1,000", "1000", True),
        ("-42", "42", False),
        ("seven", "7", False),
        ("apple, banana, cherry", "apple banana cherry", True),
        ("banana apple cherry", "apple banana cherry", False),
        (")]}", ") ] }", True),
        ("] ) }", ") ] }", False),
        ("\\text{valid}", "valid", True),
        ("invalid", "valid", False),
        ("", "True", False),
        ("x" * 3000, "x" * 3000, False),  # too long
    ],
)
def test_normalisation(pred, gold, same):
    assert em.quick_verdict(pred, gold) is same
    assert em.equivalent(pred, gold) is same


def test_extraction_precedence_and_misses():
    assert em.extract("So the answer is (A). Wait: \\boxed{(C)}") == "(C)"  # boxed first
    assert em.extract("the answer is 5.\nActually the answer is 6.") == "6"  # the last phrase
    assert em.extract("I do not know") is None
    assert em.extract(None) is None
    assert em.canonical("") == "" and em.canonical(None) == ""
