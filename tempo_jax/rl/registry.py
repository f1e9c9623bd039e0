"""Name registries for advantage estimators, policy losses and value losses.

Configs pick a function by name (``algorithm.adv_estimator="em_token"``); an unknown name
fails with the list of known ones, so a typo is caught when the config is loaded, not at
step 1000.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

F = TypeVar("F", bound=Callable)


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """A function without keyword options."""


class Registry(Generic[F]):
    """A mapping ``name -> function`` (and its typed options) filled by ``@REGISTRY.register(name, options=...)``."""

    def __init__(self, kind: str):
        self.kind = kind
        self._fns: dict[str, F] = {}
        self._options: dict[str, type] = {}

    def register(self, name: str, options: type = NoOptions) -> Callable[[F], F]:
        """Decorator registering ``fn`` under ``name`` with its options dataclass, whose fields must
        be keyword parameters of ``fn``; a different function under a taken name raises
        ``ValueError`` (re-importing the same module is allowed)."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")

        def decorator(fn: F) -> F:
            old = self._fns.get(name)
            if old is not None and _qualname(old) != _qualname(fn):
                raise ValueError(
                    f"{self.kind} {name!r} is already registered to {_qualname(old)}; "
                    f"cannot register {_qualname(fn)} under the same name"
                )
            params = inspect.signature(fn).parameters
            keywords = {p for p, v in params.items() if v.kind is inspect.Parameter.KEYWORD_ONLY}
            missing = {f.name for f in dataclasses.fields(options)} - keywords
            if missing:
                raise TypeError(
                    f"{self.kind} {name!r}: options {sorted(missing)} are not keyword parameters of {_qualname(fn)}"
                )
            self._fns[name] = fn
            self._options[name] = options
            return fn

        return decorator

    def options_type(self, name: str) -> type:
        """The options dataclass of ``name``."""
        self.get(name)
        return self._options[name]

    def options(self, name: str, values: Mapping[str, Any] | None = None) -> Any:
        """``name``'s options from ``values`` (missing fields take their defaults). A key the function
        does not take raises ``ValueError`` naming it and listing the function's options."""
        cls = self.options_type(name)
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values or {}) - fields)
        if unknown:
            raise ValueError(
                f"{self.kind} {name!r} takes no option {', '.join(map(repr, unknown))}; its options: "
                f"{', '.join(sorted(fields)) or '(none)'}"
            )
        return cls(**dict(values or {}))

    def get(self, name: str) -> F:
        """The function registered under ``name``; ``ValueError`` listing the known names."""
        try:
            return self._fns[name]
        except (KeyError, TypeError):
            raise ValueError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names()) or '(none)'}") from None

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._fns))

    def __contains__(self, name: object) -> bool:
        return name in self._fns

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, names={list(self.names())})"


def _qualname(fn: Callable) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


ADVANTAGES: Registry = Registry("advantage estimator")
POLICY_LOSSES: Registry = Registry("policy loss")
VALUE_LOSSES: Registry = Registry("value loss")
