"""The logic_grid task on ZebraLogic solutions: extraction, cell accuracy, whole-puzzle verdicts."""

import json

import pytest

from tempo_jax.rewards import logic_grid as lg

# ZebraLogic's dataset layout of a 3-house puzzle's solution
GOLD = json.dumps(
    {
        "header": ["House", "Name", "Nationality", "Pet"],
        "rows": [
            ["1", "Arnold", "swede", "cat"],
            ["2", "Eric", "dane", "bird"],
            ["3", "Peter", "brit", "dog"],
        ],
    }
)


def solution(**changes) -> dict:
    table = {
        "House 1": {"Name": "Arnold", "Nationality": "Swede", "Pet": "Cat"},
        "House 2": {"Name": "Eric", "Nationality": "Dane", "Pet": "Bird"},
        "House 3": {"Name": "Peter", "Nationality": "Brit", "Pet": "Dog"},
    }
    for key, value in changes.items():
        house, column = key.split("__")
        table[f"House {house[1:]}"][column] = value
    return table


def response(table: dict, reasoning: str = "Clue 1 puts Arnold in house 1 {see clue 4}.") -> str:
    body = json.dumps({"reasoning": reasoning, "solution": table}, indent=2)
    return f"Let me work through the clues.\n\n```json\n{body}\n```\n"


def test_right_solution_in_the_model_format():
    r = response(solution())
    assert lg.score(lg.extract(r), GOLD) == (9, 9)
    assert lg.equivalent(lg.extract(r), GOLD)
    assert lg.cell_accuracy(r, GOLD) == 1.0


def test_partial_credit():
    r = response(solution(h2__Pet="dog", h3__Pet="bird"))
    assert lg.score(lg.extract(r), GOLD) == (7, 9)
    assert lg.cell_accuracy(r, GOLD) == pytest.approx(7 / 9)
    assert not lg.equivalent(lg.extract(r), GOLD)


def test_missing_houses_and_cells_count_wrong():
    table = solution()
    del table["House 3"]
    del table["House 1"]["Pet"]
    assert lg.score(lg.extract(response(table)), GOLD) == (5, 9)


def test_key_spellings_and_list_values():
    table = {
        "house 1": {"name": "ARNOLD", "nationality": ["Swede"], "pet": " cat "},
        "2": {"Name": "Eric", "Nationality": "Dane", "Pet": "Bird"},
        "House 3": {"Name": "Peter", "Nationality": "Brit", "Pet": "Dog", "Extra": "ignored"},
    }
    assert lg.equivalent(json.dumps({"solution": table}), GOLD)


def test_the_last_solution_counts():
    draft = json.dumps({"solution": solution(h1__Name="Eric")})
    final = json.dumps({"solution": solution()})
    assert lg.equivalent(lg.extract(f"Draft: {draft}\nFinal: {final}"), GOLD)
    assert not lg.equivalent(lg.extract(f"Draft: {final}\nFinal: {draft}"), GOLD)


def test_bare_house_table_without_solution_key():
    r = "The grid:\n" + json.dumps(solution()) + "\nDone."
    assert lg.equivalent(lg.extract(r), GOLD)


def test_boxed_house_table():
    r = "So the grid is $\\boxed{" + json.dumps(solution()) + "}$"
    assert lg.equivalent(lg.extract(r), GOLD)


def test_equal_solutions_share_a_canonical_key():
    a = json.dumps({"solution": solution()})
    b = json.dumps({"reasoning": "other words", "solution": {k.lower(): v for k, v in solution().items()}})
    assert lg.canonical(a) == lg.canonical(b) != ""
    assert lg.canonical(json.dumps({"solution": solution(h1__Pet="dog")})) != lg.canonical(a)
    assert lg.equivalent(a, b) and lg.equivalent(b, a)


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "no JSON here",
        '{"solution": "Arnold"}',
        '{"solution": {"House 1": "Arnold"}}',
        "{" * 10_000,
        '{"a":' * 100_000 + "1" + "}" * 100_000,
        "[" * 100_000 + "]" * 100_000,
        '{"solution": ' + "[" * 1000 + "]" * 1000 + "}",
        "{'solution': __import__('os').system('touch pwned')}",
    ],
)
def test_unreadable_answers_are_wrong(text, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert not lg.equivalent(lg.extract(text) or "", GOLD)
    assert lg.cell_accuracy(text, GOLD) == 0.0
    assert not (tmp_path / "pwned").exists()


def test_no_gold_table_scores_nothing():
    assert lg.score(json.dumps(solution()), "not a table") == (0, 0)
    assert lg.cell_accuracy(json.dumps(solution()), "") == 0.0
