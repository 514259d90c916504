"""Stop signals: any number of SIGINT/SIGTERM, at any moment, stop the daemon and lose nothing.

The reported fault: a second SIGTERM that arrived while the first handler was inside
``Pipeline.stop`` -> ``Event.set`` waited on the lock its own thread held, forever.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from inspector.errors import EX_UNAVAILABLE
from inspector.service.stop_signals import StopSignals
from tests.fixtures.line import FRAMES, TILE, write_config, write_video
from tests.fixtures.models import build_color_model
from tests.fixtures.processes import start_daemon

pytestmark = pytest.mark.e2e


def test_signals_while_the_main_thread_holds_the_stop_lock_do_not_deadlock() -> None:
    """The reported stack, made certain: the handler runs on the main thread while that thread
    is inside the stop's ``Event.set`` (holding the Event's lock). The handler may take no lock;
    the stop, the hurry and the count happen on the reader's thread once the lock is free."""
    stop_event = threading.Event()
    hurried = threading.Event()
    signals = StopSignals(on_stop=stop_event.set, on_hurry=hurried.set)
    before = signal.getsignal(signal.SIGTERM)
    try:
        with signals.installed():
            with stop_event._cond:  # type: ignore[attr-defined]  # what Event.set holds
                for _ in range(3):
                    signal.raise_signal(signal.SIGTERM)
                    time.sleep(0.05)  # three signals apart, each handled on its own
                assert not stop_event.is_set()  # the reader waits for the lock, not the handler
            assert stop_event.wait(2) and hurried.wait(2)
            deadline = time.monotonic() + 2
            while signals.received < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert signals.received == 3
        # Stopping: a late signal of the same burst is ignored, not a kill of this process.
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
        signal.raise_signal(signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, before)


def test_without_a_signal_the_previous_handlers_come_back() -> None:
    before = signal.getsignal(signal.SIGINT)
    with StopSignals(on_stop=lambda: None, on_hurry=lambda: None).installed():
        assert signal.getsignal(signal.SIGINT) is not before
    assert signal.getsignal(signal.SIGINT) is before


@pytest.fixture()
def line_setup(tmp_path: Path) -> Path:
    build_color_model(tmp_path / "m.onnx", size=TILE)
    write_video(tmp_path / "line.mp4")
    return tmp_path


def _start_daemon(config: Path) -> subprocess.Popen[str]:
    # Paced at the file's 10 fps, the recording takes >1 s: the signals come mid-run.
    text = config.read_text().replace('source = "line.mp4"', 'source = "line.mp4"\nrealtime = true')
    config.write_text(text)
    return start_daemon(config)


def _signal_burst(daemon: subprocess.Popen[str], count: int) -> None:
    """``count`` SIGTERMs within 10 ms, as ``timeout`` or a repeated ``kill`` sends them."""
    for _ in range(count):
        os.kill(daemon.pid, signal.SIGTERM)
        time.sleep(0.004)


def _wait_for_start(stderr_lines: list[str], daemon: subprocess.Popen[str]) -> None:
    assert daemon.stderr is not None
    for line in daemon.stderr:
        stderr_lines.append(line)
        if "pipeline_started" in line:
            return
    raise AssertionError("the daemon ended before it started: " + "".join(stderr_lines))


@pytest.mark.parametrize("count", [2, 3])
def test_a_burst_of_sigterms_stops_cleanly_and_delivers_everything(
    count: int,
    line_setup: Path,
    mosquitto: Any,
    mqtt_messages: Any,
) -> None:
    line = f"sig{uuid.uuid4().hex[:8]}"
    config = write_config(line_setup, mosquitto.port, line=line)
    events = mqtt_messages(f"line/{line}/defects")
    status = mqtt_messages(f"line/{line}/status")
    daemon = _start_daemon(config)
    stderr: list[str] = []
    _wait_for_start(stderr, daemon)
    time.sleep(0.4)  # a few frames in
    _signal_burst(daemon, count)
    stdout, rest = daemon.communicate(timeout=30)
    stderr.append(rest)
    assert daemon.returncode == 0, "".join(stderr)
    assert "Traceback" not in "".join(stderr)
    summary = json.loads(stdout)
    assert 0 < summary["frames_inferred"] < FRAMES
    assert summary["frames_inferred"] == summary["frames_captured"]  # nothing queued was lost
    if summary["events"]:
        assert len(events.wait_for(summary["events"])) == summary["events"]
    assert [payload for _t, payload, _r in status.wait_for(2)] == [b"online", b"offline"]
    assert "".join(stderr).count('"stop_requested"') == 1


def test_a_third_sigterm_stops_the_wait_for_a_broker_that_is_down_and_keeps_the_events(
    line_setup: Path,
    unused_port: int,
) -> None:
    """The broker is down: the first SIGTERM would wait ``ack_timeout_s`` (60 s here) for it;
    the third ends that wait, and every event stays in the outbox for the next start."""
    config = write_config(line_setup, unused_port)
    config.write_text(config.read_text().replace("[mqtt]\n", "[mqtt]\nack_timeout_s = 60\n"))
    daemon = _start_daemon(config)
    stderr: list[str] = []
    _wait_for_start(stderr, daemon)
    time.sleep(0.9)  # frame 2 (a defect) is in
    started = time.monotonic()
    _signal_burst(daemon, 3)
    stdout, rest = daemon.communicate(timeout=30)
    stderr.append(rest)
    took = time.monotonic() - started
    assert daemon.returncode == EX_UNAVAILABLE, "".join(stderr)
    assert took < 20, f"exited {took:.1f} s after the third signal"
    assert "kept in the outbox" in rest and "Traceback" not in rest
    summary = json.loads(stdout)  # a failed run still says what it inspected, and how it ended
    assert summary["events"] > 0 and summary["exit_code"] == EX_UNAVAILABLE
    assert "kept in the outbox" in summary["error"]
    outbox = line_setup / "state" / "line1-outbox.sqlite"
    with sqlite3.connect(outbox) as db:
        (kept,) = db.execute(
            "SELECT count(*) FROM events WHERE event_id NOT LIKE '%/verdict' "
            "AND event_id NOT LIKE '%/late'"
        ).fetchone()
    assert kept == summary["events"]
