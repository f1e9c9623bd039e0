"""One training batch holding math and multiple-choice rows: each row is graded by its own task.

The tiny model writes noise, so its decoded responses are replaced by one fixed text that is a
correct multiple-choice answer ("(B)") but no maths answer (no ``\\boxed{}``): through the real
grading pool, the multiple-choice rows must score +1 and the math rows -1. Under one grader for
all rows, both kinds would score the same.
"""

import json

import numpy as np

from tempo_jax.train.loop import Trainer

RESPONSE = "Comparing the options, the answer is (B)."


def _mixed_file(path) -> str:
    rows = [
        {"id": "m1", "problem": "2+2", "answer": "4", "data_source": "toy_math"},
        {"id": "m2", "problem": "3+4", "answer": "7", "data_source": "toy_math"},
        {
            "id": "q1",
            "problem": "Which is a prime?\n(A) 4 (B) 5 (C) 6 (D) 8",
            "answer": "B",
            "data_source": "agieval/lsat-ar",
        },
        {
            "id": "q2",
            "problem": "Which is even?\n(A) 3 (B) 2 (C) 7 (D) 9",
            "answer": "B",
            "data_source": "agieval/sat-math",
        },
    ]
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
    return str(path)


def test_a_mixed_batch_is_graded_row_by_row_by_each_rows_task(tiny_config, tmp_path):
    data = _mixed_file(tmp_path / "mixed.jsonl")
    cfg = tiny_config(
        "stage1",
        data__labeled=data,
        data__unlabeled="",
        train__total_steps=1,
        train__train_batch_size=4,
        rollout__n=2,
        data__max_prompt_tokens=256,
    )
    trainer = Trainer(cfg)
    trainer.tokenizer.decode = lambda *args, **kwargs: RESPONSE
    calls = []
    grade = trainer.grader.grade

    def spy(responses, answers, tasks=None):
        out = grade(responses, answers, tasks)
        calls.append((list(answers), list(tasks), np.asarray(out).tolist()))
        return out

    trainer.grader.grade = spy
    with trainer:
        trainer.run()
    answers, tasks, correct = (sum((c[i] for c in calls), []) for i in range(3))
    by_answer = {a: (t, c) for a, t, c in zip(answers, tasks, correct)}
    assert set(answers) == {"4", "7", "B"}, "one batch holds both kinds of rows"
    assert {a: t for a, (t, _) in by_answer.items()} == {"4": "math", "7": "math", "B": "multiple_choice"}
    for answer, task, ok in zip(answers, tasks, correct):
        assert ok is (task == "multiple_choice"), (answer, task, ok)
