"""Tiles (uint8, OpenCV order) -> the model's NCHW float32 input, written in place.

Two routes, same numbers:

- the daemon's hot path (:meth:`TileNormalizer.planes` then
  :meth:`~TileNormalizer.normalize_planes`): a frame is split once into the model's
  channel planes, and each tile's plane is scaled straight into its slot of the batch
  buffer by one OpenCV call (cast, multiply and add in one SIMD pass). No tile is
  ever copied as uint8 first, and no strided BGR->NCHW read happens: 1.45x faster
  than the ufunc route on the demo line (benchmarks/stage_costs.py), which matters
  because on a CPU every millisecond here is taken from the engine's cores;
- any batch of tiles (:meth:`~TileNormalizer.normalize`, for training, calibration
  and tiles of another size): two ufunc calls over strided views, the BGR->RGB swap
  and the NHWC->NCHW transpose being free views.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from inspector.types.card import InputSpec, ModelCard

Tiles = npt.NDArray[np.uint8]
Plane = npt.NDArray[np.uint8]
Floats = npt.NDArray[np.float32]

# ITU-R BT.601 luma, the weights OpenCV's BGR2GRAY uses too; order R, G, B.
BT601_RGB = (0.299, 0.587, 0.114)


class TileNormalizer:
    """Computes ``(pixel / scale - mean) / std`` as ``pixel * gain - offset`` per channel.

    Accepts a batch of tiles as ``(n, h, w, 3)`` BGR, ``(n, h, w)`` or
    ``(n, h, w, 1)`` gray. A gray batch feeds an RGB model by broadcasting
    the one channel to three; a BGR batch feeds a gray model through BT.601.

    Not thread-safe: it keeps scratch buffers for the uncommon paths, so use
    one normaliser per pre-processing thread.
    """

    def __init__(self, source: ModelCard | InputSpec) -> None:
        spec = source.input if isinstance(source, ModelCard) else source
        self.channels = spec.channels
        self.height = spec.height
        self.width = spec.width
        mean = np.asarray(spec.mean, dtype=np.float64)
        std = np.asarray(spec.std, dtype=np.float64)
        # Folded once in float64, stored as float32 so the ufuncs stay float32.
        self.gain: Floats = (1.0 / (spec.scale * std)).astype(np.float32)
        self.offset: Floats = (mean / std).astype(np.float32)
        self._gain3 = self.gain[:, None, None]
        self._offset3 = self.offset[:, None, None]
        self._resized: Tiles = np.empty((0,), dtype=np.uint8)
        self._luma: Floats = np.empty((0,), dtype=np.float32)
        self._plane_gain = [float(g) for g in self.gain]
        self._plane_bias = [-float(o) for o in self.offset]

    @property
    def shape(self) -> tuple[int, int, int]:
        """One tile's model input shape ``(C, H, W)``."""
        return (self.channels, self.height, self.width)

    def normalize(self, tiles: Tiles, out: Floats) -> Floats:
        """Write ``tiles`` into ``out`` (float32, ``(n, C, H, W)``) and return ``out``."""
        tiles = _as_batch(tiles)
        n, h, w = tiles.shape[:3]
        if out.dtype != np.float32 or out.shape != (n, *self.shape):
            raise ValueError(f"out must be float32 {(n, *self.shape)}, got {out.dtype} {out.shape}")
        if n == 0:
            return out
        if (h, w) != (self.height, self.width):
            tiles = self._resize(tiles)
        if self.channels == 1 and tiles.ndim == 4:
            return self._bgr_to_gray(tiles, out)
        # (n, h, w, 3) BGR -> (n, 3, h, w) RGB view; gray -> (n, 1, h, w), broadcast
        # across the model's channels by the ufuncs.
        view = tiles[..., ::-1].transpose(0, 3, 1, 2) if tiles.ndim == 4 else tiles[:, None]
        np.multiply(view, self._gain3, out=out)
        np.subtract(out, self._offset3, out=out)
        return out

    def planes(self, frame: Tiles, tile_size: int) -> list[Plane] | None:
        """``frame`` as the model's channel planes (2-D uint8, model order), ready for
        :meth:`normalize_planes`; None when this frame needs :meth:`normalize` instead
        (tiles of another size than the model's, or a colour frame for a gray model)."""
        if tile_size != self.height or tile_size != self.width:
            return None
        gray = frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 1)
        if gray:
            plane = frame if frame.ndim == 2 else frame[..., 0]
            return [plane] * self.channels  # a gray camera feeds an RGB model
        if frame.ndim != 3 or frame.shape[2] != 3 or self.channels != 3:
            return None
        blue, green, red = (np.asarray(p, np.uint8) for p in cv2.split(frame))
        return [red, green, blue]

    def normalize_planes(
        self, planes: list[Plane], origins: npt.NDArray[np.int64], out: Floats
    ) -> Floats:
        """Write the tiles at ``origins`` ((n, 2) x, y corners) of ``planes`` into ``out``."""
        n = len(origins)
        if out.dtype != np.float32 or out.shape != (n, *self.shape) or not out.flags.c_contiguous:
            raise ValueError(
                f"out must be C-contiguous float32 {(n, *self.shape)}, got {out.dtype} {out.shape}"
            )
        if len(planes) != self.channels:
            raise ValueError(f"{len(planes)} planes for a {self.channels}-channel model")
        h, w = self.height, self.width
        for k, (x, y) in enumerate(origins.tolist()):
            for c, plane in enumerate(planes):
                tile = plane[y : y + h, x : x + w]
                if tile.shape != (h, w):
                    raise ValueError(f"tile at ({x}, {y}) leaves the {plane.shape} frame")
                # addWeighted(src, a, src, 0, b) is OpenCV's fused src * a + b with a cast;
                # the destination is a contiguous slot of the batch, written in place.
                cv2.addWeighted(
                    tile, self._plane_gain[c], tile, 0.0, self._plane_bias[c],
                    dst=out[k, c], dtype=cv2.CV_32F,
                )  # fmt: skip
        return out

    def _resize(self, tiles: Tiles) -> Tiles:
        # The uncommon path: the tiler normally cuts tiles at the model's size.
        # A different tiling.size costs one cv2.resize per tile into a reused
        # uint8 buffer, which is still far cheaper than resizing float data.
        n, h, w = tiles.shape[:3]
        shape = (n, self.height, self.width, *tiles.shape[3:])
        if self._resized.size < int(np.prod(shape)):
            self._resized = np.empty(int(np.prod(shape)), dtype=np.uint8)
        resized = self._resized[: int(np.prod(shape))].reshape(shape)
        # AREA averages the source pixels (no aliasing) when shrinking; LINEAR
        # is the usual, sharper choice when enlarging.
        shrink = h * w > self.height * self.width
        method = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
        for i in range(n):
            cv2.resize(tiles[i], (self.width, self.height), dst=resized[i], interpolation=method)
        return resized

    def _bgr_to_gray(self, tiles: Tiles, out: Floats) -> Floats:
        n = tiles.shape[0]
        plane = out[:, 0]
        count = n * self.height * self.width
        if self._luma.size < count:
            self._luma = np.empty(count, dtype=np.float32)
        term = self._luma[:count].reshape(plane.shape)
        red, green, blue = BT601_RGB
        # The gain is folded into each weight, so each plane is touched once.
        gain = float(self.gain[0])
        np.multiply(tiles[..., 2], np.float32(red * gain), out=plane)
        np.multiply(tiles[..., 1], np.float32(green * gain), out=term)
        np.add(plane, term, out=plane)
        np.multiply(tiles[..., 0], np.float32(blue * gain), out=term)
        np.add(plane, term, out=plane)
        np.subtract(plane, self.offset[0], out=plane)
        return out


def _as_batch(tiles: Tiles) -> Tiles:
    if tiles.dtype != np.uint8:
        raise ValueError(f"tiles must be uint8, got {tiles.dtype}")
    if tiles.ndim == 4 and tiles.shape[3] == 1:
        return tiles[..., 0]
    if tiles.ndim == 3 or (tiles.ndim == 4 and tiles.shape[3] == 3):
        return tiles
    raise ValueError(f"tiles must be (n, h, w, 3) BGR or (n, h, w[, 1]) gray, got {tiles.shape}")
