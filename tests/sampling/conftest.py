"""Fixtures for the sampler tests: tiny random Qwen3 and Llama 3 checkpoints (transformers +
torch, ``save_pretrained``), loaded once per session, and a batch of prompts of different lengths.

Weights are re-drawn at std 0.15 (HF's init is 0.02) so the next-token distributions are far
from uniform: greedy decoding does not lock onto one token, and sampled rows differ.
"""

from __future__ import annotations

import numpy as np
import pytest

from tempo_jax.models.hf_io import from_hf
from tempo_jax.testing.torch_reference import HFCheckpointCache, hf_config_from

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
torch.set_num_threads(1)

PAD = 0
# Prompt lengths 3, 7 and 12: left-padded to the 16-token bucket.
PROMPTS = ([5, 17, 42], [9, 3, 77, 64, 21, 8, 13], [30, 31, 4, 99, 12, 6, 44, 71, 58, 23, 11, 90])

_COMMON = dict(
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    num_hidden_layers=2,
    intermediate_size=96,
    max_position_embeddings=256,
    rms_norm_eps=1e-6,
    pad_token_id=PAD,
    bos_token_id=1,
    eos_token_id=2,
)
CASES = {
    # Qwen3: per-head q/k norm, untied; vocab 512 = 2 sampling blocks of 256.
    "qwen3": dict(
        _COMMON,
        model_type="qwen3",
        hidden_size=64,
        vocab_size=512,
        tie_word_embeddings=False,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
    ),
    # Llama 3: llama3 rope scaling; vocab 300 (no block size divides it: the padded sampling path).
    "llama": dict(
        _COMMON,
        model_type="llama",
        hidden_size=48,
        vocab_size=300,
        tie_word_embeddings=False,
        rope_parameters={
            "rope_type": "llama3",
            "rope_theta": 10000.0,
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 32,
        },
    ),
}


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory) -> HFCheckpointCache:
    return HFCheckpointCache(
        str(tmp_path_factory.mktemp("sampler_ckpts")),
        lambda case: hf_config_from(CASES[case]),
        lambda case, critic: sum(map(ord, case)),
    )


@pytest.fixture(scope="session")
def prompts() -> tuple:
    return PROMPTS


def hf_left_padded(prompts, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The same left padding our sampler uses, as int64 arrays for torch."""
    ids = np.full((len(prompts), width), PAD, np.int64)
    mask = np.zeros((len(prompts), width), np.int64)
    for i, p in enumerate(prompts):
        ids[i, width - len(p) :] = p
        mask[i, width - len(p) :] = 1
    return ids, mask


def teacher_forced_logits(hf_model, prompt_tokens, prompt_valid, response_tokens) -> np.ndarray:
    """transformers' logits for every response token, from one forward over prompt ++ response:
    [R, T, V], row t predicting response token t."""
    tokens = np.concatenate([prompt_tokens, response_tokens], axis=1).astype(np.int64)
    valid = np.concatenate([prompt_valid, np.ones_like(response_tokens, bool)], axis=1)
    positions = np.maximum(np.cumsum(valid, axis=1) - 1, 0)
    with torch.no_grad():
        out = hf_model(
            input_ids=torch.from_numpy(tokens),
            attention_mask=torch.from_numpy(valid.astype(np.int64)),
            position_ids=torch.from_numpy(positions.astype(np.int64)),
        )
    plen, tlen = prompt_tokens.shape[1], response_tokens.shape[1]
    return out.logits.float().numpy()[:, plen - 1 : plen - 1 + tlen]


@pytest.fixture(scope="session")
def hf_pad():
    """:func:`hf_left_padded` (test modules cannot import conftest under --import-mode=importlib)."""
    return hf_left_padded


@pytest.fixture(scope="session")
def teacher_forced():
    """:func:`teacher_forced_logits`."""
    return teacher_forced_logits


@pytest.fixture(scope="module")
def qwen3(checkpoints):
    """Our model loaded from the tiny Qwen3 checkpoint (the generate tests' model)."""
    path, _ = checkpoints.get("qwen3")
    return from_hf(path)
