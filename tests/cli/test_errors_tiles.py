"""A tile larger than the frame (issue 18): where the frame size is known at start (a
recording, a camera with a configured width and height), exit 78 at start, one line,
before the broker is connected."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from inspector.capture.sources.registry import create_source
from inspector.config import load_settings
from inspector.errors import EX_CONFIG, ConfigError
from inspector.tiling.fit import check_tiles_fit
from tests.fixtures.models import build_color_model
from tests.fixtures.processes import clean_env, inspector
from tests.fixtures.videos import write_video


def recording(path: Path, width: int, height: int) -> Path:
    write_video(path, (np.zeros((height, width, 3), np.uint8) for _ in range(3)))
    return path


def test_a_recording_smaller_than_a_tile_exits_78_before_the_broker(
    tmp_path: Path, unused_port: int
) -> None:
    video = recording(tmp_path / "small.mp4", 160, 120)
    build_color_model(tmp_path / "m.onnx", size=32)
    config = tmp_path / "config.toml"
    config.write_text(
        f'[[cameras]]\nid = "cam0"\nsource = "{video.name}"\n[model]\npath = "m.onnx"\n'
        f"[tiling]\nsize = 224\nstride = 224\n[mqtt]\nport = {unused_port}\n"
    )
    result = inspector("run", "--config", str(config), env=clean_env())
    assert result.returncode == EX_CONFIG, result.stderr
    assert result.stderr.strip() == (
        f"inspector run: error: camera cam0 ({video}): frame 160x120 is smaller than one "
        "224 px tile: lower tiling.size to at most 120"
    )


def test_a_configured_camera_size_is_checked_without_the_camera(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[[cameras]]\nid = "cam1"\nsource = "/dev/video63"\nwidth = 640\nheight = 480\n'
        "[tiling]\nsize = 256\nstride = 256\nroi = [500, 0, 300, 300]\n"
    )
    settings = load_settings(config)
    camera = settings.cameras[0]
    source = create_source(camera)  # never opened: the camera need not be there
    with pytest.raises(ConfigError) as caught:
        check_tiles_fit(settings.tiling, [SimpleNamespace(settings=camera, source=source)])
    assert str(caught.value) == (
        "camera cam1 (/dev/video63): roi (500, 0, 300, 300) clipped to frame 640x480 is "
        "140x300, smaller than one 256 px tile: move or enlarge tiling.roi, or lower tiling.size"
    )


def test_a_genicam_cameras_width_and_height_features_are_its_frame_size(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[[cameras]]\nid = "gige"\ntype = "gentl"\ncti = "p.cti"\nsource = "serial:1"\n'
        "features = { Width = 200, Height = 100, ExposureTime = 5000.0 }\n"
    )
    settings = load_settings(config)
    camera = settings.cameras[0]
    unopened = SimpleNamespace(description="serial:1")  # no frame_size(): the config says it
    with pytest.raises(ConfigError, match=r"^camera gige \(serial:1\): frame 200x100 is smaller"):
        check_tiles_fit(settings.tiling, [SimpleNamespace(settings=camera, source=unopened)])


def test_tiles_that_fit_pass_and_unknown_sizes_are_left_to_the_first_frame(
    tmp_path: Path,
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[[cameras]]\nid = "a"\nsource = "0"\nwidth = 640\nheight = 480\n'
        '[[cameras]]\nid = "b"\nsource = "1"\n'
    )
    settings = load_settings(config)
    cameras = [SimpleNamespace(settings=c, source=create_source(c)) for c in settings.cameras]
    check_tiles_fit(settings.tiling, cameras)  # 224 px tiles in 640x480; b: size unknown
