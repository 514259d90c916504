"""The verdict tracker, the outbox's topic column, labelled sink metrics and the [verdicts]
and [opcua] sections: in process, on real frames, queues, SQLite files and a real broker."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.registry import Collector

from inspector.capture.frame_queue import FrameQueue, QueuePolicy
from inspector.config import VerdictsSettings
from inspector.pipeline.verdict_stage import VerdictStage
from inspector.pipeline.verdicts import VerdictTracker
from inspector.publishing.outbox import Outbox
from inspector.service.metrics import _sink_families
from inspector.sinks.fanout import FanOut
from inspector.sinks.opcua import OpcUaSettings
from inspector.types.frames import Frame, utc_now
from inspector.types.results import FrameResult, Region


def frame(frame_id: int, camera: str = "cam0", part_id: int | None = None) -> Frame:
    image = np.zeros((4, 4, 3), np.uint8)
    return Frame(camera, frame_id, image, utc_now(), time.monotonic_ns(), part_id)


def result(f: Frame, classes: tuple[str, ...] = (), tiles: int = 6) -> FrameResult:
    regions = tuple(Region(c, 0.9, (0, 0, 4, 4), ((0, 0),)) for c in classes)
    return FrameResult(f, regions, None, 1.0, tiles, event_id=f"l/{f.camera_id}/r/{f.frame_id}")


class Stream:
    def __init__(self) -> None:
        self.verdicts: list[dict[str, Any]] = []
        self.at: list[int] = []
        self.cond = threading.Condition()

    def __call__(self, verdict: dict[str, Any]) -> None:
        with self.cond:
            self.verdicts.append(verdict)
            self.at.append(time.monotonic_ns())
            self.cond.notify_all()

    def wait(self, n: int, timeout: float = 5) -> list[tuple[str, int, str]]:
        with self.cond:
            self.cond.wait_for(lambda: len(self.verdicts) >= n, timeout)
            return [(v["camera"], v["frame_id"], v["verdict"]) for v in self.verdicts]


def track(tracker: VerdictTracker, f: Frame) -> Frame:
    tracker.captured(f, f"l/{f.camera_id}/r/{f.frame_id}")
    return f


def test_verdicts_leave_in_frame_order_whatever_order_results_come_in() -> None:
    stream = Stream()
    tracker = VerdictTracker("l", None, "reject", stream)
    a, b, c = (track(tracker, frame(i)) for i in range(3))
    other = track(tracker, frame(0, camera="cam1"))
    tracker.result(result(b, ("crack",)))
    tracker.result(result(c))
    assert stream.verdicts == []  # frame 0 holds them back: the PLC counts parts in order
    tracker.result(result(other))  # another camera is not held back by cam0
    tracker.result(result(a))
    assert stream.wait(4) == [("cam1", 0, "ok"), ("cam0", 0, "ok"), ("cam0", 1, "nok"),
                              ("cam0", 2, "ok")]  # fmt: skip
    nok = stream.verdicts[2]
    assert nok["classes"] == ["crack"] and nok["action"] == "reject" and nok["late"] is False
    tracker.close()
    assert tracker.pending == 0


def test_a_missed_deadline_sends_late_at_the_deadline_then_the_real_verdict() -> None:
    stream = Stream()
    tracker = VerdictTracker("l", 50, "pass", stream)
    slow = track(tracker, frame(0, part_id=41))
    quick = track(tracker, frame(1, part_id=42))
    tracker.result(result(quick))  # ready in time, but its part comes after frame 0's
    assert stream.wait(2) == [("cam0", 0, "late"), ("cam0", 1, "ok")]
    late_ms = (stream.at[0] - slow.captured_ns) / 1e6
    assert 50 <= late_ms < 50 + 250  # by the timer thread, never waiting for the result
    assert stream.verdicts[0]["action"] == "pass" and stream.verdicts[0]["part_id"] == 41
    assert stream.verdicts[1]["late"] is False and stream.verdicts[1]["part_id"] == 42
    tracker.result(result(slow, ("stain",)))
    assert stream.wait(3)[2] == ("cam0", 0, "nok")
    assert stream.verdicts[2]["late"] is True and stream.verdicts[2]["classes"] == ["stain"]
    tracker.close()
    assert len(stream.verdicts) == 3  # nothing more at close


def test_a_dropped_frame_is_late_and_a_run_that_ends_undecided_sends_late() -> None:
    stream = Stream()
    tracker = VerdictTracker("l", None, "reject", stream)
    queue = FrameQueue(
        1, QueuePolicy.DROP_OLDEST, None,
        lambda f: tracker.captured(f, f"l/cam0/r/{f.frame_id}"), tracker.dropped,
    )  # fmt: skip
    first, second = frame(0), frame(1)
    queue.put(first)
    queue.put(second)  # the queue drops frame 0: that part passes uninspected
    assert stream.wait(1) == [("cam0", 0, "late")]
    assert stream.verdicts[0]["dropped"] is True and stream.verdicts[0]["inspected"] is False
    tracker.close()  # frame 1 never came out of inference
    assert stream.wait(2)[1] == ("cam0", 1, "late")
    assert "dropped" not in stream.verdicts[1]


def test_a_blocking_queue_that_stops_gives_up_the_frame_it_holds() -> None:
    stream = Stream()
    tracker = VerdictTracker("l", None, "reject", stream)
    queue = FrameQueue(
        1, QueuePolicy.BLOCK, None,
        lambda f: tracker.captured(f, f"l/cam0/r/{f.frame_id}"), tracker.dropped,
    )  # fmt: skip
    stop = threading.Event()
    queue.put(frame(0))
    stop.set()
    assert queue.put(frame(1), stop) is False  # full and stopping: frame 1 is refused
    tracker.result(result(queue.get_nowait() or frame(9)))
    assert stream.wait(2) == [("cam0", 0, "ok"), ("cam0", 1, "late")]
    tracker.close()


def test_a_frame_with_nothing_to_inspect_is_ok_and_uninspected() -> None:
    stream = Stream()
    tracker = VerdictTracker("l", None, "reject", stream)
    tracker.result(result(frame(7), tiles=0))  # also: a result the tracker never saw captured
    assert stream.wait(1) == [("cam0", 7, "ok")]
    assert stream.verdicts[0]["inspected"] is False and tracker.unmatched == 1
    tracker.close()


def test_verdicts_reach_the_carriers_and_are_counted_for_metrics() -> None:
    class Carrier:
        name, lossless = "carrier", True

        def __init__(self) -> None:
            self.verdicts: list[dict[str, Any]] = []

        def verdict(self, verdict: dict[str, Any]) -> None:
            self.verdicts.append(dict(verdict))

        def frame_result(self, result: FrameResult) -> None: ...
        def camera_status(self, camera: str, status: Any) -> None: ...
        def stats(self, stats: Any) -> None: ...
        def health(self) -> Any: ...
        def close(self) -> None: ...

    carrier = Carrier()
    fanout = FanOut([carrier])  # type: ignore[list-item]
    verdicts = VerdictStage(VerdictsSettings(enabled=True), "l", ["cam0"], fanout.verdict)
    frames = [frame(i) for i in range(3)]
    for f in frames:
        verdicts.captured(f, f"l/cam0/r/{f.frame_id}")
    for f, classes in zip(frames, [(), ("crack", "crack"), ("stain",)], strict=True):
        verdicts.result(result(f, classes))
    verdicts.close()
    fanout.close()
    assert [v["verdict"] for v in carrier.verdicts] == ["ok", "nok", "nok"]
    assert carrier.verdicts[1]["classes"] == ["crack"]  # each class once per part

    registry = CollectorRegistry()

    class Figures(Collector):
        def collect(self) -> Any:
            return _sink_families("line1", [verdicts.metrics()])

    registry.register(Figures())
    text = generate_latest(registry).decode()
    assert 'inspector_parts_total{camera="cam0",line="line1",verdict="nok"} 2.0' in text
    assert 'inspector_parts_total{camera="cam0",line="line1",verdict="late"} 0.0' in text
    assert 'inspector_defects_total{camera="cam0",class="crack",line="line1"} 2.0' in text
    assert text.count("# TYPE inspector_parts_total counter") == 1  # one family, many rows


def test_an_outbox_from_before_verdicts_gets_its_topic_column_and_keeps_its_rows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "outbox.sqlite"
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
        "event_id TEXT NOT NULL UNIQUE, payload BLOB NOT NULL)"
    )
    old.execute("INSERT INTO events (event_id, payload) VALUES ('e1', x'7b7d')")
    old.commit()
    old.close()
    outbox = Outbox(path, 10)
    assert outbox.messages() == [("e1", b"{}", None)]  # a defect event, as before
    assert outbox.put("e1/verdict", b"[]", "line/l/verdicts/cam0")
    outbox.close()
    reopened = Outbox(path, 10)
    assert reopened.messages() == [
        ("e1", b"{}", None),
        ("e1/verdict", b"[]", "line/l/verdicts/cam0"),
    ]
    assert reopened.backlog() == [("e1", b"{}"), ("e1/verdict", b"[]")]
    reopened.close()


def test_the_sections_say_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="no way to log in"):
        OpcUaSettings(enabled=True)
    with pytest.raises(ValueError, match="username and password together"):
        OpcUaSettings(enabled=True, username="plc")
    with pytest.raises(ValueError, match="need the server's certificate"):
        OpcUaSettings(enabled=True, username="u", password="p", trusted_certificates=["c.der"])
    assert OpcUaSettings().enabled is False  # off by default, and valid so
    assert OpcUaSettings(enabled=True, allow_anonymous=True).port == 4840
    with pytest.raises(ValueError, match="greater than 0"):
        VerdictsSettings(enabled=True, deadline_ms=0)
    with pytest.raises(ValueError, match="'reject' or 'pass'"):
        VerdictsSettings(enabled=True, on_late="eject")  # type: ignore[arg-type]
