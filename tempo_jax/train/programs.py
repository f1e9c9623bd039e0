"""One builder per compiled program of a step, from the config: the trainer and ``tempo-jax plan``
build the rollout settings, the E-step and the M-step through these functions with the same
arguments, so what the planner compiles for a TPU slice is what training runs (MaxText's
``train_compile.py`` reuses its train step the same way)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import ml_collections
import optax
from flax import nnx

from tempo_jax.parallel import mesh as pmesh
from tempo_jax.rl import ADVANTAGES
from tempo_jax.rl.options import as_kwargs
from tempo_jax.sampling.methods import Sampling
from tempo_jax.train.algo_options import algo_options
from tempo_jax.train.optim import make_optimizer
from tempo_jax.train.rollout import RolloutSettings
from tempo_jax.train.state import TrainState
from tempo_jax.train.updates import UpdateSpec, make_e_step, make_logprob_fn, make_m_step, make_value_fn

ROLES = ("actor", "critic")


def update_spec(cfg: ml_collections.ConfigDict) -> UpdateSpec:
    """How the step's rollouts split into mini-batches (optimizer steps) and micro-batches (memory):
    the largest micro-batch within ``train.micro_batch_tokens`` that divides the mini-batch."""
    t, n = cfg.train, cfg.rollout.n
    seq = cfg.data.max_prompt_tokens + cfg.rollout.max_new_tokens
    mini_rows = t.ppo_mini_batch_size * n
    micro = max(1, min(mini_rows, t.micro_batch_tokens // seq))
    while mini_rows % micro:
        micro -= 1
    return UpdateSpec(
        mini_batch_rows=mini_rows,
        micro_rows=micro,
        epochs=t.ppo_epochs,
        shuffle=t.shuffle_minibatches,
        loss_weighting=cfg.algo.loss_weighting,
    )


def optimizer(cfg: ml_collections.ConfigDict, role: str) -> optax.GradientTransformation:
    """AdamW of ``role`` ("actor" or "critic") with its learning rate, weight decay and clip."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    t = cfg.train
    return make_optimizer(t[f"{role}_lr"], t[f"{role}_weight_decay"], t[f"{role}_grad_clip"])


def _on_mesh(update: Callable, state: TrainState, mesh, stacked: bool) -> Callable:
    """The update run on the training mesh, its output state pinned to the input layout (donated)."""
    if mesh is None:
        return update
    out = (pmesh.train_state_shardings(state, mesh, stacked), None, None)
    return pmesh.on_mesh(update, mesh, out_shardings=out, donate_argnums=(0,))


def update_step(
    cfg: ml_collections.ConfigDict,
    role: str,
    graphdef: nnx.GraphDef,
    tx: optax.GradientTransformation,
    state: TrainState,
    mesh=None,
    stacked: bool = False,
) -> Callable:
    """The role's update for ``state``'s layout: the M-step for the actor (``algo.policy_loss`` and its
    options), the E-step for the critic (``algo.value_loss`` and its options)."""
    options = algo_options(cfg)
    if role == "actor":
        update = make_m_step(graphdef, tx, update_spec(cfg), cfg.algo.policy_loss, **as_kwargs(options.policy))
    elif role == "critic":
        update = make_e_step(graphdef, tx, update_spec(cfg), cfg.algo.value_loss, **as_kwargs(options.value))
    else:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    return _on_mesh(update, state, mesh, stacked)


def forward(cfg: ml_collections.ConfigDict, role: str, graphdef: nnx.GraphDef, mesh=None) -> Callable:
    """The role's no-grad pass, micro-batched like the updates: the actor's old log-probs and entropy,
    the critic's values V_t before its update."""
    make = make_logprob_fn if role == "actor" else make_value_fn
    return pmesh.on_mesh(make(graphdef, update_spec(cfg).micro_rows), mesh)


def sampling_method(cfg: ml_collections.ConfigDict) -> Sampling:
    r = cfg.rollout
    return Sampling(temperature=r.temperature, top_k=r.top_k, top_p=r.top_p)


def prompts_per_generate(cfg: ml_collections.ConfigDict) -> int:
    """Prompts per sampler call (``rollout.prompts_per_generate``; 0 = the whole batch)."""
    return cfg.rollout.get("prompts_per_generate", 0) or cfg.train.train_batch_size


def rollout_settings(cfg: ml_collections.ConfigDict, stop_ids: tuple[int, ...], pad_id: int) -> RolloutSettings:
    """What one rollout samples, rewards and filters (``train.rollout.collect``)."""
    r, a = cfg.rollout, cfg.algo
    return RolloutSettings(
        n=r.n,
        max_new_tokens=r.max_new_tokens,
        prompt_len=cfg.data.max_prompt_tokens,
        batch_prompts=cfg.train.train_batch_size,
        method=sampling_method(cfg),
        stop_ids=tuple(stop_ids),
        pad_id=int(pad_id),
        reward=a.reward,
        filter_groups=a.filter_groups,
        max_num_gen_batches=a.max_num_gen_batches,
        confidence_filter=a.confidence_filter,
        confidence_lower=a.confidence_lower,
        confidence_upper=a.confidence_upper,
        kv_cache_dtype=r.kv_cache_dtype or None,
        prompts_per_generate=r.get("prompts_per_generate", 0),
        engine=r.get("engine", "static"),
        decode_slots=r.get("decode_slots", 0),
    )


def advantage_kwargs(cfg: ml_collections.ConfigDict) -> dict[str, Any]:
    """The chosen estimator's options as keyword arguments."""
    return as_kwargs(algo_options(cfg).adv)


def advantage_fn(cfg: ml_collections.ConfigDict, mesh=None) -> Callable:
    """``algo.adv_estimator`` with its options; on a mesh one compiled program (not a stream of
    eager sharded ops)."""
    estimator = functools.partial(ADVANTAGES.get(cfg.algo.adv_estimator), **advantage_kwargs(cfg))
    return pmesh.on_mesh(jax.jit(estimator), mesh) if mesh is not None else estimator
