"""The per-step metrics dictionary, from host copies of the batch and the update summaries."""

from __future__ import annotations

from typing import Any

import numpy as np

from tempo_jax.rl.value_losses import explained_variance


def _masked_stats(x: np.ndarray, mask: np.ndarray, prefix: str) -> dict[str, float]:
    vals = x[mask]
    if vals.size == 0:
        return {}
    return {
        f"{prefix}/mean": float(vals.mean()),
        f"{prefix}/std": float(vals.std()),
        f"{prefix}/max": float(vals.max()),
        f"{prefix}/min": float(vals.min()),
    }


def _reduced(prefix: str, summary: dict, sums: dict) -> dict[str, float]:
    out = {f"{prefix}/{k}": float(v) for k, v in summary.items()}
    for name, (total, count) in sums.items():
        out[f"{prefix}/{name}"] = float(total) / max(float(count), 1.0)
    return out


def step_metrics(
    batch: dict[str, np.ndarray],
    dev: dict[str, Any],
    entropy: np.ndarray,
    actor_out: tuple | None,
    critic_out: tuple | None,
    info: dict[str, Any],
) -> dict[str, float]:
    mask = np.asarray(batch["response_mask"], bool)
    labeled = np.asarray(batch["is_labeled"], bool)
    correct = np.asarray(batch["correct"], bool)
    known = np.asarray(batch.get("has_answer", np.ones_like(correct)), bool)  # rows whose answer is known
    lengths = np.asarray(batch["lengths"])
    m: dict[str, float] = {
        "reward/mean": float(np.mean(batch["rewards"])),
        "score/mean": float(np.mean(batch["scores"])),
        "batch/rows": float(mask.shape[0]),
        "batch/labeled_fraction": float(labeled.mean()),
        "response_length/mean": float(lengths.mean()),
        "response_length/max": float(lengths.max()),
        "response_length/clip_ratio": float(np.mean(~np.asarray(batch["eos"], bool))),
        "actor/entropy": float(np.asarray(entropy)[mask].mean()) if mask.any() else 0.0,
    }
    if known.any():
        m["acc/all"] = float(correct[known].mean())
    if labeled.any():
        m["acc/labeled"] = float(correct[labeled].mean())
    if (~labeled & known).any():
        m["acc/unlabeled"] = float(correct[~labeled & known].mean())  # logging only: never used for training
    if info.get("label_correct"):
        m["ttrl/label_accuracy"] = float(np.mean(info["label_correct"]))
    m.update(_masked_stats(np.asarray(dev["advantages"]), mask, "advantages"))
    m.update(_masked_stats(np.asarray(dev["returns"]), mask, "returns"))
    values = np.asarray(dev["values"])
    if critic_out is not None or values.any():
        m.update(_masked_stats(values, mask, "values"))
        sel = mask & labeled[:, None]
        if sel.any():  # labeled response tokens: the rows the critic learns from
            returns = np.asarray(dev["returns"])[sel]
            m["critic/explained_var"] = explained_variance(values[sel], returns, if_constant=0.0)
    if actor_out is not None:
        m.update(_reduced("actor", *actor_out))
    if critic_out is not None:
        m.update(_reduced("critic", *critic_out))
        m["critic/updated"] = 1.0
    else:
        m["critic/updated"] = 0.0
    for k in ("gen_batches", "kept_groups", "filtered_groups"):
        if f"filter/{k}" in info:
            m[f"filter/{k}"] = float(info[f"filter/{k}"])
    total_time = sum(info.get(k, 0.0) for k in ("rollout", "grading", "forward", "e_step", "m_step"))
    for k in ("rollout", "grading", "forward", "e_step", "m_step"):
        m[f"time/{k}"] = float(info.get(k, 0.0))
    m["time/step"] = float(total_time)
    m["perf/rollout_tokens_per_s"] = info.get("generated_tokens", 0) / max(info.get("rollout", 0.0), 1e-9)
    m["perf/train_tokens_per_s"] = float(mask.sum()) / max(info.get("e_step", 0.0) + info.get("m_step", 0.0), 1e-9)
    return m
