"""HF safetensors import/export: exact round trips (single file and sharded, list and scanned
layers), transformers loading our export, and bad checkpoints failing with useful messages."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch
import transformers
from safetensors.numpy import load_file as load_np
from safetensors.numpy import save_file as save_np
from safetensors.torch import load_file

from tempo_jax.models.config import ConfigError
from tempo_jax.models.hf_config import CheckpointError
from tempo_jax.models.hf_io import from_hf, hf_tensors, to_hf

ALL_CASES = ("qwen3", "qwen3_tied", "qwen2", "llama", "olmo2", "olmo3")


def _tensors(path: str) -> dict[str, torch.Tensor]:
    files = sorted(f for f in os.listdir(path) if f.endswith(".safetensors"))
    out: dict[str, torch.Tensor] = {}
    for f in files:
        out.update(load_file(os.path.join(path, f)))
    return out


def _assert_same_tensors(src: str, dst: str) -> None:
    a, b = _tensors(src), _tensors(dst)
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name].dtype == b[name].dtype, name
        assert torch.equal(a[name], b[name]), name


@pytest.mark.parametrize("case", ALL_CASES)
def test_hf_to_ours_to_hf_is_exact_and_transformers_loads_it(case, hf_checkpoints, batch, tmp_path):
    path, hf_model = hf_checkpoints.get(case)
    out = to_hf(from_hf(path), tmp_path / "export")
    _assert_same_tensors(path, out)
    with open(os.path.join(out, "config.json"), encoding="utf-8") as fh:
        exported = json.load(fh)
    assert exported["model_type"] == hf_model.config.model_type
    reloaded, info = transformers.AutoModelForCausalLM.from_pretrained(
        out, output_loading_info=True, attn_implementation="eager"
    )
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    assert type(reloaded) is type(hf_model)
    assert reloaded.config.tie_word_embeddings == hf_model.config.tie_word_embeddings
    assert getattr(reloaded.config, "layer_types", None) == getattr(hf_model.config, "layer_types", None)
    assert reloaded.config.rope_parameters == hf_model.config.rope_parameters
    assert batch.max_diff(batch.hf_logits(reloaded.eval()), batch.hf_logits(hf_model)) == 0.0


def test_scanned_layers_round_trip_exactly(hf_checkpoints, tmp_path):
    path, _ = hf_checkpoints.get("olmo3")
    model = from_hf(path, scan_layers=True)
    q = model.model.layers.self_attn.q_proj.kernel
    assert q.shape == (2, 64, 96)  # stacked [layers, in, out]
    _assert_same_tensors(path, to_hf(model, tmp_path / "export"))


def test_sharded_export_with_index_reloads(hf_checkpoints, batch, tmp_path):
    path, hf_model = hf_checkpoints.get("llama")
    model = from_hf(path)
    out = to_hf(model, tmp_path / "sharded", max_shard_bytes=40_000)
    files = sorted(f for f in os.listdir(out) if f.endswith(".safetensors"))
    assert len(files) > 2 and "model.safetensors" not in files
    with open(os.path.join(out, "model.safetensors.index.json"), encoding="utf-8") as fh:
        index = json.load(fh)
    assert sorted(set(index["weight_map"].values())) == files
    assert sorted(index["weight_map"]) == sorted(hf_tensors(model))
    _assert_same_tensors(path, out)
    again = from_hf(out)
    np.testing.assert_array_equal(
        np.asarray(again(batch.tokens, batch.positions, batch.valid)[0]),
        np.asarray(model(batch.tokens, batch.positions, batch.valid)[0]),
    )
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(out, attn_implementation="eager").eval()
    assert batch.max_diff(batch.hf_logits(reloaded), batch.hf_logits(hf_model)) == 0.0


def test_bf16_params_load_and_export(hf_checkpoints, tmp_path):
    path, _ = hf_checkpoints.get("qwen3_tied")
    model = from_hf(path, param_dtype="bfloat16", dtype="bfloat16")
    assert model.model.embed_tokens.embedding[...].dtype == np.dtype("bfloat16")
    out = to_hf(model, tmp_path / "bf16")
    tensors = _tensors(out)
    src = _tensors(path)
    assert all(t.dtype == torch.bfloat16 for t in tensors.values())
    for name, t in tensors.items():
        assert torch.equal(t, src[name].to(torch.bfloat16)), name


def test_tied_checkpoint_that_also_stores_lm_head_loads(hf_checkpoints, batch, tmp_path):
    """Qwen3-0.6B/1.7B tie their embeddings but their safetensors also carry lm_head.weight."""
    path, hf_model = hf_checkpoints.get("qwen3_tied")
    dst = tmp_path / "tied_with_head"
    shutil.copytree(path, dst)
    file = os.path.join(dst, "model.safetensors")
    tensors = load_np(file)
    tensors["lm_head.weight"] = tensors["model.embed_tokens.weight"].copy()
    save_np(tensors, file, metadata={"format": "pt"})
    model = from_hf(dst)
    assert model.cfg.tie_word_embeddings and not hasattr(model, "lm_head")
    assert batch.max_diff(model(batch.tokens, batch.positions, batch.valid)[0], batch.hf_logits(hf_model)) < 1e-4


# ---------------------------------------------------------------------------------------------
# Bad checkpoints: each error names the tensor or file and what was expected.


@pytest.fixture
def broken(hf_checkpoints, tmp_path):
    """A private copy of the untied qwen3 checkpoint to damage."""
    src, _ = hf_checkpoints.get("qwen3")
    dst = tmp_path / "broken"
    shutil.copytree(src, dst)
    return dst


def _rewrite(path, edit) -> None:
    file = os.path.join(path, "model.safetensors")
    tensors = load_np(file)
    edit(tensors)
    save_np(tensors, file, metadata={"format": "pt"})


def test_missing_tensor_is_named_with_its_expected_shape(broken):
    _rewrite(broken, lambda t: t.pop("model.layers.1.mlp.down_proj.weight"))
    with pytest.raises(CheckpointError) as err:
        from_hf(broken)
    msg = str(err.value)
    assert "'model.layers.1.mlp.down_proj.weight'" in msg and "missing" in msg
    assert "(64, 80)" in msg  # HF layout [out, in]


def test_wrong_shape_is_named_with_got_and_expected(broken):
    def edit(t):
        t["model.layers.0.self_attn.k_proj.weight"] = np.zeros((24, 64), np.float32)

    _rewrite(broken, edit)
    with pytest.raises(CheckpointError) as err:
        from_hf(broken)
    msg = str(err.value)
    assert "'model.layers.0.self_attn.k_proj.weight'" in msg
    assert "(24, 64)" in msg and "expected (48, 64)" in msg
    assert "model.safetensors" in msg


def test_unexpected_tensor_is_named(broken):
    def edit(t):
        t["model.layers.2.self_attn.q_proj.weight"] = np.zeros((96, 64), np.float32)

    _rewrite(broken, edit)
    with pytest.raises(CheckpointError) as err:
        from_hf(broken)
    msg = str(err.value)
    assert "unexpected" in msg and "'model.layers.2.self_attn.q_proj.weight'" in msg
    assert "num_hidden_layers" in msg  # says what to check
    assert from_hf(broken, strict=False).cfg.num_layers == 2


def test_critic_without_value_head_says_how_to_get_one(hf_checkpoints):
    path, _ = hf_checkpoints.get("qwen3")
    with pytest.raises(CheckpointError) as err:
        from_hf(path, critic=True)
    msg = str(err.value)
    assert "'score." in msg and "missing" in msg and "num_labels=1" in msg and "critic_from_actor" in msg


def test_unknown_model_type_is_named(broken):
    cfg_path = os.path.join(broken, "config.json")
    with open(cfg_path, encoding="utf-8") as fh:
        cfg = json.load(fh)
    cfg["model_type"] = "gpt2"
    with open(cfg_path, "w", encoding="utf-8") as fh:
        json.dump(cfg, fh)
    with pytest.raises(ConfigError) as err:
        from_hf(broken)
    msg = str(err.value)
    assert "'gpt2'" in msg and "qwen3" in msg and "olmo3" in msg


def test_missing_config_json_is_named(broken):
    os.remove(os.path.join(broken, "config.json"))
    with pytest.raises(CheckpointError) as err:
        from_hf(broken)
    msg = str(err.value)
    assert os.path.join(str(broken), "config.json") in msg and "not found" in msg


def test_no_safetensors_files_is_reported(broken):
    os.remove(os.path.join(broken, "model.safetensors"))
    with pytest.raises(CheckpointError) as err:
        from_hf(broken)
    assert "no *.safetensors files" in str(err.value) and str(broken) in str(err.value)


def test_truncated_safetensors_file_is_named(broken):
    file = os.path.join(broken, "model.safetensors")
    size = os.path.getsize(file)
    with open(file, "r+b") as fh:
        fh.truncate(size // 2)
    with pytest.raises(CheckpointError) as err:
        from_hf(broken)
    msg = str(err.value)
    assert file in msg and "truncated" in msg


def test_truncated_header_is_named(broken):
    file = os.path.join(broken, "model.safetensors")
    with open(file, "r+b") as fh:
        fh.truncate(100)
    with pytest.raises(CheckpointError) as err:
        from_hf(broken)
    assert file in str(err.value)


def test_index_listing_a_missing_shard_is_named(hf_checkpoints, tmp_path):
    path, _ = hf_checkpoints.get("llama")
    out = to_hf(from_hf(path), tmp_path / "sharded", max_shard_bytes=40_000)
    victim = sorted(f for f in os.listdir(out) if f.endswith(".safetensors"))[1]
    os.remove(os.path.join(out, victim))
    with pytest.raises(CheckpointError) as err:
        from_hf(out)
    assert victim in str(err.value) and "model.safetensors.index.json" in str(err.value)
