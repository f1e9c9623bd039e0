"""Stage 0 (SFT warm start) -> stage 1 (RLVR on D_L) -> stage 2 (each method from the same
stage-1 checkpoint, same budget) -> results table, plots and the TEMPO actor as a HF checkpoint."""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from typing import Sequence

from tempo_jax.demo.plan import DemoPlan
from tempo_jax.demo.report import write_report
from tempo_jax.models.hf_io import to_hf
from tempo_jax.data.templates import load_tokenizer
from tempo_jax.train.config import apply_method_defaults, parse_override, recipe, set_path
from tempo_jax.train.loop import Trainer
from tempo_jax.train.sft import sft_train

log = logging.getLogger(__name__)


def _write_jsonl(path: str, records: Sequence[dict]) -> str:
    with open(path, "w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps({"id": r["id"], "problem": r["problem"], "answer": r["answer"]}) + "\n")
    return path


def make_data(plan: DemoPlan, out: str) -> dict[str, str]:
    """D_L (labeled), D_U (harder test questions; answers only for evaluation) and a held-out
    labeled set, from the task's disjoint splits (see tempo_jax.tasks.demo_setup)."""
    os.makedirs(out, exist_ok=True)
    data = plan.setup.datasets()
    return {"labeled": _write_jsonl(os.path.join(out, "dl_train.jsonl"), data["dl"]),
            "unlabeled": _write_jsonl(os.path.join(out, "du_test.jsonl"), data["du"]),
            "val": _write_jsonl(os.path.join(out, "dl_val.jsonl"), data["dl_heldout"])}


def stage0(plan: DemoPlan, out: str, tokenizer_dir: str) -> str:
    """Supervised warm start on the SFT split -> the base model (HF directory)."""
    setup = plan.setup
    tokenizer = load_tokenizer(tokenizer_dir)
    setup.check_tokenizer(tokenizer)
    data = setup.datasets()
    model = setup.new_model()
    model, metrics = sft_train(model, tokenizer, data["sft"], **setup.sft_kwargs(data["sft_heldout"]))
    to_hf(model, out)
    tokenizer.save_pretrained(out)
    summary = {k: v for k, v in metrics.items() if not isinstance(v, list)}
    summary["final_loss"] = metrics["loss"][-1]
    with open(os.path.join(out, "sft_metrics.json"), "w", encoding="utf-8") as fh:
        json.dump(summary, fh, indent=2, default=str)
    return out


def _common(plan: DemoPlan, data: dict[str, str], run_dir: str) -> dict:
    return dict(
        run_dir=run_dir, seed=plan.seed, data__labeled=data["labeled"], data__unlabeled=data["unlabeled"],
        data__template="qwen3", data__enable_thinking=True, data__instruction="",
        data__max_prompt_tokens=plan.max_prompt_tokens, data__replicate_unlabeled_to=plan.setup.dl_count,
        rollout__n=plan.n, rollout__max_new_tokens=plan.setup.max_new_tokens,
        train__train_batch_size=plan.train_batch_size, train__ppo_mini_batch_size=plan.mini_batch_size,
        train__actor_lr=plan.actor_lr, train__critic_lr=plan.critic_lr, algo__clip_low=plan.clip,
        algo__clip_high=plan.clip, algo__max_num_gen_batches=10, checkpoint__save_every=1000, checkpoint__keep=1,
        eval__test_freq=plan.eval_every, eval__n=plan.eval_n, eval__datasets=f"{data['unlabeled']},{data['val']}",
        log__progress_bar=False,
    )


def method_config(method: str, plan: DemoPlan, data: dict[str, str], out: str, stage1_dir: str,
                  overrides: Sequence[str] = ()):
    """The stage-2 recipe of one compared method, all from the same stage-1 run and budget."""
    base = method if method != "tempo_frozen_critic" else "tempo"
    changes = _common(plan, data, os.path.join(out, method))
    changes.update(model__init_from=stage1_dir, train__total_steps=plan.stage2_steps)
    if method == "tempo_frozen_critic":
        changes["train__critic_lr"] = 0.0
    cfg = recipe(base, **changes)
    _apply_overrides(cfg, overrides)
    return cfg


def _apply_overrides(cfg, overrides: Sequence[str]) -> None:
    parsed = [parse_override(o) for o in overrides]
    for key, value in parsed:
        set_path(cfg, key, value)
        if key == "method":
            apply_method_defaults(cfg)


def run_demo(out_dir: str = "runs/demo", quick: bool = False, overrides: Sequence[str] = (),
             plan: DemoPlan | None = None) -> dict:
    """Run the whole demo; returns the paths of the table, plots and exported TEMPO actor."""
    plan = plan or (DemoPlan.quick() if quick else DemoPlan())
    out = os.path.abspath(out_dir)
    os.makedirs(out, exist_ok=True)
    start = time.perf_counter()
    timings: dict[str, float] = {}
    with open(os.path.join(out, "plan.json"), "w", encoding="utf-8") as fh:
        json.dump(dataclasses.asdict(plan), fh, indent=2)

    def timed(name, fn, *args):
        t0 = time.perf_counter()
        print(f"[demo] {name} ...", flush=True)
        result = fn(*args)
        timings[name] = time.perf_counter() - t0
        print(f"[demo] {name} done in {timings[name]:.0f}s", flush=True)
        return result

    data = timed("data", make_data, plan, os.path.join(out, "data"))
    tok_dir = str(timed("tokenizer", plan.setup.build_tokenizer, os.path.join(out, "tokenizer")))
    base_dir = timed("stage 0: supervised warm start", stage0, plan, os.path.join(out, "stage0"), tok_dir)

    stage1 = recipe("stage1", **_common(plan, data, os.path.join(out, "stage1")))
    set_path(stage1, "model.actor_hf", base_dir)
    set_path(stage1, "train.total_steps", plan.stage1_steps)
    set_path(stage1, "eval.test_freq", 0)
    _apply_overrides(stage1, [o for o in overrides if not o.startswith("--config.method")])
    timed("stage 1: RLVR (PPO, gae) on D_L", lambda: Trainer(stage1).run())

    for method in plan.methods:
        cfg = method_config(method, plan, data, out, stage1.run_dir, overrides)
        timed(f"stage 2: {method}", lambda: Trainer(cfg).run())

    timings["total"] = time.perf_counter() - start
    command = "tempo-jax demo" + (" --quick" if quick else "") + "".join(f" {o}" for o in overrides)
    paths = write_report(out, plan, data, timings, command)
    print(f"[demo] finished in {timings['total'] / 60:.1f} min")
    for name, path in paths.items():
        print(f"[demo] {name}: {path}")
    return paths
