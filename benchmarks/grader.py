"""Grader throughput: 8 responses x 30 AIME 2024 questions on a 2-worker pool.

Each question gets 8 realistic responses (a few hundred words of reasoning with intermediate
numbers and sometimes an earlier, superseded box): 2 with the answer as written, 3 with an
equivalent answer written differently (``025``, ``204.0``, ``\\text{204 minutes}``,
``\\frac{408}{2}``, ``2.04 \\times 10^{2}``, ``x = 204``, ...), 2 wrong, 1 without a final box.
Reports answers/second for whole ``Grader.grade`` calls (extraction, in-process quick verdicts,
pool round trips), the share of pairs that needed a worker, and checks every verdict against the
construction label.

    python benchmarks/grader.py [--workers 2] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import random
import statistics
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tempo_jax.rewards import Grader

DATA = pathlib.Path(os.environ.get("TEMPO_JAX_DATA_DIR", ROOT.parent / "shared" / "data"))

FILLER = [
    "Let me set up the problem carefully and name the unknowns.",
    "We can rewrite the condition as an equation in $x$ and simplify both sides.",
    "Substituting back, the constraint gives $3x + 7 = 2y - 1$, so $y = \\frac{3x + 8}{2}$.",
    "Checking small cases: for $n = 1$ we get $4$, for $n = 2$ we get $11$, and the pattern continues.",
    "By symmetry it suffices to consider the case $a \\le b \\le c$.",
    "Now apply the identity $\\sin^2\\theta + \\cos^2\\theta = 1$ to eliminate the cosine.",
    "Wait, that is not quite right; let me recompute the last step more carefully.",
    "The discriminant is $b^2 - 4ac = 49 - 40 = 9$, so the roots are rational.",
    "Counting the cases separately and adding, we avoid double counting the overlap.",
    "Taking everything modulo $1000$ keeps the numbers manageable.",
]


def equivalent_forms(a: int) -> list[str]:
    forms = [
        f"{a:03d}",
        f"{a}.0",
        f"{a} \\text{{ minutes}}",
        f"\\frac{{{2 * a}}}{{2}}",
        f"x = {a}",
        f"\\dfrac{{{3 * a}}}{{3}}",
        f"{a}\\,",
        f"\\text{{{a}}}",
        f"{a}.00",
        f"\\mathbf{{{a}}}",
    ]
    if a >= 100:
        forms.append(f"{a / 100:g} \\times 10^{{2}}")
    if a % 2 == 0:
        forms.append(f"2 \\cdot {a // 2}")
    return forms


def hard_forms(a: int) -> tuple[list[str], list[str]]:
    """Equivalent and wrong spellings that the string stage cannot settle (sympy/math-verify)."""
    right = [
        f"\\frac{{{2 * a}}}{{2}}",
        f"\\dfrac{{{3 * a}}}{{3}}",
        f"{a - 1} + 1",
        f"\\sqrt{{{a * a}}}",
        f"{a / 100:g} \\times 10^{{2}}",
        f"\\frac{{{4 * a}}}{{4}}",
        f"2^{{0}} \\cdot {a}",
        f"{a + 5} - 5",
    ]
    wrong = [f"\\frac{{{2 * a + 1}}}{{2}}", f"\\sqrt{{{a * a + 1}}}", f"{a} + 1", f"{a / 10:g}", f"{a}\\pi"]
    return right, wrong


def make_response(rng: random.Random, final: str | None, boxed_early: bool) -> str:
    body = " ".join(rng.choice(FILLER) for _ in range(rng.randint(8, 20)))
    if boxed_early:
        body = f"A first attempt gives $\\boxed{{{rng.randint(1, 999)}}}$, but that misses a case. " + body
    if final is None:
        return body + " I am running out of time, so I will stop here."
    return body + f" Therefore the final answer is $\\boxed{{{final}}}$."


def build(answers: list[str], seed: int = 0, hard: bool = False):
    rng = random.Random(seed)
    responses, golds, labels = [], [], []
    for ans in answers:
        a = int(ans)
        if hard:
            right, wrong_forms = hard_forms(a)
            items = [(f, True) for f in rng.sample(right, 5)] + [(f, False) for f in rng.sample(wrong_forms, 2)]
        else:
            items = [(ans, True), (ans, True)]
            items += [(f, True) for f in rng.sample(equivalent_forms(a), 3)]
            wrong = set()
            while len(wrong) < 2:
                w = (a + rng.choice([-1, 1, 2, 10, 100, rng.randint(1, 998)])) % 1000
                if w != a:
                    wrong.add(w)
            items += [(str(w), False) for w in sorted(wrong)]
        items.append((None, False))
        rng.shuffle(items)
        for final, ok in items:
            responses.append(make_response(rng, final, boxed_early=rng.random() < 0.25))
            golds.append(ans)
            labels.append(ok)
    return responses, golds, labels


def _cpu_seconds(pids) -> float | None:
    """User+system CPU time of processes (Linux /proc), None where unavailable."""
    try:
        total = 0
        for pid in pids:
            fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "grader.json"))
    args = ap.parse_args()

    answers = [json.loads(line)["answer"] for line in (DATA / "aime24.jsonl").open()]
    responses, golds, labels = build(answers)
    n = len(responses)

    load_before = os.getloadavg()
    t0 = time.perf_counter()
    grader = Grader(num_workers=args.workers, timeout_s=args.timeout)
    grader.pool.wait_ready()
    startup_s = time.perf_counter() - t0

    runs = []
    for r in range(args.repeats):
        t = time.perf_counter()
        got = grader.grade(responses, golds)
        dt = time.perf_counter() - t
        stats = dict(grader.last_call_stats)
        agree = int((got == labels).sum())
        runs.append({"seconds": round(dt, 4), "answers_per_s": round(n / dt, 1), "label_agreement": agree, **stats})
        print(
            f"run {r}: {n} answers in {dt:.3f} s = {n / dt:.0f} answers/s "
            f"({stats['sent_to_workers']} distinct pairs to workers), {agree}/{n} verdicts match labels"
        )

    # Cascade-bound: the same 30 questions, but every boxed answer (5 equivalent, 2 wrong) is
    # written so that only sympy / math-verify can settle it (\\frac{2a}{2}, \\sqrt{a^2}, a-1+1, ...).
    # Pool and in-process runs alternate (the host is shared; load drifts), after one cold run each.
    # Each repeat uses a fresh set of rewrites (new seed), so no run is served from a warm cache.
    inproc = Grader(mode="inprocess", timeout_s=args.timeout)

    def timed(g, data):
        t = time.perf_counter()
        out = g.grade(data[0], data[1])
        return time.perf_counter() - t, out, data[2]

    data = build(answers, seed=100, hard=True)
    hard_cold, got_hard, hard_labels = timed(grader, data)
    hard_stats = dict(grader.last_call_stats)
    inproc_cold, got_in_hard, _ = timed(inproc, data)
    hard, inproc_hard = [], []
    hard_agree = inproc_agree = 0
    worker_cpu = inproc_cpu = 0.0
    for r in range(args.repeats):
        data = build(answers, seed=101 + r, hard=True)
        c0 = _cpu_seconds(grader.pool.pids)
        dt, got_hard, hard_labels = timed(grader, data)
        c1 = _cpu_seconds(grader.pool.pids)
        worker_cpu += (c1 - c0) if c0 is not None and c1 is not None else float("nan")
        hard.append(dt)
        hard_agree += int((got_hard == hard_labels).sum())
        c0 = time.process_time()
        dt, got_in_hard, _ = timed(inproc, data)
        inproc_cpu += time.process_time() - c0
        inproc_hard.append(dt)
        inproc_agree += int((got_in_hard == hard_labels).sum())
    inproc_hard_s = statistics.median(inproc_hard)
    print(
        f"cascade-bound: {n} answers in {statistics.median(hard):.3f} s = "
        f"{n / statistics.median(hard):.0f} answers/s ({hard_stats['sent_to_workers']} pairs to workers; "
        f"cold first call {hard_cold:.2f} s), {hard_agree}/{n * args.repeats} match labels; in-process "
        f"{n / inproc_hard_s:.0f} answers/s (cold {inproc_cold:.2f} s)"
    )

    # The realistic mix in this process (no pool), for reference.
    t = time.perf_counter()
    got_in = inproc.grade(responses, golds)
    inproc_s = time.perf_counter() - t
    pool_stats = dict(vars(grader.pool.stats))
    grader.close()

    median_s = statistics.median(run["seconds"] for run in runs)
    result = {
        "benchmark": "grader throughput, 8 responses x 30 AIME 2024 questions",
        "command": "python benchmarks/grader.py " + " ".join(sys.argv[1:]),
        "host": {"cpus": os.cpu_count(), "python": platform.python_version(), "machine": platform.machine()},
        "num_workers": args.workers,
        "timeout_s": args.timeout,
        "start_method": grader.pool.start_method,
        "answers": n,
        "mix_per_question": {"as_written": 2, "equivalent_rewritten": 3, "wrong": 2, "no_box": 1},
        "pool_startup_s": round(startup_s, 3),
        "median_seconds": round(median_s, 4),
        "answers_per_s_median": round(n / median_s, 1),
        "runs": runs,
        "cascade_bound": {
            "what": "same questions, every boxed answer needs sympy/math-verify "
            "(5 equivalent + 2 wrong rewritten, 1 no box per question)",
            "median_seconds": round(statistics.median(hard), 4),
            "answers_per_s_median": round(n / statistics.median(hard), 1),
            "runs_seconds": [round(x, 4) for x in hard],
            "cold_first_call_seconds": round(hard_cold, 4),
            "label_agreement": f"{hard_agree}/{n * args.repeats}",
            **hard_stats,
            "worker_cpu_seconds_per_call": round(worker_cpu / args.repeats, 4),
        },
        "inprocess_reference": {
            "what": "Grader(mode='inprocess'), one process; cascade-bound runs alternate with the pool runs",
            "seconds": round(inproc_s, 4),
            "answers_per_s": round(n / inproc_s, 1),
            "label_agreement": int((got_in == labels).sum()),
            "cascade_bound_seconds": round(inproc_hard_s, 4),
            "cascade_bound_answers_per_s": round(n / inproc_hard_s, 1),
            "cascade_bound_cold_first_call_seconds": round(inproc_cold, 4),
            "cascade_bound_label_agreement": f"{inproc_agree}/{n * args.repeats}",
            "cascade_bound_cpu_seconds_per_call": round(inproc_cpu / args.repeats, 4),
        },
        "load_average_before_after": [round(x, 2) for x in load_before] + [round(x, 2) for x in os.getloadavg()],
        "note": (
            "wall-clock figures on a shared 2-core host: the pool can only beat one process when "
            "the second core is free; compare CPU seconds per call for the work itself"
        ),
        "pool_stats": pool_stats,
    }
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"pool start-up {startup_s:.2f} s; median {n / median_s:.0f} answers/s on {args.workers} workers "
        f"(in-process {n / inproc_s:.0f}); cascade-bound {n / statistics.median(hard):.0f} answers/s "
        f"(in-process {n / inproc_hard_s:.0f}); wrote {out}"
    )


if __name__ == "__main__":
    main()
