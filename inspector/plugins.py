"""Finding plugins: the ``PLUGIN`` of every module of a package, and the config union
of their settings.

The camera sources, the engine backends and the sinks are each a package whose
modules declare ``PLUGIN``; their registries walk the package with
:func:`module_plugins` and keep their own rules (names declared twice, defaults,
inference). This module imports nothing of inspector, so that any registry can use it.
"""

from __future__ import annotations

import importlib
import operator
import pkgutil
from collections.abc import Callable, Iterable, Mapping
from functools import reduce
from typing import Annotated, Any, Generic, Protocol, TypeVar

from pydantic import BeforeValidator, Discriminator, TypeAdapter

PluginT = TypeVar("PluginT")
SettingsT = TypeVar("SettingsT")


def module_plugins(
    package: str,
    kind: type[PluginT],
    path: Iterable[str] | None = None,
    *,
    skip: str = "",
) -> list[tuple[str, PluginT]]:
    """Import each module of ``package`` found on ``path`` (default: the package's own),
    except private ones and ``skip`` (the registry calling), and return ``(module name,
    PLUGIN)`` for each that defines ``PLUGIN``.

    Raises TypeError naming the module when its ``PLUGIN`` is not a ``kind``.
    """
    if path is None:
        path = importlib.import_module(package).__path__
    found: list[tuple[str, PluginT]] = []
    for info in pkgutil.iter_modules(list(path)):
        name = f"{package}.{info.name}"
        if info.name.startswith("_") or name == skip:
            continue
        plugin = getattr(importlib.import_module(name), "PLUGIN", None)
        if plugin is None:
            continue
        if not isinstance(plugin, kind):
            article = "an" if kind.__name__.startswith(tuple("AEIOU")) else "a"
            raise TypeError(f"{name}.PLUGIN is not {article} {kind.__name__}")
        found.append((name, plugin))
    return found


def known_names(names: Iterable[str]) -> str:
    """``'a', 'b', 'c'``: the names an error lists as the ones to choose from."""
    return ", ".join(repr(name) for name in names)


class HasSettings(Protocol):
    @property
    def settings(self) -> type[Any]: ...


def tagged_union(
    plugins: Iterable[HasSettings], tag: str, before: Callable[[Any], Any], *, kind: str
) -> Any:
    """``Annotated[A | B | ..., Discriminator(tag), BeforeValidator(before)]`` of the plugins'
    settings classes: ``before`` fills in an absent tag or rejects an unknown one by name,
    then the tag picks the class. Each class counts once: one plugin may answer to several
    tags. No plugins at all is a TypeError naming their ``kind``."""
    members = list(dict.fromkeys(plugin.settings for plugin in plugins))
    if not members:
        raise TypeError(f"no {kind} found (no module defines PLUGIN)")
    union: Any = reduce(operator.or_, members)
    return Annotated[union, Discriminator(tag), BeforeValidator(before)]


class TableParser(Generic[SettingsT]):
    """Validates one config table, a mapping and/or keywords, into ``union`` (a
    :func:`tagged_union`); raises :class:`pydantic.ValidationError`."""

    def __init__(self, union: Any) -> None:
        self._adapter: TypeAdapter[SettingsT] = TypeAdapter(union)

    def __call__(self, data: Mapping[str, Any] | None = None, **fields: Any) -> SettingsT:
        return self._adapter.validate_python({**(data or {}), **fields})
