"""The training loop for every method (stage-1 RLVR, TEMPO, Zero-RL PPO, TTRL, EMPO).

One step (TEMPO_SPEC §1.2): rollout -> grade -> filter -> old log-probs and critic values
(pre-update: the one-step critic lag) -> advantages -> E-step (critic) -> M-step (actor) ->
metrics -> checkpoint at the alternation boundary. Per-step randomness is a pure function of
(seed, step) and the data stream position is checkpointed, so a resumed run continues
bit-for-bit on CPU.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

import tempo_jax.rl.advantages  # noqa: F401  (registers estimators)
import tempo_jax.rl.losses  # noqa: F401
import tempo_jax.rl.value_losses  # noqa: F401
from tempo_jax.errors import UserError
from tempo_jax.models.critic import critic_from_actor
from tempo_jax.models.hf_io import from_hf
from tempo_jax.parallel import mesh as pmesh
from tempo_jax.parallel.distributed import init_distributed, is_primary
from tempo_jax.rl.registry import ADVANTAGES
from tempo_jax.train import setup
from tempo_jax.train.checkpoint import Checkpointer
from tempo_jax.train.config import model_overrides, uses_critic, validate
from tempo_jax.train.metrics import MetricsWriter, NullMetricsWriter
from tempo_jax.train.run_dir import ensure_fresh, ensure_resumable, ensure_writable
from tempo_jax.train.optim import make_optimizer
from tempo_jax.train.preemption import PreemptionGuard
from tempo_jax.train.rollout import RolloutSettings, collect
from tempo_jax.train.state import TrainState, create_train_state
from tempo_jax.train.step_metrics import step_metrics
from tempo_jax.train.updates import ACTOR_KEYS, CRITIC_KEYS, UpdateSpec, make_e_step, make_logprob_fn, make_m_step, \
    make_value_fn

log = logging.getLogger(__name__)


class TrainingDiverged(UserError, RuntimeError):
    """Too many consecutive steps with non-finite losses; the last good checkpoint is intact."""


@dataclasses.dataclass
class Role:
    graphdef: Any
    state: TrainState
    update: Any
    forward: Any
    lr: float


class Trainer:
    def __init__(self, cfg: ml_collections.ConfigDict, resume: bool = False):
        init_distributed()  # multi-host: join the job before JAX sees devices (no-op on one host)
        validate(cfg)
        if not resume:
            ensure_fresh(cfg.run_dir)
        self.cfg = cfg
        self.mesh = pmesh.mesh_from_config(cfg)  # None = one device
        self.rollout_mesh = pmesh.rollout_mesh_from_config(cfg, self.mesh)
        self._mesh_fns: dict[Any, Any] = {}
        self.run_dir = cfg.run_dir
        if is_primary():
            ensure_writable(self.run_dir)
        else:
            os.makedirs(self.run_dir, exist_ok=True)
        self.tokenizer = setup.load_run_tokenizer(cfg)
        self.stream, self.data_report = setup.build_stream(cfg, self.tokenizer)
        actor, critic = self._load_models()
        self.model_cfg = actor.cfg
        setup.check_model_fits(cfg, self.tokenizer, self.model_cfg)
        self.actor = self._make_actor(actor)
        self.critic = self._make_critic(critic) if critic is not None else None
        self.settings = setup.rollout_settings(cfg, self.tokenizer, self.model_cfg)
        self.checkpointer = Checkpointer(os.path.join(self.run_dir, "checkpoints"), keep=cfg.checkpoint.keep,
                                         save_every=cfg.checkpoint.save_every, async_save=cfg.checkpoint.async_save)
        self.start_step = 0
        self.consecutive_bad = 0
        if resume:
            self._resume()
        if is_primary():  # one writer for the shared run directory (multi-process jobs)
            setup.write_run_files(cfg, self.model_cfg, self.run_dir)
            self.tokenizer.save_pretrained(os.path.join(self.run_dir, "tokenizer"))  # for eval --checkpoint

    # ------------------------------------------------------------------ construction
    def _load_models(self):
        cfg = self.cfg
        overrides = model_overrides(cfg)
        if cfg.model.init_from:
            return setup.load_from_run(cfg.model.init_from, need_critic=uses_critic(cfg), mesh=self.mesh,
                                       **overrides)
        actor = from_hf(cfg.model.actor_hf, mesh=self.mesh, **overrides)
        if not uses_critic(cfg):
            return actor, None
        if cfg.model.critic_hf:
            return actor, from_hf(cfg.model.critic_hf, critic=True, mesh=self.mesh, **overrides)
        return actor, critic_from_actor(actor, seed=cfg.seed)

    def _spec(self) -> UpdateSpec:
        t, n = self.cfg.train, self.cfg.rollout.n
        seq = self.cfg.data.max_prompt_tokens + self.cfg.rollout.max_new_tokens
        mini_rows = t.ppo_mini_batch_size * n
        micro = max(1, min(mini_rows, t.micro_batch_tokens // seq))
        while mini_rows % micro:
            micro -= 1
        return UpdateSpec(mini_batch_rows=mini_rows, micro_rows=micro, epochs=t.ppo_epochs,
                          shuffle=t.shuffle_minibatches, loss_weighting=self.cfg.algo.loss_weighting)

    def _make_actor(self, actor) -> Role:
        t, a = self.cfg.train, self.cfg.algo
        tx = make_optimizer(t.actor_lr, t.actor_weight_decay, t.actor_grad_clip)
        graphdef, state = create_train_state(actor, tx)
        state = pmesh.shard_train_state(state, self.mesh, actor.cfg.scan_layers)
        spec = self._spec()
        kwargs = dict(clip_low=a.clip_low, clip_high=a.clip_high, agg=a.loss_agg, entropy_coef=a.entropy_coef)
        if a.policy_loss == "ppo" and a.clip_ratio_c:
            kwargs["clip_ratio_c"] = a.clip_ratio_c
        update = make_m_step(graphdef, tx, spec, a.policy_loss, **kwargs)
        update = self._on_mesh(update, state, actor.cfg.scan_layers)
        forward = pmesh.on_mesh(make_logprob_fn(graphdef, spec.micro_rows), self.mesh)
        return Role(graphdef, state, update, forward, t.actor_lr)

    def _make_critic(self, critic) -> Role:
        t, a = self.cfg.train, self.cfg.algo
        tx = make_optimizer(t.critic_lr, t.critic_weight_decay, t.critic_grad_clip)
        graphdef, state = create_train_state(critic, tx)
        state = pmesh.shard_train_state(state, self.mesh, critic.cfg.scan_layers)
        spec = self._spec()
        update = make_e_step(graphdef, tx, spec, a.value_loss, cliprange_value=a.cliprange_value, agg=a.loss_agg,
                             labeled_only=a.value_labeled_only)
        update = self._on_mesh(update, state, critic.cfg.scan_layers)
        forward = pmesh.on_mesh(make_value_fn(graphdef, spec.micro_rows), self.mesh)
        return Role(graphdef, state, update, forward, t.critic_lr)

    def _on_mesh(self, update, state: TrainState, stacked: bool):
        """The update run on the training mesh, its output state pinned to the input layout."""
        if self.mesh is None:
            return update
        out = (pmesh.train_state_shardings(state, self.mesh, stacked), None, None)
        return pmesh.on_mesh(update, self.mesh, out_shardings=out, donate_argnums=(0,))

    def _rollout_params(self):
        """Actor parameters for the sampler: the training arrays themselves, or a copy resharded onto
        ``mesh.rollout_shape``."""
        params = self.actor.state.params
        if self.rollout_mesh is self.mesh:
            return params
        shardings = pmesh.state_shardings(params, self.rollout_mesh, self.model_cfg.scan_layers)
        return pmesh.reshard(params, shardings)

    def _arrays(self) -> dict[str, Any]:
        return {"actor": self.actor.state, "critic": self.critic.state if self.critic else None}

    def _resume(self) -> None:
        latest = self.checkpointer.latest_step()
        ensure_resumable(self.run_dir, latest)
        if latest is None:
            log.warning("--resume: no checkpoint in %s; starting from step 0", self.checkpointer.directory)
            return
        abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
                                self._arrays())
        step, arrays, meta = self.checkpointer.restore(abstract)
        self.actor.state = arrays["actor"]
        if self.critic is not None:
            self.critic.state = arrays["critic"]
        self.stream.restore(meta["stream"])
        self.start_step = int(step)
        self.consecutive_bad = int(meta.get("consecutive_bad", 0))
        log.info("resumed from step %d", step)

    # ------------------------------------------------------------------ one step
    def step(self, step: int) -> dict[str, float]:
        cfg = self.cfg
        key = jax.random.fold_in(jax.random.key(cfg.seed), step)
        actor_split = (self.actor.graphdef, self._rollout_params())
        batch, info = collect(actor_split, self.stream, self.tokenizer, self.grader, self.settings,
                              jax.random.fold_in(key, 0), mesh=self.rollout_mesh)
        del actor_split  # a resharded rollout copy of the actor must not stay alive through the updates
        dev = pmesh.shard_batch({k: v for k, v in batch.items() if k in (set(ACTOR_KEYS) | set(CRITIC_KEYS) | {
            "scores", "rewards", "group_ids", "sampler_logprobs"})}, self.mesh)
        t0 = time.perf_counter()
        logp, entropy = self.actor.forward(self.actor.state.params, dev)
        dev["old_logprobs"] = logp if cfg.algo.recompute_old_logprobs else dev["sampler_logprobs"]
        if self.critic is not None:
            dev["values"] = self.critic.forward(self.critic.state.params, dev)
        else:
            dev["values"] = jnp.zeros_like(logp)
        score = dev["scores"] if cfg.algo.reward == "outcome" else dev["rewards"]
        estimator = ADVANTAGES.get(cfg.algo.adv_estimator)
        options = {"whiten": cfg.algo.whiten} if cfg.algo.adv_estimator == "em_token" else {}
        if cfg.algo.adv_estimator == "gae":
            options = {"gamma": cfg.algo.gamma, "lam": cfg.algo.lam}
        if self.mesh is not None:  # one compiled program on the mesh (not a stream of eager sharded ops)
            fn_key = (cfg.algo.adv_estimator, tuple(sorted(options.items())))
            if fn_key not in self._mesh_fns:
                self._mesh_fns[fn_key] = pmesh.on_mesh(jax.jit(functools.partial(estimator, **options)), self.mesh)
            estimator, options = self._mesh_fns[fn_key], {}
        adv = estimator(score, dev["values"], dev["response_mask"], dev["is_labeled"], dev["group_ids"], **options)
        dev["advantages"], dev["returns"] = adv.advantages, adv.returns
        if step in setup.nan_injection_steps(cfg):
            dev["advantages"] = dev["advantages"] * jnp.nan
        jax.block_until_ready(dev["advantages"])
        info["forward"] = time.perf_counter() - t0

        critic_out = None
        t0 = time.perf_counter()
        if self.critic is not None and self.critic.lr > 0 and step % cfg.algo.critic_update_every == 0:
            self.critic.state, summary, sums = self.critic.update(
                self.critic.state, {k: dev[k] for k in CRITIC_KEYS}, jax.random.fold_in(key, 1))
            critic_out = pmesh.to_host((summary, sums))
        info["e_step"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        self.actor.state, summary, sums = self.actor.update(
            self.actor.state, {k: dev[k] for k in ACTOR_KEYS}, jax.random.fold_in(key, 2))
        actor_out = pmesh.to_host((summary, sums))
        info["m_step"] = time.perf_counter() - t0
        return step_metrics(batch, pmesh.to_host(dev), pmesh.to_host(entropy), actor_out, critic_out, info)

    # ------------------------------------------------------------------ the loop
    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        total = cfg.train.total_steps
        writer = MetricsWriter(self.run_dir, total, self.start_step, cfg.log.tensorboard, cfg.log.progress_bar) \
            if is_primary() else NullMetricsWriter()
        evaluator = setup.make_evaluator(cfg, self)
        last: dict[str, float] = {}
        stopped_by = None
        try:
            with setup.make_grader(cfg) as self.grader, PreemptionGuard() as guard:
                if evaluator and cfg.eval.before_train and self.start_step == 0:
                    writer.write(0, evaluator(0), advance=False)
                for step in range(self.start_step + 1, total + 1):
                    last = self.step(step)
                    bad = last.get("actor/skipped_updates", 0) + last.get("critic/skipped_updates", 0) > 0
                    self.consecutive_bad = self.consecutive_bad + 1 if bad else 0
                    last["train/consecutive_bad_steps"] = float(self.consecutive_bad)
                    if evaluator and (step % cfg.eval.test_freq == 0 or step == total):
                        last.update(evaluator(step))
                    writer.write(step, last)
                    if self.consecutive_bad >= cfg.train.max_consecutive_bad_steps:
                        raise TrainingDiverged(
                            f"{self.consecutive_bad} consecutive steps had non-finite losses or gradients (their "
                            f"updates were skipped); stopping at step {step}. The last good checkpoint "
                            f"(step {self.checkpointer.latest_step()}) in {self.checkpointer.directory} is intact. "
                            "Lower the learning rates, check the data, or raise train.max_consecutive_bad_steps.")
                    if guard.should_stop():  # multi-process: every process stops at the same step
                        stopped_by = guard.signal_name or "a stop request from another process"
                        self._save(step, force=True)
                        log.warning("%s received: saved step %d and stopping; continue with --resume",
                                    stopped_by, step)
                        break
                    self._save(step, force=(step == total))
        finally:
            self.checkpointer.wait()
            writer.close()
        if stopped_by is None:
            setup.export_final(self)
        return {"last_metrics": last, "stopped_by": stopped_by, "run_dir": self.run_dir}

    def _save(self, step: int, force: bool = False) -> None:
        meta = {"stream": self.stream.state(), "step": step, "consecutive_bad": self.consecutive_bad,
                "config": json.loads(self.cfg.to_json_best_effort())}
        self.checkpointer.save(step, self._arrays(), meta, force=force)
