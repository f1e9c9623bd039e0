"""What the demo runs: the task/model setup (tempo_jax.tasks.demo_setup) and the RL budgets."""
from __future__ import annotations

import dataclasses

from tempo_jax.tasks.demo_setup import DemoSetup, quick_setup

METHODS = ("tempo", "ttrl", "empo", "zero_rl_ppo", "tempo_frozen_critic")


@dataclasses.dataclass(frozen=True)
class DemoPlan:
    setup: DemoSetup = dataclasses.field(default_factory=lambda: DemoSetup(dl_heldout_count=48))
    # stage 1 / stage 2 (every stage-2 method gets the same budget and starts from stage 1)
    stage1_steps: int = 12
    stage2_steps: int = 8
    n: int = 8
    max_prompt_tokens: int = 32
    train_batch_size: int = 16
    mini_batch_size: int = 8
    actor_lr: float = 3e-5
    critic_lr: float = 1e-3
    clip: float = 0.2
    eval_every: int = 4
    seed: int = 1
    methods: tuple[str, ...] = METHODS

    @property
    def eval_n(self) -> int:
        return self.setup.eval_n

    @classmethod
    def quick(cls) -> "DemoPlan":
        """A CI-sized run (a few minutes): the plumbing end to end, not the science."""
        return cls(setup=quick_setup(sft_steps=200, du_count=16, dl_heldout_count=16), stage1_steps=1,
                   stage2_steps=2, train_batch_size=8, mini_batch_size=4, eval_every=2)
