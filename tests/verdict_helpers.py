"""What the verdict tests share: a line's recording and config, a subscriber that notes when
each verdict arrives, and the daemon as a process."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import jsonschema
import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

TILE = 64
COLS, ROWS = 3, 2
WHITE, RED = (245, 245, 245), (30, 30, 235)  # BGR: the test model's crack and stain
# frame_id -> painted tiles (col, row, colour); every other frame is clean belt.
PAINTED: dict[int, list[tuple[int, int, tuple[int, int, int]]]] = {
    2: [(1, 0, WHITE)],
    5: [(0, 1, RED), (1, 1, RED)],
    7: [(2, 1, WHITE), (0, 0, RED)],
}
TRUTH = {2: ["crack"], 5: ["stain"], 7: ["stain", "crack"]}  # the classes, as the model finds
FRAMES = 12

VERDICT_SCHEMA = json.loads(
    resources.files("inspector").joinpath("schemas/verdict-1.json").read_text()
)
# Built once: jsonschema.validate() checks the schema itself on every call (milliseconds).
VALIDATOR = jsonschema.Draft202012Validator(
    VERDICT_SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
)


def write_video(path: Path, frames: int = FRAMES, fps: float = 10) -> None:
    writer = cv2.VideoWriter(
        str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (COLS * TILE, ROWS * TILE)
    )
    assert writer.isOpened()
    for frame_id in range(frames):
        image = np.full((ROWS * TILE, COLS * TILE, 3), 50, np.uint8)
        for col, row, colour in PAINTED.get(frame_id % FRAMES, []):
            image[row * TILE : (row + 1) * TILE, col * TILE : (col + 1) * TILE] = colour
        writer.write(image)
    writer.release()


def write_config(tmp_path: Path, port: int, cameras: str, extra: str = "", line: str = "") -> str:
    """The line's config (returns the line id): the test model, 64 px tiles, the broker."""
    line = line or f"v{uuid.uuid4().hex[:8]}"
    (tmp_path / "config.toml").write_text(
        f'[line]\nid = "{line}"\n{cameras}\n[model]\npath = "m.onnx"\nthreads = 1\n'
        f"[tiling]\nsize = {TILE}\nstride = {TILE}\n[batching]\nmax_batch = 4\n"
        f'max_wait_ms = 5\n[mqtt]\nport = {port}\n[logging]\nformat = "json"\n{extra}'
    )
    return line


def run_daemon(tmp_path: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "inspector", "run", "--config", str(tmp_path / "config.toml"),
         "--json"],
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def start_daemon(tmp_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "inspector", "run", "--config", str(tmp_path / "config.toml"),
         "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


class Arrival(NamedTuple):
    at: float  # time.time() when the subscriber got it
    verdict: dict[str, Any]


class VerdictSubscriber:
    """Every verdict of a line, each with the wall-clock time it reached this subscriber,
    validated against the schema."""

    def __init__(self, host: str, port: int, line: str) -> None:
        self.arrivals: list[Arrival] = []
        self.errors: list[str] = []  # schema violations, wrong topics
        self._cond = threading.Condition()
        subscribed = threading.Event()
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"test-verdicts-{uuid.uuid4().hex[:8]}",
        )
        self._client.on_message = self._on_message
        self._client.on_subscribe = lambda *_: subscribed.set()
        self._client.connect(host, port, keepalive=10)
        self._client.loop_start()
        self._client.subscribe(f"line/{line}/verdicts/+", qos=1)
        assert subscribed.wait(5), "no SUBACK"

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        at = time.time()  # before the validation, which takes a while
        verdict = json.loads(msg.payload)
        try:  # raised here, it would only stop paho's thread: kept for the test to assert on
            VALIDATOR.validate(verdict)
            if not msg.topic.endswith(f"/verdicts/{verdict['camera']}"):
                raise ValueError(f"{msg.topic} for camera {verdict['camera']}")
        except (jsonschema.ValidationError, ValueError) as exc:
            self.errors.append(str(exc))
        with self._cond:
            self.arrivals.append(Arrival(at, verdict))
            self._cond.notify_all()

    def wait_for(self, n: int, timeout: float = 30) -> list[dict[str, Any]]:
        with self._cond:
            self._cond.wait_for(lambda: len(self.arrivals) >= n, timeout)
            return [arrival.verdict for arrival in self.arrivals]

    def settle(self, quiet_s: float = 1.0, timeout: float = 30) -> list[dict[str, Any]]:
        """Everything, once nothing new came for ``quiet_s``."""
        end = time.monotonic() + timeout
        with self._cond:
            count = -1
            while count != len(self.arrivals) and time.monotonic() < end:
                count = len(self.arrivals)
                self._cond.wait(quiet_s)
            return [arrival.verdict for arrival in self.arrivals]

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def stamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def first_verdicts(verdicts: list[dict[str, Any]], camera: str) -> list[dict[str, Any]]:
    """Each part's first verdict on ``camera``, in arrival order."""
    seen: set[str] = set()
    firsts = []
    for verdict in verdicts:
        if verdict["camera"] == camera and verdict["event_id"] not in seen:
            seen.add(verdict["event_id"])
            firsts.append(verdict)
    return firsts
