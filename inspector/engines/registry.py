"""The engine backends: every module of :mod:`inspector.engines` that defines ``PLUGIN``,
and every installed ``inspector.engines`` entry point (the kernel: :mod:`inspector.plugins`).

Adding a runtime is one new file beside ``onnxruntime_engine.py`` (or an installed
package): its settings class (an :class:`~inspector.engines.base.EngineSettings` whose
``backend`` is a ``Literal``), its engine and ``PLUGIN = EnginePlugin(Settings, open,
auto)``. This module builds ``ModelSettings``, the ``[model]`` union that ``config.py``
uses, discriminated by ``backend`` (absent: ``onnxruntime``, as before backends were
plugins; ``auto``: the fastest of the backends whose ``auto`` hook offers itself).

Backend modules are imported by the configuration, so they keep their runtime
imports (onnxruntime, tensorrt, cuda) inside the engine, and they must not
import :mod:`inspector.config` (it imports them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

from pydantic_core import PydanticCustomError

from inspector.engines.auto import AUTO, AutoSettings, open_fastest
from inspector.engines.base import Engine, EnginePlugin, EngineSettings
from inspector.engines.card import load_model
from inspector.errors import ModelError
from inspector.plugins import PluginKind, Plugins, TableParser, tagged_union
from inspector.plugins import discover as discover_plugins

__all__ = [
    "DEFAULT_BACKEND",
    "PLUGINS",
    "ModelSettings",
    "create_engine",
    "default_model_settings",
    "discover",
    "model_settings_union",
    "parse_model_settings",
]

DEFAULT_BACKEND = "onnxruntime"
_PACKAGE = __name__.rpartition(".")[0]


def discover(
    package: str = _PACKAGE, path: Iterable[str] | None = None
) -> Plugins[EnginePlugin[Any]]:
    """Every backend plugin: the modules of ``package`` (a folder for a large backend counts
    too) and the installed entry points, by backend name, sorted."""
    kind = PluginKind("backend", "inspector.engines", package, EnginePlugin,
                      lambda plugin: (plugin.backend,))  # fmt: skip
    plugins = discover_plugins(kind, path, skip=__name__)
    if AUTO in plugins:
        raise TypeError(f"backend {AUTO!r} is the choice among the backends, not one of them")
    return plugins


PLUGINS: Plugins[EnginePlugin[Any]] = discover()


def model_settings_union(plugins: Plugins[EnginePlugin[Any]]) -> Any:
    """``Annotated[A | B | ..., Discriminator("backend"), <default + unknown check>]``, with
    ``auto`` among them."""

    def default_backend(value: Any) -> Any:
        if isinstance(value, Mapping):
            backend = value.get("backend", DEFAULT_BACKEND)
            if backend != AUTO and backend not in plugins:
                problem = plugins.problem(backend, also=[AUTO])
                raise PydanticCustomError("unknown_backend", "{problem}", {"problem": problem})
            return {**value, "backend": backend}
        return value

    members = [*plugins.values(), EnginePlugin(AutoSettings, _never)]
    return tagged_union(members, "backend", default_backend, kind="engine backend")


def _never(settings: Any, card: Any, max_batch: int) -> Any:
    raise AssertionError("auto is opened by create_engine, as a choice among the backends")


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


def create_engine(settings: EngineSettings, max_batch: int) -> Engine:
    """Validate the model and its card, then open it on the configured backend (``auto``:
    the fastest of the candidates, measured here)."""
    card = load_model(settings.path)
    if isinstance(settings, AutoSettings):
        return open_fastest(settings, card, max_batch, PLUGINS)
    plugin = PLUGINS.get(settings.backend)
    if plugin is None or not isinstance(settings, plugin.settings):
        problem = PLUGINS.problem(settings.backend, also=[AUTO])
        raise ModelError(f"model.backend: {problem}")
    return plugin.open(settings, card, max_batch)
