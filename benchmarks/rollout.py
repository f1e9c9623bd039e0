"""Rollout throughput under per-row length budgets: useful generated tokens per second for a batch
of rows whose budgets follow a long-tailed distribution, ours against transformers on identical
weights, in one process and one run.

Workload (defined by the budgets alone): ``--prompts`` prompts of ``--prompt-len`` random tokens
x ``--n`` samples = R rows; row r gets a budget b_r drawn once (``--seed``) from a lognormal
(``--sigma``) whose mean, after clipping to [1, ``--cap``], is ``--mean-frac`` x the cap. EOS is
disabled on both sides (the checkpoint has no eos id; ours: ``stop_ids=()``, transformers:
``eos_token_id=None``), so every row generates exactly its budget whatever the weights. Sampling
at T = 1 (no top-k / top-p). Same budgets in every repeat: no recompilation after the warm-up.

Engines (:data:`ENGINES`, ``--engines``):

* ``static``: :func:`tempo_jax.sampling.generate.generate` with ``max_new_tokens=budgets`` (one per
  row): all R rows in one batch (R slots); a row stops at its budget and its slot idles until the
  longest row finishes;
* ``continuous``: :func:`tempo_jax.sampling.continuous.generate_continuous`, ``--slots`` decode slots
  (default R / 4, so a quarter of static's KV cache) refilled with the next pending row as rows
  stop; the same tokens as ``static`` (per-row keys);
* ``transformers``: ``generate`` with ``num_return_sequences=n`` and a :class:`RowBudgets`
  stopping criterion (row r finished after b_r new tokens); finished rows also keep their slot
  until every row has stopped.

Another engine plugs in as one more :class:`Engine` in :data:`ENGINES`: ``run(models, workload,
seed) -> EngineRun`` and the workload of its untimed warm-up call.

Per engine, over ``--repeats`` alternating repeats after one warm-up call each (ours: the full
workload, which compiles its programs; transformers: a small one, allocator and kernels): useful tokens/s
(sum of budgets / wall time of the whole call, prefill included), slot utilisation (sum of budgets
/ slot-steps computed: slots x decode steps, plus prefilled rows for continuous), min / median /
max; and per repeat the ratio of each engine's useful tokens/s to transformers' and to static's
(min / median / max). JSON with the command in ``benchmarks/results/rollout_<tag>.json``.

    python benchmarks/rollout.py [--prompts 64] [--n 4] [--cap 128] [--mean-frac 0.3] [--sigma 1.0]
        [--model small] [--engines static continuous transformers] [--slots 0] [--repeats 3] [--tag cpu]

The target shape is 256 rows with a cap of 1,024 new tokens on a real model (``--cap 1024
--model sampler`` here); the defaults keep the 256 rows and the budgets' distribution but take a
7.3M-parameter model and a cap of 128 so that a run takes about 3 minutes on 2 CPU cores
(transformers' side dominates: its per-step cost grows with the cache it concatenates).
PyTorch's OpenMP threads wait passively, as in ``benchmarks/sampler.py`` (``--omp-wait-policy``).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import math
import os
import pathlib
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
_POLICY = sys.argv[sys.argv.index("--omp-wait-policy") + 1] if "--omp-wait-policy" in sys.argv[:-1] else "PASSIVE"
if _POLICY.lower() != "default":
    os.environ["OMP_WAIT_POLICY"] = _POLICY  # read once, when torch's OpenMP runtime starts

import jax
import numpy as np
import torch
import transformers

from benchmarks.sampler import HF_CONFIG, hf_sample, host_info, load, versions, write_result
from tempo_jax.models.hf_io import from_hf
from tempo_jax.sampling import continuous
from tempo_jax.sampling import generate as gen
from tempo_jax.sampling.methods import Sampling

MODELS = {
    # benchmarks/sampler.py's 41.6M-parameter Qwen3-style decoder (hidden 512, 8 layers, vocab 32000)
    "sampler": HF_CONFIG,
    # a 7.3M-parameter one of the same family (hidden 256, 4 layers, vocab 16000), for quick runs
    "small": dict(
        HF_CONFIG,
        vocab_size=16000,
        hidden_size=256,
        intermediate_size=704,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
    ),
}


@dataclasses.dataclass(frozen=True)
class Workload:
    prompts: np.ndarray  # [P, L] token ids (no padding: every prompt is L tokens)
    n: int  # samples per prompt; row i*n+j = sample j of prompt i
    budgets: np.ndarray  # [P*n] new-token budget of each row
    slots: int = 0  # the continuous engine's decode slots (0: its default, a quarter of the rows)

    @property
    def rows(self) -> int:
        return len(self.budgets)

    @property
    def cap(self) -> int:
        return int(self.budgets.max())

    @property
    def useful(self) -> int:
        return int(self.budgets.sum())


@dataclasses.dataclass(frozen=True)
class EngineRun:
    seconds: float  # wall time of the whole call
    decode_steps: int  # token positions every slot was carried through
    slot_steps: int  # slot x token positions computed (slot utilisation = useful tokens / slot_steps)


@dataclasses.dataclass
class Models:
    hf: Any
    ours: Any


def clipped_lognormal_mean(mu: float, sigma: float, cap: float) -> float:
    """E[min(X, cap)] for X ~ lognormal(mu, sigma)."""
    z = (math.log(cap) - mu) / sigma
    return math.exp(mu + sigma**2 / 2) * _normal_cdf(z - sigma) + cap * (1 - _normal_cdf(z))


def _normal_cdf(z: float) -> float:
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def draw_budgets(rows: int, cap: int, mean_frac: float, sigma: float, seed: int) -> np.ndarray:
    """Budgets from a lognormal whose mean after clipping to [1, cap] is ``mean_frac`` x cap: mu by
    bisection on the clipped mean, then one draw per row (rounded, clipped)."""
    target, lo, hi = mean_frac * cap, -10.0, math.log(cap) + 10.0
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if clipped_lognormal_mean(mid, sigma, cap) < target else (lo, mid)
    x = np.random.default_rng(seed).lognormal((lo + hi) / 2, sigma, size=rows)
    return np.clip(np.rint(x), 1, cap).astype(np.int32)


def build_models(workdir: str, hf_config: dict) -> Models:
    """A random-weight checkpoint saved with ``save_pretrained`` and loaded by both sides."""
    torch.manual_seed(0)
    hf_model = transformers.AutoModelForCausalLM.from_config(transformers.Qwen3Config(**hf_config)).eval()
    hf_model.generation_config.eos_token_id = None
    hf_model.generation_config.pad_token_id = 0
    hf_model.save_pretrained(workdir)
    return Models(hf=hf_model, ours=from_hf(workdir))


def ours_args(models: Models, work: Workload, seed: int) -> dict:
    """The workload as our engines' arguments: budgets per row, T = 1, no stop ids."""
    return dict(
        model=models.ours,
        prompts=work.prompts.tolist(),
        n=work.n,
        max_new_tokens=work.budgets,
        method=Sampling(temperature=1.0),
        stop_ids=(),
        pad_id=0,
        rng=jax.random.key(seed),
    )


def run_static(models: Models, work: Workload, seed: int) -> EngineRun:
    t0 = time.perf_counter()
    out = gen.generate(**ours_args(models, work, seed))
    dt = time.perf_counter() - t0
    np.testing.assert_array_equal(out.lengths, work.budgets)
    # the decode loop runs until the longest row is done (no EOS here): its length is the step count
    steps = int(out.lengths.max())
    return EngineRun(seconds=dt, decode_steps=steps, slot_steps=work.rows * steps)


def run_continuous(models: Models, work: Workload, seed: int) -> EngineRun:
    """Continuous batching over ``work.slots`` slots: slot-steps are the decode loop's steps x
    slots plus one per prefilled row (inserts padded to a power of two included)."""
    t0 = time.perf_counter()
    out, stats = continuous.generate_continuous(**ours_args(models, work, seed), slots=work.slots or None)
    dt = time.perf_counter() - t0
    np.testing.assert_array_equal(out.lengths, work.budgets)
    return EngineRun(
        seconds=dt,
        decode_steps=stats.decode_steps,
        slot_steps=stats.slot_steps + stats.insert_rows,
    )


class RowBudgets(transformers.StoppingCriteria):
    """Row r is finished once it has ``budgets[r]`` new tokens (rows in ``generate``'s order:
    ``num_return_sequences`` repeats each prompt n times, row i*n+j = sample j of prompt i)."""

    def __init__(self, prompt_len: int, budgets: np.ndarray):
        self.prompt_len = prompt_len
        self.budgets = torch.from_numpy(budgets.astype(np.int64))

    def __call__(self, input_ids, scores, **kwargs):
        return (input_ids.shape[1] - self.prompt_len) >= self.budgets.to(input_ids.device)


def run_transformers(models: Models, work: Workload, seed: int) -> EngineRun:
    plen = work.prompts.shape[1]
    out, dt = hf_sample(
        models.hf,
        work.prompts,
        work.cap,
        seed,
        num_return_sequences=work.n,
        stopping_criteria=transformers.StoppingCriteriaList([RowBudgets(plen, work.budgets)]),
    )
    steps = out.shape[1] - plen
    assert out.shape[0] == work.rows and steps == work.cap, (out.shape, work.cap)
    return EngineRun(seconds=dt, decode_steps=steps, slot_steps=work.rows * steps)


@dataclasses.dataclass(frozen=True)
class Engine:
    run: Callable[[Models, Workload, int], EngineRun]
    warmup: Callable[[Workload], Workload]  # the workload of the untimed first call


def same_shapes(work: Workload) -> Workload:
    """The workload itself: a compiling engine compiles exactly the programs the repeats run."""
    return work


def tiny(work: Workload) -> Workload:
    """Two short prompts, 4 new tokens: warms an eager engine's allocator and kernels."""
    return Workload(prompts=work.prompts[:2, :8], n=1, budgets=np.full(2, 4, np.int32))


ENGINES: dict[str, Engine] = {
    "static": Engine(run_static, same_shapes),
    "continuous": Engine(run_continuous, same_shapes),
    "transformers": Engine(run_transformers, tiny),
}
BASELINES = ("transformers", "static")  # per-repeat speed ratios are reported against each


def spread(values: list[float], digits: int = 1) -> dict:
    return dict(
        min=round(min(values), digits), median=round(statistics.median(values), digits), max=round(max(values), digits)
    )


def compare(models: Models, work: Workload, engines: list[str], repeats: int) -> dict:
    """One warm-up call per engine (compiles ours), then ``repeats`` rounds over the engines in turn."""
    warmup = {name: round(ENGINES[name].run(models, ENGINES[name].warmup(work), 0).seconds, 2) for name in engines}
    print(f"  warm-up (s; ours: compile included): {warmup}", flush=True)
    runs: dict[str, list[EngineRun]] = {name: [] for name in engines}
    loads = []
    for r in range(repeats):
        for name in engines:
            runs[name].append(ENGINES[name].run(models, work, r + 1))
        loads.append(load())
        print(
            f"  repeat {r}: "
            + "   ".join(f"{name} {work.useful / runs[name][-1].seconds:7.1f} tok/s" for name in engines)
            + f"   (load {loads[-1][0]})",
            flush=True,
        )
    result: dict = dict(warmup_s=warmup, loadavg_per_repeat=loads, engines={})
    for name in engines:
        tok_s = [work.useful / e.seconds for e in runs[name]]
        util = [work.useful / e.slot_steps for e in runs[name]]
        result["engines"][name] = dict(
            useful_tok_s=spread(tok_s),
            slot_utilisation=spread(util, 3),
            decode_steps=[e.decode_steps for e in runs[name]],
            runs_s=[round(e.seconds, 3) for e in runs[name]],
        )
    for baseline in BASELINES:
        if baseline in engines:
            base = runs[baseline]
            result["ratio_vs_" + baseline] = {
                name: spread([b.seconds / e.seconds for e, b in zip(runs[name], base)], 3)
                for name in engines
                if name != baseline
            }
    return result


def budget_summary(budgets: np.ndarray, cap: int) -> dict:
    return dict(
        rows=len(budgets),
        cap=cap,
        sum=int(budgets.sum()),
        mean=round(float(budgets.mean()), 1),
        mean_over_cap=round(float(budgets.mean()) / cap, 3),
        median=float(np.median(budgets)),
        p90=float(np.percentile(budgets, 90)),
        max=int(budgets.max()),
        at_cap=int((budgets == cap).sum()),
    )


def parse(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--n", type=int, default=4, help="samples per prompt (rows = prompts x n)")
    parser.add_argument("--prompt-len", type=int, default=32)
    parser.add_argument("--cap", type=int, default=128, help="largest budget (new tokens)")
    parser.add_argument("--mean-frac", type=float, default=0.3, help="mean budget / cap")
    parser.add_argument("--sigma", type=float, default=1.0, help="lognormal shape of the budgets")
    parser.add_argument("--seed", type=int, default=0, help="budgets and prompts")
    parser.add_argument("--model", choices=sorted(MODELS), default="small")
    parser.add_argument(
        "--engines", nargs="+", choices=sorted(ENGINES), default=["static", "continuous", "transformers"]
    )
    parser.add_argument("--slots", type=int, default=0, help="continuous engine's decode slots (0: rows / 4)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--omp-wait-policy", default="PASSIVE", help="PASSIVE | ACTIVE | default (for torch)")
    parser.add_argument("--tag", default="cpu", help="output benchmarks/results/rollout_<tag>.json")
    parser.add_argument("--out", default=None, help="output path (overrides --tag)")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.prompts < 1 or args.n < 1 or args.cap < 1:
        parser.error("--repeats, --prompts, --n and --cap must be >= 1")
    return args


def main(argv=None) -> dict:
    args = parse(argv)
    out_path = args.out or str(ROOT / "benchmarks" / "results" / f"rollout_{args.tag}.json")
    rows = args.prompts * args.n
    budgets = draw_budgets(rows, args.cap, args.mean_frac, args.sigma, args.seed)
    hf_config = MODELS[args.model]
    prompts = np.random.default_rng(args.seed).integers(
        1, hf_config["vocab_size"], size=(args.prompts, args.prompt_len)
    )
    work = Workload(prompts=prompts, n=args.n, budgets=budgets, slots=args.slots)
    result = dict(
        benchmark="rollout: useful tokens/s under per-row budgets, tempo_jax vs transformers, identical weights",
        command=" ".join(["python benchmarks/rollout.py", *(argv if argv is not None else sys.argv[1:])]),
        date=datetime.datetime.now().isoformat(timespec="seconds"),
        host=host_info(),
        versions=versions(),
        xla_flags=os.environ.get("XLA_FLAGS", ""),
        omp_wait_policy=os.environ.get("OMP_WAIT_POLICY", "default"),
        loadavg_start=load(),
        workload=dict(
            prompts=args.prompts,
            n=args.n,
            prompt_len=args.prompt_len,
            budgets=budget_summary(budgets, args.cap),
            distribution=f"lognormal, sigma {args.sigma}, clipped mean {args.mean_frac} x cap, seed {args.seed}",
            eos="disabled on both sides: every row generates exactly its budget",
            sampling="temperature 1.0, no top-k/top-p",
            continuous_slots=args.slots or continuous.default_slots(rows),
            static_slots=rows,
        ),
    )
    print(f"workload: {result['workload']['budgets']}", flush=True)
    with tempfile.TemporaryDirectory() as workdir:
        models = build_models(workdir, hf_config)
        n_params = sum(p.numel() for p in models.hf.parameters())
        assert n_params == models.ours.cfg.num_params(), (n_params, models.ours.cfg.num_params())
        result["model"] = dict(hf_config, name=args.model, parameters=n_params, dtype="float32")
        print(f"model {args.model}: Qwen3-style, {n_params / 1e6:.1f}M parameters, fp32", flush=True)
        result.update(compare(models, work, args.engines, args.repeats))
    for name, e in result["engines"].items():
        print(f"  {name}: useful tok/s {e['useful_tok_s']}, slot utilisation {e['slot_utilisation']}", flush=True)
    for baseline in BASELINES:
        for name, r in result.get("ratio_vs_" + baseline, {}).items():
            print(f"  {name} / {baseline}: {r}", flush=True)
    result["loadavg_end"] = load()
    write_result(result, out_path)
    return result


if __name__ == "__main__":
    main()
