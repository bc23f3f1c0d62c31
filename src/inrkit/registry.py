"""Named plug-ins: one registry per kind (architectures, signal kinds, pruning criteria, codecs).

A plug-in registers once, where it is defined::

    CODECS = Registry("codec")

    @CODECS.register("quant")
    class QuantCodec: ...

and every consumer (library dispatch, CLI ``choices``, docs) reads the registry, so adding
a plug-in touches one place.
"""
from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

from inrkit.errors import InvalidInputError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> object table for one kind of plug-in.

    Args:
        kind: what is registered (used in error messages, e.g. ``"codec"``).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, obj: T | None = None) -> Callable[[T], T] | T:
        """Register ``obj`` under ``name``; without ``obj``, a decorator that does so."""
        if obj is not None:
            return self._add(name, obj)

        def decorator(item: T) -> T:
            return self._add(name, item)

        return decorator

    def _add(self, name: str, obj: T) -> T:
        if name in self._items and self._items[name] is not obj:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = obj
        return obj

    def unregister(self, name: str) -> None:
        """Remove ``name`` (for tests that add a temporary plug-in)."""
        self._items.pop(name, None)

    def get(self, name: str) -> T:
        """The object registered as ``name``; an :class:`InvalidInputError` listing the choices otherwise."""
        try:
            return self._items[name]
        except (KeyError, TypeError):
            raise InvalidInputError(f"unknown {self.kind} {name!r}; choose from {', '.join(self.names())}") from None

    def names(self) -> tuple[str, ...]:
        """Registered names, in registration order."""
        return tuple(self._items)

    def items(self) -> Iterator[tuple[str, T]]:
        return iter(list(self._items.items()))

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
