"""The sinks: every module of :mod:`inspector.sinks` that defines ``PLUGIN``, every installed
``inspector.sinks`` entry point (the kernel: :mod:`inspector.plugins`), and :func:`register`
(tests, embedding).

A sink plugin is one file (or a folder): its settings (a top-level config section named after
it, with ``enabled``), its class, and ``PLUGIN = SinkPlugin(name, Settings, create)`` where
``create(section, context)`` gets its own section and a :class:`SinkContext`. Nothing else is
edited: ``load_settings`` adds the section, the daemon opens the sink when enabled.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from inspector.plugins import PluginKind, Plugins, discover
from inspector.sections import SinkSettings
from inspector.sinks.base import Sink, SinkContext

_PACKAGE = __name__.rpartition(".")[0]


@dataclass(frozen=True, slots=True)
class SinkPlugin:
    name: str  # the config section, [name], and the sink's label in metrics
    settings: type[SinkSettings]
    create: Callable[[Any, SinkContext], Sink]  # (its section, its context)


SINKS = PluginKind("sink", "inspector.sinks", _PACKAGE, SinkPlugin, lambda plugin: (plugin.name,))
_registered: dict[str, SinkPlugin] = {}
_found: Plugins[SinkPlugin] | None = None


def register(plugin: SinkPlugin) -> None:
    _registered[plugin.name] = plugin


def unregister(name: str) -> None:
    _registered.pop(name, None)


def sink_plugins() -> Plugins[SinkPlugin]:
    """Every sink plugin, by section name: built in, installed, registered. The modules and
    entry points are looked at once per process."""
    global _found
    if _found is None:
        _found = discover(SINKS, skip=__name__)
    if not _registered:
        return _found
    found = {**_found, **_registered}
    origins = {**_found.origins, **{name: "registered" for name in _registered}}
    return Plugins(SINKS, found, origins, _found.broken)


def open_sinks(
    sections: Mapping[str, SinkSettings], context: Callable[[str], SinkContext]
) -> list[Sink]:
    """The sink of every section that says ``enabled = true``, made from that section and
    ``context(name)``; if one cannot be opened, those opened before it are closed again and
    its error is raised."""
    plugins = sink_plugins()
    sinks: list[Sink] = []
    try:
        for name, plugin in plugins.items():  # by name: the order is the same every start
            section = sections.get(name)
            if isinstance(section, plugin.settings) and section.enabled:
                sinks.append(plugin.create(section, context(name)))
    except BaseException:
        for sink in sinks:
            sink.close()
        raise
    return sinks
