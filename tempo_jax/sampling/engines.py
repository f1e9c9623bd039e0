"""One entry point for the two rollout engines (``rollout.engine``), used by training and evaluation.

* ``static`` (:func:`tempo_jax.sampling.generate.generate`): one batch, decoded until its longest
  row stops;
* ``continuous`` (:func:`tempo_jax.sampling.continuous.generate_continuous`): ``slots`` decode slots
  refilled as rows stop.

Both sample the same tokens from the same logits (per-row keys), so the choice is about speed and
memory only.
"""

from __future__ import annotations

from typing import Any

from tempo_jax.sampling import ENGINES
from tempo_jax.sampling.continuous import generate_continuous
from tempo_jax.sampling.generate import SampleOutput, generate


def sample(model, prompts, *, engine: str = "static", slots: int | None = None, **kwargs: Any) -> SampleOutput:
    """Rollouts from ``engine``; ``kwargs`` as :func:`~tempo_jax.sampling.generate.generate`,
    ``slots`` (continuous only) the decode slots (None: its default)."""
    if engine not in ENGINES:
        raise ValueError(f"unknown rollout engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if engine == "continuous":
        return generate_continuous(model, prompts, slots=slots, **kwargs)[0]
    return generate(model, prompts, **kwargs)
