"""E-step and M-step time and achieved FLOP/s on the 41.6M-parameter Qwen3-style model.

Batch: 64 rollouts x (32 prompt + 128 response) tokens, one optimizer step per update (the
ENV_NOTES Tunix reference shape), fp32. Useful FLOPs are counted analytically: 6 x params x
tokens for the matmuls of forward+backward plus 12 x layers x hidden x tokens x context for
attention (the critic has no LM-head matmul) (scores and values, forward+backward), over the
whole prompt+response sequence.
The machine's fp32 matmul peak is measured in the same run (2048^2 jnp.dot).

    python benchmarks/train_step.py [--rows 64] [--repeats 3] [--micro-tokens 8192]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from tempo_jax.models.config import ModelConfig, RopeConfig
from tempo_jax.models.critic import critic_from_actor
from tempo_jax.models.decoder import CausalLM
from tempo_jax.rl.advantages import em_token
from tempo_jax.train.optim import make_optimizer
from tempo_jax.train.state import create_train_state
from tempo_jax.train.updates import ACTOR_KEYS, CRITIC_KEYS, UpdateSpec, make_e_step, make_m_step

MODEL = dict(
    model_type="qwen3",
    vocab_size=32000,
    hidden_size=512,
    intermediate_size=1368,
    num_layers=8,
    num_heads=8,
    num_kv_heads=8,
    head_dim=64,
    rope=RopeConfig(theta=1e6),
    qk_norm="head",
    tie_word_embeddings=True,
)


def make_batch(rows: int, plen: int, tlen: int, vocab: int, low: int = 0) -> dict:
    """Random rollouts (token ids in [low, vocab)) with old log-probs, values, and the EM advantages
    and returns of half labeled rows: the batch an update consumes."""
    rng = np.random.default_rng(0)
    batch = dict(
        prompt_tokens=jnp.asarray(rng.integers(low, vocab, (rows, plen)), jnp.int32),
        prompt_valid=jnp.ones((rows, plen), bool),
        response_tokens=jnp.asarray(rng.integers(low, vocab, (rows, tlen)), jnp.int32),
        response_mask=jnp.ones((rows, tlen), bool),
    )
    values = jnp.asarray(rng.normal(size=(rows, tlen)) * 0.1, jnp.float32)
    labeled = jnp.asarray(np.arange(rows) % 2 == 0)
    scores = jnp.asarray(rng.choice([-1.0, 1.0], rows), jnp.float32)
    adv = em_token(scores, values, batch["response_mask"], labeled)
    batch.update(
        old_logprobs=jnp.full((rows, tlen), -10.0),
        advantages=adv.advantages,
        values=values,
        returns=adv.returns,
        is_labeled=labeled,
    )
    return batch


def matmul_peak(size: int = 2048, repeats: int = 10) -> float:
    a = jnp.ones((size, size), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        f(a).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return 2 * size**3 / best


def useful_flops(cfg: ModelConfig, rows: int, seq: int, lm_head: bool) -> float:
    """The critic has no LM-head matmul (its embedding is only a lookup)."""
    params = cfg.num_params() - (0 if lm_head else cfg.vocab_size * cfg.hidden_size)
    tokens = rows * seq
    attention = 12 * cfg.num_layers * cfg.num_heads * cfg.head_dim * tokens * seq / 2  # causal: half the scores
    return 6 * params * tokens + attention


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--prompt", type=int, default=32)
    parser.add_argument("--response", type=int, default=128)
    parser.add_argument("--micro-tokens", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "train_step.json"))
    args = parser.parse_args()

    cfg = ModelConfig(**MODEL)
    actor = CausalLM(cfg, nnx.Rngs(0))
    critic = critic_from_actor(actor)
    rows, plen, tlen = args.rows, args.prompt, args.response
    batch = make_batch(rows, plen, tlen, cfg.vocab_size)
    micro = max(1, min(rows, args.micro_tokens // (plen + tlen)))
    while rows % micro:
        micro -= 1
    spec = UpdateSpec(mini_batch_rows=rows, micro_rows=micro, shuffle=False)
    results = {
        "command": "python " + " ".join([os.path.relpath(__file__)] + sys.argv[1:]),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "jax": jax.__version__},
        "model_params": cfg.num_params(),
        "rows": rows,
        "seq": plen + tlen,
        "micro_rows": micro,
    }
    peak_before = matmul_peak()
    for name, make, model, keys in (
        ("m_step", make_m_step, actor, ACTOR_KEYS),
        ("e_step", make_e_step, critic, CRITIC_KEYS),
    ):
        tx = make_optimizer(1e-6)
        graphdef, state = create_train_state(model, tx)
        extra = dict(clip_low=3e-4, clip_high=5e-4) if name == "m_step" else dict(cliprange_value=0.1)
        fn = make(graphdef, tx, spec, "gspo" if name == "m_step" else "seq_clip", **extra)
        sub = {k: batch[k] for k in keys}
        flops = useful_flops(cfg, rows, plen + tlen, lm_head=name == "m_step")
        t0 = time.perf_counter()
        state, summary, _ = fn(state, sub, jax.random.key(0))
        jax.block_until_ready(summary)
        compile_s = time.perf_counter() - t0
        times = []
        for i in range(args.repeats):
            t0 = time.perf_counter()
            state, summary, _ = fn(state, sub, jax.random.key(i))
            jax.block_until_ready(summary)
            times.append(time.perf_counter() - t0)
        best = min(times)
        results[name] = {
            "seconds": best,
            "all_seconds": times,
            "first_call_seconds": compile_s,
            "tokens_per_s": rows * (plen + tlen) / best,
            "gflops": flops / best / 1e9,
        }
    # The peak is measured before and after the updates and the larger kept: one measurement
    # under a passing load halves it (seen here), which would inflate the fractions.
    peak = max(peak_before, matmul_peak())
    results["matmul_peak_gflops"] = peak / 1e9
    for name in ("m_step", "e_step"):
        r = results[name]
        r["fraction_of_peak"] = r["gflops"] * 1e9 / peak
        print(
            f"{name}: {r['seconds']:.2f} s/update, {r['tokens_per_s']:.0f} tok/s, {r['gflops']:.1f} GFLOP/s = "
            f"{r['fraction_of_peak']:.0%} of the measured {peak / 1e9:.0f} GFLOP/s fp32 matmul peak"
        )
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(results, fh, indent=2)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
