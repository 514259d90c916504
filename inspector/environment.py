"""The ``INSPECTOR__<SECTION>__<KEY>`` variables, checked before pydantic-settings reads them.

pydantic-settings reads the variables of known sections only, and raises its own
traceback on malformed JSON. Here every variable with the prefix is looked at: a
misspelt section is refused with the nearest known one, like a misspelt key inside
a section; a whole section given as JSON must parse; ``INSPECTOR__CAMERAS__<n>__KEY``
(``<n>`` an index or a camera id) sets one key of the file's camera ``n``. Each
mistake is one :class:`~inspector.errors.ConfigError` line naming the variable.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from inspector.errors import ConfigError
from inspector.validation import Loc, did_you_mean

ENV_PREFIX = "INSPECTOR__"
_DELIMITER = "__"


def _json_error(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at column {exc.colno}"
    return "nested too deeply" if isinstance(exc, RecursionError) else str(exc)


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else []


def _deep_merge(base: Any, update: Any) -> Any:
    if isinstance(base, Mapping) and isinstance(update, Mapping):
        merged = dict(base)
        for key, value in update.items():
            merged[key] = _deep_merge(merged.get(key), value)
        return merged
    return update


class Environment:
    """The prefixed variables of one start-up, and which field each one sets."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        # pydantic-settings matches names case-insensitively; so do these checks.
        self.variables = {
            name: value for name, value in environ.items() if name.upper().startswith(ENV_PREFIX)
        }

    def _parts(self, name: str) -> list[str]:
        return name[len(ENV_PREFIX) :].lower().split(_DELIMITER)

    def check(self, sections: Iterable[str]) -> None:
        """Refuse an unknown section, a section given as malformed JSON, and a camera key
        beside a whole ``INSPECTOR__CAMERAS`` list (which would silently win)."""
        known = set(sections)
        whole_cameras = [n for n in self.variables if self._parts(n) == ["cameras"]]
        for name in sorted(self.variables):
            parts = self._parts(name)
            section = parts[0]
            if section in known and not all(parts):
                raise ConfigError(f"{name}: an empty name between two `{_DELIMITER}`")
            if section not in known:
                raise ConfigError(
                    f"{name}: unknown section `{section}`{did_you_mean(section, known)} "
                    f"(variables are {ENV_PREFIX}<SECTION>__<KEY>)"
                )
            if len(parts) == 1:
                try:
                    json.loads(self.variables[name])
                except (ValueError, RecursionError) as exc:
                    raise ConfigError(
                        f"{name}: not valid JSON ({_json_error(exc)}); a whole section is "
                        f"JSON, or set one key with {name}__<KEY>"
                    ) from None
            elif section == "cameras" and whole_cameras:
                raise ConfigError(
                    f"{name}: cannot be combined with {whole_cameras[0]}, which sets the whole "
                    "list; put the key in that list"
                )

    def _camera_index(self, selector: str, cameras: list[Any]) -> int | None:
        if selector.isdigit():
            index = int(selector)
            return index if index < len(cameras) else None
        ids = [str(c.get("id", "")).lower() if isinstance(c, Mapping) else "" for c in cameras]
        return ids.index(selector) if selector in ids else None

    def merge_cameras(self, cameras: Any, keys: Mapping[str, Any], origin: str) -> list[Any]:
        """The file's ``cameras`` with ``keys`` (pydantic-settings' ``{"0": {"loop": "true"}}``
        from ``INSPECTOR__CAMERAS__0__LOOP``) merged into the camera each selector names."""
        merged = [dict(c) if isinstance(c, Mapping) else c for c in _list(cameras)]
        for selector, value in keys.items():
            name = next(
                (n for n in sorted(self.variables) if self._parts(n)[1:2] == [selector]),
                f"{ENV_PREFIX}CAMERAS{_DELIMITER}{selector.upper()}",
            )
            index = self._camera_index(selector, merged)
            if index is None:
                ids = ", ".join(
                    f"{i} ({c.get('id')})" if isinstance(c, Mapping) else str(i)
                    for i, c in enumerate(merged)
                )
                raise ConfigError(
                    f"{name}: no camera `{selector}` in {origin} "
                    f"(cameras by index or id: {ids or 'none'})"
                )
            merged[index] = _deep_merge(merged[index], value)
        return merged

    def blame(self, cameras: Any) -> dict[Loc, str]:
        """Field path -> the variable that set it, for naming it in a validation error."""
        found: dict[Loc, str] = {}
        for name in self.variables:
            parts = self._parts(name)
            loc: list[int | str] = list(parts)
            if parts[0] == "cameras" and len(parts) > 1 and isinstance(cameras, list):
                index = self._camera_index(parts[1], cameras)
                if index is not None:
                    loc[1] = index
            found[tuple(loc)] = name
        return found
