"""Calibrate the demo's base model: stage 0 with a :class:`DemoSetup`, then accuracy per level.

    python -m tempo_jax.tasks.calibrate --seed 0 --levels 2,3,4,5 --questions 48 --out calib.json
    python -m tempo_jax.tasks.calibrate --set hidden_size=96 --set sft_stop_at_exact_match=0.4

For every level it samples ``eval_n`` responses at T=1 per test-split question and reports
avg@n, pass@8 (unbiased estimator), the plurality-vote accuracy over the n answers (TTRL's
pseudo-label quality), greedy accuracy, the share of questions where the plurality is wrong but
some sample is right (where a critic can beat voting), and distinct answers per question. It
also times one rollout batch of 32 prompts x 8 samples. Answers are compared as integers
(the project's grader is not needed for this task).
"""
from __future__ import annotations

import argparse
import ast
import collections
import dataclasses
import json
import tempfile
import time

import jax
import numpy as np

from tempo_jax.eval.metrics import pass_at_k
from tempo_jax.sampling.generate import generate
from tempo_jax.sampling.methods import Greedy, Sampling
from tempo_jax.tasks import arithmetic
from tempo_jax.tasks.demo_setup import DemoSetup
from tempo_jax.tasks.tokenizer import build_tokenizer, load
from tempo_jax.train.sft import sft_train


def plurality(answers) -> str | None:
    """Most frequent non-empty answer (ties: first seen), or None."""
    counts = collections.Counter(a for a in answers if a is not None)
    if not counts:
        return None
    best = max(counts.values())
    return next(a for a in answers if a is not None and counts[a] == best)


def _decode(tok, out) -> list[str]:
    return tok.batch_decode([t[:n] for t, n in zip(out.tokens, out.lengths)], skip_special_tokens=True)


def evaluate_level(model, tok, setup: DemoSetup, level: int, questions: int, seed: int) -> dict:
    qs = arithmetic.make_problems(level, questions, seed=seed + 1000, split="test")
    prompts = [tok(setup.prompt(q["problem"]), add_special_tokens=False)["input_ids"] for q in qs]
    n = setup.eval_n
    t0 = time.perf_counter()
    out = generate(model, prompts, n=n, max_new_tokens=setup.max_new_tokens, method=Sampling(setup.temperature),
                   stop_ids=[tok.eos_token_id], pad_id=tok.pad_token_id, rng=jax.random.key(seed))
    seconds = time.perf_counter() - t0
    answers = np.array([arithmetic.boxed_answer(t) for t in _decode(tok, out)], dtype=object).reshape(len(qs), n)
    gold = [q["answer"] for q in qs]
    correct = np.array([[a is not None and a == g for a in row] for row, g in zip(answers, gold)])
    votes = [plurality(list(row)) for row in answers]
    greedy = generate(model, prompts, n=1, max_new_tokens=setup.max_new_tokens, method=Greedy(),
                      stop_ids=[tok.eos_token_id], pad_id=tok.pad_token_id)
    greedy_ok = [arithmetic.boxed_answer(t) == g for t, g in zip(_decode(tok, greedy), gold)]
    return {
        "level": level, "questions": len(qs),
        f"avg@{n}": float(correct.mean()),
        "pass@8": float(np.mean([pass_at_k(n, int(c.sum()), 8) for c in correct])) if n >= 8 else float("nan"),
        "maj": float(np.mean([v == g for v, g in zip(votes, gold)])),
        "greedy": float(np.mean(greedy_ok)),
        "maj_wrong_some_right": float(np.mean([(v != g) and c.any() for v, g, c in zip(votes, gold, correct)])),
        "distinct_answers": float(np.mean([len({a for a in row if a is not None}) for row in answers])),
        "no_answer": float(np.mean([a is None for a in answers.ravel()])),
        "mean_len": float(out.lengths.mean()), "sample_seconds": seconds,
    }


def rollout_cost(model, tok, setup: DemoSetup, level: int, prompts: int = 32, n: int = 8) -> dict:
    qs = arithmetic.make_problems(level, prompts, seed=99, split="test")
    ids = [tok(setup.prompt(q["problem"]), add_special_tokens=False)["input_ids"] for q in qs]
    times = []
    for rep in range(3):
        t0 = time.perf_counter()
        out = generate(model, ids, n=n, max_new_tokens=setup.max_new_tokens, method=Sampling(setup.temperature),
                       stop_ids=[tok.eos_token_id], pad_id=tok.pad_token_id, rng=jax.random.key(rep))
        times.append(time.perf_counter() - t0)
    return {"level": level, "prompts": prompts, "n": n, "first_seconds": times[0], "seconds": min(times[1:]),
            "mean_len": float(out.lengths.mean())}


def calibrate(setup: DemoSetup, levels, questions: int = 48, log=print) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tok = load(build_tokenizer(tmp))
    setup.check_tokenizer(tok)
    data = setup.datasets()
    model = setup.new_model()
    cpu0 = time.process_time()

    def log_fn(step, row):
        if "eval_exact_match" in row:
            log(f"  sft step {step + 1}: loss {row['loss']:.4f} held-out loss {row['eval_loss']:.4f} "
                f"exact match {row['eval_exact_match']:.3f}")

    model, m = sft_train(model, tok, data["sft"], **setup.sft_kwargs(data["sft_heldout"]), log_fn=log_fn)
    sft = {"steps_run": m["steps_run"], "seconds": m["seconds"], "cpu_seconds": time.process_time() - cpu0,
           "compile_seconds": m["compile_seconds"], "final_loss": float(np.mean(m["loss"][-10:])),
           "heldout": m["eval"][-1] if m["eval"] else None}
    log(f"stage 0: {sft['steps_run']} steps in {sft['seconds']:.0f}s ({sft['cpu_seconds']:.0f} CPU-s)")
    results = {"setup": dataclasses.asdict(setup), "sft": sft, "levels": []}
    for level in levels:
        row = evaluate_level(model, tok, setup, level, questions, setup.seed)
        results["levels"].append(row)
        log(" ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    results["rollout"] = rollout_cost(model, tok, setup, max(setup.du_levels))
    log(f"rollout 32x8: {results['rollout']}")
    return results


def markdown(results: dict) -> str:
    n = results["setup"]["eval_n"]
    lines = [f"| level | avg@{n} | pass@8 | maj | greedy | maj wrong, some right | distinct |", "|---|---|---|---|---|---|---|"]
    for r in results["levels"]:
        lines.append(f"| {r['level']} | {r[f'avg@{n}']:.3f} | {r['pass@8']:.3f} | {r['maj']:.3f} | {r['greedy']:.3f} | "
                     f"{r['maj_wrong_some_right']:.3f} | {r['distinct_answers']:.1f} |")
    return "\n".join(lines)


def _override(text: str) -> tuple[str, object]:
    key, _, value = text.partition("=")
    if key not in {f.name for f in dataclasses.fields(DemoSetup)}:
        raise SystemExit(f"unknown DemoSetup field {key!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--levels", default="2,3,4,5")
    ap.add_argument("--questions", type=int, default=48)
    ap.add_argument("--set", action="append", default=[], help="DemoSetup field=value (repeatable)")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args(argv)
    setup = DemoSetup(seed=args.seed, **dict(_override(s) for s in args.set))
    results = calibrate(setup, [int(x) for x in args.levels.split(",")], args.questions)
    print(markdown(results))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=2)
    return results


if __name__ == "__main__":
    main()
