"""Tests for inspector.tiling.tiler (hypothesis is not installed: parametrised grids instead)."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from inspector.tiling import Tiler
from inspector.types.tiles import TileGrid

# (height, width, size, stride): exact multiples, ragged edges, overlap, frame == tile.
_EDGE_CASES = [
    (224, 224, 224, 224),
    (224, 500, 224, 224),
    (448, 448, 224, 224),
    (449, 447, 224, 224),
    (500, 500, 224, 112),
    (1080, 1920, 224, 112),
    (1080, 1920, 256, 200),
    (9, 17, 8, 1),
    (8, 8, 8, 3),
    (31, 64, 16, 15),
]
_rng = random.Random(1234)
_RANDOM_CASES = []
for _ in range(60):
    _size = _rng.randint(1, 64)
    _RANDOM_CASES.append(
        (_rng.randint(_size, 300), _rng.randint(_size, 300), _size, _rng.randint(1, _size))
    )
CASES = _EDGE_CASES + _RANDOM_CASES


def _frame(h: int, w: int, channels: int | None = None) -> np.ndarray:
    shape = (h, w) if channels is None else (h, w, channels)
    return np.arange(np.prod(shape), dtype=np.int64).reshape(shape).astype(np.uint16)


@pytest.mark.parametrize(("h", "w", "size", "stride"), CASES)
def test_grid_covers_every_pixel_and_stays_in_frame(h: int, w: int, size: int, stride: int) -> None:
    g = Tiler(size, stride).grid(h, w)
    assert g.coverage().min() >= 1
    assert g.xs.dtype == np.int64 and g.ys.dtype == np.int64
    assert g.xs.min() == 0 and g.ys.min() == 0
    assert g.xs.max() + size == w and g.ys.max() + size == h
    # Strictly increasing: sorted and no duplicate positions after the edge shift.
    assert np.all(np.diff(g.xs) > 0) and np.all(np.diff(g.ys) > 0)
    # No gaps bigger than the stride, so tile count is minimal for the stride.
    assert np.all(np.diff(g.xs) <= stride) and np.all(np.diff(g.ys) <= stride)


@pytest.mark.parametrize(("h", "w", "size", "stride"), CASES[::4])
def test_coverage_matches_brute_force(h: int, w: int, size: int, stride: int) -> None:
    g = Tiler(size, stride).grid(h, w)
    expected = np.zeros((h, w), dtype=np.int32)
    for x, y, tw, th in (g.rect(i) for i in range(g.count)):
        expected[y : y + th, x : x + tw] += 1
    cov = g.coverage()
    assert cov.dtype == np.int32
    np.testing.assert_array_equal(cov, expected)


def test_known_positions_no_overlap() -> None:
    g = Tiler(224, 224).grid(300, 500)
    np.testing.assert_array_equal(g.xs, [0, 224, 276])
    np.testing.assert_array_equal(g.ys, [0, 76])
    assert (g.rows, g.cols, g.count) == (2, 3, 6)
    np.testing.assert_array_equal(
        g.origins, [[0, 0], [224, 0], [276, 0], [0, 76], [224, 76], [276, 76]]
    )
    np.testing.assert_array_equal(g.cells, [[0, 0], [1, 0], [2, 0], [0, 1], [1, 1], [2, 1]])
    assert g.rect(4) == (224, 76, 224, 224)
    with pytest.raises(IndexError):
        g.rect(6)


def test_known_positions_overlap() -> None:
    g = Tiler(224, 112).grid(224, 500)
    np.testing.assert_array_equal(g.xs, [0, 112, 224, 276])
    np.testing.assert_array_equal(g.ys, [0])
    assert g.coverage()[0].tolist()[:113] == [1] * 112 + [2]


def test_roi_tiles_stay_inside_roi() -> None:
    roi = (50, 40, 300, 250)
    g = Tiler(100, 80, roi=roi).grid(480, 640)
    np.testing.assert_array_equal(g.xs, [50, 130, 210, 250])
    np.testing.assert_array_equal(g.ys, [40, 120, 190])
    cov = g.coverage()
    inside = np.zeros_like(cov, dtype=bool)
    inside[40:290, 50:350] = True
    assert cov[inside].min() >= 1
    assert cov[~inside].max() == 0


def test_roi_is_clipped_to_frame() -> None:
    g = Tiler(64, 64, roi=(-10, 100, 1000, 1000)).grid(200, 300)
    assert g.xs.min() == 0 and g.xs.max() + 64 == 300
    assert g.ys.min() == 100 and g.ys.max() + 64 == 200
    assert g.coverage()[100:, :].min() >= 1
    assert g.coverage()[:100].max() == 0


@pytest.mark.parametrize("roi", [(0, 0, 63, 200), (250, 0, 100, 100), (0, 180, 100, 100)])
def test_roi_smaller_than_tile_after_clipping_raises(roi: tuple[int, int, int, int]) -> None:
    with pytest.raises(ValueError, match=r"roi .* frame 300x200 .* 64 px tile"):
        Tiler(64, 32, roi=roi).grid(200, 300)


def test_frame_smaller_than_tile_raises() -> None:
    with pytest.raises(ValueError, match="frame 500x200 is smaller than one 224 px tile"):
        Tiler(224, 224).grid(200, 500)


def test_stride_larger_than_size_raises() -> None:
    with pytest.raises(ValueError, match="stride 300 > size 224"):
        Tiler(224, 300)


def test_grid_is_cached_per_shape() -> None:
    t = Tiler(32, 16)
    g = t.grid(100, 120)
    assert t.grid(100, 120) is g
    assert t.grid(120, 100) is not g
    assert isinstance(g, TileGrid)
    assert not g.xs.flags.writeable  # shared through the cache, so read-only


@pytest.mark.parametrize("channels", [None, 1, 3])
def test_views_are_zero_copy_and_match_rects(channels: int | None) -> None:
    frame = _frame(300, 500, channels)
    t = Tiler(224, 112)
    views = t.views(frame)
    g = t.grid(300, 500)
    assert len(views) == g.count
    for i, v in enumerate(views):
        x, y, w, h = g.rect(i)
        assert v.shape == (224, 224, *frame.shape[2:])
        assert np.shares_memory(v, frame)
        np.testing.assert_array_equal(v, frame[y : y + h, x : x + w])


@pytest.mark.parametrize("channels", [None, 3])
@pytest.mark.parametrize(("h", "w", "size", "stride"), CASES[::5])
def test_extract_equals_stacked_views(
    channels: int | None, h: int, w: int, size: int, stride: int
) -> None:
    frame = _frame(h, w, channels)
    t = Tiler(size, stride)
    tiles = t.extract(frame)
    assert tiles.dtype == frame.dtype
    assert tiles.shape == (t.grid(h, w).count, size, size, *frame.shape[2:])
    assert not np.shares_memory(tiles, frame)
    np.testing.assert_array_equal(tiles, np.stack(t.views(frame)))


@pytest.mark.parametrize("channels", [None, 3])
def test_extract_into_out_writes_batch_buffer(channels: int | None) -> None:
    frame = _frame(300, 500, channels)
    t = Tiler(224, 112)
    count = t.grid(300, 500).count
    batch = np.zeros((count + 5, 224, 224, *frame.shape[2:]), dtype=frame.dtype)
    out = batch[2 : 2 + count]
    result = t.extract(frame, out=out)
    assert result is out
    np.testing.assert_array_equal(batch[2 : 2 + count], np.stack(t.views(frame)))
    assert not batch[:2].any() and not batch[2 + count :].any()


def test_extract_into_non_contiguous_out() -> None:
    frame = _frame(64, 64, 3)
    t = Tiler(32, 32)
    wide = np.zeros((4, 32, 32, 4), dtype=frame.dtype)
    out = wide[..., :3]
    t.extract(frame, out=out)
    np.testing.assert_array_equal(out, t.extract(frame))
    assert not wide[..., 3].any()


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [((5, 32, 32, 3), np.uint16), ((4, 32, 32), np.uint16), ((4, 32, 32, 3), np.float32)],
)
def test_extract_bad_out_raises(shape: tuple[int, ...], dtype: type) -> None:
    frame = _frame(64, 64, 3)
    with pytest.raises(ValueError, match=r"out has shape .* expected shape \(4, 32, 32, 3\)"):
        Tiler(32, 32).extract(frame, out=np.empty(shape, dtype=dtype))


def test_explicit_grid_must_match_frame() -> None:
    t = Tiler(32, 32)
    with pytest.raises(ValueError, match="grid is for 64x64 frames, frame is 96x64"):
        t.extract(_frame(64, 96), grid=t.grid(64, 64))


def test_roi_extract_uses_roi_pixels_only() -> None:
    frame = _frame(100, 100)
    t = Tiler(20, 20, roi=(10, 30, 40, 20))
    tiles = t.extract(frame)
    np.testing.assert_array_equal(tiles, [frame[30:50, 10:30], frame[30:50, 30:50]])


def test_many_shapes_share_one_tiler() -> None:
    t = Tiler(16, 8)
    for h, w in itertools.product((16, 17, 40), (16, 33)):
        frame = _frame(h, w, 3)
        np.testing.assert_array_equal(t.extract(frame), np.stack(t.views(frame)))
