"""Things created by name, timm-style: one :class:`Registry` per kind (backbones, image and text
encoders, tuners, noisy-label methods, datasets).

A registry maps a name to a *factory* (anything callable that builds the thing), a one-line
description (what ``nml list`` prints) and optional metadata (e.g. what a method's ``fit`` reads).
Open-ended names — ``hf:<model>``, ``callable:<module>:<function>``, ``fashion-mnist-c/<corruption>``,
any timm model name — are *prefix families*: a resolver turns the part after the prefix into a
factory. Validating a name (:meth:`Registry.check`) never builds anything, so params files are
checked before a notebook starts.

Imports nothing from the rest of ``nml``: every layer registers into it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Generic, TypeVar, overload

__all__ = ["Entry", "Family", "Registry", "UnknownNameError"]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

#: A family's resolver: the part of a name after the prefix -> a factory, or None when that
#: name is not one of the family's (then later families are tried). Raising ``ValueError``
#: says the name *is* the family's but malformed; its message becomes part of the error.
Resolver = Callable[[str], "Callable[..., Any] | None"]


class UnknownNameError(KeyError, ValueError):
    """A name no registry entry or family accepts; the message names the valid choices.

    A ``KeyError`` (a failed lookup, what the params validation catches) and a ``ValueError``
    (a bad argument, what pydantic validators turn into a validation error).
    """

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered name: its factory, one-line description and metadata."""

    name: str
    factory: Callable[..., T]
    description: str
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Family:
    """Names starting with ``prefix`` (``""``: any name), resolved by ``resolver``.

    ``pattern`` is how listings and error messages show the family, e.g. ``hf:<model id or path>``.
    """

    prefix: str
    resolver: Resolver
    pattern: str
    description: str


def _first_line(obj: Any) -> str:
    doc = (getattr(obj, "__doc__", None) or "").strip()
    return doc.splitlines()[0].strip() if doc else ""


class Registry(Generic[T]):
    """Names -> factories of one ``kind`` (the word error messages use: "unknown encoder ...").

    Registered names win over families; families are tried longest prefix first, so a
    catch-all family (prefix ``""``, e.g. "any timm model") comes last.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        self._families: dict[str, Family] = {}

    # ---- registration
    @overload
    def register(self, name: str, factory: None = None, *, description: str | None = None,
                 **metadata: Any) -> Callable[[F], F]: ...

    @overload
    def register(self, name: str, factory: F, *, description: str | None = None, **metadata: Any) -> F: ...

    def register(self, name: str, factory: Callable[..., T] | None = None, *, description: str | None = None,
                 **metadata: Any) -> Any:
        """Register ``factory`` under ``name``; without ``factory``, a decorator that does.

        ``description`` defaults to the first line of the factory's docstring. A name already
        registered is refused (``ValueError``): two things under one name would make results
        depend on import order.
        """
        if factory is None:
            def decorator(fn: F) -> F:
                self.register(name, fn, description=description, **metadata)
                return fn

            return decorator
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} names must be non-empty strings, got {name!r}")
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        if not callable(factory):
            raise TypeError(f"{self.kind} {name!r}: factory must be callable, got {type(factory).__name__}")
        text = _first_line(factory) if description is None else description
        self._entries[name] = Entry(name, factory, text, MappingProxyType(dict(metadata)))
        return factory

    def register_family(self, prefix: str, resolver: Resolver | None = None, *, pattern: str,
                        description: str) -> Any:
        """Register a prefix family (see :data:`Resolver`); without ``resolver``, a decorator."""
        if resolver is None:
            def decorator(fn: Resolver) -> Resolver:
                self.register_family(prefix, fn, pattern=pattern, description=description)
                return fn

            return decorator
        if prefix in self._families:
            raise ValueError(f"{self.kind} family {prefix!r} is already registered")
        self._families[prefix] = Family(prefix, resolver, pattern, description)
        return resolver

    # ---- lookup
    def get(self, name: str) -> Entry[T]:
        """The entry of ``name``, a family member's built on the fly; :class:`UnknownNameError` otherwise."""
        if not isinstance(name, str):
            raise self._unknown(name, "not a string")
        if name in self._entries:
            return self._entries[name]
        for family in sorted(self._families.values(), key=lambda f: -len(f.prefix)):
            if not name.startswith(family.prefix):
                continue
            try:
                factory = family.resolver(name[len(family.prefix):])
            except ValueError as err:
                raise self._unknown(name, str(err)) from None
            if factory is not None:
                return Entry(name, factory, family.description)
        raise self._unknown(name)

    def check(self, name: str) -> str:
        """``name`` if it is valid (nothing is built); :class:`UnknownNameError` naming the choices otherwise."""
        self.get(name)
        return name

    def create(self, name: str, /, **kwargs: Any) -> T:
        """Build ``name`` with ``kwargs``."""
        return self.get(name).factory(**kwargs)

    def names(self, pattern: str | None = None) -> list[str]:
        """Registered names (not family members), sorted; ``pattern`` filters with fnmatch."""
        return sorted(n for n in self._entries if pattern is None or fnmatch.fnmatchcase(n, pattern))

    def describe(self, pattern: str | None = None) -> list[tuple[str, str]]:
        """(name, description) of every registered name, then (pattern, description) of every family."""
        rows = [(n, self._entries[n].description) for n in self.names(pattern)]
        return rows + [(f.pattern, f.description) for f in self._families.values()
                       if pattern is None or fnmatch.fnmatchcase(f.pattern, pattern)]

    def choices(self) -> list[str]:
        """What a name may be: the registered names and the families' patterns."""
        return self.names() + [f.pattern for f in self._families.values()]

    def __contains__(self, name: object) -> bool:
        try:
            self.get(name)  # type: ignore[arg-type]
        except UnknownNameError:
            return False
        return True

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.choices()})"

    def _unknown(self, name: Any, reason: str | None = None) -> UnknownNameError:
        why = f" ({reason})" if reason else ""
        return UnknownNameError(f"unknown {self.kind} {name!r}{why}: expected one of {self.choices()}")
