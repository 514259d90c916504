"""The plugin kernel: how camera sources, engine backends and sinks are found, named and
told apart, all three the same way.

A plugin is an object (``PLUGIN``) of its kind's type, found in one of two places:

- built in: a module (or a folder) of the kind's package that defines ``PLUGIN``
  (``inspector/capture/sources/usb.py``, ``inspector/engines/openvino_engine.py``,
  ``inspector/sinks/mqtt.py``);
- installed: an entry point of the kind's group (``inspector.sources``, ``inspector.engines``,
  ``inspector.sinks``) in any distribution, named after what it answers to:
  ``sparkplug = "inspector_sparkplug:PLUGIN"``, as pytest and OpenTelemetry find theirs.

An installed plugin that fails to load is kept as a :class:`BrokenPlugin`: one line naming
its distribution and the error, raised only where the configuration uses that name, so a
broken optional package never stops a line that does not use it. Names are unique across
both places; an unknown name gets a did-you-mean among the plugins found. docs/architecture.md
shows a whole external plugin. This module imports nothing of inspector but its errors.
"""

from __future__ import annotations

import difflib
import importlib
import operator
import pkgutil
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import reduce
from importlib.metadata import EntryPoint, entry_points
from typing import Annotated, Any, Generic, Protocol, TypeVar

from pydantic import BeforeValidator, Discriminator, TypeAdapter

from inspector.errors import first_line

PluginT = TypeVar("PluginT")
SettingsT = TypeVar("SettingsT")

BUILT_IN = "built in"


@dataclass(frozen=True, slots=True)
class PluginKind(Generic[PluginT]):
    """One of the places where the daemon grows."""

    noun: str  # what a name of it is called in messages: "camera type", "backend", "sink"
    group: str  # the entry-point group of installed plugins
    package: str  # the package whose modules are the built-in plugins
    plugin_type: type[PluginT]
    names: Callable[[PluginT], Iterable[str]]  # what a plugin answers to


@dataclass(frozen=True, slots=True)
class BrokenPlugin:
    """An installed plugin that could not be loaded, under the name it would answer to."""

    name: str
    origin: str  # "distribution inspector-sparkplug 0.1.0 (inspector_sparkplug:PLUGIN)"
    error: str

    def __str__(self) -> str:
        return f"{self.origin}: cannot load it: {self.error}"


class Plugins(Mapping[str, PluginT]):
    """The plugins of one kind found here, by name (sorted), with where each came from and
    the installed ones that could not be loaded."""

    def __init__(
        self,
        kind: PluginKind[PluginT],
        found: Mapping[str, PluginT],
        origins: Mapping[str, str],
        broken: Mapping[str, BrokenPlugin],
    ) -> None:
        self.kind = kind
        self._found = dict(sorted(found.items()))
        self.origins = dict(origins)
        self.broken = dict(broken)

    def __getitem__(self, name: str) -> PluginT:
        return self._found[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._found)

    def __len__(self) -> int:
        return len(self._found)

    def problem(self, name: object, plural: str | None = None, also: Iterable[str] = ()) -> str:
        """Why ``name`` picks no plugin: the broken plugin's line, or "unknown" with the
        closest known name and the known ones (with ``also``: names that are no plugin)."""
        if isinstance(name, str) and name in self.broken:
            return f"{self.kind.noun} {name!r}: {self.broken[name]}"
        known = sorted([*self._found, *also])
        text = f"unknown {self.kind.noun} {name!r}"
        if isinstance(name, str) and (close := difflib.get_close_matches(name, known, n=1)):
            text += f" (did you mean {close[0]!r}?)"
        return f"{text}; known {plural or self.kind.noun + 's'}: {known_names(known)}"


def discover(
    kind: PluginKind[PluginT],
    path: Iterable[str] | None = None,
    *,
    skip: str = "",
    installed: Iterable[EntryPoint] | None = None,
) -> Plugins[PluginT]:
    """The built-in plugins of ``kind`` (the modules of its package found on ``path``,
    default the package's own, except ``skip``: the registry calling) and the installed ones
    (``installed``, default the entry points of its group).

    A built-in name declared twice is the code's mistake: TypeError naming both modules. An
    installed plugin that fails to import, is not a ``kind.plugin_type`` or takes a name
    already taken becomes a :class:`BrokenPlugin` under its entry point's name.
    """
    found: dict[str, PluginT] = {}
    origins: dict[str, str] = {}
    for module, plugin in module_plugins(kind.package, kind.plugin_type, path, skip=skip):
        for name in kind.names(plugin):
            if name in found:
                raise TypeError(
                    f"{kind.noun} {name!r} is declared twice: by {origins[name]} and {module}"
                )
            found[name], origins[name] = plugin, module
    broken: dict[str, BrokenPlugin] = {}
    points = entry_points(group=kind.group) if installed is None else installed
    for point in points:
        origin = _origin(point)
        try:
            plugin = point.load()
            if not isinstance(plugin, kind.plugin_type):
                raise TypeError(f"{point.value} is not a {kind.plugin_type.__name__}")
            names = list(kind.names(plugin))
            taken = [name for name in names if name in found]
            if taken:
                raise TypeError(f"{kind.noun} {taken[0]!r} is taken by {origins[taken[0]]}")
        except Exception as exc:  # an installed package's fault: only fatal where used
            broken[point.name] = BrokenPlugin(
                point.name, origin, f"{type(exc).__name__}: {first_line(exc)}"
            )
            continue
        for name in names:
            found[name], origins[name] = plugin, origin
    return Plugins(kind, found, origins, broken)


def _origin(point: EntryPoint) -> str:
    dist = point.dist
    where = f"distribution {dist.name} {dist.version}" if dist is not None else "an entry point"
    return f"{where} ({point.value})"


def module_plugins(
    package: str,
    kind: type[PluginT],
    path: Iterable[str] | None = None,
    *,
    skip: str = "",
) -> list[tuple[str, PluginT]]:
    """Import each module of ``package`` found on ``path`` (default: the package's own),
    except private ones and ``skip``, and return ``(module name, PLUGIN)`` for each that
    defines ``PLUGIN``. Raises TypeError naming the module when its ``PLUGIN`` is not a
    ``kind``."""
    if path is None:
        path = importlib.import_module(package).__path__
    plugins: list[tuple[str, PluginT]] = []
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
        plugins.append((name, plugin))
    return plugins


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
