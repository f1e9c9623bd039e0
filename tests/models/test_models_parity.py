"""Logits parity with transformers (fp32, CPU) for every family, with left padding; the scan /
remat variants; KV-cache prefill + decode; loading onto a device mesh."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from tempo_jax.models.config import FULL, SLIDING
from tempo_jax.models.hf_io import from_hf
from tempo_jax.parallel.mesh import make_mesh

TOL = 1e-4
ALL_CASES = ("qwen3", "qwen3_tied", "qwen2", "llama", "olmo2", "olmo3")


def _logits(model, batch):
    logits, cache = model(batch.tokens, batch.positions, batch.valid)
    assert cache is None
    assert logits.dtype == np.float32
    return np.asarray(logits)


@pytest.mark.parametrize("case", ALL_CASES)
def test_logits_match_transformers(case, hf_checkpoints, batch):
    path, hf_model = hf_checkpoints.get(case)
    ref = batch.hf_logits(hf_model)
    model = from_hf(path)
    ours = _logits(model, batch)
    assert ours.shape == ref.shape
    assert batch.max_diff(ours, ref) < TOL


@pytest.mark.parametrize("case", ("qwen3", "qwen2", "llama", "olmo2", "olmo3"))
def test_scan_and_remat_give_the_same_logits(case, hf_checkpoints, batch):
    path, hf_model = hf_checkpoints.get(case)
    ref = batch.hf_logits(hf_model)
    plain = _logits(from_hf(path), batch)
    variants = (
        dict(scan_layers=True),
        dict(remat=True),
        dict(scan_layers=True, remat=True),
        dict(attention_chunk=5),
        dict(scan_layers=True, remat=True, attention_chunk=5),
    )
    for overrides in variants:
        model = from_hf(path, **overrides)
        assert model.cfg.scan_layers == overrides.get("scan_layers", False)
        ours = _logits(model, batch)
        assert batch.max_diff(ours, ref) < TOL, overrides
        assert batch.max_diff(ours, plain) < 1e-5, overrides


def test_olmo3_sliding_window_and_per_layer_rope_matter(hf_checkpoints, batch):
    """The parity above would not catch a dropped window or rope if they made no difference."""
    path, hf_model = hf_checkpoints.get("olmo3")
    model = from_hf(path)
    cfg = model.cfg
    assert cfg.layer_types == (SLIDING, FULL) and cfg.sliding_window == 4 < batch.tokens.shape[1]
    assert cfg.rope.type == "yarn" and cfg.sliding_rope is not None and cfg.sliding_rope.type == "default"
    ref = batch.hf_logits(hf_model)
    no_window = _logits(from_hf(path, layer_types=(FULL, FULL), sliding_window=None), batch)
    assert batch.max_diff(no_window, ref) > 1e-2
    same_rope = _logits(from_hf(path, sliding_rope=None), batch)  # yarn on every layer
    assert batch.max_diff(same_rope, ref) > 1e-2


@pytest.mark.parametrize(
    "case,scan,chunk", [("qwen3", False, 0), ("olmo3", False, 0), ("olmo3", True, 0), ("olmo3", True, 3)]
)
def test_kv_cache_prefill_then_decode_matches_full_forward(case, scan, chunk, hf_checkpoints, batch):
    path, _ = hf_checkpoints.get(case)
    model = from_hf(path, scan_layers=scan, attention_chunk=chunk)  # chunk 3: the prefill runs in blocks
    full = _logits(model, batch)
    length = batch.tokens.shape[1]
    cache = model.init_cache(batch.tokens.shape[0], length + 4)  # spare slots stay masked
    split = length - 2
    pre, cache = model(batch.tokens[:, :split], batch.positions[:, :split], batch.valid[:, :split], cache)
    steps = [np.asarray(pre)]
    for t in range(split, length):  # two single-token decode steps
        step, cache = model(batch.tokens[:, t : t + 1], batch.positions[:, t : t + 1], batch.valid[:, t : t + 1], cache)
        steps.append(np.asarray(step))
    assert int(cache.index) == length
    np.testing.assert_array_equal(np.asarray(cache.valid)[:, :length], batch.valid)
    assert not np.asarray(cache.valid)[:, length:].any()
    incremental = np.concatenate(steps, axis=1)
    assert batch.max_diff(incremental, full) < 1e-5


def test_loading_onto_a_mesh_shards_params_and_keeps_logits(hf_checkpoints, batch):
    path, _ = hf_checkpoints.get("qwen3")
    single = _logits(from_hf(path), batch)
    mesh = make_mesh((1, 2, 4))
    model = from_hf(path, mesh=mesh)
    q = model.model.layers[0].self_attn.q_proj.kernel[...]  # [64, 96]: fsdp=2 and tensor=4 divide
    assert q.sharding.mesh.shape == {"data": 1, "fsdp": 2, "tensor": 4}
    assert q.sharding.spec == P("fsdp", "tensor")
    assert not q.sharding.is_fully_replicated
    assert {s.data.shape for s in q.addressable_shards} == {(32, 24)}
    down = model.model.layers[1].mlp.down_proj.kernel[...]  # [80, 64]: tensor=4 divides 80, fsdp=2 divides 64
    assert down.sharding.spec == P("tensor", "fsdp")
    emb = model.model.embed_tokens.embedding[...]  # vocab 101: "tensor" does not divide it, so dropped
    assert emb.sharding.spec == P(None, "fsdp")
    devices = {d for leaf in jax.tree.leaves(model) if hasattr(leaf, "sharding") for d in leaf.sharding.device_set}
    assert len(devices) == 8
    sharded = _logits(model, batch)
    assert batch.max_diff(sharded, single) < 1e-5
