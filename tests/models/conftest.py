"""Fixtures for the model tests: tiny random Hugging Face checkpoints (built with transformers +
torch, saved with ``save_pretrained``) for every supported family, a left-padded batch, and
the transformers reference outputs on it.

Every case has >= 2 layers, GQA (4 query / 2 KV heads) and head_dim 24; some have
hidden != heads * head_dim. Weights are re-drawn with a larger scale than HF's init (std 0.02)
so the logits are O(1) and a 1e-4 parity bound means something; norm weights are drawn
around 1 so a wrong norm mapping shows.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from tempo_jax.testing.torch_reference import HFCheckpointCache, hf_config_from

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
torch.set_num_threads(1)

SLIDING_WINDOW = 4  # smaller than the batch's sequence length, so the sliding layer matters
SEQ_LEN = 12
PADS = (0, 3, 6)  # left padding per row

_COMMON = dict(
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=24,
    num_hidden_layers=2,
    intermediate_size=80,
    vocab_size=101,
    max_position_embeddings=128,
    rms_norm_eps=1e-6,
    pad_token_id=0,
    bos_token_id=1,
    eos_token_id=2,
)

# Each case: transformers config kwargs (transformers 5.x format: ``rope_parameters``).
CASES: dict[str, dict] = {
    # Qwen3: per-head q/k norm; hidden 64 != 4 * 24 (q/o projections are not square); untied.
    "qwen3": dict(
        _COMMON,
        model_type="qwen3",
        hidden_size=64,
        tie_word_embeddings=False,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
    ),
    "qwen3_tied": dict(
        _COMMON,
        model_type="qwen3",
        hidden_size=64,
        tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
    ),
    # Qwen2/2.5: qkv bias; tied (as the small Qwen2.5 checkpoints are).
    "qwen2": dict(
        _COMMON,
        model_type="qwen2",
        hidden_size=96,
        tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
    ),
    # Llama 3: llama3 rope scaling. original_max_position_embeddings=64 puts the 12 frequencies of
    # head_dim 24 (wavelengths 6..29000) in all three regimes (kept, smoothed, divided by factor).
    "llama": dict(
        _COMMON,
        model_type="llama",
        hidden_size=64,
        tie_word_embeddings=False,
        rope_parameters={
            "rope_type": "llama3",
            "rope_theta": 10000.0,
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 64,
        },
    ),
    # OLMo 2: post-norm, RMSNorm over the full q and k projections; tied.
    "olmo2": dict(
        _COMMON,
        model_type="olmo2",
        hidden_size=96,
        tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": 500000.0},
    ),
    # OLMo 3: OLMo 2 + a sliding-window layer (window 4 < 12 tokens); YaRN on the full-attention
    # layer only, plain rope on the sliding one (as the released OLMo-3 config does); untied.
    "olmo3": dict(
        _COMMON,
        model_type="olmo3",
        hidden_size=64,
        tie_word_embeddings=False,
        max_position_embeddings=32,
        layer_types=["sliding_attention", "full_attention"],
        sliding_window=SLIDING_WINDOW,
        rope_parameters={
            "full_attention": {
                "rope_type": "yarn",
                "rope_theta": 500000.0,
                "factor": 4.0,
                "original_max_position_embeddings": 8,
                "beta_fast": 32.0,
                "beta_slow": 1.0,
                "attention_factor": 1.2,
            },
            "sliding_attention": {"rope_type": "default", "rope_theta": 500000.0},
        },
    ),
}
FAMILIES = ("qwen3", "qwen2", "llama", "olmo2", "olmo3")


def hf_config(case: str, **changes):
    return hf_config_from({**CASES[case], **changes})


@pytest.fixture(scope="session")
def hf_checkpoints(tmp_path_factory) -> HFCheckpointCache:
    return HFCheckpointCache(
        str(tmp_path_factory.mktemp("hf_ckpts")),
        hf_config,
        lambda case, critic: zlib.crc32(repr((case, critic)).encode()),
    )


class Batch:
    """A left-padded batch: tokens/valid/positions as numpy, as our models and HF take them."""

    def __init__(self, vocab: int, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.tokens = rng.integers(3, vocab, size=(len(PADS), SEQ_LEN)).astype(np.int32)
        self.valid = np.ones_like(self.tokens, dtype=bool)
        for row, pad in enumerate(PADS):
            self.tokens[row, :pad] = 0
            self.valid[row, :pad] = False
        # HF convention for left padding: position_ids = cumsum(mask) - 1, clamped at 0.
        self.positions = np.maximum(np.cumsum(self.valid, axis=1) - 1, 0).astype(np.int32)

    def hf_logits(self, model) -> np.ndarray:
        """Reference logits (or token-classification values) of a transformers model."""
        with torch.no_grad():
            out = model(
                input_ids=torch.from_numpy(self.tokens.astype(np.int64)),
                attention_mask=torch.from_numpy(self.valid.astype(np.int64)),
                position_ids=torch.from_numpy(self.positions.astype(np.int64)),
            )
        return out.logits.float().numpy()

    def max_diff(self, a, b) -> float:
        """Max abs difference over valid (non-pad) positions only."""
        a, b = np.asarray(a), np.asarray(b)
        return float(np.max(np.abs(a[self.valid] - b[self.valid])))


@pytest.fixture(scope="session")
def batch() -> Batch:
    return Batch(vocab=_COMMON["vocab_size"])
