"""Evaluation during training: the current actor (and critic) on the eval datasets every
``eval.test_freq`` steps, with the run's template, grader and mesh."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ml_collections
from flax import nnx

from tempo_jax import storage
from tempo_jax.eval.model_eval import evaluate_model
from tempo_jax.train.stream import run_template


def eval_datasets(cfg: ml_collections.ConfigDict) -> list[str]:
    """``eval.datasets``, else the unlabeled set."""
    return [s for s in (cfg.eval.datasets or cfg.data.unlabeled or "").split(",") if s]


def recipe_eval_settings(cfg: ml_collections.ConfigDict) -> dict[str, Any]:
    """What a recipe fixes for evaluating its models (periodic evaluation and ``tempo-jax eval
    --config``): sampling length, the run's prompt template and prompt length, the data directory,
    the rollout engine and its KV-cache dtype."""
    return dict(
        max_new_tokens=cfg.eval.max_new_tokens or cfg.rollout.max_new_tokens,
        kv_cache_dtype=cfg.rollout.kv_cache_dtype or None,
        engine=cfg.rollout.get("engine", "static"),
        decode_slots=cfg.rollout.get("decode_slots", 0),
        template=run_template(cfg),
        max_prompt_tokens=cfg.data.max_prompt_tokens,
        data_dir=cfg.data.data_dir or None,
    )


def make_evaluator(cfg: ml_collections.ConfigDict, trainer) -> Callable[[int], dict[str, float]] | None:
    """A callable(step) -> {"eval/<dataset>/<metric>": value}, or None when evaluation is off."""
    names = eval_datasets(cfg)
    if cfg.eval.test_freq <= 0 or not names:
        return None
    settings = recipe_eval_settings(cfg)

    def run(step: int) -> dict[str, float]:
        # Every process samples (a collective on the sharded parameters, batch rows over the mesh) and
        # gets the same gathered results; only the primary writes eval/step_*/.
        actor = nnx.merge(trainer.actor.graphdef, trainer.actor.state.params)
        critic = nnx.merge(trainer.critic.graphdef, trainer.critic.state.params) if trainer.critic else None
        out_dir = storage.join(trainer.run_dir, "eval", f"step_{step:06d}")
        results = evaluate_model(
            actor,
            trainer.tokenizer,
            names,
            out_dir=out_dir,
            n=cfg.eval.n,
            temperature=cfg.rollout.temperature,
            top_p=cfg.rollout.top_p,
            critic=critic,
            limit=cfg.eval.limit or None,
            seed=cfg.seed + step,
            grader=trainer.grader,
            mesh=trainer.mesh,
            batch_prompts=cfg.eval.batch_prompts or None,
            **settings,
        )
        out: dict[str, float] = {}
        for result in results.values():
            out.update(result.flat_metrics())
        return out

    return run
