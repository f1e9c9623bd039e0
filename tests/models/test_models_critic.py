"""The value critic: parity with transformers' token classification (num_labels=1), export /
import round trips, ``critic_from_actor`` independence and the V(x, y_<t) shift."""

from __future__ import annotations

import os
import shutil

import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers
from flax import nnx
from safetensors.numpy import load_file as load_np
from safetensors.numpy import save_file as save_np
from safetensors.torch import load_file

from tempo_jax.models.critic import Critic, critic_from_actor
from tempo_jax.models.decoder import positions_from_valid, prompt_response_inputs, shift_to_response_tokens
from tempo_jax.models.hf_io import from_hf, to_hf

TOL = 1e-4


def _values(critic, batch) -> np.ndarray:
    values = critic(batch.tokens, batch.positions, batch.valid)
    assert values.shape == batch.tokens.shape and values.dtype == np.float32
    return np.asarray(values)


@pytest.mark.parametrize("case", ("qwen3", "llama"))
def test_critic_values_match_token_classification(case, hf_checkpoints, batch, tmp_path):
    path, hf_critic = hf_checkpoints.get(case, critic=True)
    assert type(hf_critic).__name__.endswith("ForTokenClassification") and hf_critic.config.num_labels == 1
    ref = batch.hf_logits(hf_critic)[..., 0]
    critic = from_hf(path, critic=True)
    assert isinstance(critic, Critic)
    ours = _values(critic, batch)
    assert batch.max_diff(ours, ref) < TOL
    assert np.abs(ref[batch.valid]).max() > 0.1  # the head is not trivially zero

    # HF -> ours -> HF reproduces every tensor, and transformers loads the export.
    out = to_hf(critic, tmp_path / "critic")
    src, dst = load_file(os.path.join(path, "model.safetensors")), load_file(os.path.join(out, "model.safetensors"))
    assert sorted(src) == sorted(dst) and "score.weight" in dst and "score.bias" in dst
    assert all(torch.equal(src[k], dst[k]) for k in src)
    reloaded, info = transformers.AutoModelForTokenClassification.from_pretrained(
        out, output_loading_info=True, attn_implementation="eager"
    )
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    assert reloaded.config.num_labels == 1 and type(reloaded) is type(hf_critic)
    assert batch.max_diff(batch.hf_logits(reloaded.eval())[..., 0], ref) == 0.0


def test_critic_from_actor_is_an_independent_copy(hf_checkpoints, batch):
    path, _ = hf_checkpoints.get("qwen3")
    actor = from_hf(path)
    critic = critic_from_actor(actor, seed=3)
    assert isinstance(critic, Critic) and critic.score.kernel.shape == (64, 1)
    actor_logits = np.asarray(actor(batch.tokens, batch.positions, batch.valid)[0])
    actor_state = nnx.state(actor.model)
    before = {k: np.asarray(v) for k, v in nnx.to_flat_state(actor_state)}
    critic_state = nnx.state(critic.model)
    for key, value in nnx.to_flat_state(critic_state):  # same backbone values, different buffers
        np.testing.assert_array_equal(np.asarray(value), before[key])
    # The critic's backbone computes exactly the actor's hidden states.
    hidden_actor = np.asarray(actor.model(batch.tokens, batch.positions, batch.valid)[0])
    hidden_critic = np.asarray(critic.model(batch.tokens, batch.positions, batch.valid)[0])
    np.testing.assert_array_equal(hidden_actor, hidden_critic)

    # Changing the critic (as an E-step would) leaves the actor untouched.
    layer = critic.model.layers[0].self_attn.q_proj
    layer.kernel[...] = layer.kernel[...] + 1.0
    critic.model.embed_tokens.embedding[...] = jnp.zeros_like(critic.model.embed_tokens.embedding[...])
    for key, value in nnx.to_flat_state(nnx.state(actor.model)):
        np.testing.assert_array_equal(np.asarray(value), before[key])
    np.testing.assert_array_equal(np.asarray(actor(batch.tokens, batch.positions, batch.valid)[0]), actor_logits)
    assert not np.allclose(np.asarray(critic.model(batch.tokens, batch.positions, batch.valid)[0]), hidden_actor)


def test_olmo3_critic_export_import_round_trip(hf_checkpoints, batch, tmp_path):
    """transformers has no OLMo token-classification class: check our own round trip."""
    path, _ = hf_checkpoints.get("olmo3")
    critic = critic_from_actor(from_hf(path))
    critic.score.bias[...] = jnp.asarray([0.25], jnp.float32)
    values = _values(critic, batch)
    out = to_hf(critic, tmp_path / "olmo3_critic")
    tensors = load_file(os.path.join(out, "model.safetensors"))
    assert tensors["score.weight"].shape == (1, 64) and "lm_head.weight" not in tensors
    again = from_hf(out, critic=True)
    assert again.cfg == critic.cfg
    np.testing.assert_array_equal(_values(again, batch), values)
    again_tensors = load_file(os.path.join(to_hf(again, tmp_path / "again"), "model.safetensors"))
    assert sorted(again_tensors) == sorted(tensors)
    assert all(torch.equal(tensors[k], again_tensors[k]) for k in tensors)
    # A scanned critic loads the same values.
    np.testing.assert_allclose(_values(from_hf(out, critic=True, scan_layers=True), batch), values, atol=1e-5)


def test_trl_value_head_names_load_as_critic(hf_checkpoints, batch, tmp_path):
    """TRL's AutoModelForCausalLMWithValueHead stores the head as v_head.summary.{weight,bias}."""
    path, hf_critic = hf_checkpoints.get("llama", critic=True)
    dst = tmp_path / "trl"
    shutil.copytree(path, dst)
    file = os.path.join(dst, "model.safetensors")
    tensors = load_np(file)
    tensors["v_head.summary.weight"] = tensors.pop("score.weight")
    tensors["v_head.summary.bias"] = tensors.pop("score.bias")
    save_np(tensors, file, metadata={"format": "pt"})
    values = _values(from_hf(dst, critic=True), batch)
    assert batch.max_diff(values, batch.hf_logits(hf_critic)[..., 0]) < TOL


def test_response_values_read_the_previous_position():
    values = jnp.arange(2 * 7, dtype=jnp.float32).reshape(2, 7)
    prompt_len, response_len = 3, 4
    got = np.asarray(shift_to_response_tokens(values, prompt_len, response_len))
    # V_t of response token t (at index prompt_len + t) is the value at index prompt_len + t - 1.
    np.testing.assert_array_equal(got, np.asarray(values)[:, prompt_len - 1 : prompt_len + response_len - 1])


def test_prompt_response_inputs_count_positions_from_the_first_valid_prompt_token():
    prompt = jnp.asarray([[0, 0, 5, 6], [7, 8, 9, 4]])
    prompt_valid = jnp.asarray([[False, False, True, True], [True, True, True, True]])
    response = jnp.asarray([[1, 2, 0], [3, 0, 0]])  # padding after each response's end
    tokens, positions, valid = prompt_response_inputs(prompt, prompt_valid, response)
    np.testing.assert_array_equal(np.asarray(tokens), np.concatenate([prompt, response], axis=1))
    np.testing.assert_array_equal(np.asarray(valid), [[0, 0, 1, 1, 1, 1, 1], [1] * 7])
    np.testing.assert_array_equal(np.asarray(positions), [[0, 0, 0, 1, 2, 3, 4], [0, 1, 2, 3, 4, 5, 6]])
    np.testing.assert_array_equal(np.asarray(positions_from_valid(prompt_valid)), [[0, 0, 0, 1], [0, 1, 2, 3]])
