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

import importlib
import operator
import pkgutil
from collections.abc import Iterable, Mapping
from functools import reduce
from typing import TYPE_CHECKING, Annotated, Any, TypeAlias

from pydantic import BeforeValidator, Discriminator, TypeAdapter
from pydantic_core import PydanticCustomError

from inspector.capture.source import FrameSource
from inspector.capture.sources.base import SourcePlugin, SourceSettings, infer_type
from inspector.errors import SourceError

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
    if path is None:
        path = importlib.import_module(package).__path__
    found: dict[str, SourcePlugin[Any]] = {}
    for info in pkgutil.iter_modules(list(path)):
        if info.name.startswith("_") or f"{package}.{info.name}" == __name__:
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        plugin = getattr(module, "PLUGIN", None)
        if plugin is None:
            continue
        if not isinstance(plugin, SourcePlugin):
            raise TypeError(f"{module.__name__}.PLUGIN is not a SourcePlugin")
        for name in plugin.types:
            if name in found or name == _INFER:
                claimed = found[name].settings.__module__ if name in found else "the registry"
                raise TypeError(
                    f"camera type {name!r} is declared twice: by {claimed} and {module.__name__}"
                )
            found[name] = plugin
    return dict(sorted(found.items()))


def _known(plugins: Mapping[str, SourcePlugin[Any]]) -> str:
    return ", ".join(repr(name) for name in plugins)


def camera_settings_union(plugins: Mapping[str, SourcePlugin[Any]]) -> Any:
    """``Annotated[A | B | ..., Discriminator("type"), <inference + unknown check>]``."""
    if not plugins:
        raise TypeError("no camera source found (no module defines PLUGIN)")

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
                {"type": repr(kind), "known": _known(plugins)},
            )
        return {**value, "type": kind}

    members: Any = reduce(operator.or_, dict.fromkeys(p.settings for p in plugins.values()))
    return Annotated[members, Discriminator("type"), BeforeValidator(fill_in_type)]


PLUGINS: Mapping[str, SourcePlugin[Any]] = discover()

if TYPE_CHECKING:
    # What every kind's settings share; a kind's own fields need its class (isinstance).
    CameraSettings: TypeAlias = SourceSettings
else:
    CameraSettings = camera_settings_union(PLUGINS)

_ADAPTER: TypeAdapter[SourceSettings] = TypeAdapter(CameraSettings)


def parse_camera_settings(data: Mapping[str, Any] | None = None, **fields: Any) -> SourceSettings:
    """Validate one ``[[cameras]]`` table into its kind's settings (``type`` absent: inferred
    from ``source``); raises :class:`pydantic.ValidationError`."""
    return _ADAPTER.validate_python({**(data or {}), **fields})


def create_source(settings: SourceSettings) -> FrameSource:
    """The source of the kind ``settings.type`` names, not yet opened."""
    plugin = PLUGINS.get(settings.type)
    if plugin is None or not isinstance(settings, plugin.settings):
        raise SourceError(
            f"camera {settings.id}: type {settings.type!r}: unknown camera type, known types: "
            f"{_known(PLUGINS)}"
        )
    return plugin.create(settings)
