"""The fused attention paths against ours (``xla``), on the CPU: the cuDNN glue through
``jax.nn.dot_product_attention``'s XLA implementation (``dot_product_xla``) and Pallas splash in the
interpreter (``splash_interpret``). Left-padded rows, grouped-query heads, sliding windows, a
length the splash block does not divide, the layer scan, gradients, prefill and a mesh."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from tempo_jax.models.attention_kernels import resolve, roll_rows, self_attention
from tempo_jax.models.config import ConfigError
from tempo_jax.models.decoder import CausalLM
from tempo_jax.models.layers import NO_WINDOW, attend, attention_mask
from tempo_jax.parallel.mesh import make_mesh
from tempo_jax.sampling.engines import sample
from tempo_jax.sampling.generate import generate
from tempo_jax.sampling.methods import Greedy
from tempo_jax.train.tiny import tiny_model_config

KERNELS = ("dot_product_xla", "splash_interpret")


def _left_padded(rng, batch: int, length: int, lengths) -> np.ndarray:
    valid = np.zeros((batch, length), bool)
    for i, n in enumerate(lengths):
        valid[i, length - n :] = True
    return valid


def test_roll_rows_rotates_each_row():
    x = jnp.arange(12).reshape(2, 6)
    np.testing.assert_array_equal(roll_rows(x, jnp.array([0, 2])), [[0, 1, 2, 3, 4, 5], [8, 9, 10, 11, 6, 7]])
    np.testing.assert_array_equal(roll_rows(roll_rows(x, jnp.array([3, 5])), -jnp.array([3, 5])), x)


@pytest.mark.parametrize("impl", ["dot_product_xla", "splash"])
@pytest.mark.parametrize("window", [NO_WINDOW, 5])
def test_self_attention_equals_ours(impl, window):
    b, length, h, kvh, d = 3, 40, 4, 2, 16  # 40: splash pads to its 128 block
    keys = jax.random.split(jax.random.key(0), 3)
    q = jax.random.normal(keys[0], (b, length, h, d))
    k = jax.random.normal(keys[1], (b, kvh, length, d))
    v = jax.random.normal(keys[2], (b, kvh, length, d))
    valid = jnp.asarray(_left_padded(None, b, length, [40, 23, 1]))
    want = attend(q, k, v, attention_mask(jnp.arange(length), valid, window))
    got = self_attention(q, k, v, valid, window, impl, interpret=True)
    np.testing.assert_allclose(np.asarray(got)[np.asarray(valid)], np.asarray(want)[np.asarray(valid)], atol=2e-5)


def _model(impl: str, **overrides):
    cfg = tiny_model_config(64, attention_impl=impl, **overrides)
    return CausalLM(cfg, nnx.Rngs(3))


def _batch(length=24):
    valid = _left_padded(None, 2, length, [length, 9])
    tokens = np.where(valid, np.arange(2 * length).reshape(2, length) % 61 + 2, 0)
    return jnp.asarray(tokens), jnp.asarray(valid)


@pytest.mark.parametrize("impl", KERNELS)
@pytest.mark.parametrize("arch", ["qwen3", "olmo3_scan"])
def test_model_logits_and_gradients_match_xla(impl, arch, olmo3_overrides):
    """Same parameters, each path: logits and parameter gradients on the valid tokens."""
    overrides = dict(olmo3_overrides, scan_layers=True) if arch == "olmo3_scan" else {}
    tokens, valid = _batch()
    mask = valid.astype(jnp.float32)[..., None]

    def loss_and_logits(model):
        logits, _ = model(tokens, None, valid)
        return jnp.sum(jax.nn.log_softmax(logits) * mask) / 100, logits

    results = {}
    for name in ("xla", impl):
        model = _model(name, **overrides)
        grad_fn = nnx.value_and_grad(loss_and_logits, has_aux=True)
        (loss, logits), grads = grad_fn(model)
        results[name] = (np.asarray(logits)[np.asarray(valid)], jax.tree.leaves(nnx.state(grads)))
    np.testing.assert_allclose(results[impl][0], results["xla"][0], atol=2e-4)
    for a, b in zip(results[impl][1], results["xla"][1]):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=2e-4)


@pytest.mark.parametrize("impl", KERNELS)
def test_prefill_takes_the_kernel_and_decodes_the_same(impl):
    prompts = [[5, 17, 42], [9, 3, 27, 14, 21, 8, 13, 40, 41, 50]]
    args = dict(n=2, max_new_tokens=12, method=Greedy(), stop_ids=(), pad_id=0)
    want = generate(_model("xla"), prompts, **args)
    got = generate(_model(impl), prompts, **args)
    np.testing.assert_array_equal(got.tokens, want.tokens)
    np.testing.assert_allclose(got.logprobs, want.logprobs, atol=1e-4)


def test_splash_on_a_mesh_runs_per_shard():
    if len(jax.devices()) < 8:
        pytest.skip("needs 8 (fake) devices")
    tokens, valid = _batch()
    tokens, valid = jnp.tile(tokens, (2, 1)), jnp.tile(valid, (2, 1))  # 4 rows over data x fsdp = 4
    want, _ = _model("xla")(tokens, None, valid)
    mesh = make_mesh((2, 2, 2))
    model = _model("splash_interpret")
    with jax.set_mesh(mesh):
        got, _ = jax.jit(lambda t, v: model(t, None, v))(tokens, valid)
    np.testing.assert_allclose(np.asarray(got)[np.asarray(valid)], np.asarray(want)[np.asarray(valid)], atol=2e-4)


@pytest.mark.parametrize("engine", ["static", "continuous"])
def test_splash_prefill_on_a_mesh(engine):
    """The sampler's prefill takes its mesh as an argument: the kernel still runs per shard."""
    if len(jax.devices()) < 8:
        pytest.skip("needs 8 (fake) devices")
    prompts = [[5, 17, 42], [9, 3, 27, 14, 21, 8, 13, 40, 41, 50]] * 2
    args = dict(n=2, max_new_tokens=6, method=Greedy(), stop_ids=(), pad_id=0, engine=engine)
    want = sample(_model("xla"), prompts, **args)
    mesh = make_mesh((2, 2, 2))
    model = _model("splash_interpret")
    graphdef, state = nnx.split(model)
    state = jax.device_put(state, NamedSharding(mesh, P()))
    got = sample((graphdef, state), prompts, mesh=mesh, slots=4, **args)
    np.testing.assert_array_equal(got.tokens, want.tokens)


def test_resolve_picks_the_backends_kernel():
    assert resolve("auto", "bfloat16", "tpu") == "splash"
    assert resolve("auto", "float32", "tpu") == "splash"
    assert resolve("auto", "bfloat16", "gpu") == "cudnn"
    assert resolve("auto", "float32", "gpu") == "xla"  # cuDNN flash attention has no fp32
    assert resolve("auto", "bfloat16", "cpu") == "xla"
    assert resolve("cudnn", "float32", "cpu") == "cudnn"  # an explicit choice is kept
    with pytest.raises(ValueError, match="unknown attention_impl 'flash'"):
        resolve("flash", "float32")
    with pytest.raises(ConfigError, match="attention_impl must be one of xla, cudnn, splash, auto"):
        tiny_model_config(64, attention_impl="flash")
