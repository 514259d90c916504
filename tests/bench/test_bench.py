"""`inspector bench` end to end on a small real recording, model and broker."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from inspector.bench.measure import Throughput, interleaved, median_run
from inspector.calibration.int8 import calibrate_int8
from tests.fixtures.models import build_color_model
from tests.fixtures.processes import inspector
from tests.fixtures.videos import write_video

pytestmark = pytest.mark.e2e

TILE = 32


@pytest.mark.parametrize(
    "backends",
    [
        (),
        pytest.param(
            ("--backends", "onnxruntime,openvino"),
            marks=pytest.mark.skipif(
                importlib.util.find_spec("openvino") is None,
                reason="OpenVINO is not installed (extra [openvino])",
            ),
        ),
    ],
    ids=["configured-backend", "onnxruntime-and-openvino"],
)
def test_bench_measures_engine_pipeline_naive_and_int8(
    tmp_path: Path, mosquitto: Any, backends: tuple[str, ...]
) -> None:
    video = tmp_path / "line.mp4"
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (2 * TILE, 4 * TILE, 3), np.uint8) for _ in range(30)]
    write_video(video, frames, fps=30)
    model = tmp_path / "m.onnx"
    build_color_model(model, size=TILE, busy_layers=2)
    calibration = tmp_path / "calibration"
    calibration.mkdir()
    for i in range(16):
        cv2.imwrite(str(calibration / f"{i}.png"), rng.integers(0, 256, (TILE, TILE, 3), np.uint8))
    int8 = calibrate_int8(model, tmp_path / "m-int8.onnx", sorted(calibration.iterdir())).path
    config = tmp_path / "bench.toml"
    config.write_text(
        f'[line]\nid = "bench"\n[[cameras]]\nid = "cam0"\nsource = "{video}"\n'
        f'[model]\npath = "{model}"\nthreads = 1\n[tiling]\nsize = {TILE}\nstride = {TILE}\n'
        f"[batching]\nmax_batch = 8\n[mqtt]\nport = {mosquitto.port}\n"
    )

    result = inspector(
        "bench", "--config", str(config), "--int8", str(int8), "--evidence", "--seconds", "0.5",
        "--rounds", "2", "--json", *backends, timeout=300,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    for key in ("engine_tiles_per_s", "pipeline_tiles_per_s", "naive_tiles_per_s"):
        assert report[key] > 0
    ratio = report["pipeline_tiles_per_s"] / report["engine_tiles_per_s"]
    assert report["pipeline_vs_engine"] == pytest.approx(ratio, rel=2e-3)
    int8_ratio = report["int8_engine_tiles_per_s"] / report["engine_tiles_per_s"]
    assert report["int8_vs_fp32"] == pytest.approx(int8_ratio, rel=2e-3)
    assert report["detail"]["pipeline"]["tiles"] == 30 * 8  # the whole recording, every tile
    assert report["detail"]["int8_pipeline"]["tiles"] == 30 * 8
    assert report["detail"]["pipeline_evidence"]["tiles"] == 30 * 8
    expected = {"onnxruntime", "onnxruntime-int8"} | (
        {"openvino", "openvino-int8"} if backends else set()
    )
    assert expected <= set(report["backends"])
    for name, entry in report["backends"].items():
        assert entry["engine_tiles_per_s"] > 0 and entry["pipeline_tiles_per_s"] > 0, name
    assert report["backends"]["onnxruntime"]["engine_tiles_per_s"] == report["engine_tiles_per_s"]
    latency = report["latency"]
    assert latency["load"] == 0.5 and latency["frame_inference_ms"] > 0
    assert 0 < latency["p50_ms"] <= latency["p99_ms"]
    with_pictures = report["pipeline_evidence_tiles_per_s"] / report["pipeline_tiles_per_s"]
    assert report["evidence_cost"] == pytest.approx(1 - with_pictures, abs=2e-3)
    assert 0 < report["latency_ms"]["p50"] <= report["latency_ms"]["p99"]
    assert report["rounds"] == 2
    for name in ("engine", "pipeline", "int8_engine", "int8_pipeline"):
        rounds = report["detail"][name]["rounds_tiles_per_s"]
        assert len(rounds) == 2 and report["detail"][name]["tiles_per_s"] == min(rounds)


def test_rounds_interleave_and_the_median_run_is_a_real_run() -> None:
    calls: list[str] = []

    def measure(name: str, tiles_per_s: list[float]) -> Callable[[], Throughput]:
        def run() -> Throughput:
            calls.append(name)
            return Throughput(tiles_per_s[len(calls) % len(tiles_per_s)], 1, 1.0, {"p50": 1.0})

        return run

    runs = interleaved({"a": measure("a", [1.0, 5.0, 3.0]), "b": measure("b", [2.0])}, rounds=3)
    assert calls == ["a", "b", "a", "b", "a", "b"]  # drift hits both alike
    assert [r.tiles_per_s for r in runs["a"]] == [5.0, 1.0, 3.0]
    assert median_run(runs["a"]) is runs["a"][2]
    assert median_run([runs["a"][1], runs["a"][0]]) is runs["a"][1]  # even count: the lower
    with pytest.raises(ValueError, match="rounds"):
        interleaved({}, rounds=0)
