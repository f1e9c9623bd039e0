"""Fixtures shared by the multi-device and multi-process trainer tests: tiny assets and the one-device
reference parameters (computed once per session)."""

import pytest

from tempo_jax.plan.selfcheck import LR, STEPS, run_tiny_steps
from tempo_jax.train.tiny import ensure_tiny_assets


@pytest.fixture(scope="session")
def assets(tmp_path_factory):
    return ensure_tiny_assets(str(tmp_path_factory.mktemp("parallel_assets")))


@pytest.fixture(scope="session")
def reference(assets, tmp_path_factory):
    """Parameters after steps 1 and 2 on a single device (no mesh)."""
    return run_tiny_steps(
        (1, 1, 1), STEPS, assets, str(tmp_path_factory.mktemp("ref")), train__actor_lr=LR, train__critic_lr=LR
    )
