"""Whether the tiles fit the frames, checked at start where the frame size is known then.

A recording says its size when it is opened; a camera configured with a width and a
height (a GenICam camera: its Width and Height features) says it in the configuration. A
tile larger than such a frame is a configuration mistake to report before the broker is
connected, not a pipeline failure on the first frame.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from inspector.errors import ConfigError
from inspector.tiling.tiler import Tiler


def known_frame_size(source: Any, settings: Any) -> tuple[int, int] | None:
    """(width, height) of the frames ``source`` will deliver, where known before the first:
    the opened source's own (``frame_size()``), else the configured ``width`` and ``height``
    (a GenICam camera's ``Width`` and ``Height`` features)."""
    measure = getattr(source, "frame_size", None)
    size = measure() if callable(measure) else None
    if size is not None:
        return int(size[0]), int(size[1])
    width, height = getattr(settings, "width", None), getattr(settings, "height", None)
    features = getattr(settings, "features", None)
    if isinstance(features, dict) and width is None and height is None:
        # A GenICam camera's image size is its Width and Height features (SFNC names).
        width, height = features.get("Width"), features.get("Height")
    if isinstance(width, int) and isinstance(height, int) and width > 0 and height > 0:
        return width, height
    return None


def check_tiles_fit(tiling: Any, cameras: Iterable[Any]) -> None:
    """For each camera (``.settings``, ``.source``) whose frame size is known: ConfigError
    (exit 78) naming the camera and what to change when no tile of ``tiling`` fits."""
    tiler = Tiler(tiling.size, tiling.stride, tiling.roi)
    for camera in cameras:
        size = known_frame_size(camera.source, camera.settings)
        if size is not None:
            _check(tiler, camera.settings.id, camera.source.description, size)


def _check(tiler: Tiler, camera: str, where: str, size: tuple[int, int]) -> None:
    width, height = size
    try:
        tiler.grid(height, width)
    except ValueError as exc:
        if tiler.roi is not None:
            hint = "move or enlarge tiling.roi, or lower tiling.size"
        else:
            hint = f"lower tiling.size to at most {min(width, height)}"
        raise ConfigError(f"camera {camera} ({where}): {exc}: {hint}") from None
