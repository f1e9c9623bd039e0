"""Stage 0 (SFT warm start) -> stage 1 (RLVR on D_L, ending with the diagnosis) -> stage 2 (each
method from the same stage-1 checkpoint, same budget) -> per-seed and across-seed reports.

Layout of ``out`` (one folder per seed, so ``--seeds K`` keeps every run)::

    tokenizer/                      the task tokenizer (seed-independent)
    seed_<s>/data/                  D_L, held-out D_L and D_U as JSONL
    seed_<s>/stage0/                the SFT base model (HF format)
    seed_<s>/stage1/                stage-1 run; eval/step_<N>/ is the diagnosis and every method's "before"
    seed_<s>/<method>/              stage-2 runs (metrics.jsonl, eval/step_*/, export/)
    seed_<s>/diagnosis.md|json      critic vs answer-frequency ranking before stage 2
    seed_<s>/results.md|json        this seed's table
    results.md|json, *.png          the table over all seeds run, with paired standard errors
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Sequence

from tempo_jax.demo import report
from tempo_jax.demo.diagnose import diagnose
from tempo_jax.demo.plan import DemoPlan
from tempo_jax.demo.sft import sft_train
from tempo_jax.models.hf_io import to_hf
from tempo_jax.models.tokenizer import load_tokenizer
from tempo_jax.train.config import apply_overrides, recipe
from tempo_jax.train.loop import Trainer
from tempo_jax.train.run_dir import RunDirError


def _write_jsonl(path: str, records: Sequence[dict]) -> str:
    with open(path, "w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps({"id": r["id"], "problem": r["problem"], "answer": r["answer"]}) + "\n")
    return path


def make_data(plan: DemoPlan, out: str) -> dict[str, str]:
    """D_L (labeled), D_U (harder test questions; answers only for evaluation) and a held-out
    labeled set, from the task's disjoint splits (see tempo_jax.demo.tasks.demo_setup)."""
    os.makedirs(out, exist_ok=True)
    data = plan.setup.datasets()
    return {
        "labeled": _write_jsonl(os.path.join(out, "dl_train.jsonl"), data["dl"]),
        "unlabeled": _write_jsonl(os.path.join(out, "du_test.jsonl"), data["du"]),
        "val": _write_jsonl(os.path.join(out, "dl_val.jsonl"), data["dl_heldout"]),
    }


def stage0(plan: DemoPlan, out: str, tokenizer_dir: str) -> str:
    """Supervised warm start on the SFT split -> the base model (HF directory)."""
    setup = plan.setup
    tokenizer = load_tokenizer(tokenizer_dir)
    setup.check_tokenizer(tokenizer)
    data = setup.datasets()
    model, metrics = sft_train(setup.new_model(), tokenizer, data["sft"], **setup.sft_kwargs(data["sft_heldout"]))
    to_hf(model, out)
    tokenizer.save_pretrained(out)
    summary = {k: v for k, v in metrics.items() if not isinstance(v, list)}
    summary["final_loss"] = metrics["loss"][-1]
    summary["heldout"] = metrics["eval"][-1] if metrics["eval"] else None
    with open(os.path.join(out, "sft_metrics.json"), "w", encoding="utf-8") as fh:
        json.dump(summary, fh, indent=2, default=str)
    return out


def _common(plan: DemoPlan, data: dict[str, str], run_dir: str) -> dict:
    return dict(
        run_dir=run_dir,
        seed=plan.seed,
        data__labeled=data["labeled"],
        data__unlabeled=data["unlabeled"],
        data__template="qwen3",
        data__enable_thinking=True,
        data__instruction="",
        data__max_prompt_tokens=plan.max_prompt_tokens,
        data__replicate_unlabeled_to=plan.setup.dl_count,
        rollout__n=plan.n,
        rollout__max_new_tokens=plan.setup.max_new_tokens,
        train__train_batch_size=plan.train_batch_size,
        train__ppo_mini_batch_size=plan.mini_batch_size,
        train__actor_lr=plan.actor_lr,
        train__critic_lr=plan.critic_lr,
        algo__policy_options__clip_low=plan.clip,
        algo__policy_options__clip_high=plan.clip,
        algo__max_num_gen_batches=10,
        checkpoint__save_every=1000,
        checkpoint__keep=1,
        eval__test_freq=plan.eval_every,
        eval__n=plan.eval_n,
        eval__datasets=f"{data['unlabeled']},{data['val']}",
        eval__before_train=False,
        eval__batch_prompts=32,
        log__progress_bar=False,
    )


def stage1_config(plan: DemoPlan, data: dict[str, str], out: str, base_dir: str, overrides: Sequence[str] = ()):
    """RLVR (PPO, gae) on D_L from the SFT model; it evaluates once, after its last step: the
    diagnosis and the shared "before" of every stage-2 method."""
    changes = _common(plan, data, os.path.join(out, "stage1"))
    changes.update(
        model__actor_hf=base_dir,
        train__total_steps=plan.stage1_steps,
        train__actor_lr=plan.stage1_actor_lr,
        eval__test_freq=plan.stage1_steps,
    )
    cfg = recipe("stage1", **changes)
    apply_overrides(cfg, [o for o in overrides if not o.startswith("--config.method")])
    return cfg


def method_config(
    method: str, plan: DemoPlan, data: dict[str, str], out: str, stage1_dir: str, overrides: Sequence[str] = ()
):
    """The stage-2 recipe of one compared method, all from the same stage-1 run and budget."""
    changes = _common(plan, data, os.path.join(out, method))
    changes.update(model__init_from=stage1_dir, train__total_steps=plan.stage2_steps)
    if method == "tempo_frozen_critic":
        changes["train__critic_lr"] = 0.0
    cfg = recipe(method, **changes)
    apply_overrides(cfg, overrides)
    return cfg


class _Timer:
    def __init__(self):
        self.timings: dict[str, float] = {}

    def __call__(self, name, fn, *args):
        t0 = time.perf_counter()
        print(f"[demo] {name} ...", flush=True)
        result = fn(*args)
        self.timings[name] = time.perf_counter() - t0
        print(f"[demo] {name} done in {self.timings[name]:.0f}s", flush=True)
        return result


def run_seed(
    plan: DemoPlan, out: str, tokenizer_dir: str, overrides: Sequence[str] = (), diagnose_only: bool = False
) -> dict:
    """Stages 0-2 of one seed under ``out``; returns the seed's summary (see report.seed_summary)."""
    os.makedirs(out, exist_ok=True)
    start = time.perf_counter()
    timed = _Timer()
    with open(os.path.join(out, "plan.json"), "w", encoding="utf-8") as fh:
        json.dump(dataclasses.asdict(plan), fh, indent=2)
    data = timed("data", make_data, plan, os.path.join(out, "data"))
    base_dir = timed("stage 0: supervised warm start", stage0, plan, os.path.join(out, "stage0"), tokenizer_dir)
    stage1 = stage1_config(plan, data, out, base_dir, overrides)
    timed("stage 1: RLVR (PPO, gae) on D_L", lambda: Trainer(stage1).run())
    diagnosis = {"seed": plan.seed, **diagnose(stage1.run_dir, data, plan.stage1_steps)}
    report.write_diagnosis(diagnosis, out)
    print(report.diagnosis_lines(diagnosis), flush=True)
    if not diagnose_only:
        for method in plan.methods:
            cfg = method_config(method, plan, data, out, stage1.run_dir, overrides)
            timed(f"stage 2: {method}", lambda cfg=cfg: Trainer(cfg).run())
    timed.timings["total"] = time.perf_counter() - start
    return report.write_seed_report(out, plan, data, diagnosis, timed.timings, diagnose_only)


def run_demo(
    out_dir: str = "runs/demo",
    quick: bool = False,
    overrides: Sequence[str] = (),
    plan: DemoPlan | None = None,
    seed: int = 0,
    seeds: int = 1,
    diagnose_only: bool = False,
) -> dict:
    """Run the demo for seeds ``seed .. seed + seeds - 1``; returns the paths of the reports."""
    if seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {seeds}")
    plan = plan or (DemoPlan.quick(seed) if quick else DemoPlan(seed=seed))
    out = os.path.abspath(out_dir)
    taken = [f"seed_{s}" for s in range(plan.seed, plan.seed + seeds) if os.path.exists(os.path.join(out, f"seed_{s}"))]
    if taken:
        raise RunDirError(
            f"{out_dir} already holds demo output ({', '.join(taken)}); give another --out, or "
            "remove it to start over (nothing was changed)"
        )
    os.makedirs(out, exist_ok=True)
    start = time.perf_counter()
    tokenizer_dir = plan.setup.build_tokenizer(os.path.join(out, "tokenizer"))
    summaries = []
    for s in range(plan.seed, plan.seed + seeds):
        print(f"[demo] ===== seed {s} =====", flush=True)
        summaries.append(
            run_seed(plan.with_seed(s), os.path.join(out, f"seed_{s}"), tokenizer_dir, overrides, diagnose_only)
        )
    total = time.perf_counter() - start
    command = (
        "tempo-jax demo"
        + (" --quick" if quick else "")
        + (" --diagnose" if diagnose_only else "")
        + (f" --seed {plan.seed}" if plan.seed else "")
        + (f" --seeds {seeds}" if seeds > 1 else "")
        + "".join(f" {o}" for o in overrides)
    )
    paths = report.write_report(out, plan, summaries, total, command, diagnose_only)
    print(f"[demo] finished in {total / 60:.1f} min")
    for name, path in paths.items():
        print(f"[demo] {name}: {path}")
    return paths
