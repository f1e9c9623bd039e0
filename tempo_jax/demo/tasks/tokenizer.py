"""A small byte-level BPE tokenizer for the synthetic tasks, saved in Hugging Face format.

* Byte-level (all 256 bytes in the base vocabulary), so every string round-trips exactly.
* Every digit is its own token (digits are split off before BPE, as in Qwen/Llama 3): numbers
  are tokenised the same way wherever they appear, which is what makes arithmetic learnable.
  Newlines are their own token too, so no merge crosses the prompt/response boundary
  (``...assistant\n`` + ``=...``): encoding prompt and response apart or together agrees.
* Merges are learned from the task's prompts and solutions; the vocabulary stays
  <= :data:`VOCAB_SIZE` (<= 512).
* Special tokens ``<|pad|>`` (0), ``<|endoftext|>`` (1, eos), ``<|im_start|>`` (2),
  ``<|im_end|>`` (3), with a ChatML chat template.

``build_tokenizer(out_dir)`` writes ``tokenizer.json``, ``tokenizer_config.json`` and
``special_tokens_map.json``; ``transformers.AutoTokenizer.from_pretrained(out_dir)`` loads it.
The training corpus is generated from fixed seeds, so the output is byte-identical run to run.
"""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer

from tempo_jax.demo.tasks import arithmetic

PAD, EOS, IM_START, IM_END = "<|pad|>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = (PAD, EOS, IM_START, IM_END)
VOCAB_SIZE = 320
MAX_VOCAB = 512
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# Text the demo may put in prompts besides the problems themselves (kept mergeable, never UNK).
EXTRA_TEXT = (
    "Let's think step by step and output the final answer within \\boxed{}.",
    "system\nuser\nassistant\n",
    "0123456789 +-*/=().,:;!?{}[]\\",
)


def corpus(num_per_level: int = 200, seed: int = 1234) -> list[str]:
    """Training text: prompts and solutions of every level (sft split) plus :data:`EXTRA_TEXT`."""
    texts = list(EXTRA_TEXT)
    for level in sorted(arithmetic.LEVELS):
        count = min(num_per_level, 60) if level == 1 else num_per_level
        for r in arithmetic.make_problems(level, count, seed=seed, split="sft"):
            # The pieces between special tokens as a ChatML prompt splits them; the response apart
            # from the prompt (prompt and response are tokenised separately).
            texts += ["user\n" + r["problem"], "\n", "assistant\n", r["solution"]]
            for verb in arithmetic.VERBS[1:]:  # the other phrasings of the same question
                texts.append("user\n" + arithmetic.problem_text(arithmetic.expression_of(r["problem"]), verb))
    return texts


def train_tokenizer(texts: Iterable[str], vocab_size: int = VOCAB_SIZE) -> Tokenizer:
    """A byte-level BPE with isolated digits trained on ``texts``."""
    if not len(SPECIAL_TOKENS) + 256 < vocab_size <= MAX_VOCAB:
        raise ValueError(f"vocab_size must be in ({len(SPECIAL_TOKENS) + 256}, {MAX_VOCAB}], got {vocab_size}")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(r"\d|\n"), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
        min_frequency=2,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    return tok


def build_tokenizer(out_dir: str | os.PathLike, vocab_size: int = VOCAB_SIZE, num_per_level: int = 200) -> pathlib.Path:
    """Train and save the task tokenizer in HF format; returns ``out_dir``."""
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = train_tokenizer(corpus(num_per_level), vocab_size)
    tok.save(str(out / "tokenizer.json"))
    specials = {"eos_token": EOS, "pad_token": PAD, "bos_token": None, "unk_token": None}
    added = {
        str(tok.token_to_id(t)): {
            "content": t,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for t in SPECIAL_TOKENS
    }
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "added_tokens_decoder": added,
        "additional_special_tokens": [IM_START, IM_END],
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 4096,
        "padding_side": "left",
        **specials,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    special_map = {"eos_token": EOS, "pad_token": PAD, "additional_special_tokens": [IM_START, IM_END]}
    (out / "special_tokens_map.json").write_text(json.dumps(special_map, indent=2, sort_keys=True) + "\n")
    return out


def load(path: str | os.PathLike):
    """The saved tokenizer through transformers (local files only)."""
    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
