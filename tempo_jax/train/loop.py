"""The training loop for every method (stage-1 RLVR, TEMPO, Zero-RL PPO, TTRL, EMPO).

One step (TEMPO_SPEC §1.2): rollout -> grade -> filter -> old log-probs and critic values
(pre-update: the one-step critic lag) -> advantages -> E-step (critic) -> M-step (actor) ->
metrics -> checkpoint at the alternation boundary. Per-step randomness is a pure function of
(seed, step) and the data stream position is checkpointed, so a resumed run continues
bit-for-bit on CPU.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from tempo_jax import storage
from tempo_jax.errors import UserError
from tempo_jax.models.tokenizer import save_tokenizer, stop_and_pad_ids
from tempo_jax.parallel import mesh as pmesh
from tempo_jax.parallel.distributed import init_distributed, is_primary
from tempo_jax.rewards.grader import Grader
from tempo_jax.train import programs
from tempo_jax.train.checkpoint import Checkpointer
from tempo_jax.train.config import grader_task_map, validate
from tempo_jax.train.export import export_final
from tempo_jax.train.metrics import MetricsWriter, NullMetricsWriter
from tempo_jax.train.periodic_eval import make_evaluator
from tempo_jax.train.preemption import PreemptionGuard
from tempo_jax.train.rollout import collect
from tempo_jax.train.run_dir import ensure_fresh, ensure_resumable, ensure_writable
from tempo_jax.train.run_files import TOKENIZER_DIR, load_run_tokenizer, write_run_files
from tempo_jax.train.run_models import check_model_fits, load_run_models
from tempo_jax.train.state import TrainState, create_train_state
from tempo_jax.train.step_metrics import step_metrics
from tempo_jax.train.stream import build_stream
from tempo_jax.train.updates import ACTOR_KEYS, CRITIC_KEYS
from tempo_jax.train.wandb_logger import wandb_sinks

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
        self.run_dir = cfg.run_dir
        if is_primary():
            ensure_writable(self.run_dir)
        else:
            storage.makedirs(self.run_dir)
        self.tokenizer = load_run_tokenizer(cfg)
        self.stream, self.data_report = build_stream(cfg, self.tokenizer)
        actor, critic = load_run_models(cfg, self.mesh)
        self.model_cfg = actor.cfg
        check_model_fits(cfg, self.tokenizer, self.model_cfg)
        self.actor = self._make_role("actor", actor)
        self.critic = self._make_role("critic", critic) if critic is not None else None
        self.settings = programs.rollout_settings(cfg, *stop_and_pad_ids(self.tokenizer, self.model_cfg))
        self._estimator = programs.advantage_fn(cfg, self.mesh)
        self.checkpointer = Checkpointer(
            storage.join(self.run_dir, "checkpoints"),
            keep=cfg.checkpoint.keep,
            save_every=cfg.checkpoint.save_every,
            async_save=cfg.checkpoint.async_save,
        )
        self._grader: Grader | None = None
        self.start_step = 0
        self.consecutive_bad = 0
        if resume:
            self._resume()
        if is_primary():  # one writer for the shared run directory (multi-process jobs)
            write_run_files(cfg, self.model_cfg, self.run_dir)
            save_tokenizer(self.tokenizer, storage.join(self.run_dir, TOKENIZER_DIR))  # for eval --checkpoint

    # ------------------------------------------------------------------ construction
    def _make_role(self, name: str, model) -> Role:
        """A role's train state on the mesh, its update (M-step for the actor, E-step for the critic)
        and its no-grad forward, all from ``train.programs`` (the planner builds the same)."""
        cfg, stacked = self.cfg, model.cfg.scan_layers
        tx = programs.optimizer(cfg, name)
        graphdef, state = create_train_state(model, tx)
        state = pmesh.shard_train_state(state, self.mesh, stacked)
        update = programs.update_step(cfg, name, graphdef, tx, state, self.mesh, stacked)
        forward = programs.forward(cfg, name, graphdef, self.mesh)
        return Role(graphdef, state, update, forward, cfg.train[f"{name}_lr"])

    @property
    def grader(self) -> Grader:
        """The answer grader (a process pool), started on first use; ``close()`` (or the end of
        ``run()``, or leaving ``with Trainer(...)``) stops it."""
        if self._grader is None:
            g = self.cfg.grader
            self._grader = Grader(num_workers=g.workers, timeout_s=g.timeout_s, task_map=grader_task_map(self.cfg))
        return self._grader

    def close(self) -> None:
        """Stop the grader's workers and wait for pending checkpoint writes."""
        if self._grader is not None:
            self._grader.close()
            self._grader = None
        self.checkpointer.wait()

    def __enter__(self) -> Trainer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

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
        abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), self._arrays())
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
        batch, info = collect(
            actor_split,
            self.stream,
            self.tokenizer,
            self.grader,
            self.settings,
            jax.random.fold_in(key, 0),
            mesh=self.rollout_mesh,
        )
        del actor_split  # a resharded rollout copy of the actor must not stay alive through the updates
        dev = pmesh.shard_batch(
            {
                k: v
                for k, v in batch.items()
                if k in (set(ACTOR_KEYS) | set(CRITIC_KEYS) | {"scores", "rewards", "group_ids", "sampler_logprobs"})
            },
            self.mesh,
        )
        t0 = time.perf_counter()
        logp, entropy = self.actor.forward(self.actor.state.params, dev)
        dev["old_logprobs"] = logp if cfg.algo.recompute_old_logprobs else dev["sampler_logprobs"]
        if self.critic is not None:
            dev["values"] = self.critic.forward(self.critic.state.params, dev)
        else:
            dev["values"] = jnp.zeros_like(logp)
        dev["advantages"], dev["returns"] = self.advantages(dev)
        jax.block_until_ready(dev["advantages"])
        info["forward"] = time.perf_counter() - t0

        critic_out = None
        t0 = time.perf_counter()
        if self.critic is not None and self.critic.lr > 0 and step % cfg.algo.critic_update_every == 0:
            self.critic.state, summary, sums = self.critic.update(
                self.critic.state, {k: dev[k] for k in CRITIC_KEYS}, jax.random.fold_in(key, 1)
            )
            critic_out = pmesh.to_host((summary, sums))
        info["e_step"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        self.actor.state, summary, sums = self.actor.update(
            self.actor.state, {k: dev[k] for k in ACTOR_KEYS}, jax.random.fold_in(key, 2)
        )
        actor_out = pmesh.to_host((summary, sums))
        info["m_step"] = time.perf_counter() - t0
        return step_metrics(batch, pmesh.to_host(dev), pmesh.to_host(entropy), actor_out, critic_out, info)

    def advantages(self, dev: dict[str, Any]) -> tuple[jax.Array, jax.Array]:
        """(advantages, returns) of a step's batch with ``algo.adv_estimator`` and its options: the
        outcome score, or the method's reward (TTRL votes, EMPO entropy), against the pre-update V_t."""
        score = dev["scores"] if self.cfg.algo.reward == "outcome" else dev["rewards"]
        out = self._estimator(score, dev["values"], dev["response_mask"], dev["is_labeled"], dev["group_ids"])
        return out.advantages, out.returns

    # ------------------------------------------------------------------ the loop
    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        total = cfg.train.total_steps
        writer = (
            MetricsWriter(
                self.run_dir,
                total,
                self.start_step,
                cfg.log.tensorboard,
                cfg.log.progress_bar,
                sinks=wandb_sinks(cfg, self.run_dir),
            )
            if is_primary()
            else NullMetricsWriter()
        )
        evaluator = make_evaluator(cfg, self)
        last: dict[str, float] = {}
        stopped_by = None
        try:
            with PreemptionGuard() as guard:
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
                            "Lower the learning rates, check the data, or raise train.max_consecutive_bad_steps."
                        )
                    if guard.should_stop():  # multi-process: every process stops at the same step
                        stopped_by = guard.signal_name or "a stop request from another process"
                        self._save(step, force=True)
                        log.warning("%s received: saved step %d and stopping; continue with --resume", stopped_by, step)
                        break
                    self._save(step, force=(step == total))
        finally:
            self.close()
            writer.close()
        if stopped_by is None:
            export_final(self)
        return {"last_metrics": last, "stopped_by": stopped_by, "run_dir": self.run_dir}

    def _save(self, step: int, force: bool = False) -> None:
        meta = {
            "stream": self.stream.state(),
            "step": step,
            "consecutive_bad": self.consecutive_bad,
            "config": json.loads(self.cfg.to_json_best_effort()),
        }
        self.checkpointer.save(step, self._arrays(), meta, force=force)
