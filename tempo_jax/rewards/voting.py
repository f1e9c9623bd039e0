"""TTRL rewards (spec §4.1) and the semantic clustering shared with EMPO (spec §4.2).

Clustering of the n extracted answers of one prompt: each non-empty answer joins the first
existing cluster whose representative (its first member) it matches under the grader
(``equivalent(pred=answer, gold=representative)``); an empty answer is its own singleton.
All pairwise comparisons of a whole batch of prompts go to the grader in one call (the greedy
pass then only looks results up), so the pool sees one large, deduplicated batch.

Each prompt's answers are compared under the prompt's grading task (``task``: one name for every
prompt or one per prompt; default ``math``, :mod:`tempo_jax.rewards.tasks`): for
``multiple_choice`` "(B)", "B" and "\\boxed{B}" are one vote, for ``logic_grid`` JSON solutions
equal cell by cell are one cluster; exact-mode votes use the task's ``canonical`` key.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Protocol

import numpy as np

from tempo_jax.rewards.tasks import DEFAULT_TASK, expand_tasks, get_task

TaskSpec = str | Sequence[str]  # one task for every prompt, or one per prompt


class PairGrader(Protocol):
    """Anything with the :meth:`Grader.equivalent_pairs` method (``tasks`` is only passed for
    tasks other than math, so a math-only grader may take ``pairs`` alone)."""

    def equivalent_pairs(self, pairs: Iterable[tuple[str, str]], tasks: Sequence[str] | None = None) -> list[bool]: ...


def _equivalent(grader: PairGrader, pairs: list[tuple[str, str]], tasks: list[str]) -> list[bool]:
    if not pairs:
        return []
    if all(t == DEFAULT_TASK for t in tasks):
        return grader.equivalent_pairs(pairs)
    return grader.equivalent_pairs(pairs, tasks)


@dataclasses.dataclass(frozen=True)
class Clustering:
    """Clusters of one prompt's answers."""

    cluster_ids: np.ndarray  # int32 [n], clusters numbered in order of creation
    sizes: np.ndarray  # int32 [num_clusters]
    representatives: tuple[str, ...]  # first member's answer per cluster ("" for empties)

    @property
    def n(self) -> int:
        return int(self.cluster_ids.shape[0])

    @property
    def frequencies(self) -> np.ndarray:
        """float32 [n]: size of each response's cluster / n."""
        if self.n == 0:
            return np.zeros((0,), np.float32)
        return (self.sizes[self.cluster_ids] / self.n).astype(np.float32)


def _clean(answers: Sequence[str | None]) -> list[str]:
    return [(a or "").strip() for a in answers]


def cluster_answers(
    answers_per_prompt: Sequence[Sequence[str | None]], grader: PairGrader, task: TaskSpec = DEFAULT_TASK
) -> list[Clustering]:
    """Greedy semantic clustering of every prompt's answers, with one grader call in total."""
    groups = [_clean(a) for a in answers_per_prompt]
    tasks = expand_tasks(task, len(groups), "prompts")
    index: list[tuple[int, int, int]] = []  # (prompt, j, i) for pair (answer j, earlier answer i)
    pairs: list[tuple[str, str]] = []
    pair_tasks: list[str] = []
    for p, answers in enumerate(groups):
        for j, aj in enumerate(answers):
            if not aj:
                continue
            for i in range(j):
                if answers[i]:
                    index.append((p, j, i))
                    pairs.append((aj, answers[i]))
                    pair_tasks.append(tasks[p])
    verdicts = _equivalent(grader, pairs, pair_tasks)
    same = {key: bool(v) for key, v in zip(index, verdicts)}
    out = []
    for p, answers in enumerate(groups):
        ids = np.zeros((len(answers),), np.int32)
        rep_index: list[int | None] = []
        sizes: list[int] = []
        for j, aj in enumerate(answers):
            hit = None
            if aj:
                for c, r in enumerate(rep_index):
                    if r is not None and same.get((p, j, r), False):
                        hit = c
                        break
            if hit is None:
                rep_index.append(j if aj else None)
                sizes.append(0)
                hit = len(sizes) - 1
            ids[j] = hit
            sizes[hit] += 1
        reps = tuple(answers[r] if r is not None else "" for r in rep_index)
        out.append(Clustering(ids, np.asarray(sizes, np.int32), reps))
    return out


@dataclasses.dataclass(frozen=True)
class VoteResult:
    """TTRL outcome for one prompt."""

    rewards: np.ndarray  # float32 [n], 1.0 / 0.0
    majority_answer: str  # pseudo-label ("" if no response has an answer)
    majority_frequency: float  # size of the majority cluster / n
    cluster_ids: np.ndarray  # int32 [n]
    frequencies: np.ndarray  # float32 [n], share of responses in each response's cluster
    cluster_sizes: tuple[int, ...]


def ttrl_rewards(
    answers_per_prompt: Sequence[Sequence[str | None]],
    grader: PairGrader,
    mode: str = "semantic",
    task: TaskSpec = DEFAULT_TASK,
) -> list[VoteResult]:
    """TTRL majority-vote rewards for each prompt's extracted answers.

    ``mode="semantic"`` (TEMPO repo, default): reward 1 for every member of every maximal
    cluster (ties all win; all distinct/empty → all 1, i.e. zero advantage), else 0.
    ``mode="exact"`` (original TTRL): majority over normalised answer strings (exact Counter;
    empty answers do not vote but count in n; ties go to the first-seen answer); then each
    response scores 1 iff the grader finds its answer equivalent to the majority answer.
    Answers are compared under each prompt's ``task`` (its ``canonical`` key in exact mode).
    """
    if mode == "semantic":
        return [_semantic_vote(c) for c in cluster_answers(answers_per_prompt, grader, task)]
    if mode == "exact":
        groups = [_clean(a) for a in answers_per_prompt]
        return _exact_votes(groups, grader, expand_tasks(task, len(groups), "prompts"))
    raise ValueError(f"mode must be 'semantic' or 'exact', got {mode!r}")


def _semantic_vote(c: Clustering) -> VoteResult:
    if c.n == 0:
        return VoteResult(np.zeros((0,), np.float32), "", 0.0, c.cluster_ids, c.frequencies, ())
    top = int(c.sizes.max())
    winners = c.sizes == top
    rewards = winners[c.cluster_ids].astype(np.float32)
    majority = next((c.representatives[k] for k in np.flatnonzero(winners) if c.representatives[k]), "")
    return VoteResult(rewards, majority, top / c.n, c.cluster_ids, c.frequencies, tuple(int(s) for s in c.sizes))


def _exact_votes(groups: list[list[str]], grader: PairGrader, tasks: list[str]) -> list[VoteResult]:
    majorities: list[str] = []
    partial: list[tuple[np.ndarray, np.ndarray, int]] = []
    for answers, task in zip(groups, tasks):
        canonical = get_task(task).canonical
        keys = [canonical(a) if a else "" for a in answers]
        # clusters by normalised string; empties (or answers normalising to "") are singletons
        ids = np.zeros((len(answers),), np.int32)
        sizes: list[int] = []
        first: dict[str, int] = {}
        for j, k in enumerate(keys):
            if k and k in first:
                ids[j] = first[k]
            else:
                sizes.append(0)
                ids[j] = len(sizes) - 1
                if k:
                    first[k] = ids[j]
            sizes[ids[j]] += 1
        votes = Counter(k for k in keys if k)
        if votes:
            key, count = votes.most_common(1)[0]
            majority = answers[keys.index(key)]
        else:
            majority, count = "", 0
        majorities.append(majority)
        partial.append((ids, np.asarray(sizes, np.int32), count))
    pairs, where, pair_tasks = [], [], []
    for p, (answers, majority) in enumerate(zip(groups, majorities)):
        if majority:
            for j, a in enumerate(answers):
                if a:
                    pairs.append((a, majority))
                    where.append((p, j))
                    pair_tasks.append(tasks[p])
    verdicts = _equivalent(grader, pairs, pair_tasks)
    rewards = [np.zeros((len(a),), np.float32) for a in groups]
    for (p, j), ok in zip(where, verdicts):
        rewards[p][j] = 1.0 if ok else 0.0
    out = []
    for p, answers in enumerate(groups):
        cluster_ids, cluster_sizes, count = partial[p]
        n = len(answers)
        freqs = (cluster_sizes[cluster_ids] / n).astype(np.float32) if n else np.zeros((0,), np.float32)
        out.append(
            VoteResult(
                rewards[p],
                majorities[p],
                count / n if n else 0.0,
                cluster_ids,
                freqs,
                tuple(int(s) for s in cluster_sizes),
            )
        )
    return out


def majority_correct(
    results: Sequence[VoteResult], golds: Sequence[str], grader: PairGrader, task: TaskSpec = DEFAULT_TASK
) -> np.ndarray:
    """bool [num_prompts]: is each prompt's majority answer right (TTRL label accuracy)."""
    if len(results) != len(golds):
        raise ValueError(f"{len(results)} results but {len(golds)} golds")
    pairs = [(r.majority_answer, g) for r, g in zip(results, golds)]
    return np.asarray(_equivalent(grader, pairs, expand_tasks(task, len(pairs), "prompts")), dtype=bool)
