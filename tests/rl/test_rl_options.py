"""Typed options: every registered function declares a frozen options dataclass whose fields are
its keyword parameters, with the function's own defaults; unknown options are named."""

import dataclasses
import inspect

import pytest

from tempo_jax.rl import ADVANTAGES, POLICY_LOSSES, VALUE_LOSSES
from tempo_jax.rl.registry import Registry

REGISTRIES = [ADVANTAGES, POLICY_LOSSES, VALUE_LOSSES]


@pytest.mark.parametrize("registry", REGISTRIES, ids=lambda r: r.kind)
def test_options_are_the_functions_keyword_defaults(registry):
    for name in registry.names():
        cls = registry.options_type(name)
        assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen, name
        params = inspect.signature(registry.get(name)).parameters
        for field in dataclasses.fields(cls):
            assert params[field.name].kind is inspect.Parameter.KEYWORD_ONLY, (name, field.name)
            assert params[field.name].default == field.default, (name, field.name)


def test_options_from_values_fill_defaults_and_name_unknown_keys():
    opts = ADVANTAGES.options("gae", {"gamma": 0.99})
    assert (opts.gamma, opts.lam, opts.whiten) == (0.99, 1.0, "global")
    with pytest.raises(ValueError, match=r"'grpo' takes no option 'whiten'; its options: eps, norm_by_std"):
        ADVANTAGES.options("grpo", {"whiten": "none"})
    assert POLICY_LOSSES.options("ppo").clip_ratio_c is None  # dual clip off unless asked for
    assert "clip_ratio_c" not in {f.name for f in dataclasses.fields(POLICY_LOSSES.options_type("gspo"))}


def test_registering_options_the_function_does_not_take_fails():
    registry: Registry = Registry("test function")

    @dataclasses.dataclass(frozen=True)
    class Opts:
        scale: float = 1.0

    with pytest.raises(TypeError, match="not keyword parameters"):

        @registry.register("f", options=Opts)
        def f(x, *, shift: float = 0.0):
            return x + shift
