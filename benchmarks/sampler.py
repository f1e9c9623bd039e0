"""Sampler throughput: ours (tempo_jax.sampling.generate) against transformers ``generate`` on
identical weights, in one process and one run.

Model: the 41.6M-parameter Qwen3-style decoder (hidden 512, 8 layers, 8 heads = 8 KV heads,
head_dim 64, intermediate 1368, tied embeddings, vocab 32000), fp32, random weights. Prompts: 32
random tokens per row. Sampling at T=1.0 (no top-k / top-p) with EOS disabled, so every run
generates exactly ``--new-tokens`` tokens per row; tokens/s counts generated tokens over the whole
call (prefill included) for both sides.

* ours vs transformers at each ``--batches`` size: a warm-up call each (ours: compile time is
  reported, not timed), then ``--repeats`` alternating ours / transformers runs; best of each;
* ours alone at ``--lengths`` new tokens (cost per generated token vs. the first length), with a
  bandwidth model of the growth (:func:`bandwidth_model`: the fitted cost of one cache slot read
  against the peak read bandwidth measured in the same run);
* a profile of one decode step at batch ``--profile-batch``: the pieces (backbone, attention over
  the cache, LM head, sampling) timed on their own over the cache windows the 128-token run
  uses, weighted by the steps run in each window, next to the measured phases of a real call
  (prefill, decode segments, cache resizes).

    python benchmarks/sampler.py [--batches 16 64] [--new-tokens 128] [--lengths 128 512 1024]
        [--length-batches 16 64] [--repeats 3] [--out benchmarks/results/sampler.json]

No XLA flags are set here (XLA_FLAGS from the environment, if any, is recorded in the JSON).
PyTorch's OpenMP threads wait passively (``OMP_WAIT_POLICY=PASSIVE``, set before torch loads;
``--omp-wait-policy default`` keeps libgomp's spinning): on these shared 2-core machines a spinning
waiter collapses transformers' throughput whenever another process runs (measured 55-96 tok/s
instead of ~450 at batch 64 under a load average of 4), while passive waiting keeps it near its
unloaded speed. The load average is recorded with every repeat.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import pathlib
import platform
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
_POLICY = sys.argv[sys.argv.index("--omp-wait-policy") + 1] if "--omp-wait-policy" in sys.argv[:-1] else "PASSIVE"
if _POLICY.lower() != "default":
    os.environ["OMP_WAIT_POLICY"] = _POLICY  # read once, when torch's OpenMP runtime starts

import jax
import jax.numpy as jnp
import numpy as np
import torch
import transformers
from flax import nnx

from tempo_jax.models.cache import init_layer_cache
from tempo_jax.models.hf_io import from_hf
from tempo_jax.models.layers import attend
from tempo_jax.sampling import generate as gen
from tempo_jax.sampling.methods import Sampling
from tempo_jax.sampling.padding import left_pad

PROMPT_LEN = 32
HF_CONFIG = dict(
    vocab_size=32000,
    hidden_size=512,
    intermediate_size=1368,
    num_hidden_layers=8,
    num_attention_heads=8,
    num_key_value_heads=8,
    head_dim=64,
    tie_word_embeddings=True,
    max_position_embeddings=4096,
    rope_theta=1_000_000.0,
    rms_norm_eps=1e-6,
    bos_token_id=None,
    eos_token_id=None,
    pad_token_id=0,
)


def build_model(workdir: str):
    torch.manual_seed(0)
    cfg = transformers.Qwen3Config(**HF_CONFIG)
    hf_model = transformers.AutoModelForCausalLM.from_config(cfg).eval()
    hf_model.generation_config.eos_token_id = None
    hf_model.generation_config.pad_token_id = 0
    hf_model.save_pretrained(workdir)
    ours = from_hf(workdir)
    return hf_model, ours


def prompts_for(batch: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, HF_CONFIG["vocab_size"], size=(batch, PROMPT_LEN))


def run_ours(model, prompts: np.ndarray, new_tokens: int, seed: int) -> float:
    t0 = time.perf_counter()
    out = gen.generate(
        model,
        prompts.tolist(),
        max_new_tokens=new_tokens,
        method=Sampling(temperature=1.0),
        stop_ids=(),
        pad_id=0,
        rng=jax.random.key(seed),
    )
    dt = time.perf_counter() - t0
    assert out.tokens.shape == (len(prompts), new_tokens) and (out.lengths == new_tokens).all()
    return dt


def hf_sample(hf_model, prompts: np.ndarray, new_tokens: int, seed: int, **extra):
    """transformers ``generate`` as our side samples: T = 1, no top-k/top-p, EOS off, pad 0;
    ``extra`` adds arguments (samples per prompt, stopping criteria). Returns (output ids, seconds)."""
    ids = torch.from_numpy(prompts.astype(np.int64))
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = hf_model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            do_sample=True,
            temperature=1.0,
            top_k=0,
            top_p=1.0,
            max_new_tokens=new_tokens,
            eos_token_id=None,
            pad_token_id=0,
            **extra,
        )
    return out, time.perf_counter() - t0


def run_hf(hf_model, prompts: np.ndarray, new_tokens: int, seed: int) -> float:
    out, dt = hf_sample(hf_model, prompts, new_tokens, seed)
    assert out.shape == (len(prompts), prompts.shape[1] + new_tokens), out.shape
    return dt


def write_result(result: dict, path: str) -> None:
    """Save a benchmark's result as indented JSON (its folder created) and say where."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=2)
    print(f"wrote {path}")


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def compare(hf_model, ours, batch: int, new_tokens: int, repeats: int) -> dict:
    prompts = prompts_for(batch)
    tokens = batch * new_tokens
    first = run_ours(ours, prompts, new_tokens, seed=0)  # compiles prefill, decode segments, resizes
    run_hf(hf_model, prompts[:, :8], 4, seed=0)  # transformers warm-up (allocator, kernels)
    ours_s, hf_s, loads = [], [], []
    for r in range(repeats):
        ours_s.append(run_ours(ours, prompts, new_tokens, seed=r + 1))
        hf_s.append(run_hf(hf_model, prompts, new_tokens, seed=r + 1))
        loads.append(load())
        print(
            f"  batch {batch} repeat {r}: ours {tokens / ours_s[-1]:7.1f} tok/s   transformers "
            f"{tokens / hf_s[-1]:7.1f} tok/s   (load {loads[-1][0]})",
            flush=True,
        )
    best_ours, best_hf = tokens / min(ours_s), tokens / min(hf_s)
    return dict(
        batch=batch,
        new_tokens=new_tokens,
        windows=gen.cache_windows(PROMPT_LEN, new_tokens),
        ours_tok_s=round(best_ours, 1),
        transformers_tok_s=round(best_hf, 1),
        ratio=round(best_ours / best_hf, 3),
        ours_runs_s=[round(x, 3) for x in ours_s],
        transformers_runs_s=[round(x, 3) for x in hf_s],
        ours_first_call_s=round(first, 2),
        ours_compile_s_est=round(first - min(ours_s), 2),
        loadavg_per_repeat=loads,
    )


def length_scan(ours, batch: int, lengths: list[int], repeats: int, peak_gb_s: float) -> dict:
    prompts = prompts_for(batch)
    rows = []
    for n in lengths:
        first = run_ours(ours, prompts, n, seed=0)
        times = [run_ours(ours, prompts, n, seed=r + 1) for r in range(max(1, repeats if n <= 256 else repeats - 1))]
        best = min(times)
        rows.append(
            dict(
                new_tokens=n,
                tok_s=round(batch * n / best, 1),
                ms_per_token=round(1e3 * best / (batch * n), 4),
                windows=gen.cache_windows(PROMPT_LEN, n),
                runs_s=[round(t, 3) for t in times],
                first_call_s=round(first, 2),
                compile_s_est=round(first - best, 2),
                loadavg=load(),
            )
        )
        print(
            f"  batch {batch}, {n} new tokens: {rows[-1]['tok_s']} tok/s ({rows[-1]['ms_per_token']} ms/token, "
            f"windows {rows[-1]['windows']}, compile ~{rows[-1]['compile_s_est']} s)",
            flush=True,
        )
    base = rows[0]["ms_per_token"]
    for r in rows:
        r["cost_per_token_vs_first"] = round(r["ms_per_token"] / base, 3)
        r["mean_context"] = PROMPT_LEN + (r["new_tokens"] - 1) / 2
        r["mean_slots_read"] = round(mean_slots_read(PROMPT_LEN, r["new_tokens"]), 1)
    out = dict(batch=batch, rows=rows)
    if len(rows) >= 2:
        out["bandwidth_model"] = bandwidth_model(ours.cfg, rows, peak_gb_s)
        m = out["bandwidth_model"]
        print(
            f"  batch {batch}: cost per token {m['ms_per_token_without_attention']} ms + "
            f"{m['us_per_token_per_slot_read']} us x slots read (KV streamed at {m['kv_stream_gb_s']} GB/s, "
            f"{m['kv_stream_fraction_of_peak']:.0%} of the measured {peak_gb_s} GB/s); an ideal sampler with the "
            f"same non-attention cost reading only the filled slots at peak: {m['ideal_ratio_last_vs_first']}x",
            flush=True,
        )
    return out


def mean_slots_read(prompt_len: int, new_tokens: int) -> float:
    """Cache slots attention reads per generated token: each decode step reads its whole window."""
    windows = gen.cache_windows(prompt_len, new_tokens)
    ends = [min(w - prompt_len + 1, new_tokens) for w in windows]
    total, start = 0, 1
    for w, end in zip(windows, ends):
        total += w * max(end - start, 0)
        start = max(start, end)
    return total / new_tokens


def bandwidth_model(cfg, rows: list[dict], peak_gb_s: float) -> dict:
    """Cost per token = constant + slope x slots read, fitted over the scan. Without recomputation
    the growth is linear and the slope is the time to stream one slot's K and V (all layers) from
    memory; compared with the peak read bandwidth measured in the same run, and with the ratio an
    ideal sampler would reach (same non-attention cost, only the filled slots, at peak bandwidth)."""
    slope, const = np.polyfit([r["mean_slots_read"] for r in rows], [r["ms_per_token"] for r in rows], 1)
    kv_bytes = cfg.num_layers * 2 * cfg.num_kv_heads * cfg.head_dim * 4  # fp32 K and V of one slot
    stream = kv_bytes / (float(slope) * 1e-3) / 1e9
    ideal_ms = [float(const) + kv_bytes * r["mean_context"] / (peak_gb_s * 1e9) * 1e3 for r in (rows[0], rows[-1])]
    residual = max(
        abs(float(const) + float(slope) * r["mean_slots_read"] - r["ms_per_token"]) / r["ms_per_token"] for r in rows
    )
    return dict(
        ms_per_token_without_attention=round(float(const), 4),
        us_per_token_per_slot_read=round(1e3 * float(slope), 4),
        kv_bytes_per_slot=kv_bytes,
        kv_stream_gb_s=round(stream, 1),
        kv_stream_fraction_of_peak=round(stream / peak_gb_s, 3),
        max_relative_fit_residual=round(residual, 3),
        ideal_ratio_last_vs_first=round(ideal_ms[1] / ideal_ms[0], 3),
    )


def peak_read_bandwidth(gib: float = 0.5) -> float:
    """GB/s of a jitted sum over a large fp32 array: the rate attention can at best read the cache."""
    x = jnp.ones((int(gib * 2**30) // 4,), jnp.float32)
    seconds = _bench(jax.jit(jnp.sum), x, n=7)
    return round(x.nbytes / seconds / 1e9, 1)


def _bench(fn, *args, n: int = 5) -> float:
    jax.block_until_ready(fn(*args))
    best = float("inf")
    for _ in range(n):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - t0)
    return best


def profile(ours, batch: int, new_tokens: int, inner: int = 16) -> dict:
    """Per-step pieces at each cache window of the run, and the phases of a real call."""
    graphdef, state = nnx.split(ours)
    cfg = ours.cfg
    method = Sampling()
    key = jax.random.key(0)
    windows = gen.cache_windows(PROMPT_LEN, new_tokens)
    ends = [min(w - PROMPT_LEN + 1, new_tokens) for w in windows]
    steps = [e - s for s, e in zip([1] + ends[:-1], ends)]
    ones = jnp.ones((batch, 1), jnp.bool_)

    @jax.jit
    def step_full(state, cache, tok):
        model = nnx.merge(graphdef, state)

        def body(i, c):
            cache, tok = c
            logits, new = model(tok, cache.index[None, None] + jnp.zeros_like(tok), ones, cache)
            t, _, _ = method.sample_with_logprobs(jax.random.fold_in(key, i), logits[:, 0])
            new.index = cache.index  # stay at the same slot: every iteration costs the same
            return new, t[:, None]

        return jax.lax.fori_loop(0, inner, body, (cache, tok))

    @jax.jit
    def backbone(state, cache, tok):
        model = nnx.merge(graphdef, state)

        def body(i, c):
            cache, acc = c
            hidden, new = model.model(tok, cache.index[None, None] + jnp.zeros_like(tok), ones, cache)
            new.index = cache.index
            return new, acc + hidden[:, 0, :1]

        return jax.lax.fori_loop(0, inner, body, (cache, jnp.zeros((batch, 1))))

    @jax.jit
    def lm_head(state, h):
        model = nnx.merge(graphdef, state)

        def body(i, c):
            h, acc = c
            logits = model.logits_from_hidden(h)
            return h + 1e-6 * logits[:, : h.shape[1]], acc + logits[:, 0]

        return jax.lax.fori_loop(0, inner, body, (h, jnp.zeros((batch,))))

    @jax.jit
    def sampling(logits):
        def body(i, c):
            logits, acc = c
            t, lp, _ = method.sample_with_logprobs(jax.random.fold_in(key, i), logits)
            return logits + 1e-6 * lp[:, None], acc + t

        return jax.lax.fori_loop(0, inner, body, (logits, jnp.zeros((batch,), jnp.int32)))

    @jax.jit
    def attention(q, cache):
        mask = cache.valid[:, None, :]

        def body(i, q):
            for k, v in zip(cache.k, cache.v):
                q = q + 1e-3 * attend(q, k, v, mask).reshape(q.shape)
            return q

        return jax.lax.fori_loop(0, inner, body, q)

    per_window = []
    for window, n_steps in zip(windows, steps):
        cache = init_layer_cache(cfg, batch, window)
        cache.valid = jnp.ones((batch, window), jnp.bool_)
        cache.index = jnp.asarray(window - 1, jnp.int32)
        tok = jnp.ones((batch, 1), jnp.int32)
        h = jax.random.normal(key, (batch, cfg.hidden_size))
        logits = jax.random.normal(key, (batch, cfg.vocab_size)) * 3
        q = jax.random.normal(key, (batch, 1, cfg.num_heads, cfg.head_dim))
        ms = {
            name: 1e3 * _bench(fn, *args) / inner
            for name, fn, args in (
                ("step", step_full, (state, cache, tok)),
                ("backbone", backbone, (state, cache, tok)),
                ("lm_head", lm_head, (state, h)),
                ("sampling", sampling, (logits,)),
                ("attention", attention, (q, cache)),
            )
        }
        ms["layer_matmuls_norms_rope"] = ms["backbone"] - ms["attention"]
        ms["other"] = ms["step"] - ms["backbone"] - ms["lm_head"] - ms["sampling"]
        per_window.append(dict(window=window, steps=n_steps, ms={k: round(v, 2) for k, v in ms.items()}))
    total_steps = sum(steps)
    weighted = {
        k: round(sum(w["ms"][k] * w["steps"] for w in per_window) / total_steps, 2) for k in per_window[0]["ms"]
    }

    # Phases of a real call (blocking between them).
    prompts = prompts_for(batch)
    tokens, valid = left_pad(prompts.tolist(), 0)
    tokens, valid = jnp.asarray(tokens), jnp.asarray(valid)
    phases = []
    for attempt in range(3):
        rng = jax.random.key(attempt)
        t0 = time.perf_counter()
        carry = gen.prefill(
            graphdef, state, tokens, valid, windows[0], None, None, 1, new_tokens, method, (), 0, False, rng
        )
        jax.block_until_ready(carry)
        row = dict(prefill_ms=round(1e3 * (time.perf_counter() - t0), 1), segments=[])
        start = 1
        for i, (window, end) in enumerate(zip(windows, ends)):
            t1 = time.perf_counter()
            if i:
                carry = gen.grow(carry, window, None)
                jax.block_until_ready(carry)
            t2 = time.perf_counter()
            carry = gen.decode(graphdef, state, carry, jnp.asarray(end, jnp.int32), rng, method, (), 0)
            jax.block_until_ready(carry)
            t3 = time.perf_counter()
            row["segments"].append(
                dict(
                    window=window,
                    steps=end - start,
                    resize_ms=round(1e3 * (t2 - t1), 1),
                    ms_per_step=round(1e3 * (t3 - t2) / max(end - start, 1), 2),
                )
            )
            start = end
        row["total_s"] = round(time.perf_counter() - t0, 3)
        phases.append(row)
    best = min(phases, key=lambda r: r["total_s"])
    decode_ms = sum(s["ms_per_step"] * s["steps"] for s in best["segments"])
    return dict(
        batch=batch,
        new_tokens=new_tokens,
        per_window_ms=per_window,
        weighted_ms_per_step=weighted,
        real_call=best,
        real_call_share=dict(
            prefill=round(best["prefill_ms"] / (1e3 * best["total_s"]), 3),
            decode=round(decode_ms / (1e3 * best["total_s"]), 3),
        ),
    )


def host_info() -> dict:
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return dict(
        cpu=cpu,
        cpus=os.cpu_count(),
        memory_gib=round(mem / 2**30, 1),
        machine=platform.machine(),
        python=platform.python_version(),
        torch_threads=torch.get_num_threads(),
    )


def versions() -> dict:
    import flax
    import jaxlib

    return dict(
        jax=jax.__version__,
        jaxlib=jaxlib.__version__,
        flax=flax.__version__,
        torch=torch.__version__,
        transformers=transformers.__version__,
        numpy=np.__version__,
    )


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--lengths", type=int, nargs="+", default=[128, 512, 1024])
    parser.add_argument("--length-batches", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile-batch", type=int, default=64)
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--omp-wait-policy", default="PASSIVE", help="PASSIVE | ACTIVE | default (for torch)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "sampler.json"))
    args = parser.parse_args(argv)

    result = dict(
        benchmark="sampler: tempo_jax generate vs transformers generate, identical weights",
        command="python benchmarks/sampler.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        date=datetime.datetime.now().isoformat(timespec="seconds"),
        host=host_info(),
        versions=versions(),
        xla_flags=os.environ.get("XLA_FLAGS", ""),
        omp_wait_policy=os.environ.get("OMP_WAIT_POLICY", "default"),
        loadavg_start=load(),
    )
    with tempfile.TemporaryDirectory() as workdir:
        hf_model, ours = build_model(workdir)
        n_params = sum(p.numel() for p in hf_model.parameters())
        assert n_params == ours.cfg.num_params(), (n_params, ours.cfg.num_params())
        print(
            f"model: Qwen3-style, {n_params:,} parameters ({n_params / 1e6:.1f}M), fp32; "
            f"{PROMPT_LEN} prompt tokens, T=1.0, EOS disabled",
            flush=True,
        )
        result["model"] = dict(
            HF_CONFIG,
            parameters=n_params,
            dtype="float32",
            prompt_len=PROMPT_LEN,
            sampling="temperature 1.0, no top-k/top-p, EOS disabled",
        )
        result["comparison"] = []
        for batch in args.batches:
            print(f"batch {batch}, {args.new_tokens} new tokens:", flush=True)
            row = compare(hf_model, ours, batch, args.new_tokens, args.repeats)
            result["comparison"].append(row)
            print(
                f"  => ours {row['ours_tok_s']} tok/s, transformers {row['transformers_tok_s']} tok/s, ratio "
                f"{row['ratio']}x (ours: first call {row['ours_first_call_s']} s, "
                f"compile ~{row['ours_compile_s_est']} s)",
                flush=True,
            )
        del hf_model
        result["peak_read_gb_s"] = peak_read_bandwidth()
        print(f"peak read bandwidth (jitted sum over 0.5 GiB): {result['peak_read_gb_s']} GB/s", flush=True)
        result["length_scan"] = [
            length_scan(ours, b, args.lengths, args.repeats, result["peak_read_gb_s"]) for b in args.length_batches
        ]
        if not args.no_profile:
            print(f"profile at batch {args.profile_batch}, {args.new_tokens} new tokens:", flush=True)
            prof = profile(ours, args.profile_batch, args.new_tokens)
            result["profile"] = prof
            w = prof["weighted_ms_per_step"]
            print(
                "  per decode step (ms, weighted over the windows): " + ", ".join(f"{k} {v}" for k, v in w.items()),
                flush=True,
            )
            print(
                f"  real call: prefill {prof['real_call']['prefill_ms']} ms, segments "
                f"{prof['real_call']['segments']}, total {prof['real_call']['total_s']} s",
                flush=True,
            )
    result["loadavg_end"] = load()
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=2)
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
