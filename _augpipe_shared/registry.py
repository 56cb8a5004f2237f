"""`Registry`: name -> class tables that user code extends.

One shape for every extension point (`augpipe.register_op`, `ssl_train.register_method`,
`loaders.register_backend`, as timm's `register_model`): read like a dict; written through
its decorator (`class_decorator`), which checks the contract and refuses a name already taken
unless `replace=True`.
An entry may be a lazy `"module:Class"` string (heavy optional libraries are imported on use).
"""
from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Callable, Generic, TypeVar

T = TypeVar("T")


DECORATOR_SECTIONS = """

    Args:
        cls: The class (given by the decorator syntax).
        replace: Replace the {kind} already registered under that name.

    Returns:
        The class, unchanged (or, called with `replace` alone, the decorator).

    Raises:
        TypeError: The class breaks the {kind} contract (the message names what is missing).
        ValueError: The name is taken and `replace` is False.
    """


class Registry(Mapping[str, T], Generic[T]):
    """`kind` names the table in errors (`op`, `method`, `loader backend`); `check(entry)` returns
    what keeps an entry from meeting the contract (an empty list when it does)."""

    def __init__(self, kind: str, decorator: str, check: Callable[[T], list[str]] = lambda entry: []):
        self.kind, self.decorator_name, self.check = kind, decorator, check
        self._entries: dict[str, T | str] = {}

    def register(self, name: str, entry: T | str, replace: bool = False) -> T | str:
        """`name` -> `entry` (a class, checked by `class_decorator`, or a lazy "module:Class")."""
        known = self._entries.get(name)
        if isinstance(known, str) and not isinstance(entry, str) and known == f"{entry.__module__}:{entry.__qualname__}":
            known = entry  # the lazy entry's own class, registering itself on import
        if known is not None and known is not entry and not replace:
            where = known if isinstance(known, str) else f"{known.__module__}.{known.__qualname__}"
            article = "an" if self.kind[0] in "aeiou" else "a"
            raise ValueError(f"{self.decorator_name}: {article} {self.kind} named {name!r} is already registered ({where}); "
                             "pass replace=True to replace it")
        self._entries[name] = entry
        return entry

    def class_decorator(self, summary: str) -> Callable:
        """The public decorator of this table: `@deco` or `@deco(replace=True)` above a class whose
        `name` attribute is its key; the contract (`check`) is checked before the name is read.
        Its docstring is `summary` followed by the sections every registry's decorator shares."""
        def register(cls=None, *, replace: bool = False):
            if cls is None:
                return lambda c: register(c, replace=replace)
            errors = self.check(cls)
            if errors:
                raise TypeError(f"{self.decorator_name}({getattr(cls, '__name__', cls)!r}): " + "; ".join(errors))
            return self.register(cls.name, cls, replace=replace)
        register.__name__ = register.__qualname__ = self.decorator_name
        register.__doc__ = summary.rstrip() + DECORATOR_SECTIONS.format(kind=self.kind)
        return register

    def __getitem__(self, name: str) -> T:
        entry = self._entries[name]
        if isinstance(entry, str):  # "module:Class", imported on first use
            module, _, attr = entry.partition(":")
            entry = self._entries[name] = getattr(importlib.import_module(module), attr)
        return entry

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)
