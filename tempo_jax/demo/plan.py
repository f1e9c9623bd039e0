"""What the demo runs: the task/model setup (tempo_jax.demo.tasks.demo_setup), the RL budgets and the seed."""

from __future__ import annotations

import dataclasses

from tempo_jax.demo.tasks.demo_setup import DemoSetup, quick_setup

METHODS = ("tempo", "ttrl", "empo", "zero_rl_ppo", "tempo_frozen_critic")


@dataclasses.dataclass(frozen=True)
class DemoPlan:
    """The demo's budgets. ``seed`` drives every source of randomness: the task data, the model
    init and SFT order (through ``setup.seed``, kept equal to it) and sampling and mini-batch
    order in stages 1-2 (the trainer's seed)."""

    setup: DemoSetup = dataclasses.field(default_factory=DemoSetup)
    seed: int = 0
    # stage 1 (RLVR on D_L) and stage 2 (every method from the same stage-1 checkpoint, same budget)
    stage1_steps: int = 16
    stage2_steps: int = 32
    n: int = 8
    max_prompt_tokens: int = 32
    train_batch_size: int = 16
    mini_batch_size: int = 8
    stage1_actor_lr: float = 3e-5
    actor_lr: float = 3e-5
    critic_lr: float = 1e-3
    clip: float = 0.2
    eval_every: int = 8
    methods: tuple[str, ...] = METHODS

    def __post_init__(self):
        if self.setup.seed != self.seed:
            object.__setattr__(self, "setup", dataclasses.replace(self.setup, seed=self.seed))

    @property
    def eval_n(self) -> int:
        return self.setup.eval_n

    def with_seed(self, seed: int) -> DemoPlan:
        return dataclasses.replace(self, seed=seed, setup=dataclasses.replace(self.setup, seed=seed))

    @classmethod
    def quick(cls, seed: int = 0) -> DemoPlan:
        """A CI-sized run (a few minutes): the plumbing end to end, not the science."""
        return cls(
            setup=quick_setup(seed=seed),
            seed=seed,
            stage1_steps=2,
            stage2_steps=2,
            train_batch_size=8,
            mini_batch_size=4,
            eval_every=2,
        )
