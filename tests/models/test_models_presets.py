"""Presets: parameter counts against the published ones, abstract (allocation-free)
instantiation, and agreement with the published config.json files as our HF parser reads them."""

from __future__ import annotations

import time

import jax
import pytest
from flax import nnx

from tempo_jax.models.config import FULL, SLIDING, ConfigError
from tempo_jax.models.critic import Critic
from tempo_jax.models.decoder import CausalLM
from tempo_jax.models.hf_config import config_from_hf, hf_config_dict
from tempo_jax.models.presets import PRESETS, abstract_model, count_params, get_preset, param_bytes

# Published parameter counts (total incl. embeddings; non-embedding where the card states it).
# Sources: the Hugging Face model cards ("Number of Parameters" / "(Non-Embedding)") and the
# parameter count the Hub reports for each checkpoint's safetensors:
#   Qwen/Qwen3-0.6B   0.6B (596M)      non-emb 0.44B
#   Qwen/Qwen3-1.7B   1.7B             non-emb 1.4B; the Hub reports 2.03B because the checkpoint
#                                      also stores lm_head.weight although it is tied (see below)
#   Qwen/Qwen3-4B     4.02B            non-emb 3.6B
#   Qwen/Qwen3-8B     8.19B (card 8.2B)   non-emb 6.95B
#   Qwen/Qwen3-14B    14.77B (card 14.8B) non-emb 13.2B
#   Qwen/Qwen2.5-7B   7.62B (card 7.61B)  non-emb 6.53B
#   allenai/Olmo-3-1025-7B  7.30B
#   meta-llama/Llama-3.1-8B 8.03B
PUBLISHED_TOTAL = {
    "Qwen3-0.6B": 0.596e9,
    "Qwen3-4B": 4.02e9,
    "Qwen3-8B": 8.19e9,
    "Qwen3-14B": 14.77e9,
    "Qwen2.5-7B": 7.62e9,
    "OLMo-3-7B": 7.30e9,
    "Llama-3.1-8B": 8.03e9,
}
PUBLISHED_NON_EMBEDDING = {
    "Qwen3-0.6B": 0.44e9,
    "Qwen3-1.7B": 1.4e9,
    "Qwen3-4B": 3.6e9,
    "Qwen3-8B": 6.95e9,
    "Qwen3-14B": 13.2e9,
    "Qwen2.5-7B": 6.53e9,
}
# Counted with the stored (tied) lm_head copy, as the Hub counts this checkpoint.
PUBLISHED_WITH_STORED_HEAD = {"Qwen3-1.7B": 2.03e9}


@pytest.fixture(scope="module")
def counts() -> dict[str, int]:
    # scan_layers builds one stacked block, so abstract instantiation is ~50 ms per preset.
    return {name: count_params(abstract_model(name, scan_layers=True)) for name in PRESETS}


def test_every_preset_is_covered_by_a_published_count():
    assert set(PRESETS) == set(PUBLISHED_TOTAL) | set(PUBLISHED_WITH_STORED_HEAD)
    assert set(PRESETS) == {
        "Qwen3-0.6B",
        "Qwen3-1.7B",
        "Qwen3-4B",
        "Qwen3-8B",
        "Qwen3-14B",
        "Qwen2.5-7B",
        "OLMo-3-7B",
        "Llama-3.1-8B",
    }


@pytest.mark.parametrize("name", list(PRESETS))
def test_parameter_count_within_one_percent_of_published(name, counts):
    cfg = PRESETS[name]
    n = counts[name]
    assert n == cfg.num_params()  # the analytic count agrees with the instantiated shapes
    embedding = cfg.vocab_size * cfg.hidden_size
    if name in PUBLISHED_TOTAL:
        assert abs(n / PUBLISHED_TOTAL[name] - 1) < 0.01, (name, n)
    if name in PUBLISHED_WITH_STORED_HEAD:
        assert abs((n + embedding) / PUBLISHED_WITH_STORED_HEAD[name] - 1) < 0.01, (name, n)
    if name in PUBLISHED_NON_EMBEDDING:
        head = 0 if cfg.tie_word_embeddings else embedding
        assert abs((n - embedding - head) / PUBLISHED_NON_EMBEDDING[name] - 1) < 0.01, (name, n)


def test_tied_embeddings_follow_the_checkpoints():
    tied = {name for name, cfg in PRESETS.items() if cfg.tie_word_embeddings}
    assert tied == {"Qwen3-0.6B", "Qwen3-1.7B", "Qwen3-4B"}


def test_qwen3_14b_abstract_instantiation_allocates_nothing():
    start = time.perf_counter()
    model = abstract_model("Qwen3-14B", param_dtype="bfloat16")
    elapsed = time.perf_counter() - start
    assert isinstance(model, CausalLM)
    leaves = jax.tree.leaves(nnx.state(model))
    assert leaves and all(isinstance(leaf, jax.ShapeDtypeStruct) for leaf in leaves)
    assert count_params(model) == 14_768_307_200
    assert param_bytes(model) == 2 * 14_768_307_200  # 29.5 GB if it were allocated
    assert elapsed < 30, elapsed  # ~1 s: tracing only
    critic = abstract_model("Qwen3-14B", critic=True, scan_layers=True)
    assert isinstance(critic, Critic)
    assert all(isinstance(leaf, jax.ShapeDtypeStruct) for leaf in jax.tree.leaves(nnx.state(critic)))
    # The critic swaps the untied LM head (vocab x hidden) for a value head (hidden + 1).
    assert count_params(critic) == 14_768_307_200 - 151936 * 5120 + 5120 + 1


def test_get_preset_names_overrides_and_errors():
    assert get_preset("qwen3-8b") is PRESETS["Qwen3-8B"]
    assert get_preset("Qwen/Qwen3-14B") is PRESETS["Qwen3-14B"]
    assert get_preset("allenai/Olmo-3-1025-7B") is PRESETS["OLMo-3-7B"]
    cfg = get_preset("Qwen3-14B", param_dtype="bfloat16", scan_layers=True, remat=True)
    assert (cfg.param_dtype, cfg.scan_layers, cfg.remat) == ("bfloat16", True, True)
    assert PRESETS["Qwen3-14B"].param_dtype == "float32"  # the table itself is not mutated
    with pytest.raises(ConfigError) as err:
        get_preset("Qwen3-15B")
    msg = str(err.value)
    assert "'Qwen3-15B'" in msg and all(name in msg for name in PRESETS)
    with pytest.raises(ConfigError, match="not_a_field"):
        get_preset("Qwen3-8B", not_a_field=1)


def test_olmo3_layer_pattern_and_rope_per_layer_type():
    cfg = PRESETS["OLMo-3-7B"]
    assert cfg.layer_types[:4] == (SLIDING, SLIDING, SLIDING, FULL)
    assert cfg.layer_types.count(FULL) == 8 and cfg.layer_types[-1] == FULL
    assert cfg.sliding_window == 4096
    assert cfg.rope.type == "yarn" and cfg.rope.factor == 8.0 and cfg.rope.original_max_position_embeddings == 8192
    assert cfg.sliding_rope is not None and cfg.sliding_rope.type == "default" and cfg.sliding_rope.theta == 5e5


# The published config.json files, as on the Hub (legacy rope_theta / rope_scaling keys).
_QWEN3_14B = {
    "architectures": ["Qwen3ForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 151643,
    "eos_token_id": 151645,
    "head_dim": 128,
    "hidden_act": "silu",
    "hidden_size": 5120,
    "initializer_range": 0.02,
    "intermediate_size": 17408,
    "max_position_embeddings": 40960,
    "max_window_layers": 40,
    "model_type": "qwen3",
    "num_attention_heads": 40,
    "num_hidden_layers": 40,
    "num_key_value_heads": 8,
    "rms_norm_eps": 1e-06,
    "rope_scaling": None,
    "rope_theta": 1000000,
    "sliding_window": None,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "use_cache": True,
    "use_sliding_window": False,
    "vocab_size": 151936,
}
_QWEN25_7B = {
    "architectures": ["Qwen2ForCausalLM"],
    "attention_dropout": 0.0,
    "bos_token_id": 151643,
    "eos_token_id": 151643,
    "hidden_act": "silu",
    "hidden_size": 3584,
    "initializer_range": 0.02,
    "intermediate_size": 18944,
    "max_position_embeddings": 131072,
    "max_window_layers": 28,
    "model_type": "qwen2",
    "num_attention_heads": 28,
    "num_hidden_layers": 28,
    "num_key_value_heads": 4,
    "rms_norm_eps": 1e-06,
    "rope_theta": 1000000.0,
    "sliding_window": 131072,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "use_cache": True,
    "use_sliding_window": False,
    "vocab_size": 152064,
}
_LLAMA31_8B = {
    "architectures": ["LlamaForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 128000,
    "eos_token_id": 128001,
    "hidden_act": "silu",
    "hidden_size": 4096,
    "initializer_range": 0.02,
    "intermediate_size": 14336,
    "max_position_embeddings": 131072,
    "mlp_bias": False,
    "model_type": "llama",
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 8,
    "pretraining_tp": 1,
    "rms_norm_eps": 1e-05,
    "rope_scaling": {
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192,
        "rope_type": "llama3",
    },
    "rope_theta": 500000.0,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "use_cache": True,
    "vocab_size": 128256,
}
_OLMO3_7B = {
    "architectures": ["Olmo3ForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "eos_token_id": 100257,
    "hidden_act": "silu",
    "hidden_size": 4096,
    "initializer_range": 0.02,
    "intermediate_size": 11008,
    "layer_types": ["sliding_attention", "sliding_attention", "sliding_attention", "full_attention"] * 8,
    "max_position_embeddings": 65536,
    "model_type": "olmo3",
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 32,
    "pad_token_id": 100277,
    "rms_norm_eps": 1e-06,
    "rope_scaling": {
        "attention_factor": 1.2079441541679836,
        "beta_fast": 32,
        "beta_slow": 1,
        "factor": 8.0,
        "original_max_position_embeddings": 8192,
        "rope_type": "yarn",
    },
    "rope_theta": 500000,
    "sliding_window": 4096,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "use_cache": True,
    "vocab_size": 100278,
}


@pytest.mark.parametrize(
    "name,published",
    [("Qwen3-14B", _QWEN3_14B), ("Qwen2.5-7B", _QWEN25_7B), ("Llama-3.1-8B", _LLAMA31_8B), ("OLMo-3-7B", _OLMO3_7B)],
)
def test_preset_equals_the_published_config_json(name, published):
    parsed = config_from_hf(dict(published))
    preset = PRESETS[name]
    ignore = {"pad_token_id", "bos_token_id"}  # not architecture; absent from some published files
    diff = {
        f: (getattr(parsed, f), getattr(preset, f))
        for f in preset.__dataclass_fields__
        if f not in ignore and getattr(parsed, f) != getattr(preset, f)
    }
    assert not diff, diff


@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_survives_our_config_json_export(name):
    """hf_config_dict (what to_hf writes) parses back, through transformers, to the same config."""
    preset = PRESETS[name]
    assert config_from_hf(hf_config_dict(preset)) == preset
