"""KV-cache budgeting: compute bytes before allocating, fail with the largest batch that fits."""

from __future__ import annotations

import math
import os

import jax

from tempo_jax.models.cache import cache_bytes
from tempo_jax.models.config import ModelConfig


class CacheTooLargeError(MemoryError):
    """The requested rollout batch cannot hold its KV cache in the memory budget."""


def default_budget_bytes(num_devices: int = 1) -> int:
    """Free accelerator memory when JAX reports it; otherwise half the host RAM."""
    stats = None
    try:
        stats = jax.devices()[0].memory_stats()
    except Exception:  # CPU backends may not implement it
        stats = None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0)) * num_devices
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * 0.5)


def check_cache_fits(
    cfg: ModelConfig,
    rows: int,
    max_len: int,
    dtype: str | None,
    budget_bytes: int | None = None,
    num_devices: int = 1,
    copies: float = 1.0,
    samples_per_prompt: int = 1,
) -> int:
    """Return the peak cache bytes (``copies`` caches of ``rows`` sequences x ``max_len`` slots
    alive at once), or raise naming the largest number of sequences that fits."""

    def peak(r: int) -> int:
        return int(math.ceil(copies * cache_bytes(cfg, r, max_len, dtype)))

    need = peak(rows)
    budget = default_budget_bytes(num_devices) if budget_bytes is None else int(budget_bytes)
    if need > budget:
        row_bytes = cache_bytes(cfg, 1, max_len, dtype) - cache_bytes(cfg, 0, max_len, dtype)
        fits = max(int((budget / copies - cache_bytes(cfg, 0, max_len, dtype)) // row_bytes), 0)
        while fits > 0 and peak(fits) > budget:
            fits -= 1
        while peak(fits + 1) <= budget:
            fits += 1
        n = max(int(samples_per_prompt), 1)
        prompts = f" ({fits // n} prompts x {n} samples)" if n > 1 else ""
        raise CacheTooLargeError(
            f"KV cache for {rows} sequences x {max_len} slots ({dtype or cfg.dtype}) needs {need / 2**30:.2f} GiB "
            f"at its peak, over the budget of {budget / 2**30:.2f} GiB. The largest batch that fits is {fits} "
            f"sequences{prompts}; or shorten max_new_tokens, use kv_cache_dtype='bfloat16', or shard over more devices."
        )
    return need
