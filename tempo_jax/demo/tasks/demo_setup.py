"""The CPU demo's task, data, base model and stage 0 (two solution styles, see :mod:`tempo_jax.demo.tasks.styles`).

Stage 0 trains on a corpus of arithmetic chains (levels 2-4) asked in two phrasings, as two
sources would ask them -- "Compute 7+8-3+9." and "Evaluate 7+8-3+9." -- and solved in two styles:
careful (one operation per line) and hasty (two per line, the second one lost: a systematic
error). The hasty share depends on the source (0.4 for "Compute", 0.7 for "Evaluate"). The
labeled questions D_L come from the "Compute" source, the unlabeled test questions D_U are
level-4 "Evaluate" questions: the base model answers them mostly hastily, so its wrong answers
agree (majority vote is wrong on most questions) while some careful samples are right. A
critic trained on D_L can read which style a solution used whatever the source; the actor's
habit of answering "Evaluate" questions hastily is tied to that source and moves only partly
when RL trains it on "Compute" questions. ``tempo-jax demo --diagnose`` measures both.

    setup = DemoSetup(seed=0)
    tok = load_tokenizer(setup.build_tokenizer(run_dir / "tokenizer"))
    data = setup.datasets()                    # sft / sft_heldout / dl / dl_heldout / du
    setup.check_tokenizer(tok)
    model, metrics = sft_train(setup.new_model(), tok, data["sft"], **setup.sft_kwargs(data["sft_heldout"]))
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any

from flax import nnx

from tempo_jax.demo.tasks import arithmetic, styles
from tempo_jax.demo.tasks import tokenizer as task_tokenizer
from tempo_jax.models.config import ModelConfig, RopeConfig
from tempo_jax.models.decoder import CausalLM

# Fixed ids of the task tokenizer's special tokens (trained with them first, in this order).
PAD_ID, EOS_ID, IM_START_ID, IM_END_ID = 0, 1, 2, 3


@dataclasses.dataclass(frozen=True)
class DemoSetup:
    """Everything the demo needs to build its data, base model and stage 0; ``seed`` drives all of it.

    Splits (disjoint problem texts, see :mod:`tempo_jax.demo.tasks.arithmetic`): ``sft`` for stage 0
    (and a held-out set for its loss), ``train`` for D_L (labeled; stage 1 and the critic),
    ``val`` for held-out labeled questions (critic diagnostics), ``test`` for D_U (answers hidden
    from training). D_L (levels 2-3) is easier than D_U (level 4) and made of the same steps.
    """

    seed: int = 0
    # model: a small Qwen3 (q/k head norm, GQA, tied embeddings), 354k parameters
    hidden_size: int = 96
    intermediate_size: int = 288
    num_layers: int = 3
    num_heads: int = 3
    num_kv_heads: int = 1
    head_dim: int = 32
    vocab_size: int = 320  # the tokenizer has 292 tokens; the table is padded to a multiple of 64
    rope_theta: float = 10_000.0
    max_position_embeddings: int = 256
    # stage 0 (SFT): per phrasing ("Compute ..." / "Evaluate ..."), the share of hasty solutions;
    # levels and their weights are the same for both phrasings
    sft_verbs: tuple[str, ...] = ("Compute", "Evaluate")
    sft_hasty_share: tuple[float, ...] = (0.4, 0.7)
    sft_levels: tuple[int, ...] = (2, 3, 4)
    sft_weights: tuple[float, ...] = (1.0, 1.0, 2.0)
    sft_count: int = 6000  # over both phrasings
    sft_steps: int = 1500
    sft_eval_every: int = 250
    sft_heldout_count: int = 128
    sft_batch_size: int = 64  # measured: 64 x 1250 steps reaches a lower held-out loss than 32 x 2500
    sft_lr: float = 3e-3
    sft_warmup_steps: int = 50
    # D_L (labeled, the "Compute" source) and D_U (unlabeled test questions, the "Evaluate" source)
    dl_verb: str = "Compute"
    dl_levels: tuple[int, ...] = (2, 3, 4)
    dl_count: int = 512
    dl_heldout_count: int = 64
    du_verb: str = "Evaluate"
    du_levels: tuple[int, ...] = (4,)
    du_count: int = 224  # one seed's paired SE of the avg@16 change <= 0.02 (measured 0.019-0.022 at 160)
    # rollouts: level-4 careful solutions are <= 29 tokens; 48 bounds runaway samples
    max_new_tokens: int = 48
    eval_n: int = 16
    temperature: float = 1.0

    def __post_init__(self):
        if len(self.sft_levels) != len(self.sft_weights):
            raise ValueError(f"sft_weights needs one entry per level: {self.sft_levels} vs {self.sft_weights}")
        if len(self.sft_verbs) != len(self.sft_hasty_share):
            raise ValueError(
                f"sft_hasty_share needs one entry per phrasing: {self.sft_verbs} vs {self.sft_hasty_share}"
            )

    # ------------------------------------------------------------------ model / tokenizer

    def model_config(self) -> ModelConfig:
        return ModelConfig(
            model_type="qwen3",
            vocab_size=self.vocab_size,
            hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size,
            num_layers=self.num_layers,
            num_heads=self.num_heads,
            num_kv_heads=self.num_kv_heads,
            head_dim=self.head_dim,
            rope=RopeConfig(theta=self.rope_theta),
            qk_norm="head",
            tie_word_embeddings=True,
            max_position_embeddings=self.max_position_embeddings,
            eos_token_id=(EOS_ID, IM_END_ID),
            pad_token_id=PAD_ID,
        )

    def new_model(self, seed: int | None = None) -> CausalLM:
        return CausalLM(self.model_config(), nnx.Rngs(self.seed if seed is None else seed))

    @staticmethod
    def build_tokenizer(out_dir) -> str:
        return str(task_tokenizer.build_tokenizer(out_dir))

    def check_tokenizer(self, tokenizer) -> None:
        """The tokenizer fits the embedding and has the ids the model config assumes."""
        got = (
            tokenizer.pad_token_id,
            tokenizer.eos_token_id,
            tokenizer.convert_tokens_to_ids(task_tokenizer.IM_START),
            tokenizer.convert_tokens_to_ids(task_tokenizer.IM_END),
        )
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
        """``sft`` and ``sft_heldout`` (stage 0 and a held-out set of careful solutions of the hardest
        level, whose loss tracks the skill the demo needs), ``dl`` and ``dl_heldout``
        (labeled), ``du`` (test questions); all problem texts disjoint.

        Every record is ``{id, problem, answer, level, split}``, SFT records also carry ``solution``
        and ``style``; D_U's ``answer`` is for evaluation only (the demo must not train on it).
        """
        s = self.seed
        sft: list[dict] = []
        for i, (verb, share) in enumerate(zip(self.sft_verbs, self.sft_hasty_share)):
            count = self.sft_count // len(self.sft_verbs) + (i < self.sft_count % len(self.sft_verbs))
            # other expressions per phrasing: sub-seed s * len(verbs) + i
            sft += styles.make_mixture(
                self.sft_levels,
                count,
                seed=s * len(self.sft_verbs) + i,
                split="sft",
                hasty_share=share,
                weights=self.sft_weights,
                verb=verb,
            )
        random.Random(f"demo-sft|{s}").shuffle(sft)
        seen = [r["problem"] for r in sft]
        return {
            "sft": sft,
            # competence monitor: careful solutions of the hardest level, never trained on
            "sft_heldout": styles.make_problems(
                max(self.sft_levels), self.sft_heldout_count, seed=s, split="sft", hasty_share=0.0, exclude=seen
            ),
            "dl": arithmetic.make_mixture(self.dl_levels, self.dl_count, seed=s, split="train", verb=self.dl_verb),
            "dl_heldout": arithmetic.make_mixture(
                self.dl_levels, self.dl_heldout_count, seed=s, split="val", verb=self.dl_verb
            ),
            "du": arithmetic.make_mixture(self.du_levels, self.du_count, seed=s, split="test", verb=self.du_verb),
        }

    # ------------------------------------------------------------------ stage 0

    def sft_kwargs(self, heldout: list[dict] | None = None) -> dict:
        """Arguments of ``tempo_jax.demo.sft.sft_train`` after (model, tokenizer, records).

        ``heldout`` (default ``datasets()["sft_heldout"]``) is only monitored (its loss), never a
        stopping rule: with two styles a greedy exact match measures the style choice, not skill.
        """
        if heldout is None:
            heldout = self.datasets()["sft_heldout"]
        return dict(
            steps=self.sft_steps,
            batch_size=self.sft_batch_size,
            lr=self.sft_lr,
            seed=self.seed,
            prompt_fn=self.prompt,
            warmup_steps=self.sft_warmup_steps,
            eval_records=heldout,
            eval_every=self.sft_eval_every,
        )


def quick_setup(**overrides) -> DemoSetup:
    """A smaller variant for CI smoke runs (``--quick``): fewer SFT steps and questions.

    The base model is then much weaker (a smoke test of the plumbing, not of the science).
    """
    base: dict[str, Any] = dict(
        hidden_size=64,
        intermediate_size=192,
        num_layers=2,
        num_heads=2,
        sft_steps=200,
        sft_batch_size=32,
        sft_count=1500,
        sft_eval_every=100,
        sft_heldout_count=32,
        dl_count=96,
        dl_heldout_count=16,
        du_count=16,
    )
    base.update(overrides)
    return DemoSetup(**base)
