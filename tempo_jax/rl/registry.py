"""Name registries for advantage estimators, policy losses and value losses.

Configs pick a function by name (``algorithm.adv_estimator="em_token"``); an unknown name
fails with the list of known ones, so a typo is caught when the config is loaded, not at
step 1000.
"""
from __future__ import annotations

from typing import Callable, Generic, TypeVar

F = TypeVar("F", bound=Callable)


class Registry(Generic[F]):
    """A mapping ``name -> function`` filled by a ``@REGISTRY.register(name)`` decorator."""

    def __init__(self, kind: str):
        self.kind = kind
        self._fns: dict[str, F] = {}

    def register(self, name: str) -> Callable[[F], F]:
        """Decorator registering ``fn`` under ``name``; a different function under a taken
        name raises ``ValueError`` (re-importing the same module is allowed)."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")

        def decorator(fn: F) -> F:
            old = self._fns.get(name)
            if old is not None and _qualname(old) != _qualname(fn):
                raise ValueError(
                    f"{self.kind} {name!r} is already registered to {_qualname(old)}; "
                    f"cannot register {_qualname(fn)} under the same name"
                )
            self._fns[name] = fn
            return fn

        return decorator

    def get(self, name: str) -> F:
        """The function registered under ``name``; ``ValueError`` listing the known names."""
        try:
            return self._fns[name]
        except (KeyError, TypeError):
            raise ValueError(
                f"unknown {self.kind} {name!r}; known: {', '.join(self.names()) or '(none)'}"
            ) from None

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
