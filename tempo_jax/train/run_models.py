"""The actor and critic a run starts from, and the checks that they fit the run's tokenizer and lengths."""

from __future__ import annotations

import ml_collections

from tempo_jax.models.config import ModelConfig
from tempo_jax.models.critic import critic_from_actor
from tempo_jax.models.hf_io import from_hf
from tempo_jax.models.tokenizer import check_vocab
from tempo_jax.train.config import RecipeError, model_overrides, uses_critic
from tempo_jax.train.run_files import load_from_run


def load_run_models(cfg: ml_collections.ConfigDict, mesh=None):
    """(actor, critic or None): from ``model.init_from`` (one of our runs), else the HF directories;
    without ``model.critic_hf`` the critic is a copy of the actor with a fresh value head."""
    overrides = model_overrides(cfg)
    if cfg.model.init_from:
        return load_from_run(cfg.model.init_from, need_critic=uses_critic(cfg), mesh=mesh, **overrides)
    actor = from_hf(cfg.model.actor_hf, mesh=mesh, **overrides)
    if not uses_critic(cfg):
        return actor, None
    if cfg.model.critic_hf:
        return actor, from_hf(cfg.model.critic_hf, critic=True, mesh=mesh, **overrides)
    return actor, critic_from_actor(actor, seed=cfg.seed)


def check_model_fits(cfg: ml_collections.ConfigDict, tokenizer, model_cfg: ModelConfig) -> None:
    """Before any step: token ids the model can embed, and sequences within its positions
    (beyond ``max_position_embeddings`` RoPE extrapolates silently and quality falls)."""
    check_vocab(tokenizer, model_cfg.vocab_size)
    new_tokens = max(cfg.rollout.max_new_tokens, cfg.eval.max_new_tokens)
    longest = cfg.data.max_prompt_tokens + new_tokens
    if longest > model_cfg.max_position_embeddings:
        raise RecipeError(
            f"data.max_prompt_tokens={cfg.data.max_prompt_tokens} + max_new_tokens={new_tokens} (rollout/eval) = "
            f"{longest} exceeds the model's max_position_embeddings={model_cfg.max_position_embeddings}; lower them"
        )
