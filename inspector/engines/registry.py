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

import importlib
import operator
import pkgutil
from collections.abc import Iterable, Mapping
from functools import reduce
from typing import TYPE_CHECKING, Annotated, Any, TypeAlias

from pydantic import BeforeValidator, Discriminator, TypeAdapter
from pydantic_core import PydanticCustomError

from inspector.engines.base import EnginePlugin, EngineSettings

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
    if path is None:
        path = importlib.import_module(package).__path__
    found: dict[str, EnginePlugin[Any]] = {}
    for info in pkgutil.iter_modules(list(path)):
        if info.name.startswith("_") or f"{package}.{info.name}" == __name__:
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        plugin = getattr(module, "PLUGIN", None)
        if plugin is None:
            continue
        if not isinstance(plugin, EnginePlugin):
            raise TypeError(f"{module.__name__}.PLUGIN is not an EnginePlugin")
        if plugin.backend in found:
            raise TypeError(
                f"backend {plugin.backend!r} is declared twice: by "
                f"{found[plugin.backend].settings.__module__} and {module.__name__}"
            )
        found[plugin.backend] = plugin
    return dict(sorted(found.items()))


def _known(plugins: Mapping[str, EnginePlugin[Any]]) -> str:
    return ", ".join(repr(name) for name in plugins)


def model_settings_union(plugins: Mapping[str, EnginePlugin[Any]]) -> Any:
    """``Annotated[A | B | ..., Discriminator("backend"), <default + unknown check>]``."""
    if not plugins:
        raise TypeError("no engine backend found (no module defines PLUGIN)")

    def default_backend(value: Any) -> Any:
        if isinstance(value, Mapping):
            backend = value.get("backend", DEFAULT_BACKEND)
            if backend not in plugins:
                raise PydanticCustomError(
                    "unknown_backend",
                    "unknown backend {backend}; known backends: {known}",
                    {"backend": repr(backend), "known": _known(plugins)},
                )
            return {**value, "backend": backend}
        return value

    members: Any = reduce(operator.or_, [p.settings for p in plugins.values()])
    return Annotated[members, Discriminator("backend"), BeforeValidator(default_backend)]


PLUGINS: Mapping[str, EnginePlugin[Any]] = discover()

if TYPE_CHECKING:
    # What every backend's settings share; a backend's own fields need its class (isinstance).
    ModelSettings: TypeAlias = EngineSettings
else:
    ModelSettings = model_settings_union(PLUGINS)

_ADAPTER: TypeAdapter[EngineSettings] = TypeAdapter(ModelSettings)


def parse_model_settings(data: Mapping[str, Any] | None = None, **fields: Any) -> EngineSettings:
    """Validate a ``[model]`` table into its backend's settings (``backend`` absent: the
    default); raises :class:`pydantic.ValidationError`."""
    return _ADAPTER.validate_python({**(data or {}), **fields})


def default_model_settings() -> EngineSettings:
    """``[model]`` when the configuration has none: the default backend's defaults."""
    return parse_model_settings()
