"""The backend registry: every module of :mod:`inspector.engines` that defines ``PLUGIN``.

Adding a runtime is one new file beside ``onnxruntime_engine.py``: its settings
class (an :class:`~inspector.engines.base.EngineSettings` whose ``backend`` is a
``Literal``), its engine and ``PLUGIN = EnginePlugin(Settings, open)``. This
module imports each module of the package once, keeps those with a ``PLUGIN``,
and builds ``ModelSettings``, the ``[model]`` union that ``config.py`` uses,
discriminated by ``backend`` (absent: ``onnxruntime``, as before backends were
plugins).

Backend modules are imported by the configuration, so they keep their runtime
imports (onnxruntime, tensorrt, cuda) inside the engine, and they must not
import :mod:`inspector.config` (it imports them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

from pydantic_core import PydanticCustomError

from inspector.engines.base import EnginePlugin, EngineSettings
from inspector.plugins import TableParser, known_names, module_plugins, tagged_union

__all__ = [
    "DEFAULT_BACKEND",
    "PLUGINS",
    "ModelSettings",
    "default_model_settings",
    "discover",
    "model_settings_union",
    "parse_model_settings",
]

DEFAULT_BACKEND = "onnxruntime"
_PACKAGE = __name__.rpartition(".")[0]


def discover(
    package: str = _PACKAGE, path: Iterable[str] | None = None
) -> dict[str, EnginePlugin[Any]]:
    """Import every module of ``package`` (a folder for a large backend counts too) and map
    each ``PLUGIN``'s backend name to it, sorted by name."""
    found: dict[str, EnginePlugin[Any]] = {}
    for module, plugin in module_plugins(package, EnginePlugin, path, skip=__name__):
        if plugin.backend in found:
            raise TypeError(
                f"backend {plugin.backend!r} is declared twice: by "
                f"{found[plugin.backend].settings.__module__} and {module}"
            )
        found[plugin.backend] = plugin
    return dict(sorted(found.items()))


PLUGINS: Mapping[str, EnginePlugin[Any]] = discover()


def model_settings_union(plugins: Mapping[str, EnginePlugin[Any]]) -> Any:
    """``Annotated[A | B | ..., Discriminator("backend"), <default + unknown check>]``."""

    def default_backend(value: Any) -> Any:
        if isinstance(value, Mapping):
            backend = value.get("backend", DEFAULT_BACKEND)
            if backend not in plugins:
                raise PydanticCustomError(
                    "unknown_backend",
                    "unknown backend {backend}; known backends: {known}",
                    {"backend": repr(backend), "known": known_names(plugins)},
                )
            return {**value, "backend": backend}
        return value

    return tagged_union(plugins.values(), "backend", default_backend, kind="engine backend")


# What mypy sees is what every backend's settings share; a backend's own fields need its
# class (isinstance). At run time it is the union of the backends.
ModelSettings: TypeAlias = EngineSettings
if not TYPE_CHECKING:
    ModelSettings = model_settings_union(PLUGINS)


parse_model_settings = TableParser[EngineSettings](ModelSettings)
"""Validate a ``[model]`` table into its backend's settings (``backend`` absent: the
default); raises :class:`pydantic.ValidationError`."""


def default_model_settings() -> EngineSettings:
    """``[model]`` when the configuration has none: the default backend's defaults."""
    return parse_model_settings()
