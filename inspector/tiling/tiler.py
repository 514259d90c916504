"""Split camera frames into square, possibly overlapping tiles for the CNN."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from inspector.types.tiles import IntArray, TileGrid


def _axis_starts(start: int, length: int, size: int, stride: int) -> IntArray:
    """Tile starts covering [start, start + length) exactly, last one pulled inward."""
    n = -(-(length - size) // stride) + 1  # ceil division: enough steps to reach the far edge
    starts = start + np.arange(n, dtype=np.int64) * stride
    # Shifting the overshooting tile back keeps it inside the region; unique() drops the
    # duplicate that shift could create.
    return np.unique(np.minimum(starts, start + length - size))


class Tiler:
    """Lays square tiles of ``size`` px every ``stride`` px over a frame or its ROI."""

    def __init__(
        self, size: int, stride: int, roi: tuple[int, int, int, int] | None = None
    ) -> None:
        if size < 1 or stride < 1:
            raise ValueError(f"size ({size}) and stride ({stride}) must be >= 1")
        if stride > size:
            raise ValueError(f"stride {stride} > size {size} would leave pixels uninspected")
        if roi is not None and (roi[2] < 1 or roi[3] < 1):
            raise ValueError(f"roi {roi} must have positive width and height")
        self.size = size
        self.stride = stride
        self.roi = roi
        # Per-instance cache (not lru_cache on the method, which would pin every Tiler);
        # bounded because a daemon normally sees one or two frame shapes.
        self._grid: Callable[[int, int], TileGrid] = lru_cache(maxsize=8)(self._build_grid)

    def grid(self, height: int, width: int) -> TileGrid:
        """Tile layout for a ``height`` x ``width`` frame (cached per shape)."""
        return self._grid(height, width)

    def _build_grid(self, height: int, width: int) -> TileGrid:
        x0, y0, x1, y1 = 0, 0, width, height
        if self.roi is not None:
            rx, ry, rw, rh = self.roi
            x0, y0 = max(rx, 0), max(ry, 0)
            x1, y1 = min(rx + rw, width), min(ry + rh, height)
            if x1 - x0 < self.size or y1 - y0 < self.size:
                raise ValueError(
                    f"roi {self.roi} clipped to frame {width}x{height} is "
                    f"{max(x1 - x0, 0)}x{max(y1 - y0, 0)}, smaller than one {self.size} px tile"
                )
        elif width < self.size or height < self.size:
            raise ValueError(f"frame {width}x{height} is smaller than one {self.size} px tile")
        xs = _axis_starts(x0, x1 - x0, self.size, self.stride)
        ys = _axis_starts(y0, y1 - y0, self.size, self.stride)
        # Grids are shared through the cache, so freeze the arrays against accidental edits.
        xs.flags.writeable = False
        ys.flags.writeable = False
        return TileGrid(height, width, self.size, xs, ys)

    def _grid_for(self, frame: npt.NDArray[Any], grid: TileGrid | None) -> TileGrid:
        if frame.ndim not in (2, 3):
            raise ValueError(f"frame must be HxW or HxWxC, got shape {frame.shape}")
        h, w = frame.shape[:2]
        if grid is None:
            return self.grid(h, w)
        if (grid.frame_height, grid.frame_width) != (h, w):
            raise ValueError(
                f"grid is for {grid.frame_width}x{grid.frame_height} frames, frame is {w}x{h}"
            )
        return grid

    def views(
        self, frame: npt.NDArray[Any], grid: TileGrid | None = None
    ) -> list[npt.NDArray[Any]]:
        """Zero-copy tile views into ``frame``, row-major."""
        g = self._grid_for(frame, grid)
        s = g.size
        return [frame[y : y + s, x : x + s] for x, y in g.origins.tolist()]

    def extract(
        self,
        frame: npt.NDArray[Any],
        grid: TileGrid | None = None,
        out: npt.NDArray[Any] | None = None,
    ) -> npt.NDArray[Any]:
        """All tiles as one (count, size, size[, C]) array, copied once (into ``out`` if given)."""
        g = self._grid_for(frame, grid)
        s = g.size
        shape = (g.count, s, s, *frame.shape[2:])
        if out is None:
            # Window view of every possible tile (no data copied); fancy-indexing it with the
            # (row, col) grid is the one copy, and the fresh result reshapes without copying.
            win = sliding_window_view(frame, (s, s), axis=(0, 1))
            if frame.ndim == 3:
                win = np.moveaxis(win, 2, -1)  # (H', W', C, s, s) -> (H', W', s, s, C)
            return win[g.ys[:, None], g.xs[None, :]].reshape(shape)
        if out.shape != shape or out.dtype != frame.dtype:
            raise ValueError(
                f"out has shape {out.shape} dtype {out.dtype}, "
                f"expected shape {shape} dtype {frame.dtype}"
            )
        # NumPy cannot fancy-index into a destination: `out[...] = win[...]` builds a full
        # temporary, and np.take(win, ..., out=out) silently copies the whole window view
        # (~250 MB for a 1080p colour frame). A slice copy per tile is the single copy and
        # is as fast as the vectorised path, since both are memcpy-bound.
        for i, (x, y) in enumerate(g.origins.tolist()):
            out[i] = frame[y : y + s, x : x + s]
        return out
