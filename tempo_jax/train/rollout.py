"""Rollout -> grade -> reward -> filter: one training batch of trajectories, as NumPy arrays.

Implements TEMPO_SPEC §1.2 steps 1–5 for every method: prompts come from the data stream,
the actor samples n answers each, every answer is graded against its row's answer (±1, used
for training only where the row is labeled), the method's reward is computed (outcome, TTRL
voting or EMPO semantic entropy) and groups are filtered (constant labeled groups dropped,
accumulating generation batches until the batch is full).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import jax
import numpy as np

from tempo_jax.rewards.entropy import empo_rewards
from tempo_jax.rewards.tasks import DEFAULT_TASK, get_task
from tempo_jax.rewards.voting import ttrl_rewards
from tempo_jax.rl.filters import GroupAccumulator, confidence_filter, constant_labeled_groups
from tempo_jax.sampling.engines import sample
from tempo_jax.sampling.methods import Sampling


@dataclasses.dataclass
class RolloutSettings:
    n: int
    max_new_tokens: int
    prompt_len: int  # fixed left-padded prompt width (one compiled shape)
    batch_prompts: int
    method: Sampling
    stop_ids: tuple[int, ...]
    pad_id: int
    reward: str = "outcome"
    filter_groups: bool = True
    max_num_gen_batches: int = 10
    confidence_filter: bool = False
    confidence_lower: float = 0.3
    confidence_upper: float = 1.0
    kv_cache_dtype: str | None = None
    prompts_per_generate: int = 0  # 0 = all prompts of a batch in one sampler call (static engine)
    engine: str = "static"  # static | continuous (:func:`~tempo_jax.sampling.engines.sample`)
    decode_slots: int = 0  # the continuous engine's slots (0: its default)


def pad_prompts(prompt_ids: list[list[int]], width: int, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    tokens = np.full((len(prompt_ids), width), pad_id, np.int32)
    valid = np.zeros((len(prompt_ids), width), bool)
    for i, ids in enumerate(prompt_ids):
        if len(ids) > width:
            raise ValueError(f"prompt of {len(ids)} tokens is longer than data.max_prompt_tokens={width}")
        tokens[i, width - len(ids) :] = ids
        valid[i, width - len(ids) :] = True
    return tokens, valid


def method_rewards(
    reward: str, scores: np.ndarray, texts: list[str], n: int, grader, tasks: list[str] | None = None
) -> tuple[np.ndarray, dict]:
    """Per-row training reward for the method, plus per-group facts for filters/metrics.

    ``tasks``: each group's grading task (its n samples share the prompt's; None: all math): it
    extracts the answers that TTRL votes on and EMPO clusters, and compares them."""
    groups = len(texts) // n
    if reward == "outcome":
        return scores.astype(np.float32), {}
    tasks = list(tasks) if tasks is not None else [DEFAULT_TASK] * groups
    answers = [get_task(tasks[i // n]).extract(t) for i, t in enumerate(texts)]
    per_prompt = [answers[g * n : (g + 1) * n] for g in range(groups)]
    if reward in ("ttrl_voting", "ttrl_exact"):
        mode = "semantic" if reward == "ttrl_voting" else "exact"
        votes = ttrl_rewards(per_prompt, grader, mode=mode, task=tasks)
        rewards = np.concatenate([v.rewards for v in votes]).astype(np.float32)
        return rewards, {
            "max_frequency": np.array([v.majority_frequency for v in votes]),
            "majority_answer": [v.majority_answer for v in votes],
        }
    if reward == "empo_entropy":
        res = empo_rewards(per_prompt, grader, task=tasks)
        rewards = np.concatenate([r.rewards for r in res]).astype(np.float32)
        return rewards, {
            "max_frequency": np.array([r.max_frequency for r in res]),
            "semantic_entropy": np.array([r.semantic_entropy for r in res]),
        }
    raise ValueError(f"unknown reward {reward!r}")


def _where(column: list, keep: np.ndarray) -> list:
    return [x for x, k in zip(column, keep) if k]


def _generate_chunks(actor_split, tokens: np.ndarray, valid: np.ndarray, s: RolloutSettings, rng: jax.Array, mesh):
    """The rollout engine over chunks of ``s.prompts_per_generate`` prompts (the KV cache holds one chunk),
    joined as one output; a single call when the setting is 0 or covers the batch, or for the
    continuous engine (its ``decode_slots`` bound the cache)."""
    chunk = (s.engine == "static" and s.prompts_per_generate) or len(tokens)
    outs = []
    for i, start in enumerate(range(0, len(tokens), chunk)):
        key = rng if chunk >= len(tokens) else jax.random.fold_in(rng, i)
        out = sample(
            actor_split,
            (tokens[start : start + chunk], valid[start : start + chunk]),
            n=s.n,
            max_new_tokens=s.max_new_tokens,
            method=s.method,
            stop_ids=s.stop_ids,
            pad_id=s.pad_id,
            rng=key,
            kv_cache_dtype=s.kv_cache_dtype,
            mesh=mesh,
            engine=s.engine,
            slots=s.decode_slots or None,
        )
        out.prompt_index = out.prompt_index + start
        outs.append(out)
    if len(outs) == 1:
        return outs[0]
    joined: dict[str, Any] = {  # field name -> array (or None when the field is unset)
        f.name: (None if getattr(outs[0], f.name) is None else np.concatenate([getattr(o, f.name) for o in outs]))
        for f in dataclasses.fields(outs[0])
    }
    return type(outs[0])(**joined)


def collect(
    actor_split, stream, tokenizer, grader, settings: RolloutSettings, rng: jax.Array, mesh=None
) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """Draw prompt batches until ``batch_prompts`` groups survive the filters; return them."""
    s = settings
    acc = GroupAccumulator(s.batch_prompts, s.max_num_gen_batches if s.filter_groups else 0)
    timing = {"rollout": 0.0, "grading": 0.0}
    info: dict[str, Any] = {"generated_tokens": 0, "label_correct": [], "n_rows": 0}
    gen = 0
    while True:
        rows = stream.next_batch()
        tokens, valid = pad_prompts([r["prompt_ids"] for r in rows], s.prompt_len, s.pad_id)
        t0 = time.perf_counter()
        out = _generate_chunks(actor_split, tokens, valid, s, jax.random.fold_in(rng, gen), mesh)
        timing["rollout"] += time.perf_counter() - t0
        info["generated_tokens"] += int(out.lengths.sum())
        t0 = time.perf_counter()
        texts = [tokenizer.decode(t[:length], skip_special_tokens=True) for t, length in zip(out.tokens, out.lengths)]
        answers = [rows[i]["answer"] for i in out.prompt_index]
        tasks = grader.tasks_for([rows[i].get("data_source") for i in out.prompt_index])  # by data_source
        known = np.array([bool(a) for a in answers])  # test questions may come without an answer
        correct = np.zeros(len(texts), bool)
        if known.any():
            correct[known] = grader.grade(*(_where(column, known) for column in (texts, answers, tasks)))
        scores = np.where(correct, 1.0, -1.0).astype(np.float32)
        group_tasks = tasks[:: s.n]  # a prompt's n samples share its task
        rewards, facts = method_rewards(s.reward, scores, texts, s.n, grader, group_tasks)
        timing["grading"] += time.perf_counter() - t0
        is_labeled = np.array([bool(rows[i]["is_labeled"]) for i in out.prompt_index])
        group_ids = out.prompt_index.astype(np.int32)
        keep = np.ones(len(texts), bool)
        if s.filter_groups:
            keep &= constant_labeled_groups(scores, group_ids, is_labeled)
        if s.confidence_filter and "max_frequency" in facts:
            keep &= confidence_filter(facts["max_frequency"][group_ids], s.confidence_lower, s.confidence_upper)
        if "majority_answer" in facts:
            majority = zip(facts["majority_answer"], rows, group_tasks)
            labels = [(m, r["answer"], t) for m, r, t in majority if r["answer"]]
            if labels:
                info["label_correct"].extend(grader.equivalent_pairs([x[:2] for x in labels], [x[2] for x in labels]))
        batch = dict(
            prompt_tokens=out.prompt_tokens,
            prompt_valid=out.prompt_valid,
            response_tokens=out.tokens,
            response_mask=out.mask,
            sampler_logprobs=out.logprobs,
            scores=scores,
            rewards=rewards,
            correct=correct,
            is_labeled=is_labeled,
            group_ids=group_ids,
            lengths=out.lengths,
            eos=out.eos,
            has_answer=known,
        )
        gen += 1
        if acc.add(batch, keep):
            break
    stats = dict(acc.stats())
    taken = acc.take()
    info.update(timing)
    info.update({f"filter/{k}": v for k, v in stats.items()})
    return taken, info
