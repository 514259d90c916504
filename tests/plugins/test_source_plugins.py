"""Camera sources as plugins: one file per kind, found by the registry, picked by
``cameras[].type`` or, as before, by the form of ``source``."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest
from pydantic import TypeAdapter, ValidationError

import inspector.capture.sources
from inspector.acceptance.replay import replay_settings
from inspector.capture.sources import registry
from inspector.capture.sources.base import QueuePolicyName, SourceSettings
from inspector.capture.sources.file import FileSettings, VideoFileSource
from inspector.capture.sources.gentl import GenTlSettings
from inspector.capture.sources.pylon import PylonSettings
from inspector.capture.sources.registry import create_source, parse_camera_settings
from inspector.capture.sources.rtsp import RtspSettings, RtspSource
from inspector.capture.sources.usb import UsbSettings, UsbSource
from inspector.config import load_settings
from inspector.errors import EX_CONFIG, ConfigError, SourceError
from tests.fixtures import processes
from tests.fixtures.processes import REPO

ROOT = REPO
KNOWN = "'file', 'gentl', 'http', 'pylon', 'rtsp', 'usb'"


def write(tmp_path: Path, camera: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'[[cameras]]\nid = "cam0"\n{camera}\n')
    return path


def test_the_registry_holds_every_source_module() -> None:
    assert list(registry.PLUGINS) == ["file", "gentl", "http", "pylon", "rtsp", "usb"]
    assert registry.PLUGINS["file"].settings is FileSettings
    assert registry.PLUGINS["usb"].settings is UsbSettings
    assert registry.PLUGINS["rtsp"] is registry.PLUGINS["http"]
    assert registry.PLUGINS["rtsp"].types == ("rtsp", "http")
    assert registry.PLUGINS["gentl"].settings is GenTlSettings
    assert registry.PLUGINS["pylon"].settings is PylonSettings


@pytest.mark.parametrize("spelling", ["", 'type = "auto"\n'])
@pytest.mark.parametrize(
    ("source", "kind", "settings", "resolved"),
    [
        ("0", "usb", UsbSettings, "0"),
        ("/dev/video2", "usb", UsbSettings, "/dev/video2"),
        ("rtsp://10.0.0.5/stream1", "rtsp", RtspSettings, "rtsp://10.0.0.5/stream1"),
        ("rtsps://cam.plant/s", "rtsp", RtspSettings, "rtsps://cam.plant/s"),
        ("http://10.0.0.6/video.mjpg", "http", RtspSettings, "http://10.0.0.6/video.mjpg"),
        ("https://10.0.0.6/video.mjpg", "http", RtspSettings, "https://10.0.0.6/video.mjpg"),
        ("recordings/a.mp4", "file", FileSettings, "{tmp}/recordings/a.mp4"),
        ("/data/line.mkv", "file", FileSettings, "/data/line.mkv"),
    ],
)
def test_the_type_is_inferred_from_the_source_as_before(
    tmp_path: Path, spelling: str, source: str, kind: str, settings: type, resolved: str
) -> None:
    camera = load_settings(write(tmp_path, f'{spelling}source = "{source}"')).cameras[0]
    assert type(camera) is settings and camera.type == kind
    assert camera.source == resolved.format(tmp=tmp_path)  # only a file is made relative


@pytest.mark.parametrize(
    ("camera", "settings"),
    [
        ('type = "usb"\nsource = "1"\nwidth = 1280\nheight = 720\nfps = 30', UsbSettings),
        ('type = "rtsp"\nsource = "rtsp://c/s"\nopen_timeout_s = 2', RtspSettings),
        ('type = "http"\nsource = "http://c/v.mjpg"\nread_timeout_s = 1', RtspSettings),
        ('type = "file"\nsource = "a.mp4"\nrealtime = true\nloop = true', FileSettings),
        ('type = "gentl"\ncti = "p.cti"\nsource = "serial:7"', GenTlSettings),
        ('type = "pylon"\nsource = "index:0"\nsoftware_trigger_hz = 5', PylonSettings),
    ],
)
def test_an_explicit_type_takes_its_own_options(
    tmp_path: Path, camera: str, settings: type[SourceSettings]
) -> None:
    loaded = load_settings(write(tmp_path, camera)).cameras[0]
    assert type(loaded) is settings
    if isinstance(loaded, UsbSettings):
        assert (loaded.width, loaded.height, loaded.fps) == (1280, 720, 30.0)
    if isinstance(loaded, FileSettings):
        assert loaded.realtime and loaded.loop and loaded.source == str(tmp_path / "a.mp4")
    if isinstance(loaded, GenTlSettings):
        assert loaded.cti == tmp_path / "p.cti"  # relative to the config, as before


def test_relative_paths_of_every_kind_are_resolved(tmp_path: Path) -> None:
    camera = load_settings(
        write(
            tmp_path,
            'source = "/dev/video0"\ncalibration = "cal/c.toml"\nflat_field = "/abs/f.npz"\n'
            'roi_mask = "mask.png"',
        )
    ).cameras[0]
    assert camera.calibration == tmp_path / "cal/c.toml"
    assert camera.flat_field == Path("/abs/f.npz")
    assert camera.roi_mask == tmp_path / "mask.png"


@pytest.mark.parametrize(
    ("camera", "expected"),
    [
        ('source = "a.mp4"\nwidth = 640', "cameras.0.width: unknown key"),
        ('source = "0"\ncti = "p.cti"', "cameras.0.cti: unknown key"),
        ('source = "0"\nrealtime = true', "cameras.0.realtime: unknown key"),
        (
            'source = "rtsp://c/s"\nloop = true',
            "cameras.0.loop: unknown key",
        ),
        (
            'source = "http://c/s"\nfeatures = {Gain = 1.0}',
            "cameras.0.features: unknown key",
        ),
        (
            'type = "pylon"\nsource = "index:0"\ncti = "p.cti"',
            "cameras.0.cti: unknown key",
        ),
        ('type = "gentl"\nsource = "serial:1"', "cameras.0.cti: Field required"),
        ('source = "0"\nwidth = 0', "cameras.0.width: Input should be greater than or equal to 1"),
        ('source = "ftp://x/y.mp4"', "cameras.0: unsupported source URL scheme: ftp://x/y.mp4"),
        ('type = "usb"\nsource = "cam.mp4"', "cameras.0.source: a usb camera's source is a"),
        ('type = "rtsp"\nsource = "cam.mp4"', "cameras.0.source: an rtsp/http camera's source"),
        ('type = "file"\nsource = "rtsp://c/s"', "cameras.0.source: a file camera's source is a"),
        ('type = "gentl"\ncti = "p.cti"\nsource = "7"', "cameras.0: a gentl camera's source is"),
        ("type = 3", f"cameras.0: unknown camera type 3; known types: {KNOWN}"),
        ("queue_size = 2", "cameras.0.source: Field required"),
        (
            'source = "0"\nconveyor_mm_per_frame = 1\nconveyor_mm_per_s = 2',
            "cameras.0: give conveyor_mm_per_frame or conveyor_mm_per_s, not both",
        ),
    ],
)
def test_bad_camera_options_name_the_field(tmp_path: Path, camera: str, expected: str) -> None:
    path = write(tmp_path, camera)
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: {expected}")
    assert "\n" not in message


def test_a_camera_from_the_environment_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, 'source = "a.mp4"')
    monkeypatch.setenv("INSPECTOR__CAMERAS", json.dumps([{"id": "c", "source": "0", "fps": 15}]))
    camera = load_settings(path).cameras[0]
    assert isinstance(camera, UsbSettings) and camera.fps == 15
    monkeypatch.setenv("INSPECTOR__CAMERAS", json.dumps([{"id": "c", "source": "0", "loop": 1}]))
    with pytest.raises(ConfigError, match=r"^INSPECTOR__CAMERAS: cameras\.0\.loop: unknown key"):
        load_settings(path)


def test_unknown_type_is_one_line_listing_the_known_ones(tmp_path: Path) -> None:
    path = write(tmp_path, 'type = "onvif"\nsource = "rtsp://c/s"')
    unknown = f"cameras.0: unknown camera type 'onvif'; known types: {KNOWN}"
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert str(caught.value) == f"{path}: {unknown}"
    result = processes.inspector("run", "--config", str(path), timeout=60)
    assert result.returncode == EX_CONFIG
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and unknown in lines[0]


def test_the_repository_config_still_loads() -> None:
    camera = load_settings(ROOT / "config.toml").cameras[0]
    assert isinstance(camera, FileSettings)
    assert camera.source == str(ROOT / "recordings/elpv-line.mp4")
    assert camera.policy is QueuePolicyName.AUTO


def test_loading_the_configuration_imports_no_camera_sdk() -> None:
    code = (
        "import sys, inspector.config; "
        "print(sorted(m for m in ('harvesters', 'genicam', 'pypylon') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"


def test_create_source_picks_the_kind_and_paces_only_realtime_recordings() -> None:
    recording = create_source(parse_camera_settings(id="c", source="a.mp4", realtime=True))
    assert isinstance(recording, VideoFileSource) and recording.paced and not recording.live
    assert not create_source(parse_camera_settings(id="c", source="a.mp4")).paced
    usb = create_source(parse_camera_settings(id="c", source="/dev/video0"))
    assert isinstance(usb, UsbSource) and usb.live and not usb.paced
    stream = create_source(parse_camera_settings({"id": "c", "type": "http", "source": "http://x"}))
    assert isinstance(stream, RtspSource) and not stream.paced

    class Stray(SourceSettings):
        type: Literal["stray"] = "stray"

    with pytest.raises(SourceError, match=r"camera c: type: unknown camera type 'stray'; known"):
        create_source(Stray(id="c", source="x"))


def test_replay_turns_any_camera_into_a_recording_with_its_common_fields(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'type = "gentl"\ncti = "p.cti"\nsource = "serial:7"\nqueue_size = 3\nmm_per_px = 0.2\n'
        "conveyor_mm_per_s = 500\nread_timeout_s = 1",
    )
    settings = replay_settings(load_settings(path), tmp_path / "line.mp4", realtime=True)
    (camera,) = settings.cameras
    assert camera == FileSettings(
        id="cam0",
        source=str(tmp_path / "line.mp4"),
        queue_size=3,
        mm_per_px=0.2,
        conveyor_mm_per_s=500,
        realtime=True,
        policy=QueuePolicyName.DROP_OLDEST,
    )
    looping = load_settings(write(tmp_path, 'source = "a.mp4"\nloop = true\nqueue_size = 4'))
    (camera,) = replay_settings(looping, tmp_path / "b.mp4", realtime=False).cameras
    assert isinstance(camera, FileSettings) and not camera.loop and camera.queue_size == 4
    assert camera.policy is QueuePolicyName.BLOCK and not camera.realtime


PLUGIN_MODULE = """
from typing import Literal

from pydantic import Field

from inspector.capture.sources.base import SourcePlugin, SourceSettings


class PatternSettings(SourceSettings):
    type: Literal["pattern"] = "pattern"
    stripes: int = Field(default=4, ge=1)


def _create(settings):
    return ("pattern", settings.stripes)


PLUGIN = SourcePlugin(PatternSettings, _create)
"""


@pytest.fixture
def pattern_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``pattern.py`` in a second folder of the ``inspector.capture.sources`` package."""
    folder = tmp_path / "more_sources"
    folder.mkdir()
    (folder / "pattern.py").write_text(textwrap.dedent(PLUGIN_MODULE))
    (folder / "helpers.py").write_text("HELPER = 1\n")  # a module without PLUGIN is no kind
    package = inspector.capture.sources
    monkeypatch.setattr(package, "__path__", [*package.__path__, str(folder)])
    yield folder
    for name in ("pattern", "helpers", "pattern_again"):
        sys.modules.pop(f"inspector.capture.sources.{name}", None)


def test_a_new_source_module_is_found_without_other_edits(pattern_source: Path) -> None:
    plugins = registry.discover()
    assert list(plugins) == ["file", "gentl", "http", "pattern", "pylon", "rtsp", "usb"]
    adapter: TypeAdapter[SourceSettings] = TypeAdapter(registry.camera_settings_union(plugins))
    pattern = adapter.validate_python({"id": "c", "type": "pattern", "source": "x", "stripes": 8})
    assert type(pattern).__name__ == "PatternSettings" and pattern.model_dump()["stripes"] == 8
    assert isinstance(adapter.validate_python({"id": "c", "source": "3"}), UsbSettings)
    with pytest.raises(ValidationError, match=r"pattern.stripes\n  Input should be greater"):
        adapter.validate_python({"id": "c", "type": "pattern", "source": "x", "stripes": 0})
    with pytest.raises(ValidationError, match="known types: 'file', 'gentl', 'http', 'pattern'"):
        adapter.validate_python({"id": "c", "type": "onvif", "source": "x"})
    assert plugins["pattern"].create(pattern) == ("pattern", 8)


def test_two_modules_claiming_one_type_fail_at_discovery(pattern_source: Path) -> None:
    (pattern_source / "pattern_again.py").write_text(textwrap.dedent(PLUGIN_MODULE))
    with pytest.raises(TypeError, match="camera type 'pattern' is declared twice"):
        registry.discover()
