"""Building a run from its config: tokenizer, data stream, models from a run, grader, evaluator, export."""
from __future__ import annotations

import dataclasses
import json
import logging
import os
from typing import Any

import jax
import ml_collections
from flax import nnx

from tempo_jax.data.mixing import MixedStream
from tempo_jax.data.templates import PromptTemplate, encode_prompts, get_template, load_tokenizer
from tempo_jax.models.config import ModelConfig, RopeConfig
from tempo_jax.models.critic import Critic, critic_from_actor
from tempo_jax.models.decoder import CausalLM
from tempo_jax.models.hf_io import to_hf
from tempo_jax.models.tokenizer import check_vocab
from tempo_jax.parallel.distributed import barrier, is_primary
from tempo_jax.parallel.mesh import to_host
from tempo_jax.rewards.grader import Grader
from tempo_jax.sampling.methods import Sampling
from tempo_jax.train.config import RecipeError
from tempo_jax.train.data_roles import load_roles
from tempo_jax.train.rollout import RolloutSettings

log = logging.getLogger(__name__)


def load_run_tokenizer(cfg: ml_collections.ConfigDict):
    path = cfg.model.tokenizer or cfg.model.actor_hf
    if not path and cfg.model.init_from:
        path = os.path.join(cfg.model.init_from, "tokenizer")
    if not path or not os.path.exists(path):
        raise FileNotFoundError(f"no tokenizer at {path!r}: set model.tokenizer (a directory transformers can load)")
    return load_tokenizer(path)


def run_template(cfg) -> PromptTemplate:
    """The prompt template of a run: data.template, thinking switch and instruction."""
    thinking = cfg.data.enable_thinking if cfg.data.template.startswith("qwen3") else None
    overrides = {}
    if cfg.data.instruction != "default":
        overrides["instruction"] = cfg.data.instruction or None
    return get_template(cfg.data.template, enable_thinking=thinking, **overrides)


def encode(records: list[dict], tokenizer, cfg) -> list[dict]:
    """Attach ``prompt_ids`` (template + tokenizer + length policy); report what was dropped."""
    template = run_template(cfg)
    prompts = [template.render(r["problem"]) for r in records]
    enc = encode_prompts(prompts, tokenizer, max_prompt_len=cfg.data.max_prompt_tokens, policy=cfg.data.prompt_policy)
    if enc.n_filtered:
        log.warning("%d of %d prompts were longer than data.max_prompt_tokens=%d and were filtered out",
                    enc.n_filtered, len(records), cfg.data.max_prompt_tokens)
    return [{**records[i], "prompt_ids": ids} for i, ids in zip(enc.indices, enc.input_ids)]


def build_stream(cfg: ml_collections.ConfigDict, tokenizer) -> tuple[MixedStream, dict[str, int]]:
    labeled, unlabeled = load_roles(cfg)
    labeled = encode(labeled, tokenizer, cfg) if labeled else []
    unlabeled = encode(unlabeled, tokenizer, cfg) if unlabeled else []
    if not labeled and not unlabeled:
        raise RecipeError("no prompts left after loading and the prompt-length policy; check data.* settings")
    stream = MixedStream(labeled, unlabeled, batch_size=cfg.train.train_batch_size, seed=cfg.seed,
                         replicate_unlabeled_to=(cfg.data.replicate_unlabeled_to or None) if unlabeled else None)
    return stream, {"labeled": len(labeled), "unlabeled": len(unlabeled)}


def stop_and_pad(tokenizer, model_cfg: ModelConfig) -> tuple[tuple[int, ...], int]:
    stop = list(model_cfg.eos_ids)
    for tid in (tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")
                if "<|im_end|>" in tokenizer.get_vocab() else None):
        if tid is not None and tid not in stop:
            stop.append(int(tid))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else model_cfg.pad_token_id
    pad = pad if pad is not None else (stop[0] if stop else 0)
    return tuple(stop), int(pad)


def check_model_fits(cfg, tokenizer, model_cfg: ModelConfig) -> None:
    """Before any step: token ids the model can embed, and sequences within its positions
    (beyond ``max_position_embeddings`` RoPE extrapolates silently and quality falls)."""
    check_vocab(tokenizer, model_cfg.vocab_size)
    new_tokens = max(cfg.rollout.max_new_tokens, cfg.eval.max_new_tokens)
    longest = cfg.data.max_prompt_tokens + new_tokens
    if longest > model_cfg.max_position_embeddings:
        raise RecipeError(
            f"data.max_prompt_tokens={cfg.data.max_prompt_tokens} + max_new_tokens={new_tokens} (rollout/eval) = "
            f"{longest} exceeds the model's max_position_embeddings={model_cfg.max_position_embeddings}; lower them")


def rollout_settings(cfg, tokenizer, model_cfg: ModelConfig) -> RolloutSettings:
    stop, pad = stop_and_pad(tokenizer, model_cfg)
    r, a = cfg.rollout, cfg.algo
    return RolloutSettings(
        n=r.n, max_new_tokens=r.max_new_tokens, prompt_len=cfg.data.max_prompt_tokens,
        batch_prompts=cfg.train.train_batch_size,
        method=Sampling(temperature=r.temperature, top_k=r.top_k, top_p=r.top_p), stop_ids=stop, pad_id=pad,
        reward=a.reward, filter_groups=a.filter_groups, max_num_gen_batches=a.max_num_gen_batches,
        confidence_filter=a.confidence_filter, confidence_lower=a.confidence_lower,
        confidence_upper=a.confidence_upper, kv_cache_dtype=r.kv_cache_dtype or None,
        prompts_per_generate=r.get("prompts_per_generate", 0))


def make_grader(cfg) -> Grader:
    return Grader(num_workers=cfg.grader.workers, timeout_s=cfg.grader.timeout_s)


def nan_injection_steps(cfg) -> set[int]:
    text = str(cfg.train.inject_nan_at_steps or "")
    return {int(s) for s in text.replace(" ", "").split(",") if s}


def model_config_to_dict(mc: ModelConfig) -> dict[str, Any]:
    return dataclasses.asdict(mc)


def model_config_from_dict(d: dict[str, Any], **overrides: Any) -> ModelConfig:
    d = dict(d)
    d["rope"] = RopeConfig(**d["rope"])
    d["sliding_rope"] = RopeConfig(**d["sliding_rope"]) if d.get("sliding_rope") else None
    d["layer_types"] = tuple(d["layer_types"])
    if isinstance(d.get("eos_token_id"), list):
        d["eos_token_id"] = tuple(d["eos_token_id"])
    d.update(overrides)
    return ModelConfig(**d)


def write_run_files(cfg, model_cfg: ModelConfig, run_dir: str) -> None:
    with open(os.path.join(run_dir, "config.json"), "w", encoding="utf-8") as fh:
        fh.write(cfg.to_json_best_effort(indent=2))
    with open(os.path.join(run_dir, "model_config.json"), "w", encoding="utf-8") as fh:
        json.dump(model_config_to_dict(model_cfg), fh, indent=2)


def read_run_config(run_dir: str) -> ml_collections.ConfigDict:
    """The resolved recipe a run was trained with (``run_dir/config.json``)."""
    path = os.path.join(run_dir, "config.json")
    if not os.path.isfile(path):
        raise RecipeError(f"{path} not found: {run_dir} is not a tempo-jax run directory")
    with open(path, encoding="utf-8") as fh:
        return ml_collections.ConfigDict(json.load(fh))


def load_from_run(run_dir: str, need_critic: bool, mesh=None, critic_if_missing: bool = True, **overrides: Any):
    """Actor (and critic) parameters from the latest checkpoint of one of our runs (e.g. stage 1).

    Only parameters are taken; optimizer states and the step counter start fresh. A run saved
    without a critic (TTRL, EMPO) gives ``critic_from_actor`` when ``critic_if_missing``, else None.
    """
    from tempo_jax.train.checkpoint import CheckpointMismatchError, Checkpointer
    from tempo_jax.train.optim import make_optimizer
    from tempo_jax.train.state import create_train_state

    config_path = os.path.join(run_dir, "model_config.json")
    if not os.path.isfile(config_path):
        raise FileNotFoundError(f"{config_path} not found: {run_dir} is not a tempo-jax run directory")
    with open(config_path, encoding="utf-8") as fh:
        mc = model_config_from_dict(json.load(fh), **overrides)
    ckpt = Checkpointer(os.path.join(run_dir, "checkpoints"), read_only=True)  # never changes the run read
    tx = make_optimizer(1.0)
    actor = nnx.eval_shape(lambda: CausalLM(mc, nnx.Rngs(0)))
    critic = nnx.eval_shape(lambda: Critic(mc, nnx.Rngs(0)))

    def abstract_of(model):
        state = jax.eval_shape(lambda: create_train_state(model, tx)[1])
        if mesh is None:
            return state
        from tempo_jax.parallel.mesh import train_state_shardings

        # restore straight onto the mesh: no device (or host) holds a whole model
        return jax.tree.map(lambda x, sh: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sh), state,
                            train_state_shardings(state, mesh, mc.scan_layers))

    abstract = {"actor": abstract_of(actor), "critic": abstract_of(critic) if need_critic else None}
    try:
        _, arrays, _ = ckpt.restore(abstract)
    except CheckpointMismatchError:
        if abstract["critic"] is None:
            raise
        abstract["critic"] = None  # a run without a critic
        _, arrays, _ = ckpt.restore(abstract)
    actor_model = nnx.merge(nnx.split(actor)[0], arrays["actor"].params)
    if not need_critic:
        return actor_model, None
    if arrays.get("critic") is None:
        return actor_model, (critic_from_actor(actor_model) if critic_if_missing else None)
    return actor_model, nnx.merge(nnx.split(critic)[0], arrays["critic"].params)


def make_evaluator(cfg, trainer):
    """A callable(step) -> {"eval/<dataset>/<metric>": value} for periodic evaluation, or None."""
    if cfg.eval.test_freq <= 0:
        return None
    names = [s for s in (cfg.eval.datasets or cfg.data.unlabeled or "").split(",") if s]
    if not names:
        return None
    from tempo_jax.eval.model_eval import evaluate_model

    def run(step: int) -> dict[str, float]:
        # Every process samples (a collective on the sharded parameters, batch rows over the mesh) and
        # gets the same gathered results; only the primary writes eval/step_*/.
        actor = nnx.merge(trainer.actor.graphdef, trainer.actor.state.params)
        critic = nnx.merge(trainer.critic.graphdef, trainer.critic.state.params) if trainer.critic else None
        out_dir = os.path.join(trainer.run_dir, "eval", f"step_{step:06d}")
        results = evaluate_model(actor, trainer.tokenizer, names, out_dir=out_dir, n=cfg.eval.n,
                                 max_new_tokens=cfg.eval.max_new_tokens or cfg.rollout.max_new_tokens,
                                 temperature=cfg.rollout.temperature, top_p=cfg.rollout.top_p, critic=critic,
                                 data_dir=cfg.data.data_dir or None, limit=cfg.eval.limit or None,
                                 seed=cfg.seed + step, template=run_template(cfg),
                                 max_prompt_tokens=cfg.data.max_prompt_tokens, grader=trainer.grader,
                                 mesh=trainer.mesh, batch_prompts=cfg.eval.batch_prompts or None)
        out: dict[str, float] = {}
        for result in results.values():
            out.update(result.flat_metrics())
        return out

    return run


def export_final(trainer) -> None:
    """The trained actor (and critic) as HF checkpoints, with the tokenizer, under run_dir/export.

    Every process must call it: parameters sharded over several processes are gathered with
    ``to_host`` (an all-gather, i.e. a collective), then only the primary writes."""
    base = os.path.join(trainer.run_dir, "export")
    roles = [("actor", trainer.actor)] + ([("critic", trainer.critic)] if trainer.critic is not None else [])
    for name, role in roles:
        params = to_host(role.state.params)  # one role at a time: a single host copy of a model at the peak
        if is_primary():
            to_hf(nnx.merge(role.graphdef, params), os.path.join(base, name))
        del params
    if is_primary():
        trainer.tokenizer.save_pretrained(os.path.join(base, "actor"))
        trainer.tokenizer.save_pretrained(os.path.join(trainer.run_dir, "tokenizer"))
    barrier("tempo_jax_export_final")  # nobody leaves (and shuts the job down) before the files are written
