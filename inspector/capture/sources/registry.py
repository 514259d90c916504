"""The camera sources: every module of :mod:`inspector.capture.sources` that defines
``PLUGIN``, and every installed ``inspector.sources`` entry point (the kernel:
:mod:`inspector.plugins`).

Adding a kind of camera is one new file beside ``usb.py`` (or an installed package): its
settings class (a :class:`~inspector.capture.sources.base.SourceSettings` whose ``type`` is
a ``Literal``), its source and ``PLUGIN = SourcePlugin(Settings, create, infer)``. This
module builds ``CameraSettings``, the ``[[cameras]]`` union that ``config.py`` uses,
discriminated by ``type``. A camera without ``type`` (or the old ``type = "auto"``) gets
the type that the plugins' ``infer`` give its ``source``.

Source modules are imported by the configuration, so they keep vendor SDKs
(harvesters, pypylon) inside their sources, and they must not import
:mod:`inspector.config` (it imports them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

from pydantic_core import PydanticCustomError

from inspector.capture.source import FrameSource
from inspector.capture.sources.base import SourcePlugin, SourceSettings
from inspector.errors import SourceError
from inspector.plugins import PluginKind, Plugins, TableParser, tagged_union
from inspector.plugins import discover as discover_plugins

__all__ = [
    "PLUGINS",
    "CameraSettings",
    "camera_settings_union",
    "create_source",
    "discover",
    "parse_camera_settings",
]

_PACKAGE = __name__.rpartition(".")[0]
_INFER = "auto"  # the old explicit spelling of "infer it from source"


def discover(
    package: str = _PACKAGE, path: Iterable[str] | None = None
) -> Plugins[SourcePlugin[Any]]:
    """Every source plugin: the modules of ``package`` and the installed entry points, by
    type name (one plugin may answer to several, as rtsp and http), sorted by name."""
    kind = PluginKind("camera type", "inspector.sources", package, SourcePlugin,
                      lambda plugin: plugin.types)  # fmt: skip
    plugins = discover_plugins(kind, path, skip=__name__)
    if _INFER in plugins:
        raise TypeError(f"camera type {_INFER!r} is the registry's (infer it from source)")
    return plugins


PLUGINS: Plugins[SourcePlugin[Any]] = discover()


def inferred_type(plugins: Mapping[str, SourcePlugin[Any]], source: str) -> str | None:
    """The one type the plugins' ``infer`` give ``source``; None when none claims it.
    Two claims are the plugins' mistake, told with both so that ``type`` can settle it."""
    claims = {kind for plugin in dict.fromkeys(plugins.values()) if plugin.infer is not None
              if (kind := plugin.infer(source)) is not None}  # fmt: skip
    if len(claims) > 1:
        raise PydanticCustomError(
            "ambiguous_source",
            "source {source} could be any of {kinds}: set type",
            {"source": source, "kinds": ", ".join(sorted(claims))},
        )
    return next(iter(claims), None)


def camera_settings_union(plugins: Plugins[SourcePlugin[Any]]) -> Any:
    """``Annotated[A | B | ..., Discriminator("type"), <inference + unknown check>]``."""

    def fill_in_type(value: Any) -> Any:
        if not isinstance(value, Mapping):
            return value  # already settings: the discriminator reads its type
        kind = value.get("type", _INFER)
        if kind == _INFER:
            source = value.get("source")
            # No source to go by: any kind, so that the error is "source: Field required".
            kind = (
                inferred_type(plugins, source) if isinstance(source, str) else next(iter(plugins))
            )
            if kind is None:
                raise PydanticCustomError(
                    "unsupported_scheme",
                    "unsupported source URL scheme: {source}",
                    {"source": source},
                )
        if not isinstance(kind, str) or kind not in plugins:
            raise PydanticCustomError("unknown_camera_type", "{problem}",
                                      {"problem": plugins.problem(kind, "types")})  # fmt: skip
        return {**value, "type": kind}

    return tagged_union(plugins.values(), "type", fill_in_type, kind="camera source")


# What mypy sees is what every kind's settings share; a kind's own fields need its class
# (isinstance). At run time it is the union of the kinds.
CameraSettings: TypeAlias = SourceSettings
if not TYPE_CHECKING:
    CameraSettings = camera_settings_union(PLUGINS)


parse_camera_settings = TableParser[SourceSettings](CameraSettings)
"""Validate one ``[[cameras]]`` table into its kind's settings (``type`` absent: inferred
from ``source``); raises :class:`pydantic.ValidationError`."""


def create_source(settings: SourceSettings) -> FrameSource:
    """The source of the kind ``settings.type`` names, not yet opened."""
    plugin = PLUGINS.get(settings.type)
    if plugin is None or not isinstance(settings, plugin.settings):
        raise SourceError(f"camera {settings.id}: type: {PLUGINS.problem(settings.type, 'types')}")
    return plugin.create(settings)
