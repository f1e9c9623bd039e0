"""Fixtures for trainer tests: tiny assets in a temp dir and a tiny recipe config."""

import pytest

from tempo_jax.train.tiny import ensure_tiny_assets, tiny_recipe


@pytest.fixture(scope="session")
def tiny_assets(tmp_path_factory):
    return ensure_tiny_assets(str(tmp_path_factory.mktemp("tiny_assets")))


@pytest.fixture
def tiny_config(tiny_assets, tmp_path):
    def make(method: str, **changes):
        base = dict(
            run_dir=str(tmp_path / f"run_{method}"),
            checkpoint__async_save=False,
            log__tensorboard=False,
            grader__workers=1,
        )
        base.update(changes)
        return tiny_recipe(method, tiny_assets, **base)

    return make
