"""Rope frequencies and post-scale for every scaling variant equal transformers' own, as read
from a HF config by our parser (no model needed, so this covers variants the tiny models do not)."""

from __future__ import annotations

import numpy as np
import pytest
import transformers
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

from tempo_jax.models.hf_config import config_from_hf
from tempo_jax.models.rope import inv_freq_and_scale

HEAD_DIM = 24

VARIANTS = {
    "linear": {"rope_type": "linear", "rope_theta": 10000.0, "factor": 4.0},
    "llama3": {
        "rope_type": "llama3",
        "rope_theta": 500000.0,
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 64,
    },
    "yarn_explicit_attention_factor": {
        "rope_type": "yarn",
        "rope_theta": 500000.0,
        "factor": 8.0,
        "original_max_position_embeddings": 32,
        "beta_fast": 32.0,
        "beta_slow": 1.0,
        "attention_factor": 1.2079441541679836,
    },
    "yarn_default_attention_factor": {
        "rope_type": "yarn",
        "rope_theta": 10000.0,
        "factor": 4.0,
        "original_max_position_embeddings": 64,
    },
    "yarn_mscale": {
        "rope_type": "yarn",
        "rope_theta": 10000.0,
        "factor": 40.0,
        "original_max_position_embeddings": 64,
        "mscale": 1.0,
        "mscale_all_dim": 0.707,
        "beta_fast": 16.0,
        "beta_slow": 2.0,
    },
    "yarn_no_truncate": {
        "rope_type": "yarn",
        "rope_theta": 10000.0,
        "factor": 4.0,
        "original_max_position_embeddings": 64,
        "truncate": False,
    },
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_rope_scaling_matches_transformers(variant):
    params = dict(VARIANTS[variant])
    hf = transformers.LlamaConfig(
        hidden_size=64,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=HEAD_DIM,
        num_hidden_layers=2,
        intermediate_size=80,
        vocab_size=101,
        max_position_embeddings=4096,
        rope_parameters=params,
    )
    ref_inv_freq, ref_scale = ROPE_INIT_FUNCTIONS[params["rope_type"]](hf, "cpu")
    ours = config_from_hf(hf.to_dict())
    assert ours.rope.type == params["rope_type"]
    inv_freq, scale = inv_freq_and_scale(ours.rope, HEAD_DIM)
    assert inv_freq.dtype == np.float32 and inv_freq.shape == (HEAD_DIM // 2,)
    np.testing.assert_allclose(inv_freq, ref_inv_freq.numpy(), rtol=1e-6, atol=0)
    assert scale == pytest.approx(float(ref_scale), rel=1e-7)


def test_default_rope_matches_the_hf_formula():
    hf = transformers.Qwen3Config(
        hidden_size=64,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=HEAD_DIM,
        rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0},
    )
    ours = config_from_hf(hf.to_dict())
    inv_freq, scale = inv_freq_and_scale(ours.rope, HEAD_DIM)
    ref = 1.0 / (1_000_000.0 ** (np.arange(0, HEAD_DIM, 2, dtype=np.int64).astype(np.float32) / HEAD_DIM))
    np.testing.assert_allclose(inv_freq, ref, rtol=1e-6)
    assert scale == 1.0
