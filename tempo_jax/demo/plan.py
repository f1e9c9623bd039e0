"""What the demo runs: model size, data, stage budgets (full and --quick)."""
from __future__ import annotations

import dataclasses

METHODS = ("tempo", "ttrl", "empo", "zero_rl_ppo", "tempo_frozen_critic")


@dataclasses.dataclass(frozen=True)
class DemoPlan:
    # tiny Qwen3-architecture model
    hidden_size: int = 128
    intermediate_size: int = 384
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    head_dim: int = 32
    # data (levels of tempo_jax.tasks.arithmetic)
    sft_levels: tuple[int, ...] = (1, 2, 3)
    sft_count: int = 3000
    labeled_levels: tuple[int, ...] = (3, 4)
    labeled_count: int = 256
    unlabeled_level: int = 5
    unlabeled_count: int = 32
    val_count: int = 32  # held-out labeled questions (critic AUROC on labeled data)
    # stage 0: supervised warm start
    sft_steps: int = 600
    sft_batch: int = 32
    sft_lr: float = 3e-3
    # stage 1 / stage 2 (every stage-2 method gets the same budget)
    stage1_steps: int = 12
    stage2_steps: int = 12
    n: int = 8
    max_new_tokens: int = 64
    max_prompt_tokens: int = 32
    train_batch_size: int = 16
    mini_batch_size: int = 8
    actor_lr: float = 2e-5
    critic_lr: float = 1e-4
    clip: float = 0.2
    eval_every: int = 4
    eval_n: int = 16
    seed: int = 1
    methods: tuple[str, ...] = METHODS

    @classmethod
    def quick(cls) -> "DemoPlan":
        """A CI-sized run (a few minutes): smaller model, data and budgets."""
        return cls(hidden_size=64, intermediate_size=192, num_layers=2, head_dim=16, sft_count=800, sft_steps=150,
                   labeled_count=64, unlabeled_count=8, val_count=8, stage1_steps=2, stage2_steps=2,
                   train_batch_size=4, mini_batch_size=2, eval_every=2, eval_n=8, max_new_tokens=48)
