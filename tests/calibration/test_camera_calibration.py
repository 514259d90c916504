"""Camera calibration on images rendered through a known camera: intrinsics, distortion,
scale, undistortion, flat-field, and millimetres in a running daemon's events."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from inspector.calibration.flat_field import build_flat_field
from inspector.calibration.lens import calibrate_lens, find_corners
from inspector.preprocess.calibration_files import (
    CameraModel,
    load_camera_model,
    load_flat_field,
    save_camera_model,
    save_flat_field,
)
from inspector.preprocess.corrector import FrameCorrector
from tests.fixtures.models import build_color_model
from tests.fixtures.processes import inspector
from tests.fixtures.videos import tiles, write_video

W, H = 640, 480
K = np.array([[800.0, 0, 330], [0, 790.0, 235], [0, 0, 1]])
DIST = np.array([-0.25, 0.08, 0.0, 0.0, 0.0])
PATTERN, SQUARE_MM = (9, 6), 20.0
TEXTURE_PX_PER_MM = 8


def board_texture() -> np.ndarray:
    """A 10x7-square board with a one-square white margin, TEXTURE_PX_PER_MM px per mm."""
    cols, rows = PATTERN[0] + 1, PATTERN[1] + 1
    square = int(SQUARE_MM * TEXTURE_PX_PER_MM)
    texture = np.full(((rows + 2) * square, (cols + 2) * square), 255, np.uint8)
    for r in range(rows):
        for c in range(cols):
            if (r + c) % 2 == 0:
                y, x = (r + 1) * square, (c + 1) * square
                texture[y : y + square, x : x + square] = 0
    return texture


def render(texture: np.ndarray, rvec: np.ndarray, tvec: np.ndarray) -> np.ndarray:
    """The board seen through K and DIST: every image pixel traced back to the board plane.

    Board coordinates in mm, origin at the first inner corner (so the margin and the first
    square lie at negative coordinates)."""
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float32)
    pixels = np.stack([xs.ravel(), ys.ravel()], axis=1)[:, None, :]
    normalized = cv2.undistortPoints(pixels, K, DIST).reshape(-1, 2)  # ideal pinhole rays
    rotation, _ = cv2.Rodrigues(rvec)
    plane_to_camera = np.column_stack([rotation[:, 0], rotation[:, 1], tvec.ravel()])
    rays = np.column_stack([normalized, np.ones(len(normalized))])
    board = np.linalg.solve(plane_to_camera, rays.T).T
    board = board[:, :2] / board[:, 2:3]
    offset = 2 * SQUARE_MM  # first inner corner in texture mm
    map_x = ((board[:, 0] + offset) * TEXTURE_PX_PER_MM).reshape(H, W).astype(np.float32)
    map_y = ((board[:, 1] + offset) * TEXTURE_PX_PER_MM).reshape(H, W).astype(np.float32)
    return cv2.remap(texture, map_x, map_y, cv2.INTER_AREA, borderValue=255)


POSES = [  # (rotation vector, board origin in camera coordinates, mm)
    ((0.0, 0.0, 0.0), (-80, -50, 500)),  # flat on the belt, facing the camera: the scale
    ((0.3, 0.0, 0.0), (-90, -60, 520)),
    ((-0.3, 0.1, 0.0), (-70, -40, 480)),
    ((0.0, 0.35, 0.1), (-100, -50, 540)),
    ((0.0, -0.35, -0.1), (-60, -55, 500)),
    ((0.25, 0.25, 0.2), (-110, -80, 560)),
    ((-0.25, -0.2, -0.15), (-50, -20, 470)),
    ((0.1, -0.3, 0.3), (-120, -40, 600)),
    ((0.05, 0.05, 0.1), (-80, -50, 330)),  # close: the board fills the field, lines bend
]


@pytest.fixture(scope="module")
def boards(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("boards")
    texture = board_texture()
    paths = []
    for index, (rvec, tvec) in enumerate(POSES):
        image = render(texture, np.array(rvec, float), np.array(tvec, float))
        path = folder / f"{index:02d}.png"
        cv2.imwrite(str(path), image)
        paths.append(path)
    return paths


def test_recovers_the_camera_matrix_distortion_and_scale(boards: list[Path]) -> None:
    result = calibrate_lens(boards, PATTERN, SQUARE_MM, scale_image=boards[0])
    model = result.model
    assert len(result.used) == len(POSES) and not result.skipped
    assert model.rms_px < 0.5
    # Stated tolerances: focal lengths 1 %, principal point 5 px, k1 0.03, k2 0.1.
    np.testing.assert_allclose(np.diag(model.camera_matrix)[:2], [800, 790], rtol=0.01)
    np.testing.assert_allclose(model.camera_matrix[:2, 2], [330, 235], atol=5)
    # k2 and k3 trade off against each other where the boards do not reach the image corners:
    # compare what the lens does instead, over the field the boards covered (radius 200 px).
    assert abs(model.distortion[0] - DIST[0]) < 0.03
    angles = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    field = np.stack([330 + 200 * np.cos(angles), 235 + 200 * np.sin(angles)], axis=1)[:, None]
    truth = cv2.undistortPoints(field, K, DIST, P=K) - field
    matrix = model.camera_matrix
    recovered = cv2.undistortPoints(field, matrix, model.distortion, P=matrix) - field
    assert np.abs(truth - recovered).max() < 1.0  # stated tolerance: 1 px at 200 px off centre
    # Flat at 500 mm: 500 / 800 mm per px horizontally, 500 / 790 vertically.
    assert model.mm_per_px == pytest.approx(500 / 795, rel=0.01)


def test_undistortion_straightens_the_board(boards: list[Path], tmp_path: Path) -> None:
    model = calibrate_lens(boards, PATTERN, SQUARE_MM).model
    path = save_camera_model(model, tmp_path / "cam0.toml")
    reloaded = load_camera_model(path)
    np.testing.assert_allclose(reloaded.camera_matrix, model.camera_matrix, rtol=1e-8)

    def bend(image: np.ndarray) -> float:
        """RMS distance of the corners from the best homography of a flat board: 0 if straight."""
        corners = find_corners(image, PATTERN)
        assert corners is not None
        ideal = np.mgrid[0 : PATTERN[0], 0 : PATTERN[1]].T.reshape(-1, 1, 2).astype(np.float32)
        homography, _ = cv2.findHomography(ideal, corners)
        fitted = cv2.perspectiveTransform(ideal, homography)
        return float(np.sqrt(((fitted - corners) ** 2).sum(axis=2).mean()))

    raw = cv2.imread(str(boards[-1]), cv2.IMREAD_GRAYSCALE)
    straight = FrameCorrector(lens=reloaded)(raw)
    assert bend(raw) > 0.5  # the lens bends the board's lines
    assert bend(straight) < 0.4 * bend(raw)  # what is left is corner-finding noise


def test_flat_field_makes_a_vignetted_frame_flat(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:120, 0:160]
    radius2 = ((xs - 80) / 80) ** 2 + ((ys - 60) / 60) ** 2
    vignette = (1 - 0.35 * radius2)[..., None] * np.array([1.0, 0.9, 0.8])  # per channel too

    def shot(level: float) -> np.ndarray:
        image = 12 + level * vignette + rng.normal(0, 1.0, vignette.shape)
        return image.clip(0, 255).astype(np.uint8)

    for kind, level in (("dark", 0.0), ("white", 220.0)):
        (tmp_path / kind).mkdir()
        for i in range(8):
            cv2.imwrite(str(tmp_path / kind / f"{i}.png"), shot(level))
    report = build_flat_field(
        sorted((tmp_path / "dark").iterdir()), sorted((tmp_path / "white").iterdir())
    )
    assert report.saturated_pixels == 0 and report.dead_pixels == 0
    path = save_flat_field(report.flat, tmp_path / "cam0-flat.npz")
    corrector = FrameCorrector(flat=load_flat_field(path))
    scene = shot(150.0)  # an even grey belt under the same light
    before = scene.reshape(-1, 3).std(axis=0) / scene.reshape(-1, 3).mean(axis=0)
    after_image = corrector(scene).astype(np.float64)
    after = after_image.reshape(-1, 3).std(axis=0) / after_image.reshape(-1, 3).mean(axis=0)
    assert (before > 0.08).all()  # visibly vignetted
    assert (after < 0.02).all()  # stated tolerance: 2 % variation left (sensor noise)


def test_saturated_and_dead_pixels_are_reported(tmp_path: Path) -> None:
    for kind, value in (("dark", 10), ("white", 200)):
        (tmp_path / kind).mkdir()
        image = np.full((20, 30, 3), value, np.uint8)
        if kind == "white":
            image[0, 0] = 255  # clipped
            image[5, 5] = 11  # no response
        cv2.imwrite(str(tmp_path / kind / "0.png"), image)
    report = build_flat_field([tmp_path / "dark" / "0.png"], [tmp_path / "white" / "0.png"])
    assert (report.saturated_pixels, report.dead_pixels) == (1, 1)
    assert report.flat.gain[0, 0].tolist() == [1, 1, 1]  # left uncorrected


TILE = 32


@pytest.mark.e2e
def test_events_carry_millimetres_and_the_conveyor_position(
    tmp_path: Path, mosquitto: Any, mqtt_messages: Any
) -> None:
    # An identity lens with a known scale: bbox_mm must be bbox_px times 0.25.
    model = CameraModel(
        np.array([[500.0, 0, 2 * TILE], [0, 500.0, TILE / 2], [0, 0, 1]]),
        np.zeros(5), 4 * TILE, TILE, 0.0, 0.25,
    )  # fmt: skip
    save_camera_model(model, tmp_path / "cam0.toml")
    video = tmp_path / "line.mp4"
    # a crack in tile column 2 of frames 2 and 5
    write_video(
        video, (tiles(4, 1, TILE, 60, [(2, 0, 245)] if i in (2, 5) else []) for i in range(6))
    )
    build_color_model(tmp_path / "m.onnx", size=TILE)
    line = f"mm{uuid.uuid4().hex[:6]}"
    config = tmp_path / "line.toml"
    config.write_text(
        f'[line]\nid = "{line}"\n[[cameras]]\nid = "cam0"\nsource = "line.mp4"\n'
        'calibration = "cam0.toml"\nconveyor_mm_per_frame = 12.5\n'
        f'[model]\npath = "m.onnx"\nthreads = 1\n[tiling]\nsize = {TILE}\nstride = {TILE}\n'
        f"[mqtt]\nport = {mosquitto.port}\n"
    )
    events = mqtt_messages(f"line/{line}/defects")
    result = inspector("run", "--config", str(config), timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    received = sorted(
        (json.loads(m.payload) for m in events.wait_for(2)), key=lambda e: e["frame_id"]
    )
    assert [e["frame_id"] for e in received] == [2, 5]
    for event in received:
        (defect,) = event["defects"]
        assert defect["bbox_px"] == [2 * TILE, 0, TILE, TILE]
        assert defect["bbox_mm"] == [16.0, 0.0, 8.0, 8.0]
        assert event["frame"]["conveyor_mm"] == 12.5 * event["frame_id"]


def test_a_mask_keeps_the_tiles_that_are_mostly_product() -> None:
    from inspector.tiling import TileMask, Tiler

    product = np.zeros((64, 128), bool)
    product[:, 24:] = True  # tile column 0 is a quarter product, the others all product
    grid = Tiler(32, 32).grid(64, 128)
    assert TileMask(product).active(grid).tolist() == [1, 2, 3, 5, 6, 7]
    assert TileMask(product, min_coverage=0.2).active(grid).tolist() == list(range(8))


@pytest.mark.e2e
def test_tiles_outside_the_product_mask_are_never_inferred(
    tmp_path: Path, mosquitto: Any, mqtt_messages: Any
) -> None:
    video = tmp_path / "line.mp4"
    # a bright fixture left of the belt (not product), a crack on the product
    write_video(video, [tiles(4, 1, TILE, 60, [(0, 0, 245), (2, 0, 245)])] * 4)
    mask = np.zeros((TILE, 4 * TILE), np.uint8)
    mask[:, TILE:] = 255
    cv2.imwrite(str(tmp_path / "mask.png"), mask)
    build_color_model(tmp_path / "m.onnx", size=TILE)
    line = f"roi{uuid.uuid4().hex[:6]}"
    config = tmp_path / "line.toml"
    config.write_text(
        f'[line]\nid = "{line}"\n[[cameras]]\nid = "cam0"\nsource = "line.mp4"\n'
        'roi_mask = "mask.png"\n'
        f'[model]\npath = "m.onnx"\nthreads = 1\n[tiling]\nsize = {TILE}\nstride = {TILE}\n'
        f"[mqtt]\nport = {mosquitto.port}\n"
    )
    events = mqtt_messages(f"line/{line}/defects")
    result = inspector("run", "--config", str(config), "--json", timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["tiles_inferred"] == 4 * 3  # 3 of 4 tiles a frame
    for message in events.wait_for(4):
        event = json.loads(message.payload)
        assert [d["bbox_px"] for d in event["defects"]] == [[2 * TILE, 0, TILE, TILE]]
        assert event["frame"]["tiles"] == 3
