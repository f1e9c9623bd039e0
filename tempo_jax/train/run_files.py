"""The files a run directory holds besides checkpoints: the resolved recipe, the model
architecture and the tokenizer, and reading a run's models back (e.g. a stage-1 run to start from)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import ml_collections
from flax import nnx

from tempo_jax import storage
from tempo_jax.models.config import ModelConfig, RopeConfig
from tempo_jax.models.critic import Critic, critic_from_actor
from tempo_jax.models.decoder import CausalLM
from tempo_jax.models.tokenizer import load_tokenizer
from tempo_jax.train.checkpoint import Checkpointer, CheckpointMismatchError
from tempo_jax.train.config import RecipeError
from tempo_jax.train.optim import make_optimizer
from tempo_jax.train.state import abstract_train_state

CONFIG_FILE, MODEL_CONFIG_FILE, TOKENIZER_DIR = "config.json", "model_config.json", "tokenizer"


def load_run_tokenizer(cfg: ml_collections.ConfigDict):
    """The tokenizer of a run: model.tokenizer, else the actor's directory, else init_from's copy."""
    path = cfg.model.tokenizer or cfg.model.actor_hf
    if not path and cfg.model.init_from:
        path = storage.join(cfg.model.init_from, TOKENIZER_DIR)
    if not path or not storage.exists(path):
        raise FileNotFoundError(f"no tokenizer at {path!r}: set model.tokenizer (a directory transformers can load)")
    return load_tokenizer(path)


def model_config_to_dict(mc: ModelConfig) -> dict[str, Any]:
    return dataclasses.asdict(mc)


def model_config_from_dict(d: dict[str, Any], **overrides: Any) -> ModelConfig:
    d = dict(d)
    d["rope"] = RopeConfig(**d["rope"])
    d["sliding_rope"] = RopeConfig(**d["sliding_rope"]) if d.get("sliding_rope") else None
    d["layer_types"] = tuple(d["layer_types"])
    for key in ("eos_token_id", "generation_eos_token_id"):  # the generation_* fields: absent in older runs
        if isinstance(d.get(key), list):
            d[key] = tuple(d[key])
    d.update(overrides)
    return ModelConfig(**d)


def write_run_files(cfg: ml_collections.ConfigDict, model_cfg: ModelConfig, run_dir: str) -> None:
    storage.write_text(storage.join(run_dir, CONFIG_FILE), cfg.to_json_best_effort(indent=2))
    storage.write_text(storage.join(run_dir, MODEL_CONFIG_FILE), json.dumps(model_config_to_dict(model_cfg), indent=2))


def read_run_config(run_dir: str) -> ml_collections.ConfigDict:
    """The resolved recipe a run was trained with (``run_dir/config.json``)."""
    path = storage.join(run_dir, CONFIG_FILE)
    if not storage.isfile(path):
        raise RecipeError(f"{path} not found: {run_dir} is not a tempo-jax run directory")
    return ml_collections.ConfigDict(json.loads(storage.read_text(path)))


def load_from_run(run_dir: str, need_critic: bool, mesh=None, critic_if_missing: bool = True, **overrides: Any):
    """Actor (and critic) parameters from the latest checkpoint of one of our runs (e.g. stage 1).

    Only parameters are taken; optimizer states and the step counter start fresh. A run saved
    without a critic (TTRL, EMPO) gives ``critic_from_actor`` when ``critic_if_missing``, else None.
    """
    config_path = storage.join(run_dir, MODEL_CONFIG_FILE)
    if not storage.isfile(config_path):
        raise FileNotFoundError(f"{config_path} not found: {run_dir} is not a tempo-jax run directory")
    mc = model_config_from_dict(json.loads(storage.read_text(config_path)), **overrides)
    ckpt = Checkpointer(storage.join(run_dir, "checkpoints"), read_only=True)  # never changes the run read
    tx = make_optimizer(1.0)
    actor = nnx.eval_shape(lambda: CausalLM(mc, nnx.Rngs(0)))
    critic = nnx.eval_shape(lambda: Critic(mc, nnx.Rngs(0)))

    def abstract_of(model):  # restored straight onto the mesh: no device (or host) holds a whole model
        return abstract_train_state(model, tx, mesh, mc.scan_layers)

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
