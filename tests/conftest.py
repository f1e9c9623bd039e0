"""Test-wide setup: 8 fake CPU devices, set once before JAX is imported anywhere."""

import os

_FLAG = "--xla_force_host_platform_device_count=8"
if _FLAG not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _FLAG).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One persistent compilation cache for the whole session (and the subprocesses tests start):
# the tiny recipes compile identical programs many times.
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR",
    os.path.join(os.environ.get("TMPDIR", "/tmp"), f"tempo_jax_test_jax_cache_{os.getuid()}"),
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")

import pathlib

import pytest

DATA_DIR = pathlib.Path(
    os.environ.get("TEMPO_JAX_DATA_DIR", pathlib.Path(__file__).resolve().parents[1].parent / "shared" / "data")
)


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: longer than a few seconds; excluded from CI when a fast test covers it")


@pytest.fixture(scope="session")
def data_dir() -> pathlib.Path:
    """The shared evaluation data (`../shared/data` or $TEMPO_JAX_DATA_DIR)."""
    if not DATA_DIR.exists():
        pytest.skip(f"shared data not found at {DATA_DIR}; set TEMPO_JAX_DATA_DIR")
    return DATA_DIR


@pytest.fixture(scope="session")
def olmo3_overrides() -> dict:
    """``tiny_model_config`` overrides for an OLMo 3-style model: post-norm, full q/k norm, a
    4-token sliding window on the first of its two layers, no EOS (rows run to their budget)."""
    from tempo_jax.models.config import FULL, SLIDING

    return dict(
        model_type="olmo3",
        norm_placement="post",
        qk_norm="full",
        layer_types=(SLIDING, FULL),
        sliding_window=4,
        eos_token_id=None,
    )
