"""Load a tokenizer through transformers from a local directory or ``tokenizer.json`` (no network).

Handles the two layouts users bring: a full HF tokenizer directory (``tokenizer_config.json``
with ``vocab.json``/``merges.txt`` or ``tokenizer.json``, e.g. Qwen3) and a bare
``tokenizer.json`` (e.g. the OLMo dolma2 tokenizer), which carries no eos/pad declaration; for
those the conventional special tokens are filled in when the vocabulary has them.
"""

from __future__ import annotations

import os

import transformers

from tempo_jax import storage
from tempo_jax.errors import UserError

# Special tokens assumed when a bare tokenizer.json declares none (first one present wins).
_EOS_CANDIDATES = ("<|endoftext|>", "</s>", "<|end_of_text|>")
_PAD_CANDIDATES = ("<|pad|>", "<pad>", "<|finetune_right_pad_id|>")


class TokenizerError(UserError, ValueError):
    """A tokenizer path that cannot be loaded; the message names it."""


class TokenizerNotFoundError(TokenizerError, FileNotFoundError):
    """The tokenizer path does not exist."""


def load_tokenizer(path: str | os.PathLike):
    """A ``transformers`` fast/slow tokenizer with ``eos_token`` and ``pad_token`` set (a ``gs://``
    tokenizer is loaded from a local copy)."""
    if storage.is_remote(path):
        if not storage.exists(path):
            raise TokenizerNotFoundError(f"tokenizer path {path} does not exist")
        path = storage.local_copy(path)
    path = os.path.expanduser(str(path))
    tok: transformers.PreTrainedTokenizerBase
    if os.path.isfile(path):
        tok = transformers.PreTrainedTokenizerFast(tokenizer_file=path)
    elif os.path.isdir(path):
        has_config = os.path.isfile(os.path.join(path, "tokenizer_config.json"))
        has_json = os.path.isfile(os.path.join(path, "tokenizer.json"))
        has_bpe = os.path.isfile(os.path.join(path, "vocab.json")) and os.path.isfile(os.path.join(path, "merges.txt"))
        if not (has_config or has_json or has_bpe):
            raise TokenizerError(
                f"{path}: no tokenizer files (expected tokenizer.json, or tokenizer_config.json "
                "with vocab.json + merges.txt)"
            )
        try:
            tok = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
        except (OSError, ValueError, TypeError) as err:
            if not has_json:
                raise TokenizerError(f"{path}: transformers cannot load this tokenizer ({err})") from err
            tok = transformers.PreTrainedTokenizerFast(tokenizer_file=os.path.join(path, "tokenizer.json"))
    else:
        raise TokenizerNotFoundError(f"tokenizer path {path} does not exist")
    vocab = tok.get_vocab()
    if tok.eos_token is None:
        eos = next((t for t in _EOS_CANDIDATES if t in vocab), None)
        if eos is not None:
            tok.eos_token = eos
    if tok.pad_token is None:
        pad = next((t for t in _PAD_CANDIDATES if t in vocab), tok.eos_token)
        if pad is not None:
            tok.pad_token = pad
    return tok


def save_tokenizer(tokenizer, dest: str | os.PathLike) -> None:
    """``tokenizer.save_pretrained`` to a local or remote (``gs://``) folder."""
    with storage.writable_local_dir(dest) as local:
        tokenizer.save_pretrained(local)


CHAT_END = "<|im_end|>"  # ChatML's end of turn: a chat model stops there even when eos is another token


def stop_and_pad_ids(tokenizer, model_cfg) -> tuple[tuple[int, ...], int]:
    """The rule for the ids sampling stops at and pads with (rollouts, evaluation and exports
    alike); ``model_cfg`` is a :class:`~tempo_jax.models.config.ModelConfig` (not imported: this
    module stays free of jax).

    Stop ids, in this order with no repeats: the checkpoint's ``generation_config.json`` eos ids,
    then its ``config.json`` eos ids (``model_cfg.stop_ids``), then the tokenizer's eos id and
    :data:`CHAT_END` when the vocabulary has it. Pad id: generation_config.json's pad id, else the
    tokenizer's, else config.json's, else the first stop id (0 when there is none). Exports write
    both into the exported generation_config.json (``to_hf(stop_ids=, pad_id=)``). Without a
    tokenizer (``tempo-jax plan`` compiles from the architecture alone) its steps are skipped."""
    stop = list(model_cfg.stop_ids)
    tokenizer_ids: tuple = ()
    if tokenizer is not None:
        chat_end = tokenizer.convert_tokens_to_ids(CHAT_END) if CHAT_END in tokenizer.get_vocab() else None
        tokenizer_ids = (tokenizer.eos_token_id, chat_end)
    for tid in tokenizer_ids:
        if tid is not None and tid not in stop:
            stop.append(int(tid))
    tokenizer_pad = tokenizer.pad_token_id if tokenizer is not None else None
    pads = (model_cfg.generation_pad_token_id, tokenizer_pad, model_cfg.pad_token_id)
    pad = next((p for p in pads if p is not None), stop[0] if stop else 0)
    return tuple(stop), int(pad)


def check_vocab(tokenizer, vocab_size: int) -> None:
    """The tokenizer must not produce ids the model cannot embed (they would index past the
    embedding table: NaN losses in training, garbage in sampling)."""
    if len(tokenizer) > vocab_size:
        raise TokenizerError(
            f"the tokenizer has {len(tokenizer)} tokens but the model's vocab_size is {vocab_size}; "
            "use the tokenizer the checkpoint was trained with (model.tokenizer)"
        )
