"""Where sinks are found: every module of this package that defines ``PLUGIN``, every
installed package's ``inspector.sinks`` entry point, and :func:`register` (tests, embedding).

A sink plugin is one file: its settings (a top-level config section named after it, with
``enabled``), its class, and ``PLUGIN = SinkPlugin(name, Settings, create)``. Nothing
else is edited: ``load_settings`` adds the section, the daemon opens the sink when enabled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from inspector.errors import ConfigError
from inspector.plugins import module_plugins
from inspector.sections import SinkSettings
from inspector.sinks.base import Sink

if TYPE_CHECKING:
    from inspector.config import Settings


@dataclass(frozen=True, slots=True)
class SinkPlugin:
    name: str  # the config section, [name], and the sink's label in metrics
    settings: type[SinkSettings]
    create: Callable[[Any, Settings], Sink]  # (its section, the whole configuration)


_registered: dict[str, SinkPlugin] = {}


def register(plugin: SinkPlugin) -> None:
    _registered[plugin.name] = plugin


def unregister(name: str) -> None:
    _registered.pop(name, None)


def sink_plugins() -> dict[str, SinkPlugin]:
    found: dict[str, SinkPlugin] = {}
    for _, plugin in module_plugins(__package__ or "inspector.sinks", SinkPlugin, skip=__name__):
        found[plugin.name] = plugin
    for point in entry_points(group="inspector.sinks"):
        try:
            plugin = point.load()
        except Exception as exc:
            raise ConfigError(f"sink plugin {point.value}: cannot load it: {exc}") from None
        if isinstance(plugin, SinkPlugin):
            found[plugin.name] = plugin
    found.update(_registered)
    return found


def open_sinks(settings: Settings) -> list[Sink]:
    """Every plugin sink whose section says ``enabled = true``, opened; if one cannot be
    opened, those opened before it are closed again and its error is raised."""
    sinks: list[Sink] = []
    try:
        for name, plugin in sink_plugins().items():
            section = getattr(settings, name, None)
            if isinstance(section, plugin.settings) and section.enabled:
                sinks.append(plugin.create(section, settings))
    except BaseException:
        for sink in sinks:
            sink.close()
        raise
    return sinks
