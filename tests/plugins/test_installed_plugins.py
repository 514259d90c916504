"""A source, an engine and a sink from an installed distribution, with no edit in inspector/.

The distribution is laid out as pip installs one (a package and its ``.dist-info`` with
``entry_points.txt``) in a folder put on the daemon's ``PYTHONPATH``: the kernel finds the
three entry points exactly as it would in site-packages, and the daemon runs them end to end.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from inspector.errors import EX_CONFIG
from tests.fixtures.models import build_color_model
from tests.fixtures.processes import inspector
from tests.fixtures.videos import tiles, write_video

pytestmark = pytest.mark.e2e

TILE = 32
FRAMES = 6

PLUGINS = '''
"""Three plugins in one distribution: a test-pattern camera, a backend that runs ONNX Runtime
under its own name, and a sink that writes one JSON line per inspected frame."""

import json
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import Field

from inspector.capture.source import Grab
from inspector.capture.sources.base import SourcePlugin, SourceSettings
from inspector.engines.base import EnginePlugin, EngineSettings
from inspector.engines.onnxruntime_engine import OnnxRuntimeEngine
from inspector.sections import SinkSettings
from inspector.sinks.registry import SinkPlugin
from inspector.types.results import SinkHealth


class StripesSettings(SourceSettings):
    type: Literal["stripes"] = "stripes"
    frames: int = Field(default=6, ge=1)


class StripesSource:
    """Frames of two tiles: the right one bright (a "crack") on every other frame."""

    live, paced, lost = False, False, 0

    def __init__(self, settings):
        self.description, self.frames = settings.source, settings.frames
        self._n, self.is_open = 0, False

    def open(self):
        self.is_open = True

    def grab(self):
        if self._n >= self.frames:
            return None
        image = np.full((32, 64, 3), 60, np.uint8)
        if self._n % 2:
            image[:, 32:] = 245
        self._n += 1
        return Grab(image=image)

    def nominal_fps(self):
        return None

    def close(self):
        self.is_open = False


class CopySettings(EngineSettings):
    backend: Literal["ortcopy"] = "ortcopy"


def _open_engine(settings, card, max_batch):
    return OnnxRuntimeEngine(settings.path, card, 1, max_batch)


class JsonlSettings(SinkSettings):
    path: Path = Path("results.jsonl")


class JsonlSink:
    name, lossless = "jsonl", True

    def __init__(self, path, line_id, model):
        self._file, self.line_id, self.model = open(path, "w"), line_id, model

    def frame_result(self, result):
        labels = [region.label for region in result.regions]
        row = {"line": self.line_id, "model": self.model, "frame_id": result.frame.frame_id,
               "labels": labels}
        self._file.write(json.dumps(row) + "\\n")

    def camera_status(self, camera, status): pass
    def stats(self, stats): pass
    def health(self): return SinkHealth()
    def close(self): self._file.close()


SOURCE = SourcePlugin(StripesSettings, StripesSource,
                      infer=lambda source: "stripes" if source.startswith("stripes://") else None)
ENGINE = EnginePlugin(CopySettings, _open_engine)
SINK = SinkPlugin("jsonl", JsonlSettings,
                  lambda settings, context: JsonlSink(settings.path, context.line_id,
                                                      context.card.name))
'''

ENTRY_POINTS = """
[inspector.sources]
stripes = inspector_testplugins:SOURCE

[inspector.engines]
ortcopy = inspector_testplugins:ENGINE

[inspector.sinks]
jsonl = inspector_testplugins:SINK
"""


def install(site: Path, module: str = PLUGINS, entry_points: str = ENTRY_POINTS) -> None:
    """What pip leaves in site-packages for a distribution ``inspector-testplugins``."""
    (site / "inspector_testplugins.py").write_text(textwrap.dedent(module))
    info = site / "inspector_testplugins-0.1.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: inspector-testplugins\nVersion: 0.1.0\n"
    )
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))


def run(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    path = os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    return inspector("run", "--config", str(config), "--json", env=env)


def write_config(folder: Path, camera: str, more: str = "") -> Path:
    build_color_model(folder / "m.onnx", size=TILE)
    config = folder / "line.toml"
    config.write_text(
        f'[line]\nid = "plugged"\n[[cameras]]\nid = "cam0"\n{camera}\n'
        f'[model]\npath = "m.onnx"\nbackend = "ortcopy"\n[tiling]\nsize = {TILE}\n'
        f"stride = {TILE}\n[mqtt]\nenabled = false\n[outbox]\nenabled = false\n{more}"
    )
    return config


def test_a_source_an_engine_and_a_sink_from_a_distribution_run_end_to_end(
    tmp_path: Path,
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    install(site)
    out = tmp_path / "results.jsonl"
    # No type: the installed source's own infer hook claims "stripes:" sources.
    config = write_config(
        tmp_path, 'source = "stripes://6"', f'[jsonl]\nenabled = true\npath = "{out}"\n'
    )
    result = run(config, site)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout)["frames_inferred"] == FRAMES
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["frame_id"] for row in rows] == list(range(FRAMES))
    assert all(row["line"] == "plugged" and row["model"] == "demo-color" for row in rows)
    # The bright right tile of every odd frame is a crack; the rest is clean belt.
    assert [bool(row["labels"]) for row in rows] == [i % 2 == 1 for i in range(FRAMES)]


def test_a_broken_installed_plugin_stops_only_the_line_that_uses_it(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    install(site, PLUGINS + "\nimport no_such_module_here\n")
    # A line that uses none of them runs; the broken distribution is one warning.
    plain = tmp_path / "plain"
    plain.mkdir()
    video = plain / "line.mp4"
    bright = [(1, 0, 245)]  # the right tile, on every odd frame
    write_video(video, (tiles(2, 1, TILE, 60, bright if i % 2 else []) for i in range(FRAMES)))
    config = write_config(plain, f'source = "{video}"')
    config.write_text(config.read_text().replace('backend = "ortcopy"\n', ""))
    result = run(config, site)
    assert result.returncode == 0, result.stderr[-3000:]
    warned = [line for line in result.stderr.splitlines() if "plugin_not_loaded" in line]
    assert len(warned) == 3 and all("inspector-testplugins" in line for line in warned), warned
    # A line that uses the broken backend: one line naming the distribution and the error.
    config = write_config(tmp_path, f'source = "{video}"')
    result = run(config, site)
    assert result.returncode == EX_CONFIG, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "backend 'ortcopy': distribution inspector-testplugins 0.1.0" in line
    assert "No module named 'no_such_module_here'" in line


def test_an_unknown_plugin_name_gets_the_closest_installed_one(tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    install(site)
    config = write_config(tmp_path, 'source = "stripes://6"\ntype = "stripe"')
    result = run(config, site)
    assert result.returncode == EX_CONFIG
    assert "unknown camera type 'stripe' (did you mean 'stripes'?)" in result.stderr
