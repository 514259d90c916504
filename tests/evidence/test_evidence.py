"""The evidence sink end to end: the daemon as a subprocess, a real Mosquitto, real JPEGs on
disk. Every delivered event's pictures exist and show what it says; the store keeps its
bound at every moment of a long run and is consistent after a SIGKILL; what it keeps for
relabelling exports as a dataset that trains."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

import cv2
import jsonschema
import numpy as np
import pytest

from inspector.evidence.files import INDEX, picture_files
from inspector.evidence.index import Index
from inspector.evidence.pictures import BOX_COLOR
from tests.fixtures.models import build_color_model
from tests.fixtures.mqtt import Broker, Collector
from tests.fixtures.net import free_port, metric
from tests.fixtures.processes import inspector
from tests.fixtures.videos import tiles, write_video

pytestmark = pytest.mark.e2e

TILE = 48
COLS, ROWS = 4, 2
WHITE, GRAY, DARK = 245, 190, 60  # crack; on the crack threshold (p = 0.5); ok


def frame(i: int) -> np.ndarray:
    """One crack tile walking the grid, one tile the model is unsure of."""
    col, row = i % COLS, (i // COLS) % ROWS
    return tiles(COLS, ROWS, TILE, DARK, [(col, row, WHITE), ((col + 2) % COLS, 1 - row, GRAY)])


def write_config(folder: Path, port: int, frames: int, evidence: str, extra: str = "") -> Path:
    write_video(folder / "line.mp4", map(frame, range(frames)))
    build_color_model(folder / "m.onnx", size=TILE)
    config = folder / "line.toml"
    config.write_text(
        f'[line]\nid = "ev{folder.name[-6:].replace("-", "")}"\n'
        f'[[cameras]]\nid = "cam0"\nsource = "line.mp4"\n{extra}'
        f'[model]\npath = "m.onnx"\nthreads = 1\n[tiling]\nsize = {TILE}\nstride = {TILE}\n'
        f"[batching]\nmax_batch = 8\nmax_wait_ms = 2\n"
        f"[mqtt]\nport = {port}\nack_timeout_s = 30\nsnapshot_interval_s = 0.1\n"
        f'[outbox]\npath = "outbox.sqlite"\n[logging]\nformat = "json"\n'
        f"[evidence]\nenabled = true\n{evidence}"
    )
    return config


def line_of(config: Path) -> str:
    return config.read_text().split('id = "', 1)[1].split('"', 1)[0]


def test_every_event_has_pictures_that_show_it(tmp_path: Path, mosquitto: Broker) -> None:
    frames = 16
    config = write_config(
        tmp_path, mosquitto.port, frames,
        'path = "evidence"\nframe_width = 96\n[evidence.uncertain]\nband = 0.2\n'
        "per_minute = 1000\n",
    )  # fmt: skip
    line = line_of(config)
    events = Collector(mosquitto.host, mosquitto.port, f"line/{line}/defects")
    try:
        result = inspector("run", "--config", str(config))
        assert result.returncode == 0, result.stderr
        received = [json.loads(m.payload) for m in events.wait_for(frames, timeout=10)]
    finally:
        events.close()
    root = tmp_path / "evidence"
    assert sorted(e["frame_id"] for e in received) == list(range(frames))
    schema = json.loads(resources.files("inspector").joinpath("schemas/defect-1.json").read_text())
    for event in received:
        jsonschema.validate(event, schema)
        evidence = event["evidence"]
        assert len(evidence["crops"]) == len(event["defects"]) == 1
        for crop_path, defect in zip(evidence["crops"], event["defects"], strict=True):
            crop = cv2.imread(str(root / crop_path))
            assert crop is not None, crop_path
            _, _, w, h = defect["bbox_px"]
            assert crop.shape[1] >= w and crop.shape[0] >= h  # the box, and a margin
        picture = cv2.imread(str(root / evidence["frame"]))
        assert picture is not None and picture.shape[1] == 96  # downscaled to frame_width
        x, y, w, h = (v // 2 for v in event["defects"][0]["bbox_px"])  # half scale
        edge = picture[y + h // 2, x].astype(int)  # the middle of the box's left edge
        assert np.abs(edge - np.array(BOX_COLOR)).max() < 60, edge
    # The retained snapshot: the latest annotated defect frame, a JPEG.
    snapshot = Collector(mosquitto.host, mosquitto.port, f"line/{line}/snapshot/cam0")
    try:
        (message,) = snapshot.wait_for(1, timeout=5)
    finally:
        snapshot.close()
    assert message.retain and message.payload[:2] == b"\xff\xd8"
    assert cv2.imdecode(np.frombuffer(message.payload, np.uint8), cv2.IMREAD_COLOR) is not None
    # The gray tile of every frame sits on the crack threshold: kept for relabelling.
    index = Index.read_only(root / INDEX)
    try:
        uncertain = index.select([("kind", "uncertain")], newest_first=False)
    finally:
        index.close()
    assert len(uncertain) == frames
    assert all(abs((item.proposed_score or 0) - 0.5) < 0.2 for item in uncertain)

    # Export, correct one label, export again, and train on the result.
    out = tmp_path / "relabel"
    first = inspector("dataset", "export", str(root), "--out", str(out), "--json")
    assert first.returncode == 0, first.stderr
    summary = json.loads(first.stdout)
    assert summary["exported"] == 2 * frames and summary["missing"] == 0
    rows = (out / "labels.csv").read_text().splitlines()
    header, target = rows[0].split(","), rows[1].split(",")
    moved = target[header.index("file")].split("/", 1)[1]
    target[header.index("label")] = "scratch"
    (out / "labels.csv").write_text("\n".join([rows[0], ",".join(target), *rows[2:]]) + "\n")
    export = ("dataset", "export", str(root), "--out", str(out))
    again = json.loads(inspector(*export, "--json").stdout)
    assert again["corrected"] == 1 and again["classes"]["scratch"] == 1
    assert (out / "scratch" / moved).is_file() and len(list(out.glob(f"*/{moved}"))) == 1
    (out / "scratch" / moved).unlink()  # one picture is no class: leave it out
    target[header.index("label")] = ""
    (out / "labels.csv").write_text("\n".join([rows[0], ",".join(target), *rows[2:]]) + "\n")
    inspector(*export)
    trained = inspector(
        "train", str(out), "--out", str(tmp_path / "engines" / "relabelled"),
        "--epochs", "1", "--image-size", "32", "--batch", "8", "--threads", "2",
        timeout=600,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    card = json.loads((tmp_path / "engines" / "relabelled.json").read_text())
    assert set(card["labels"]) == {"crack", "ok"}


def disk_bytes(root: Path) -> int:
    """What the pictures take on disk, in whole blocks (the store's own measure)."""
    total = 0
    for path in picture_files(root):
        with contextlib.suppress(FileNotFoundError):  # evicted while this walk went by
            total += (root / path).stat().st_blocks * 512
    return total


def test_the_bound_holds_during_a_long_run_and_a_sigkill_leaves_the_store_consistent(
    tmp_path: Path, mosquitto: Broker
) -> None:
    port = free_port()
    max_mb = 0.25
    config = write_config(
        tmp_path, mosquitto.port, 40, f'path = "evidence"\nmax_mb = {max_mb}\n',
        extra="loop = true\n",
    )  # fmt: skip
    config.write_text(config.read_text() + f"[metrics]\nport = {port}\n")
    root = tmp_path / "evidence"
    daemon = subprocess.Popen(
        [sys.executable, "-m", "inspector", "run", "--config", str(config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    samples: list[int] = []
    try:
        deadline = time.monotonic() + 180
        inferred = 0.0
        while inferred < 2000 and time.monotonic() < deadline and daemon.poll() is None:
            if (root / INDEX).exists():
                samples.append(disk_bytes(root))
            with contextlib.suppress(OSError):  # the endpoint is not up yet
                inferred = metric(port, "inspector_frames_inferred_total") or 0.0
            time.sleep(0.05)
        assert daemon.poll() is None, daemon.stderr.read() if daemon.stderr else ""
        assert inferred >= 2000, f"only {inferred} frames in 180 s"
        evicted = metric(port, "inspector_evidence_evicted_total") or 0.0
        os.kill(daemon.pid, signal.SIGKILL)  # mid-write, as likely as not
        daemon.wait(10)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait(10)
    one_event = max((root / p).stat().st_blocks * 512 for p in picture_files(root)) * 2
    assert len(samples) > 20 and evicted > 0  # the bound was reached, and kept, many times
    assert max(samples) <= max_mb * 1024 * 1024 + one_event, max(samples)
    # After the kill: every indexed picture exists; a restart's tidy leaves no stray file.
    index = Index.read_only(root / INDEX)
    try:
        items = index.select([], newest_first=False)
    finally:
        index.close()
    indexed = {path for item in items for path in item.paths}
    assert all((root / path).is_file() for path in indexed)
    from inspector.evidence.store import EvidenceStore

    store = EvidenceStore(root, max_mb, 30)
    try:
        assert set(picture_files(root)) == {p for i in store.recent(10_000) for p in i.paths}
    finally:
        store.close()


def test_an_unusable_evidence_path_is_one_line_and_exit_78(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    config = write_config(tmp_path, free_port(), 2, 'path = "a-file/evidence"\n')
    result = inspector("run", "--config", str(config))
    assert result.returncode == 78
    (line,) = result.stderr.strip().splitlines()
    assert "a-file/evidence" in line and line.startswith("inspector run: error:")
