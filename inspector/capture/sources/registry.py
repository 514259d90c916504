"""The source registry: every module of :mod:`inspector.capture.sources` that defines ``PLUGIN``.

Adding a kind of camera is one new file beside ``usb.py``: its settings class (a
:class:`~inspector.capture.sources.base.SourceSettings` whose ``type`` is a
``Literal``), its source and ``PLUGIN = SourcePlugin(Settings, create)``. This
module imports each module of the package once, keeps those with a ``PLUGIN``,
and builds ``CameraSettings``, the ``[[cameras]]`` union that ``config.py`` uses,
discriminated by ``type``. A camera without ``type`` (or the old ``type = "auto"``)
gets the type its ``source`` implies, as before sources were plugins.

Source modules are imported by the configuration, so they keep vendor SDKs
(harvesters, pypylon) inside their sources, and they must not import
:mod:`inspector.config` (it imports them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

from pydantic_core import PydanticCustomError

from inspector.capture.source import FrameSource
from inspector.capture.sources.base import SourcePlugin, SourceSettings, infer_type
from inspector.errors import SourceError
from inspector.plugins import TableParser, known_names, module_plugins, tagged_union

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
) -> dict[str, SourcePlugin[Any]]:
    """Import every module of ``package`` and map each type name of each ``PLUGIN`` to it
    (one plugin may answer to several, as rtsp and http), sorted by name."""
    found: dict[str, SourcePlugin[Any]] = {}
    for module, plugin in module_plugins(package, SourcePlugin, path, skip=__name__):
        for name in plugin.types:
            if name in found or name == _INFER:
                claimed = found[name].settings.__module__ if name in found else "the registry"
                raise TypeError(
                    f"camera type {name!r} is declared twice: by {claimed} and {module}"
                )
            found[name] = plugin
    return dict(sorted(found.items()))


PLUGINS: Mapping[str, SourcePlugin[Any]] = discover()


def camera_settings_union(plugins: Mapping[str, SourcePlugin[Any]]) -> Any:
    """``Annotated[A | B | ..., Discriminator("type"), <inference + unknown check>]``."""

    def fill_in_type(value: Any) -> Any:
        if not isinstance(value, Mapping):
            return value  # already settings: the discriminator reads its type
        kind = value.get("type", _INFER)
        if kind == _INFER:
            source = value.get("source")
            # No source to go by: any kind, so that the error is "source: Field required".
            kind = infer_type(source) if isinstance(source, str) else next(iter(plugins))
            if kind is None:
                raise PydanticCustomError(
                    "unsupported_scheme",
                    "unsupported source URL scheme: {source}",
                    {"source": source},
                )
        if not isinstance(kind, str) or kind not in plugins:
            raise PydanticCustomError(
                "unknown_camera_type",
                "unknown camera type {type}; known types: {known}",
                {"type": repr(kind), "known": known_names(plugins)},
            )
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
        raise SourceError(
            f"camera {settings.id}: type {settings.type!r}: unknown camera type, known types: "
            f"{known_names(PLUGINS)}"
        )
    return plugin.create(settings)
