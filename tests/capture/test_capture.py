"""Capture: source selection, recordings (frame ids, pacing, errors), live reconnection."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from inspector.capture.capture_thread import CaptureThread
from inspector.capture.frame_queue import FrameQueue, QueuePolicy
from inspector.capture.source import Grab
from inspector.capture.sources.base import SourceSettings
from inspector.capture.sources.file import VideoFileSource
from inspector.capture.sources.registry import create_source, parse_camera_settings
from inspector.capture.sources.rtsp import RtspSource
from inspector.capture.sources.usb import UsbSource
from inspector.errors import SourceError
from tests.fixtures.videos import write_video


def camera(source: str, **extra: object) -> SourceSettings:
    return parse_camera_settings(id="cam0", source=source, **extra)


def write_numbered(path: Path, frames: int, fps: float = 20.0) -> None:
    """Frame i all gray level 10 i: which frame was read shows."""
    write_video(path, (np.full((48, 64, 3), index * 10, np.uint8) for index in range(frames)), fps)


def drain(frames: FrameQueue) -> list[int]:
    ids = []
    while (frame := frames.get_nowait()) is not None:
        ids.append(frame.frame_id)
    return ids


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("0", UsbSource),
        ("/dev/video3", UsbSource),
        ("rtsp://10.0.0.5/stream1", RtspSource),
        ("http://10.0.0.5/video.mjpg", RtspSource),
        ("/data/line.mp4", VideoFileSource),
        ("line.mkv", VideoFileSource),
    ],
)
def test_source_type_follows_the_form_of_source(source: str, kind: type) -> None:
    assert isinstance(create_source(camera(source)), kind)


def test_unknown_url_scheme_is_refused() -> None:
    with pytest.raises(ValidationError, match="unsupported source URL scheme: ftp://x"):
        camera("ftp://x")


def test_absent_usb_camera_fails_to_open_with_its_name() -> None:
    source = create_source(camera("/dev/video63"))  # no such device on a CI machine
    with pytest.raises(SourceError, match="camera cam0: cannot open /dev/video63"):
        source.open()


def test_recording_plays_every_frame_with_its_index(tmp_path: Path) -> None:
    write_numbered(tmp_path / "v.mp4", 15)
    source = create_source(camera(str(tmp_path / "v.mp4")))
    source.open()
    assert not source.live and not source.paced
    frames = FrameQueue(100, QueuePolicy.BLOCK)
    thread = CaptureThread("cam0", source, frames, threading.Event())
    thread.run()  # in this thread: ends with the recording
    assert drain(frames) == list(range(15))
    assert frames.finished
    assert thread.error is None


def test_a_looping_recording_plays_again_with_ids_counting_on(tmp_path: Path) -> None:
    write_numbered(tmp_path / "v.mp4", 5)
    source = create_source(camera(str(tmp_path / "v.mp4"), loop=True))
    source.open()
    grabs = [source.grab() for _ in range(12)]
    source.close()
    assert [g.frame_id for g in grabs if g is not None] == list(range(12))
    assert np.array_equal(grabs[5].image, grabs[0].image)  # pass 2 starts at the first frame


def test_realtime_recording_is_paced_at_its_frame_rate(tmp_path: Path) -> None:
    write_numbered(tmp_path / "v.mp4", 10, fps=20.0)  # 10 frames at 20 fps: >= 0.45 s
    source = create_source(camera(str(tmp_path / "v.mp4"), realtime=True))
    assert source.paced
    source.open()
    frames = FrameQueue(100, QueuePolicy.BLOCK)
    started = time.monotonic()
    CaptureThread("cam0", source, frames, threading.Event()).run()
    assert time.monotonic() - started >= 0.44
    assert len(drain(frames)) == 10


class UnpluggedCamera:
    """Stands in for a USB camera (none exists on CI) that is unplugged after 3 frames."""

    description = "test camera"
    live = True
    paced = False
    lost = 0

    def __init__(self) -> None:
        self.grabs = 0
        self.opens = 0
        self.is_open = False

    def open(self) -> None:
        self.opens += 1
        self.is_open = self.opens != 2
        if self.opens == 2:
            raise SourceError("camera cam0: cannot open test camera")

    def grab(self) -> Grab | None:
        self.grabs += 1
        if self.grabs == 4:
            raise SourceError("camera cam0: test camera delivered no frame")
        return Grab(np.zeros((4, 4, 3), np.uint8))

    def nominal_fps(self) -> float | None:
        return None

    def close(self) -> None:
        pass


def test_live_source_reconnects_and_frame_ids_never_go_backwards() -> None:
    source = UnpluggedCamera()
    source.open()  # as the pipeline does before it starts the thread
    frames = FrameQueue(100, QueuePolicy.DROP_OLDEST)
    stop = threading.Event()
    thread = CaptureThread("cam0", source, frames, stop)
    thread.start()
    deadline = time.monotonic() + 10
    while frames.accepted < 6 and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    thread.join(timeout=5)
    ids = drain(frames)
    assert len(ids) >= 6
    assert ids == sorted(set(ids)), "frame ids must strictly increase across a reconnect"
    assert source.opens >= 3  # the failed reopen was retried with backoff
    assert thread.errors >= 2
