"""libtpu installed without TPU chips: the CLI leaves the TPU platform out (no probe, no warnings)."""

import importlib.util
import os
import subprocess
import sys

import pytest

from tempo_jax.parallel import platforms


@pytest.fixture
def updates(monkeypatch):
    seen = []
    monkeypatch.setattr(platforms.jax.config, "update", lambda key, value: seen.append((key, value)))
    monkeypatch.delenv("JAX_PLATFORMS", raising=False)
    return seen


def _installed(*names):
    return lambda name: object() if name in names else None


def test_libtpu_without_chips_keeps_jax_on_the_other_platforms(monkeypatch, updates):
    monkeypatch.setattr(platforms.importlib.util, "find_spec", _installed("libtpu"))
    monkeypatch.setattr(platforms, "has_tpu_chips", lambda: False)
    platforms.skip_absent_tpu()
    monkeypatch.setattr(platforms.importlib.util, "find_spec", _installed("libtpu", "jax_cuda12_plugin"))
    platforms.skip_absent_tpu()
    assert updates == [("jax_platforms", "cpu"), ("jax_platforms", "cuda,cpu")]


def test_a_tpu_vm_an_explicit_choice_or_no_libtpu_change_nothing(monkeypatch, updates):
    monkeypatch.setattr(platforms.importlib.util, "find_spec", _installed("libtpu"))
    monkeypatch.setattr(platforms, "has_tpu_chips", lambda: True)
    platforms.skip_absent_tpu()
    monkeypatch.setattr(platforms, "has_tpu_chips", lambda: False)
    monkeypatch.setenv("JAX_PLATFORMS", "tpu")
    platforms.skip_absent_tpu()
    monkeypatch.delenv("JAX_PLATFORMS")
    monkeypatch.setattr(platforms.importlib.util, "find_spec", _installed())
    platforms.skip_absent_tpu()
    assert updates == []


@pytest.mark.skipif(
    importlib.util.find_spec("libtpu") is None or platforms.has_tpu_chips(),
    reason="needs libtpu installed on a machine without TPU chips",
)
def test_with_the_real_libtpu_no_tpu_probe_and_no_warnings():
    code = (
        "from tempo_jax.parallel.platforms import skip_absent_tpu; skip_absent_tpu(); import jax; print(jax.devices())"
    )
    env = {k: v for k, v in os.environ.items() if k != "JAX_PLATFORMS"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "CpuDevice" in out.stdout, out.stderr[-2000:]
    assert "libtpu" not in out.stderr and "TPU_" not in out.stderr, out.stderr[-2000:]
