"""`tempo-jax plan`: topology names, a fitting tiny config compiled for a TPU slice, and a too-small slice
that fails with suggestions. TPU compiles run in a subprocess with libtpu (skipped without it)."""

import importlib.util
import json

import pytest

from tempo_jax.parallel.topology import parse_topology
from tempo_jax.plan import planner

needs_libtpu = pytest.mark.skipif(
    importlib.util.find_spec("libtpu") is None, reason="libtpu not installed (pip install -e .[tpu])"
)


@pytest.mark.parametrize(
    "name, topology, chips, hbm",
    [
        ("v5p-64", "v5p:2x4x4", 32, 95),
        ("v5p-128", "v5p:4x4x4", 64, 95),
        ("v5p-8", "v5p:2x2x1", 4, 95),
        ("v6e-64", "v6e:8x8", 64, 32),
        ("v5litepod-16", "v5e:4x4", 16, 16),
        ("v4-32", "v4:2x2x4", 16, 32),
        ("v5e:2x2", "v5e:2x2", 4, 16),
    ],
)
def test_slice_names(name, topology, chips, hbm):
    t = parse_topology(name)
    assert (t.topology_name, t.chips, t.chip.hbm_gib) == (topology, chips, hbm)


def test_bad_slice_names_say_how_to_write_them():
    with pytest.raises(ValueError, match="v5p-64"):
        parse_topology("tpu-big")
    with pytest.raises(ValueError, match="TensorCores"):
        parse_topology("v5p-9")


def _tiny_config(tmp_path, assets_model: str) -> str:
    path = tmp_path / "tiny_plan.py"
    path.write_text(
        "from tempo_jax.train.config import recipe\n\n\n"
        "def get_config():\n"
        f"    return recipe('tempo', model__preset={assets_model!r}, data__max_prompt_tokens=64,\n"
        "                  rollout__n=4, rollout__max_new_tokens=64, train__train_batch_size=4,\n"
        "                  train__ppo_mini_batch_size=2, mesh__shape=(1, -1, 1))\n"
    )
    return str(path)


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    from tempo_jax.train.tiny import tiny_hf_model

    return tiny_hf_model(str(tmp_path_factory.mktemp("plan_model")))


@needs_libtpu
def test_tiny_model_fits_a_small_slice_with_every_program_compiled(tmp_path, tiny_model_dir, capsys):
    config = _tiny_config(tmp_path, tiny_model_dir)
    out = tmp_path / "plan.json"
    rc = planner.plan_main(["--config", config, "--topology", "v5e-4", "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    report = json.loads(out.read_text())
    assert report["fits"] and report["chips"] == 4 and report["mesh"] == {"data": 1, "fsdp": 4, "tensor": 1}
    expected = {"prefill", "decode", "e_step", "m_step"} | ({"grow"} if len(report["windows"]) > 1 else set())
    assert set(report["programs"]) == expected
    for name, p in report["programs"].items():
        assert p["compiled"] and 0 < p["peak_bytes"] < report["capacity_bytes"], name
    assert report["programs"]["m_step"]["params_bytes"] > 0 and report["programs"]["m_step"]["opt_state_bytes"] > 0
    assert report["programs"]["decode"]["kv_cache_bytes"] > 0
    assert report["command"].startswith("tempo-jax plan --config")
    assert "FITS" in text and "per-device HBM" in text


def test_too_small_slice_fails_with_suggestions(tmp_path, capsys):
    """A mid-size preset on a single v5e chip: the train states alone overflow 16 GiB (no compile needed)."""
    config = _tiny_config(tmp_path, "Qwen3-1.7B")
    rc = planner.plan_main(["--config", config, "--topology", "v5litepod-1"])
    text = capsys.readouterr().out
    assert rc == 1
    assert "DOES NOT FIT on v5litepod-1" in text
    assert "v5litepod-2" in text and "fsdp" in text


@needs_libtpu
@pytest.mark.slow
def test_activations_too_large_suggest_smaller_micro_batches(tmp_path, capsys):
    """States fit but the update's activations do not: XLA's out-of-HBM figure is reported with fixes."""
    path = tmp_path / "big_act.py"
    path.write_text(
        "from tempo_jax.train.config import recipe\n\n\n"
        "def get_config():\n"
        "    return recipe('tempo', model__preset='Qwen3-0.6B', model__dtype='bfloat16', model__scan_layers=True,\n"
        "                  data__max_prompt_tokens=1024, rollout__n=8, rollout__max_new_tokens=7168,\n"
        "                  train__train_batch_size=8, train__ppo_mini_batch_size=8, train__micro_batch_tokens=2**20,\n"
        "                  mesh__shape=(1, -1, 1))\n"
    )
    rc = planner.plan_main(["--config", str(path), "--topology", "v5e-4", "--only", "m_step"])
    text = capsys.readouterr().out
    assert rc == 1, text
    assert "remat=True" in text and "micro_batch_tokens" in text
