"""Query-chunked attention (``ModelConfig.attention_chunk``): same gradients as full attention,
and the compiled training step keeps far less memory for long sequences."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tempo_jax.models.config import ModelConfig, RopeConfig
from tempo_jax.models.decoder import CausalLM
from tempo_jax.models.layers import MaskSpec, attend, attend_chunked


def _cfg(**changes) -> ModelConfig:
    base = dict(
        model_type="qwen3",
        vocab_size=97,
        hidden_size=32,
        intermediate_size=48,
        num_layers=2,
        num_heads=4,
        num_kv_heads=2,
        head_dim=8,
        rope=RopeConfig(theta=10000.0),
        qk_norm="head",
    )
    base.update(changes)
    return ModelConfig(**base)


def _loss_and_grads(cfg: ModelConfig, tokens: np.ndarray, valid: np.ndarray):
    graphdef, params = nnx.split(CausalLM(cfg, nnx.Rngs(0)))

    def loss(p):
        logits, _ = nnx.merge(graphdef, p)(tokens, valid=valid)
        return jnp.mean(jax.nn.log_softmax(logits)[..., 0] * valid)

    return jax.jit(jax.value_and_grad(loss))(params)


@pytest.mark.parametrize("scan", [False, True])
def test_chunked_attention_gives_the_same_loss_and_gradients(scan):
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, 97, size=(3, 23))
    valid = np.ones(tokens.shape, bool)
    valid[1, :5] = valid[2, :11] = False  # left padding, as in rollouts
    ref_loss, ref_grads = _loss_and_grads(_cfg(scan_layers=scan), tokens, valid)
    for chunk in (4, 7):  # 23 = 5 x 4 + 3 and 3 x 7 + 2: uneven last blocks
        loss, grads = _loss_and_grads(_cfg(scan_layers=scan, remat=True, attention_chunk=chunk), tokens, valid)
        np.testing.assert_allclose(float(loss), float(ref_loss), rtol=1e-6)
        diffs = jax.tree.leaves(jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), grads, ref_grads))
        scale = max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(ref_grads))
        assert max(diffs) < 1e-5 * scale, (chunk, max(diffs), scale)


def test_chunked_attention_matches_dense_with_a_sliding_window():
    rng = np.random.default_rng(1)
    q = jnp.asarray(rng.normal(size=(2, 19, 4, 8)), jnp.float32)
    k, v = (jnp.asarray(rng.normal(size=(2, 2, 19, 8)), jnp.float32) for _ in range(2))
    valid = jnp.asarray(np.arange(19)[None, :] >= np.array([[0], [6]]))
    for window in (5, 1 << 30):
        spec = MaskSpec(jnp.arange(19, dtype=jnp.int32), valid, window)
        dense = np.asarray(attend(q, k, v, spec.dense()))
        chunked = np.asarray(attend_chunked(q, k, v, spec, 6))
        real = np.asarray(valid)  # padding queries see no key at all; what they return is unused
        np.testing.assert_allclose(chunked[real], dense[real], atol=1e-6)


def test_chunked_attention_cuts_the_training_step_memory():
    """Compiled (not run) gradient of a 2k-token batch: the full [B, H, L, L] scores and
    probabilities dominate the temporaries without chunking."""
    tokens = jax.ShapeDtypeStruct((2, 2048), jnp.int32)

    def temp_bytes(chunk: int) -> int:
        cfg = _cfg(scan_layers=True, remat=True, attention_chunk=chunk)
        graphdef, params = nnx.split(nnx.eval_shape(lambda: CausalLM(cfg, nnx.Rngs(0))))

        def loss(p, t):
            logits, _ = nnx.merge(graphdef, p)(t)
            return jnp.mean(logits[..., 0])

        compiled = jax.jit(jax.grad(loss)).lower(params, tokens).compile()
        return compiled.memory_analysis().temp_size_in_bytes

    full, chunked = temp_bytes(0), temp_bytes(256)
    scores = 2 * 4 * 2048 * 2048 * 4  # one layer's fp32 scores, B x H x L x L
    assert full > scores, full
    print(f"temporaries: {full / 2**20:.0f} MiB full, {chunked / 2**20:.0f} MiB in 256-query blocks")
    assert chunked < full / 4, (chunked, full)
