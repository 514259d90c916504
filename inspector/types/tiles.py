"""Where the tiles of a frame lie: the grid every stage after the tiler reads."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
NO_DEFECT = -1  # a tile's label index where it is no defect


def _axis_coverage(starts: IntArray, size: int, length: int) -> npt.NDArray[np.int32]:
    diff = np.zeros(length + 1, dtype=np.int32)
    np.add.at(diff, starts, 1)
    np.add.at(diff, starts + size, -1)
    return np.cumsum(diff[:-1], dtype=np.int32)


@dataclass(frozen=True, slots=True, eq=False)
class TileGrid:
    """Tile layout for one frame shape: the Cartesian product of ``xs`` and ``ys``."""

    frame_height: int
    frame_width: int
    size: int
    xs: IntArray
    ys: IntArray

    @property
    def rows(self) -> int:
        return len(self.ys)

    @property
    def cols(self) -> int:
        return len(self.xs)

    @property
    def count(self) -> int:
        return self.rows * self.cols

    @property
    def origins(self) -> IntArray:
        """(count, 2) array of (x, y) tile corners, row-major."""
        gx, gy = np.meshgrid(self.xs, self.ys)
        return np.stack([gx.ravel(), gy.ravel()], axis=1)

    @property
    def cells(self) -> IntArray:
        """(count, 2) array of (col, row) grid indices, row-major."""
        gc, gr = np.meshgrid(
            np.arange(self.cols, dtype=np.int64), np.arange(self.rows, dtype=np.int64)
        )
        return np.stack([gc.ravel(), gr.ravel()], axis=1)

    def rect(self, i: int) -> tuple[int, int, int, int]:
        """(x, y, w, h) of tile ``i`` in frame pixels."""
        if not 0 <= i < self.count:
            raise IndexError(f"tile index {i} out of range for {self.count} tiles")
        row, col = divmod(i, self.cols)
        return int(self.xs[col]), int(self.ys[row]), self.size, self.size

    def coverage(self) -> npt.NDArray[np.int32]:
        """(H, W) count of tiles covering each pixel."""
        # The grid is separable, so per-pixel coverage is the outer product of the
        # per-axis counts; no per-tile or per-pixel loop needed.
        cy = _axis_coverage(self.ys, self.size, self.frame_height)
        cx = _axis_coverage(self.xs, self.size, self.frame_width)
        return np.outer(cy, cx).astype(np.int32, copy=False)
