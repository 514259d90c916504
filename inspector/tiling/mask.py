"""A product mask: which tiles of a frame are product and get inferred, from a mask image
(white = product). Tiles mostly outside it (belt, fixtures, the sky light) are skipped."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from inspector.errors import ConfigError
from inspector.types.tiles import TileGrid

IntArray = npt.NDArray[np.int64]


class TileMask:
    def __init__(self, product: npt.NDArray[np.bool_], min_coverage: float = 0.5) -> None:
        if product.ndim != 2:
            raise ValueError("a product mask is one channel, H x W")
        self.product = product
        self.min_coverage = min_coverage
        # Summed-area table: any tile's coverage in four lookups, whatever the tile size.
        self._integral = cv2.integral(product.astype(np.uint8))
        self._active: dict[tuple[int, int, int, int], IntArray] = {}

    @classmethod
    def from_file(cls, path: Path, min_coverage: float = 0.5) -> TileMask:
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise ConfigError(f"{path}: roi_mask is not an image OpenCV can read")
        return cls(image > 127, min_coverage)

    def active(self, grid: TileGrid) -> IntArray:
        """Indices (row-major, as on the grid) of the tiles to infer."""
        key = (grid.frame_height, grid.frame_width, grid.size, id(grid))
        if key not in self._active:
            if self.product.shape != (grid.frame_height, grid.frame_width):
                raise ConfigError(
                    f"roi_mask is {self.product.shape[1]}x{self.product.shape[0]}, frames are "
                    f"{grid.frame_width}x{grid.frame_height}"
                )
            x, y = grid.origins[:, 0], grid.origins[:, 1]
            s, table = grid.size, self._integral
            inside = table[y + s, x + s] - table[y, x + s] - table[y + s, x] + table[y, x]
            self._active[key] = np.flatnonzero(inside >= self.min_coverage * s * s)
        return self._active[key]
