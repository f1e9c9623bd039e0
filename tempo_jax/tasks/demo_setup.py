"""Recommended settings for the CPU demo: task levels, data sizes, model, SFT and rollout lengths.

The numbers come from ``python -m tempo_jax.tasks.calibrate --seed S`` on the project's
2-core CPU machines (shared, load 3-7). Over seeds 0-3, stage 0 with these defaults took
1775-2500 steps, 89-184 s wall (86-147 CPU-s), and gave on D_U (level 4, 48 test questions,
16 samples at T=1): avg@16 0.12-0.24, pass@8 0.51-0.74, plurality-vote accuracy 0.10-0.38,
with the vote wrong while some sample is right on 42-65% of the questions; D_L levels 2 / 3:
avg@16 0.54-0.87 / 0.18-0.77; level 5 (longer than any SFT example): avg@16 <= 0.04. One
rollout batch of 32 level-4 prompts x 8 samples: ~0.1-0.2 s after a ~3-5 s compile.

    setup = DemoSetup()
    tok_dir = build_tokenizer(run_dir / "tokenizer"); tok = load_tokenizer(tok_dir)
    data = setup.datasets()                    # sft / dl / dl_heldout / du record lists
    setup.check_tokenizer(tok)
    model, metrics = sft_train(setup.new_model(), tok, data["sft"], **setup.sft_kwargs(data["sft_heldout"]))
"""
from __future__ import annotations

import dataclasses
from flax import nnx

from tempo_jax.models.config import ModelConfig, RopeConfig
from tempo_jax.models.decoder import CausalLM
from tempo_jax.tasks import arithmetic
from tempo_jax.tasks import tokenizer as task_tokenizer

# Fixed ids of the task tokenizer's special tokens (trained with them first, in this order).
PAD_ID, EOS_ID, IM_START_ID, IM_END_ID = 0, 1, 2, 3


@dataclasses.dataclass(frozen=True)
class DemoSetup:
    """Everything the demo needs to build its data, base model and stage 0.

    Splits (disjoint problem texts, see :mod:`tempo_jax.tasks.arithmetic`): ``sft`` for
    stage 0 (and its held-out stopping set), ``train`` for D_L (labeled; stage 1 and the
    critic), ``val`` for held-out labeled questions (critic AUROC), ``test`` for D_U (answers
    hidden from training). D_L (levels 2-3) is easier than D_U (level 4) but made of the same
    steps, so a critic trained on D_L can judge D_U's responses.

    Stage 0 trains "to a competence, not a step count": the step at which such a small model
    starts to get multi-digit carries and borrows right varies by a factor of ~1.5-2 between
    seeds, and D_U accuracy with it, so training stops when the share of ``sft_heldout_count``
    held-out SFT-split problems of ``sft_heldout_levels`` whose whole solution greedy decoding
    reproduces (teacher-forced exact match) reaches
    ``sft_stop_at_exact_match`` (checked every ``sft_eval_every`` steps, ``sft_steps`` is the cap).
    No D_U question is used for that decision.
    """

    seed: int = 0
    # model: a tiny Qwen3 (q/k head norm, GQA, tied embeddings)
    hidden_size: int = 64
    intermediate_size: int = 192
    num_layers: int = 2
    num_heads: int = 2
    num_kv_heads: int = 1
    head_dim: int = 32
    vocab_size: int = 320  # the tokenizer has 292 tokens; the table is padded to a multiple of 64
    rope_theta: float = 10_000.0
    max_position_embeddings: int = 256
    # stage 0 (SFT)
    sft_levels: tuple[int, ...] = (2, 3, 4)
    sft_weights: tuple[float, ...] | None = None  # None: equal shares
    sft_count: int = 3000
    sft_steps: int = 2500  # a cap: training stops once the held-out exact match reaches the target
    sft_stop_at_exact_match: float | None = 0.25
    sft_eval_every: int = 25
    sft_heldout_levels: tuple[int, ...] = (4,)
    sft_heldout_count: int = 128
    sft_batch_size: int = 32
    sft_lr: float = 1e-2
    sft_warmup_steps: int = 50
    # D_L (labeled) and D_U (unlabeled test questions)
    dl_levels: tuple[int, ...] = (2, 3)
    dl_count: int = 512
    dl_heldout_count: int = 96
    du_levels: tuple[int, ...] = (4,)
    du_count: int = 64
    # rollouts: level-4 solutions are <= 29 tokens (level 5: 41); 48 bounds runaway samples
    max_new_tokens: int = 48
    eval_n: int = 16
    temperature: float = 1.0

    # ------------------------------------------------------------------ model / tokenizer

    def model_config(self) -> ModelConfig:
        return ModelConfig(
            model_type="qwen3", vocab_size=self.vocab_size, hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size, num_layers=self.num_layers, num_heads=self.num_heads,
            num_kv_heads=self.num_kv_heads, head_dim=self.head_dim, rope=RopeConfig(theta=self.rope_theta),
            qk_norm="head", tie_word_embeddings=True, max_position_embeddings=self.max_position_embeddings,
            eos_token_id=(EOS_ID, IM_END_ID), pad_token_id=PAD_ID)

    def new_model(self, seed: int | None = None) -> CausalLM:
        return CausalLM(self.model_config(), nnx.Rngs(self.seed if seed is None else seed))

    @staticmethod
    def build_tokenizer(out_dir) -> str:
        return str(task_tokenizer.build_tokenizer(out_dir))

    def check_tokenizer(self, tokenizer) -> None:
        """The tokenizer fits the embedding and has the ids the model config assumes."""
        got = (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(task_tokenizer.IM_START),
               tokenizer.convert_tokens_to_ids(task_tokenizer.IM_END))
        if got != (PAD_ID, EOS_ID, IM_START_ID, IM_END_ID):
            raise ValueError(f"tokenizer special ids {got} differ from {(PAD_ID, EOS_ID, IM_START_ID, IM_END_ID)}")
        if len(tokenizer) > self.vocab_size:
            raise ValueError(f"tokenizer has {len(tokenizer)} tokens > model vocab_size {self.vocab_size}")

    # ------------------------------------------------------------------ data

    @staticmethod
    def prompt(problem: str) -> str:
        """The ChatML prompt (= ``render_prompt(problem, "qwen3", instruction=None)``)."""
        return arithmetic.format_prompt(problem)

    def datasets(self) -> dict[str, list[dict]]:
        """``sft`` and ``sft_heldout`` (stage 0 and its stopping rule), ``dl`` and ``dl_heldout``
        (labeled), ``du`` (test questions); all problem texts disjoint.

        Every record is ``{id, problem, answer, solution, level, split}``; D_U's ``answer`` is
        for evaluation only (the demo must not train on it).
        """
        s = self.seed
        sft = arithmetic.make_mixture(self.sft_levels, self.sft_count, seed=s, split="sft", weights=self.sft_weights)
        return {
            "sft": sft,
            "sft_heldout": arithmetic.make_mixture(self.sft_heldout_levels, self.sft_heldout_count, seed=s,
                                                   split="sft", exclude=[r["problem"] for r in sft]),
            "dl": arithmetic.make_mixture(self.dl_levels, self.dl_count, seed=s, split="train"),
            "dl_heldout": arithmetic.make_mixture(self.dl_levels, self.dl_heldout_count, seed=s, split="val"),
            "du": arithmetic.make_mixture(self.du_levels, self.du_count, seed=s, split="test"),
        }

    # ------------------------------------------------------------------ stage 0

    def sft_kwargs(self, heldout: list[dict] | None = None) -> dict:
        """Arguments of ``tempo_jax.train.sft.sft_train`` after (model, tokenizer, records).

        ``heldout`` defaults to ``datasets()["sft_heldout"]`` (the stopping rule's questions).
        """
        if heldout is None and self.sft_stop_at_exact_match is not None:
            heldout = self.datasets()["sft_heldout"]
        return dict(steps=self.sft_steps, batch_size=self.sft_batch_size, lr=self.sft_lr, seed=self.seed,
                    prompt_fn=self.prompt, warmup_steps=self.sft_warmup_steps, eval_records=heldout,
                    eval_every=self.sft_eval_every, stop_at_exact_match=self.sft_stop_at_exact_match)


def quick_setup(**overrides) -> DemoSetup:
    """A smaller variant for CI smoke runs (``--quick``): fewer SFT steps and questions.

    The base model is then much weaker (a smoke test of the plumbing, not of the science).
    """
    base = dict(sft_steps=300, sft_count=1500, dl_count=96, dl_heldout_count=32, du_count=32, eval_n=8)
    base.update(overrides)
    return DemoSetup(**base)
