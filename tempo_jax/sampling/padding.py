"""Left padding of token prompts to power-of-two length buckets (bounded recompiles)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def bucket_length(n: int, minimum: int = 16) -> int:
    """The smallest power of two >= max(n, minimum)."""
    size = max(int(minimum), 1)
    while size < n:
        size *= 2
    return size


def left_pad(
    prompts: Sequence[Sequence[int]], pad_id: int, minimum: int = 16, length: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """tokens [B, P] int32 and valid [B, P] bool with every prompt right-aligned."""
    if not prompts:
        raise ValueError("no prompts given")
    longest = max(len(p) for p in prompts)
    if min(len(p) for p in prompts) == 0:
        raise ValueError("an empty prompt was given; every prompt needs at least one token")
    width = length if length is not None else bucket_length(longest, minimum)
    if width < longest:
        raise ValueError(f"prompt of {longest} tokens does not fit the padded length {width}")
    tokens = np.full((len(prompts), width), pad_id, np.int32)
    valid = np.zeros((len(prompts), width), bool)
    for i, p in enumerate(prompts):
        tokens[i, width - len(p) :] = np.asarray(p, np.int32)
        valid[i, width - len(p) :] = True
    return tokens, valid
