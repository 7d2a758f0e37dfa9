"""Small name -> function registries (TTA views, aggregators, detectors) that fail loudly on unknown names."""

from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from .errors import ParameterError

F = TypeVar("F", bound=Callable)


class Registry(Generic[F]):
    """Functions registered by name; ``param`` is the run parameter that selects one."""

    def __init__(self, param: str):
        self.param = param
        self._items: dict[str, F] = {}

    def register(self, name: str) -> Callable[[F], F]:
        """Decorator that adds a function under ``name``."""

        def add(fn: F) -> F:
            if name in self._items:
                raise KeyError(f"{self.param}: {name!r} is registered twice")
            self._items[name] = fn
            return fn

        return add

    def get(self, name: str) -> F:
        """The function registered as ``name``; a ParameterError listing the valid names otherwise."""
        if name not in self._items:
            raise ParameterError(self.param, name, self.names())
        return self._items[name]

    def names(self) -> list[str]:
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)
