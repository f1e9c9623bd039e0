"""Separately compiled E-step (critic) and M-step (actor) updates, plus the no-grad forwards.

Each update takes the role's TrainState (donated) and a batch of R rollouts, and performs
``epochs`` passes of mini-batch optimizer steps (R / mini_batch_rows per epoch), accumulating
gradients over micro-batches of ``micro_rows`` rows. Losses come back as (numerator,
denominator) so the mini-batch gradient is exact for any micro-batch split
(``loss_weighting="exact"``); ``"verl"`` reproduces the reference's per-micro-batch mean ×
(micro rows / mini rows) weighting. A mini-batch whose loss or gradient is not finite is
skipped (parameters and optimizer state unchanged) and counted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from tempo_jax.rl.registry import POLICY_LOSSES, VALUE_LOSSES
from tempo_jax.train.forward import micro_batched, response_logprobs, response_values
from tempo_jax.train.state import TrainState

ACTOR_KEYS = ("prompt_tokens", "prompt_valid", "response_tokens", "response_mask", "old_logprobs", "advantages")
CRITIC_KEYS = ("prompt_tokens", "prompt_valid", "response_tokens", "response_mask", "values", "returns", "is_labeled")


@dataclasses.dataclass(frozen=True)
class UpdateSpec:
    """Static shape of one update: how rows split into mini- and micro-batches."""

    mini_batch_rows: int
    micro_rows: int
    epochs: int = 1
    shuffle: bool = True
    loss_weighting: str = "exact"  # exact | verl

    def check(self, rows: int, role: str) -> None:
        if rows % self.mini_batch_rows:
            raise ValueError(
                f"{role}: {rows} rollouts do not split into mini-batches of {self.mini_batch_rows} rows; "
                "make train_batch_size a multiple of ppo_mini_batch_size"
            )
        if self.mini_batch_rows % self.micro_rows:
            raise ValueError(
                f"{role}: mini-batch of {self.mini_batch_rows} rows does not split into micro-batches of "
                f"{self.micro_rows}; adjust micro_batch_tokens"
            )
        if self.loss_weighting not in ("exact", "verl"):
            raise ValueError(f"loss_weighting must be 'exact' or 'verl', got {self.loss_weighting!r}")


def _tree_all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)


def _make_update(
    graphdef: nnx.GraphDef,
    tx: optax.GradientTransformation,
    spec: UpdateSpec,
    micro_loss: Callable[[nnx.Module, dict], Any],
):
    n_micro = spec.mini_batch_rows // spec.micro_rows

    def loss_fn(params, micro):
        out = micro_loss(nnx.merge(graphdef, params), micro)
        if spec.loss_weighting == "verl":
            num = out.numerator / jnp.maximum(out.denominator, 1.0) * (spec.micro_rows / spec.mini_batch_rows)
            return num, (jnp.float32(1.0 / n_micro), out.metrics)
        return out.numerator, (out.denominator, out.metrics)

    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def minibatch(state: TrainState, mb):
        def micro(carry, batch_i):
            grads, num, den, metrics = carry
            (n, (d, m)), g = grad_fn(state.params, batch_i)
            metrics = jax.tree.map(jnp.add, metrics, m) if metrics is not None else m
            return (jax.tree.map(jnp.add, grads, g), num + n, den + d, metrics), None

        first = jax.tree.map(lambda x: x[0], mb)
        metric_shape = jax.eval_shape(lambda p: loss_fn(p, first)[1][1], state.params)
        zeros = (
            jax.tree.map(jnp.zeros_like, state.params),
            jnp.float32(0),
            jnp.float32(0),
            jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), metric_shape),
        )
        (grads, num, den, metrics), _ = jax.lax.scan(micro, zeros, mb)
        scale = 1.0 / jnp.maximum(den, 1e-12) if spec.loss_weighting == "verl" else 1.0 / jnp.maximum(den, 1.0)
        grads = jax.tree.map(lambda g: g * scale, grads)
        loss = num * scale
        finite = jnp.isfinite(loss) & _tree_all_finite(grads)
        updates, new_opt = tx.update(grads, state.opt_state, state.params)
        new_params = optax.apply_updates(state.params, updates)
        updated = TrainState(params=new_params, opt_state=new_opt, step=state.step + 1)
        state = jax.tree.map(lambda a, b: jnp.where(finite, a, b), updated, state)
        info = {
            "loss": loss,
            "grad_norm": optax.tree.norm(grads),
            "skipped": (~finite).astype(jnp.float32),
            "metrics": metrics,
        }
        return state, info

    def update(state: TrainState, batch: dict, rng: jax.Array):
        rows = batch["response_mask"].shape[0]
        spec.check(rows, "update")  # at trace time: a clear message instead of a reshape error
        n_mini = rows // spec.mini_batch_rows
        infos = []
        for epoch in range(spec.epochs):
            perm = jax.random.permutation(jax.random.fold_in(rng, epoch), rows) if spec.shuffle else jnp.arange(rows)
            shaped = jax.tree.map(
                lambda x, perm=perm: x[perm].reshape((n_mini, n_micro, spec.micro_rows) + x.shape[1:]), batch
            )
            state, info = jax.lax.scan(minibatch, state, shaped)
            infos.append(info)
        info = jax.tree.map(lambda *xs: jnp.concatenate(xs), *infos)
        summary = {
            "loss": jnp.mean(info["loss"]),
            "grad_norm": jnp.mean(info["grad_norm"]),
            "skipped_updates": jnp.sum(info["skipped"]),
            "optimizer_steps": jnp.float32(info["skipped"].shape[0]),  # attempted; skipped_updates of them not applied
        }
        sums = jax.tree.map(lambda x: jnp.sum(x, axis=0), info["metrics"])
        return state, summary, sums

    return jax.jit(update, donate_argnums=(0,))


def make_m_step(
    graphdef: nnx.GraphDef,
    tx: optax.GradientTransformation,
    spec: UpdateSpec,
    loss_name: str = "gspo",
    **loss_kwargs: Any,
):
    """The M-step: policy update on all rollouts with ``POLICY_LOSSES[loss_name]``."""
    loss = POLICY_LOSSES.get(loss_name)
    want_entropy = float(loss_kwargs.get("entropy_coef", 0.0)) != 0.0

    def micro_loss(actor, b):
        logp, ent = response_logprobs(
            actor,
            b["prompt_tokens"],
            b["prompt_valid"],
            b["response_tokens"],
            b["response_mask"],
            with_entropy=want_entropy,
        )
        kwargs = dict(loss_kwargs)
        if want_entropy:
            kwargs["entropy"] = ent
        return loss(logp, b["old_logprobs"], b["advantages"], b["response_mask"], **kwargs)

    return _make_update(graphdef, tx, spec, micro_loss)


def make_e_step(
    graphdef: nnx.GraphDef,
    tx: optax.GradientTransformation,
    spec: UpdateSpec,
    loss_name: str = "seq_clip",
    **loss_kwargs: Any,
):
    """The E-step: critic recalibration with ``VALUE_LOSSES[loss_name]`` (labeled rows by default)."""
    loss = VALUE_LOSSES.get(loss_name)

    def micro_loss(critic, b):
        v = response_values(critic, b["prompt_tokens"], b["prompt_valid"], b["response_tokens"], b["response_mask"])
        return loss(v, b["values"], b["returns"], b["response_mask"], b["is_labeled"], **loss_kwargs)

    return _make_update(graphdef, tx, spec, micro_loss)


def make_logprob_fn(graphdef: nnx.GraphDef, micro_rows: int):
    """Jitted no-grad pass: old log-probs [R, T] and entropy [R, T] of the current actor."""

    def fn(params, batch):
        actor = nnx.merge(graphdef, params)

        def one(b):
            return response_logprobs(
                actor,
                b["prompt_tokens"],
                b["prompt_valid"],
                b["response_tokens"],
                b["response_mask"],
                with_entropy=True,
            )

        keys = ("prompt_tokens", "prompt_valid", "response_tokens", "response_mask")
        return micro_batched(one, {k: batch[k] for k in keys}, micro_rows)

    return jax.jit(fn)


def make_value_fn(graphdef: nnx.GraphDef, micro_rows: int):
    """Jitted no-grad pass: critic values V_t [R, T] of the current (pre-update) critic."""

    def fn(params, batch):
        critic = nnx.merge(graphdef, params)

        def one(b):
            return response_values(
                critic, b["prompt_tokens"], b["prompt_valid"], b["response_tokens"], b["response_mask"]
            )

        keys = ("prompt_tokens", "prompt_valid", "response_tokens", "response_mask")
        return micro_batched(one, {k: batch[k] for k in keys}, micro_rows)

    return jax.jit(fn)
