"""EMPO semantic-entropy rewards (spec §4.2).

reward_i = frequency of response i's semantic cluster, in (0, 1] (a response's semantic
probability; its expectation is minus the semantic entropy). Empty answers are singleton clusters
and get 1/n. Prompt filtering by entropy is off by default, as in the released baselines; two
optional knobs zero a prompt's rewards: ``max_entropy`` (semantic entropy, natural log, above
which a prompt is too uncertain; the original EMPO paper's filter) and ``min_max_frequency``
(the reference's commented-out ``entropy_thresholding``: 0.25 there).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from tempo_jax.rewards.tasks import DEFAULT_TASK
from tempo_jax.rewards.voting import PairGrader, TaskSpec, cluster_answers


@dataclasses.dataclass(frozen=True)
class EntropyResult:
    """EMPO outcome for one prompt."""

    rewards: np.ndarray  # float32 [n]
    cluster_ids: np.ndarray  # int32 [n]
    frequencies: np.ndarray  # float32 [n] (equal to rewards unless filtered)
    semantic_entropy: float  # -sum_c p_c log p_c over clusters
    max_frequency: float
    filtered: bool  # True when a threshold zeroed the rewards


def semantic_entropy(sizes: np.ndarray) -> float:
    sizes = np.asarray(sizes, np.float64)
    total = sizes.sum()
    if total <= 0:
        return 0.0
    p = sizes[sizes > 0] / total
    return float(-(p * np.log(p)).sum())


def empo_rewards(
    answers_per_prompt: Sequence[Sequence[str | None]],
    grader: PairGrader,
    *,
    max_entropy: float | None = None,
    min_max_frequency: float | None = None,
    task: TaskSpec = DEFAULT_TASK,
) -> list[EntropyResult]:
    """Semantic-cluster frequency rewards for each prompt (one grader call for the batch); answers
    cluster under each prompt's ``task`` (one name or one per prompt; default math)."""
    out = []
    for c in cluster_answers(answers_per_prompt, grader, task):
        freqs = c.frequencies
        h = semantic_entropy(c.sizes)
        top = float(c.sizes.max() / c.n) if c.n else 0.0
        filtered = bool(
            (max_entropy is not None and h > max_entropy) or (min_max_frequency is not None and top < min_max_frequency)
        )
        rewards = np.zeros_like(freqs) if filtered else freqs.copy()
        out.append(EntropyResult(rewards, c.cluster_ids, freqs, h, top, filtered))
    return out
