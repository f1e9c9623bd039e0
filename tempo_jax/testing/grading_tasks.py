"""Grading tasks that misbehave on purpose, for the grading pool's tests.

``test_hang`` never returns (the hard per-answer timeout must kill its worker); ``test_hog``
maps 8 GiB of anonymous memory without touching it (the workers' address-space limit must refuse
it; without the limit the mapping is granted at once and the answer is graded right). Both are
registered when this module is imported, which is what a worker does when asked for a task it
does not know.
"""

from __future__ import annotations

import mmap

from tempo_jax.rewards import choice
from tempo_jax.rewards.tasks import Task, register_task


def _ask_worker(pred: str, gold: str, config: object = None) -> None:
    return None


def hang(pred: str, gold: str, config: object = None) -> bool:
    while True:
        pass


def hog(pred: str, gold: str, config: object = None) -> bool:
    with mmap.mmap(-1, 8 * 1024**3) as blob:
        return len(blob) > 0


HANG = register_task(Task("test_hang", choice.extract, _ask_worker, hang, choice.canonical))
HOG = register_task(Task("test_hog", choice.extract, _ask_worker, hog, choice.canonical))
