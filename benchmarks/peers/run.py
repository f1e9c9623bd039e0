"""Side by side with Google's Tunix (google-tunix 0.1.7): sampler throughput and RL update time on
identical weights and identical batches, in one process and one run, with alternating repeats.

Run with the peers virtualenv (``benchmarks/peers/setup.sh``; Tunix pins ``safetensors<0.8``, so it
cannot share the project's environment):

    benchmarks/peers/.venv/bin/python benchmarks/peers/run.py [--repeats 3] [--quick]

Model and weights: the 41.6M-parameter Qwen3-style decoder of ``benchmarks/sampler.py``
(``HF_CONFIG``: hidden 512, 8 layers, 8 heads = 8 KV heads, head_dim 64, MLP 1368, tied
embeddings, vocab 32000, rope_theta 1e6 -- Tunix's Qwen3 hard-codes 1e6, so the config must use it),
fp32, random weights created once by ``benchmarks.rollout.build_models`` (transformers
``save_pretrained`` of a seeded random model into a temp dir). Ours loads that checkpoint with
``tempo_jax.models.hf_io.from_hf``; Tunix with ``tunix.models.qwen3.params.
create_model_from_safe_tensors``. A logit parity check on a few rows (max |ours - Tunix|) proves
both sides compute the same function before anything is timed.

What is timed (wall clock, every call synchronised on its result; untimed warm-up calls per side
first -- one for the samplers, two for the updates, whose second call compiles again on both sides
-- reported as ``warmup_calls_s``; then ``--repeats`` rounds of ours, Tunix, ours, Tunix, ...):

* Sampler, at each batch in ``--batches``: B prompts of 32 random tokens, ``--new-tokens`` new
  tokens, sampling at T = 1.0 with no top-k / top-p, EOS disabled on both sides, so every row
  generates all new tokens; metric: generated tokens / s over the whole call (prefill included).
  - ours: ``tempo_jax.sampling.generate.generate`` (via ``benchmarks.sampler.run_ours``:
    ``Sampling(temperature=1.0)``, ``stop_ids=()``);
  - Tunix: ``tunix.generate.sampler.Sampler.__call__`` with ``temperature=1.0, top_p=1.0`` (its
    categorical-sampling path: no sort at top_p = 1 and no top-k), ``eos_tokens=[vocab_size]`` (an
    id never sampled), ``max_prompt_length=32`` and a KV cache of exactly prompt + new tokens (its
    smallest legal size, the cheapest for it). Prompts go in as strings of ids through a trivial
    id tokenizer (its encode/decode are string splits/joins, negligible next to the model).
* RL updates: ``--rows`` rollouts x (32 prompt + ``--response`` response) tokens, one AdamW
  optimizer step per update (``tempo_jax.train.optim.make_optimizer(1e-6)``: global-norm clip 1.0 +
  AdamW, the same optax transformation on both sides), no remat, fp32; tokens/s counts all
  prompt + response tokens; FLOP/s from ``benchmarks.train_step.useful_flops`` (analytic, the same
  count for both sides) against the fp32 matmul peak (``benchmarks.train_step.matmul_peak``)
  measured before and after the updates in this run (the larger kept, as train_step.py does).
  - ours: M-step (``make_m_step``, GSPO loss) and E-step (``make_e_step``, seq_clip value loss)
    from ``tempo_jax.train.updates``, built as in ``benchmarks/train_step.py``: one mini-batch of
    all rows, micro-batches of ``--micro-tokens`` // seq rows (32 rows at the default 8192),
    gradients accumulated, one optimizer step; the jitted update with the state donated.
  - Tunix: its PPO actor and critic updates as ``PPOLearner`` configures and drives them, minus the
    rollout: a ``tunix.rl.trainer.Trainer`` (the class ``RLCluster`` builds for actor and critic)
    with the loss from Tunix's registry (policy loss ``"ppo"`` / value loss ``"ppo"``), the model
    input function ``PPOLearner.__init__`` installs, ``is_managed_externally = True`` (as
    ``RLLearner`` sets), and ``Trainer.train([example])`` on one ``ppo_learner.TrainExample`` of
    all rows = one jitted ``nnx.value_and_grad`` + optimizer step (no gradient accumulation: Tunix's
    reference setting) plus its metric buffering. The critic is the actor's copy with the LM head
    replaced by ``nnx.Linear(hidden, 1)`` (``tunix.rl.utils.create_critic_model``; the tied Qwen3
    is first given an untied head so that function applies), its head weight set to ours.
    Not timed: rollout, reference/old log-probs, values, GAE (identical inputs are given).
  The losses differ (GSPO vs PPO token clip; seq_clip vs PPO clipped value loss) but both are
  elementwise over [rows, response] next to the forward/backward they need.

Goals stated by the project (reported, not tuned to): sampler >= 2x Tunix; M-step and E-step each
>= 1.25x Tunix's actor / critic update and >= 55% of the matmul peak. Judged on medians of the
per-repeat ratios (ours / Tunix in the same round) and on median times.

``--quick``: a 2.6M-parameter model (``benchmarks.rollout.MODELS["small"]`` with 2 layers and a
4096-token vocabulary) and tiny shapes, a smoke run in under 2 minutes, written to
``$TMPDIR/peers_cpu_quick.json``. Results: ``benchmarks/results/peers_cpu.json`` (``--out``), with the
command, versions, host, XLA_FLAGS and the load average at the start, per repeat and at the end.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.metadata
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from tunix.generate import sampler as tunix_sampler
from tunix.models.qwen3 import model as tunix_qwen3
from tunix.models.qwen3 import params as tunix_qwen3_params
from tunix.rl import function_registry as tunix_registry
from tunix.rl import trainer as tunix_rl_trainer
from tunix.rl import utils as tunix_rl_utils
from tunix.rl.ppo import ppo_learner
from tunix.sft import peft_trainer

from benchmarks import train_step
from benchmarks.rollout import MODELS, build_models
from benchmarks.sampler import HF_CONFIG, PROMPT_LEN, host_info, load, run_ours, versions, write_result
from benchmarks.train_step import matmul_peak, useful_flops
from tempo_jax.models.critic import critic_from_actor
from tempo_jax.models.decoder import CausalLM
from tempo_jax.train.optim import make_optimizer
from tempo_jax.train.state import create_train_state
from tempo_jax.train.updates import ACTOR_KEYS, CRITIC_KEYS, UpdateSpec, make_e_step, make_m_step

# --quick: benchmarks.rollout's 7.3M "small" model cut to 2 layers and a 4096-token vocabulary (compiles fast)
QUICK_MODEL = dict(MODELS["small"], num_hidden_layers=2, vocab_size=4096)
RESULTS = ROOT / "benchmarks" / "results" / "peers_cpu.json"
PAD = 0  # pad id on both sides; prompts and responses draw ids from 1..vocab-1
LR = 1e-6


# ----------------------------------------------------------------------------------------------
# Models


def tunix_config(hf: dict) -> tunix_qwen3.ModelConfig:
    """Tunix's Qwen3 config for an HF Qwen3 config dict (Tunix ignores rope_theta: it must be 1e6)."""
    if float(hf["rope_theta"]) != 1e6:
        raise ValueError(f"Tunix's Qwen3 hard-codes rope_theta 1e6; the checkpoint has {hf['rope_theta']}")
    return tunix_qwen3.ModelConfig(
        num_layers=hf["num_hidden_layers"],
        vocab_size=hf["vocab_size"],
        embed_dim=hf["hidden_size"],
        hidden_dim=hf["intermediate_size"],
        num_heads=hf["num_attention_heads"],
        head_dim=hf["head_dim"],
        num_kv_heads=hf["num_key_value_heads"],
        rope_theta=int(hf["rope_theta"]),
        norm_eps=hf["rms_norm_eps"],
        use_tied_embedding=hf["tie_word_embeddings"],
    )


def tunix_logits(model: nnx.Module, tokens: jax.Array) -> jax.Array:
    """Full-sequence logits of Tunix's Qwen3 for unpadded rows (causal mask, positions 0..L-1)."""
    b, length = tokens.shape
    positions = jnp.broadcast_to(jnp.arange(length), (b, length))
    mask = jnp.broadcast_to(jnp.tril(jnp.ones((length, length), bool)), (b, length, length))
    logits, _ = model(tokens, positions=positions, cache=None, attention_mask=mask)
    return logits


def parity(ours: CausalLM, tunix_model: nnx.Module, vocab: int) -> dict:
    """Max |logit difference| on 2 rows x 32 random tokens: both sides hold the same weights."""
    tokens = jnp.asarray(np.random.default_rng(123).integers(1, vocab, (2, 32)), jnp.int32)
    a = np.asarray(ours(tokens)[0])
    b = np.asarray(tunix_logits(tunix_model, tokens))
    diff = float(np.max(np.abs(a - b)))
    return dict(
        max_abs_logit_diff=diff,
        logit_scale=float(np.max(np.abs(a))),
        ok=bool(diff < 1e-3 * max(1.0, float(np.abs(a).max()))),
    )


def tunix_critic(actor: nnx.Module, cfg: tunix_qwen3.ModelConfig, head_kernel: np.ndarray) -> nnx.Module:
    """Tunix's critic: ``create_critic_model`` on the actor (LM head -> Linear(hidden, 1)). A tied
    Qwen3 has no ``lm_head`` attribute, so the backbone is first moved into an untied Qwen3."""
    if cfg.use_tied_embedding:
        untied = nnx.eval_shape(
            lambda: tunix_qwen3.Qwen3(dataclasses.replace(cfg, use_tied_embedding=False), rngs=nnx.Rngs(0))
        )
        untied.lm_head = nnx.Linear(cfg.embed_dim, 1, use_bias=False, rngs=nnx.Rngs(0))  # placeholder
        nnx.update(untied, nnx.state(actor))
        actor = untied
    critic = tunix_rl_utils.create_critic_model(actor)
    critic.lm_head.kernel[...] = jnp.asarray(head_kernel)
    return critic


class IdTokenizer:
    """The minimal tokenizer interface Tunix's Sampler accepts: text is space-separated token ids."""

    def __init__(self, eos: int, pad: int = PAD):
        self._eos, self._pad = eos, pad

    def encode(self, text: str, **_: Any) -> list[int]:
        return [int(t) for t in text.split()]

    def decode(self, ids: Sequence[int], **_: Any) -> str:
        return " ".join(str(int(i)) for i in ids)

    def bos_id(self) -> None:
        return None

    def eos_id(self) -> int:
        return self._eos

    def pad_id(self) -> int:
        return self._pad


# ----------------------------------------------------------------------------------------------
# Statistics


def spread(xs: Sequence[float], nd: int = 1) -> dict:
    return dict(min=round(min(xs), nd), median=round(statistics.median(xs), nd), max=round(max(xs), nd))


def alternate(
    pair: dict[str, Callable[[int], float]], repeats: int, label: str, work: float, unit: str, warmups: int = 1
) -> dict[str, Any]:
    """``warmups`` untimed calls per side, then ``repeats`` rounds in the order of ``pair``; each call
    returns seconds; ``work`` / seconds is the throughput. Per-round ratio: first side's throughput / second's."""
    warm: dict[str, list[float]] = {}
    for name, fn in pair.items():
        warm[name] = [fn(1000 + i) for i in range(warmups)]
        print(f"  {label}: {name} warm-up " + ", ".join(f"{w:.2f} s" for w in warm[name]), flush=True)
    secs: dict[str, list[float]] = {name: [] for name in pair}
    loads = []
    for r in range(repeats):
        for name, fn in pair.items():
            secs[name].append(fn(r + 1))
        loads.append(load())
        print(
            f"  {label} repeat {r}: "
            + "   ".join(f"{name} {work / secs[name][-1]:8.1f} {unit}" for name in pair)
            + f"   (load {loads[-1][0]})",
            flush=True,
        )
    a, b = list(pair)
    ratios = [sb / sa for sa, sb in zip(secs[a], secs[b])]
    return dict(
        **{
            name: dict(
                seconds=[round(s, 3) for s in secs[name]],
                rate=spread([work / s for s in secs[name]]),
                warmup_calls_s=[round(w, 2) for w in warm[name]],
                compile_s_est=round(sum(warm[name]) - len(warm[name]) * statistics.median(secs[name]), 2),
            )
            for name in pair
        },
        ratio_per_repeat=[round(x, 3) for x in ratios],
        ratio=spread(ratios, 3),
        loadavg_per_repeat=loads,
    )


# ----------------------------------------------------------------------------------------------
# Sampler


def sampler_section(
    ours: CausalLM, tunix_model: nnx.Module, hf: dict, batches: list[int], new_tokens: int, repeats: int
) -> list[dict]:
    vocab = hf["vocab_size"]
    cache = tunix_sampler.CacheConfig(
        cache_size=PROMPT_LEN + new_tokens,
        num_layers=hf["num_hidden_layers"],
        num_kv_heads=hf["num_key_value_heads"],
        head_dim=hf["head_dim"],
    )
    tunix = tunix_sampler.Sampler(transformer=tunix_model, tokenizer=IdTokenizer(eos=vocab), cache_config=cache)
    rows = []
    for batch in batches:
        prompts = np.random.default_rng(0).integers(1, vocab, size=(batch, PROMPT_LEN))
        texts = [" ".join(map(str, p)) for p in prompts]

        def run_tunix(seed: int, texts: list[str] = texts) -> float:
            t0 = time.perf_counter()
            out = tunix(
                texts,
                max_generation_steps=new_tokens,
                max_prompt_length=PROMPT_LEN,
                temperature=1.0,
                top_p=1.0,
                top_k=None,
                seed=seed,
                eos_tokens=[vocab],
            )
            dt = time.perf_counter() - t0
            assert all(len(t) == new_tokens for t in out.tokens), [len(t) for t in out.tokens]
            return dt

        print(f"sampler, batch {batch}, {new_tokens} new tokens:", flush=True)
        res = alternate(
            {"ours": lambda s, p=prompts: run_ours(ours, p, new_tokens, seed=s), "tunix": run_tunix},
            repeats,
            f"batch {batch}",
            batch * new_tokens,
            "tok/s",
        )
        rows.append(
            dict(batch=batch, prompt_len=PROMPT_LEN, new_tokens=new_tokens, tunix_cache_size=cache.cache_size, **res)
        )
        r = rows[-1]
        print(
            f"  => tok/s ours {r['ours']['rate']}, Tunix {r['tunix']['rate']}, ratio ours/Tunix {r['ratio']}",
            flush=True,
        )
    return rows


# ----------------------------------------------------------------------------------------------
# Updates


def make_batch(rows: int, plen: int, tlen: int, vocab: int) -> dict[str, jax.Array]:
    """train_step.py's batch with token ids from 1 (Tunix masks id 0, its pad id, as padding)."""
    return train_step.make_batch(rows, plen, tlen, vocab, low=1)


def tunix_example(batch: dict[str, jax.Array]) -> ppo_learner.TrainExample:
    """The same rollouts as the TrainExample PPOLearner._generate_and_compute_advantage builds."""
    return ppo_learner.TrainExample(
        prompt_ids=batch["prompt_tokens"],
        prompt_mask=batch["prompt_valid"].astype(jnp.int32),
        completion_ids=batch["response_tokens"],
        completion_mask=batch["response_mask"],
        advantages=batch["advantages"],
        ref_per_token_logps=None,
        old_per_token_logps=batch["old_logprobs"],
        returns=batch["returns"],
        old_values=batch["values"],
    )


def tunix_trainer(model: nnx.Module, role: str, algo: ppo_learner.PPOConfig, eos: int) -> tunix_rl_trainer.Trainer:
    """An actor or critic Trainer configured as RLCluster + PPOLearner configure theirs."""
    trainer = tunix_rl_trainer.Trainer(
        model=model,
        optimizer=make_optimizer(LR),
        training_config=peft_trainer.TrainingConfig(
            eval_every_n_steps=10**9, metrics_prefix=role, pbar_description=None
        ),
        custom_checkpoint_metadata_fn=lambda: {"role": role},
    )
    trainer.is_managed_externally = True
    if role == "actor":
        trainer.with_loss_fn(tunix_registry.default_registry.get("policy_loss_fn", algo.policy_loss_fn), has_aux=True)
        trainer.with_gen_model_input_fn(
            lambda x: {"train_example": x, "algo_config": algo, "pad_id": PAD, "eos_id": eos}
        )
        trainer.with_rl_metrics_to_log({"pg_clipfrac": np.mean})
    else:
        trainer.with_loss_fn(tunix_registry.default_registry.get("value_loss_fn", algo.value_loss_fn), has_aux=True)
        trainer.with_gen_model_input_fn(
            lambda x: {"train_example": x, "clip_range_value": algo.clip_range_value, "pad_id": PAD, "eos_id": eos}
        )
        trainer.with_rl_metrics_to_log({"vpred_mean": np.mean, "vf_clipfrac": np.mean})
    return trainer


def updates_section(
    ours: CausalLM,
    tunix_actor: nnx.Module,
    tcfg: tunix_qwen3.ModelConfig,
    rows: int,
    tlen: int,
    micro_tokens: int,
    repeats: int,
) -> dict:
    cfg = ours.cfg
    vocab = cfg.vocab_size
    seq = PROMPT_LEN + tlen
    batch = make_batch(rows, PROMPT_LEN, tlen, vocab)
    example = tunix_example(batch)
    micro = max(1, min(rows, micro_tokens // seq))
    while rows % micro:
        micro -= 1
    spec = UpdateSpec(mini_batch_rows=rows, micro_rows=micro, shuffle=False)
    algo = ppo_learner.PPOConfig(beta=0.0)
    critic = critic_from_actor(ours)  # both critics from the untrained actors
    tunix_critic_model = tunix_critic(tunix_actor, tcfg, np.asarray(critic.score.kernel[...]))
    out: dict[str, Any] = dict(
        rows=rows, prompt_len=PROMPT_LEN, response_len=tlen, ours_micro_rows=micro, tunix_micro_rows=rows
    )
    peak_before = matmul_peak()
    print(f"fp32 matmul peak (2048^2): {peak_before / 1e9:.1f} GFLOP/s", flush=True)

    sections = (
        ("m_step_vs_actor", make_m_step, ours, ACTOR_KEYS, "actor", dict(clip_low=3e-4, clip_high=5e-4), "gspo"),
        ("e_step_vs_critic", make_e_step, critic, CRITIC_KEYS, "critic", dict(cliprange_value=0.1), "seq_clip"),
    )
    for name, make, model, keys, role, extra, loss in sections:
        tx = make_optimizer(LR)
        graphdef, state0 = create_train_state(model, tx)
        fn = make(graphdef, tx, spec, loss, **extra)
        sub = {k: batch[k] for k in keys}
        holder = {"state": state0}

        def run_ours_update(seed: int, fn=fn, sub=sub, holder=holder) -> float:
            t0 = time.perf_counter()
            holder["state"], summary, _ = fn(holder["state"], sub, jax.random.key(seed))
            jax.block_until_ready((holder["state"], summary))
            return time.perf_counter() - t0

        tmodel = tunix_actor if role == "actor" else tunix_critic_model
        trainer = tunix_trainer(tmodel, role, algo, eos=vocab)

        def run_tunix_update(seed: int, trainer=trainer) -> float:
            del seed  # the update is deterministic given the example
            before = trainer.train_steps
            t0 = time.perf_counter()
            trainer.train([example])
            jax.block_until_ready(nnx.state(trainer.model))
            dt = time.perf_counter() - t0
            assert trainer.train_steps == before + 1, (before, trainer.train_steps)
            return dt

        print(
            f"{name}: ours {name.split('_vs_')[0]} ({loss}, micro {micro} rows) vs Tunix PPO {role} update "
            f"({rows} rows, no accumulation), {rows} x {seq} tokens:",
            flush=True,
        )
        # Two warm-up calls: on both sides the second call compiles again (the first call's state
        # holds uncommitted scalars -- step / optimizer counts -- its output committed ones).
        pair = {"ours": run_ours_update, "tunix": run_tunix_update}
        res = alternate(pair, repeats, name, rows * seq, "tok/s", warmups=2)
        res["useful_flops"] = useful_flops(cfg, rows, seq, lm_head=role == "actor")
        res["losses"] = dict(ours=loss, tunix=f"ppo {'policy' if role == 'actor' else 'value'} loss")
        out[name] = res
        print(f"  => tok/s ours {res['ours']['rate']}, Tunix {res['tunix']['rate']}, ratio {res['ratio']}", flush=True)
        del trainer, holder
    peak_after = matmul_peak()
    peak = max(peak_before, peak_after)
    out["matmul_peak_gflops"] = {
        k: round(v / 1e9, 1) for k, v in (("before", peak_before), ("after", peak_after), ("used", peak))
    }
    for name, *_ in sections:
        res = out[name]
        for side in ("ours", "tunix"):
            s = res[side]["seconds"]
            res[side]["gflops"] = spread([res["useful_flops"] / x / 1e9 for x in s])
            res[side]["fraction_of_peak"] = dict(
                at_median_time=round(res["useful_flops"] / statistics.median(s) / peak, 3),
                at_best_time=round(res["useful_flops"] / min(s) / peak, 3),
            )
    return out


# ----------------------------------------------------------------------------------------------


def goals(result: dict) -> dict:
    g: dict[str, Any] = {}
    for row in result["sampler"]:
        r = row["ratio"]["median"]
        g[f"sampler_b{row['batch']}_ratio_ge_2"] = dict(value=r, met=r >= 2.0)
    for name, label in (("m_step_vs_actor", "m_step"), ("e_step_vs_critic", "e_step")):
        res = result["updates"].get(name)
        if res is None:
            continue
        r = res["ratio"]["median"]
        f = res["ours"]["fraction_of_peak"]["at_median_time"]
        g[f"{label}_ratio_ge_1.25"] = dict(value=r, met=r >= 1.25)
        g[f"{label}_fraction_of_peak_ge_0.55"] = dict(value=f, met=f >= 0.55)
    return g


def print_table(result: dict) -> None:
    print(
        "\n| measurement | ours (min / median / max) | Tunix (min / median / max) | ours/Tunix (min / median / max) |"
    )
    print("|---|---|---|---|")
    fmt = lambda d: f"{d['min']} / {d['median']} / {d['max']}"
    for row in result["sampler"]:
        cells = [fmt(row["ours"]["rate"]), fmt(row["tunix"]["rate"]), fmt(row["ratio"])]
        print(f"| sampler b{row['batch']}, tok/s | " + " | ".join(cells) + " |")
    u = result["updates"]
    if not u:
        print("\ngoals: " + json.dumps(result["goals"]))
        return
    for name, label in (("m_step_vs_actor", "M-step vs PPO actor"), ("e_step_vs_critic", "E-step vs PPO critic")):
        if name in u:
            res = u[name]
            cells = [fmt(res["ours"]["rate"]), fmt(res["tunix"]["rate"]), fmt(res["ratio"])]
            print(f"| {label}, tok/s | " + " | ".join(cells) + " |")
            print(
                f"| {label}, % of peak (median time) | {res['ours']['fraction_of_peak']['at_median_time']:.1%} | "
                f"{res['tunix']['fraction_of_peak']['at_median_time']:.1%} | |"
            )
    print(f"\nfp32 matmul peak: {u['matmul_peak_gflops']} GFLOP/s; goals: " + json.dumps(result["goals"]))


def git_state() -> dict:
    """The project's commit and whether tracked files differ from it (the code both runs import)."""

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True).stdout.strip()

    return dict(commit=git("rev-parse", "HEAD"), dirty=bool(git("status", "--porcelain", "--untracked-files=no")))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2.6M model and tiny shapes: a smoke run")
    parser.add_argument("--batches", type=int, nargs="+", default=None, help="sampler batches (default 16 64)")
    parser.add_argument("--new-tokens", type=int, default=None, help="default 128")
    parser.add_argument("--rows", type=int, default=None, help="rollouts per update (default 64)")
    parser.add_argument("--response", type=int, default=None, help="response tokens per rollout (default 128)")
    parser.add_argument("--micro-tokens", type=int, default=8192, help="ours: micro-batch tokens (train_step.py)")
    parser.add_argument("--skip-updates", action="store_true")
    parser.add_argument("--out", default=None, help=f"default {RESULTS} (quick: $TMPDIR/peers_cpu_quick.json)")
    args = parser.parse_args(argv)
    hf = QUICK_MODEL if args.quick else HF_CONFIG
    batches = args.batches or ([4] if args.quick else [16, 64])
    new_tokens = args.new_tokens or (16 if args.quick else 128)
    rows = args.rows or (8 if args.quick else 64)
    response = args.response or (16 if args.quick else 128)
    default_out = os.path.join(tempfile.gettempdir(), "peers_cpu_quick.json") if args.quick else str(RESULTS)
    out_path = args.out or default_out

    result: dict[str, Any] = dict(
        benchmark="tempo_jax vs Google Tunix 0.1.7: sampler and RL updates on identical weights, alternating repeats",
        command=" ".join(
            ["benchmarks/peers/.venv/bin/python", "benchmarks/peers/run.py"]
            + (argv if argv is not None else sys.argv[1:])
        ),
        date=datetime.datetime.now().isoformat(timespec="seconds"),
        host=host_info(),
        git=git_state(),
        versions=dict(
            versions(),
            optax=importlib.metadata.version("optax"),
            google_tunix=importlib.metadata.version("google-tunix"),
            safetensors=importlib.metadata.version("safetensors"),
        ),
        xla_flags=os.environ.get("XLA_FLAGS", ""),
        devices=[str(d) for d in jax.devices()],
        loadavg_start=load(),
    )
    with tempfile.TemporaryDirectory() as workdir:
        models = build_models(workdir, hf)
        n_params = sum(p.numel() for p in models.hf.parameters())
        del models.hf  # torch is not used past this point
        ours = models.ours
        tcfg = tunix_config(hf)
        tunix_model = tunix_qwen3_params.create_model_from_safe_tensors(workdir, tcfg)
    result["model"] = dict(hf, parameters=n_params, dtype="float32", prompt_len=PROMPT_LEN)
    result["parity"] = parity(ours, tunix_model, hf["vocab_size"])
    print(f"model: Qwen3-style, {n_params / 1e6:.1f}M parameters, fp32; parity {result['parity']}", flush=True)
    if not result["parity"]["ok"]:
        raise SystemExit("Tunix and tempo_jax disagree on the same weights: not comparing")

    result["sampler"] = sampler_section(ours, tunix_model, hf, batches, new_tokens, args.repeats)
    result["updates"] = {}
    if not args.skip_updates:
        result["updates"] = updates_section(ours, tunix_model, tcfg, rows, response, args.micro_tokens, args.repeats)
    result["goals"] = goals(result)
    result["loadavg_end"] = load()
    print_table(result)
    write_result(result, out_path)
    return result


if __name__ == "__main__":
    main()
