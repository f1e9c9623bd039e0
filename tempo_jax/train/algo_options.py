"""Config sections of the chosen advantage estimator, policy loss and value loss.

``algo.adv_estimator``, ``algo.policy_loss`` and ``algo.value_loss`` name registered functions;
``algo.adv_options``, ``algo.policy_options`` and ``algo.value_options`` hold exactly the fields of
the chosen function's options dataclass (``tempo_jax/rl/options.py``), one config key per field.
Choosing another function rebuilds its section (fields both functions have keep their values),
so an override of an option the chosen function does not take is an unknown-key error that
lists the function's options.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import ml_collections

from tempo_jax.rl import ADVANTAGES, POLICY_LOSSES, VALUE_LOSSES
from tempo_jax.rl.registry import Registry

# function key -> (options section, registry)
SECTIONS: dict[str, tuple[str, Registry]] = {
    "adv_estimator": ("adv_options", ADVANTAGES),
    "policy_loss": ("policy_options", POLICY_LOSSES),
    "value_loss": ("value_options", VALUE_LOSSES),
}


@dataclasses.dataclass(frozen=True)
class AlgoOptions:
    """The typed options the trainer and the planner build the step's functions with."""

    adv: Any
    policy: Any
    value: Any


def options_section(registry: Registry, name: str, previous: Any = None) -> ml_collections.ConfigDict:
    """``name``'s options as a config section: its defaults, with the values of fields ``previous``
    (the section of the function chosen before) also has."""
    if name not in registry:
        return ml_collections.ConfigDict(dict(previous or {}))  # reported by validate()
    values = dataclasses.asdict(registry.options(name))
    for key in values:
        if previous is not None and key in previous:
            values[key] = previous[key]
    return ml_collections.ConfigDict(values)


def rebuild_section(algo: ml_collections.ConfigDict, function_key: str) -> None:
    """After ``algo.<function_key>`` changed: its options section, rebuilt for the new function."""
    section, registry = SECTIONS[function_key]
    algo[section] = options_section(registry, algo[function_key], algo.get(section))


def _typed(cls: type, values: dict[str, Any], where: str) -> dict[str, Any]:
    """Values converted to the field types of ``cls`` (int -> float); a wrong type is named."""
    defaults = dataclasses.asdict(cls())
    out = {}
    for key, value in values.items():
        default = defaults[key]
        if isinstance(default, bool) or isinstance(value, bool):
            ok = isinstance(value, bool) and isinstance(default, bool)
        elif isinstance(default, float) or default is None:
            ok = value is None or isinstance(value, (int, float))
            value = float(value) if isinstance(value, int) else value
        else:
            ok = isinstance(value, type(default))
        if not ok:
            raise ValueError(f"{where}.{key}={value!r} must be a {type(default).__name__}")
        out[key] = value
    return out


def algo_options(cfg: ml_collections.ConfigDict) -> AlgoOptions:
    """The chosen functions' options from ``cfg.algo``; ``ValueError`` naming the key that is wrong."""
    built = {}
    for function_key, (section, registry) in SECTIONS.items():
        name = cfg.algo[function_key]
        values = dict(cfg.algo.get(section) or {})
        try:
            cls = registry.options_type(name)
            registry.options(name, values)  # unknown keys
        except ValueError as err:
            raise ValueError(f"algo.{section}: {err}") from None
        built[section] = cls(**_typed(cls, values, f"algo.{section}"))
    return AlgoOptions(adv=built["adv_options"], policy=built["policy_options"], value=built["value_options"])
