"""The sink plugin point: a sink added from one file gets every frame result, and a sink
that raises or stalls costs only itself (MQTT delivery stays complete)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inspector.config import load_settings
from inspector.daemon import run_pipeline
from inspector.errors import BrokerError, ConfigError
from inspector.publishing.settings import MqttSettings
from inspector.sinks import FanOut
from inspector.sinks.registry import register, sink_plugins, unregister
from inspector.types.frames import Frame, utc_now
from inspector.types.results import FrameResult, SinkHealth, SinkMetric
from tests.fixtures.faults import write_line
from tests.fixtures.mqtt import Broker, Collector
from tests.fixtures.net import free_port
from tests.fixtures.recording_sink import PLUGIN, RecordingSink

pytestmark = pytest.mark.e2e


@pytest.fixture
def recording_plugin() -> Iterator[None]:
    register(PLUGIN)
    RecordingSink.opened.clear()
    yield
    unregister(PLUGIN.name)


def lossless_config(tmp_path: Path, port: int, frames: int, extra: str = "") -> tuple[Path, str]:
    config, line, _ = write_line(tmp_path, port, frames=frames, fps=10)
    config.write_text(config.read_text().replace("realtime = true", "realtime = false") + extra)
    return config, line


class FailingSink:
    name, lossless = "failing", False

    def __init__(self) -> None:
        self.calls = 0

    def _fail(self, *_: Any) -> None:
        self.calls += 1
        raise RuntimeError("this sink always fails")

    frame_result = camera_status = stats = _fail

    def health(self) -> SinkHealth:
        return SinkHealth("down", "always fails")

    def close(self) -> None:
        raise RuntimeError("and fails to close")


class SlowSink:
    name, lossless = "slow", False

    def __init__(self, seconds: float) -> None:
        self.seconds, self.handled = seconds, 0

    def frame_result(self, result: FrameResult) -> None:
        time.sleep(self.seconds)
        self.handled += 1

    def camera_status(self, camera: str, status: Mapping[str, Any]) -> None:
        time.sleep(self.seconds)

    def stats(self, stats: Mapping[str, Any]) -> None:
        time.sleep(self.seconds)

    def health(self) -> SinkHealth:
        return SinkHealth()

    def close(self) -> None:
        pass


def test_a_sink_from_one_file_gets_every_frame_result(
    tmp_path: Path, mosquitto: Broker, recording_plugin: None
) -> None:
    frames = 24
    config, _ = lossless_config(tmp_path, mosquitto.port, frames, "[recording]\nenabled = true\n")
    settings = load_settings(config)
    summary = run_pipeline(settings)
    (sink,) = RecordingSink.opened
    assert sink.closed.is_set() and sink.line == settings.line.id
    assert [r.frame.frame_id for r in sink.results] == list(range(frames))  # in frame order
    with_events = [r for r in sink.results if r.event is not None]
    assert len(with_events) == summary.events > 0
    assert all(r.verdict == "nok" and r.regions for r in with_events)
    assert all(r.verdict == "ok" and not r.regions for r in sink.results if r.event is None)
    assert ("cam0", "up") in sink.statuses and sink.stats_seen >= 1


def test_a_plugin_section_is_off_by_default_and_checked(
    tmp_path: Path, recording_plugin: None
) -> None:
    config, _ = lossless_config(tmp_path, 1883, 2)
    assert load_settings(config).recording.enabled is False  # type: ignore[attr-defined]
    config.write_text(config.read_text() + '[recording]\nenabled = true\nlabl = "x"\n')
    with pytest.raises(ConfigError, match=r"recording\.labl: unknown key"):
        load_settings(config)
    unregister(PLUGIN.name)
    with pytest.raises(ConfigError, match=r"recording: unknown key"):
        load_settings(config)  # no such sink installed: the section is a mistake


def test_a_failing_and_a_slow_sink_leave_mqtt_delivery_complete(
    tmp_path: Path, mosquitto: Broker
) -> None:
    config, line = lossless_config(tmp_path, mosquitto.port, frames=40)
    collector = Collector(mosquitto.host, mosquitto.port, f"line/{line}/defects")
    failing, slow = FailingSink(), SlowSink(seconds=1.0)
    try:
        summary = run_pipeline(load_settings(config), extra_sinks=[failing, slow])
        received = collector.wait_for(summary.events, timeout=10)
    finally:
        collector.close()
    assert summary.frames_inferred == 40 and summary.events == 10
    ids = sorted(m.payload.decode().split('"event_id":"')[1].split('"')[0] for m in received)
    assert len(ids) == len(set(ids)) == summary.events
    assert failing.calls >= 40  # it was called for every frame, and it never stopped the run
    assert slow.handled < 40  # it could not keep up, and lost work instead of slowing the rest


def result(frame_id: int) -> FrameResult:
    frame = Frame("cam0", frame_id, np.zeros((4, 4, 3), np.uint8), utc_now(), time.monotonic_ns())
    return FrameResult(frame, (), None, 1.0, 1)


def test_the_fan_out_counts_errors_and_drops_per_sink() -> None:
    gate = threading.Event()

    class Blocked(SlowSink):
        def frame_result(self, result: FrameResult) -> None:
            gate.wait(10)
            self.handled += 1

    failing, blocked = FailingSink(), Blocked(0.0)
    fanout = FanOut([failing, blocked])
    for i in range(300):  # more than a sink's queue holds
        fanout.frame_result(result(i))
    gate.set()
    fanout.close(timeout=10)
    (errors, failing_dropped), (blocked_errors, dropped) = fanout.counters().values()
    assert errors + failing_dropped == 301 and errors > 1  # 300 results and the close
    assert blocked_errors == 0 and dropped > 0 and blocked.handled + dropped == 300
    assert fanout.health()["failing"].state == "down"
    with pytest.raises(ValueError, match="unique"):
        FanOut([failing, failing])


def test_mqtt_is_a_sink_plugin_and_a_line_can_run_without_it(
    tmp_path: Path, recording_plugin: None
) -> None:
    assert sink_plugins()["mqtt"].settings is MqttSettings
    config, _ = lossless_config(tmp_path, free_port(), frames=12)  # nothing listens there
    assert load_settings(config).mqtt.enabled is True  # on by default, as before plugins
    text = config.read_text().replace("[mqtt]\n", "[mqtt]\nenabled = false\n")
    config.write_text(text + "[recording]\nenabled = true\n")
    settings = load_settings(config)
    summary = run_pipeline(settings)  # no broker needed: no sink wants one
    (sink,) = RecordingSink.opened
    assert [r.frame.frame_id for r in sink.results] == list(range(12))
    assert summary.events == sum(r.event is not None for r in sink.results) > 0
    assert settings.outbox.path is not None and not settings.outbox.path.exists()


class Measured(SlowSink):
    def __init__(self, name: str, outcome: Exception | None = None) -> None:
        super().__init__(0.0)
        self.name, self.outcome, self.closed = name, outcome, False

    def metrics(self) -> list[SinkMetric]:
        if self.outcome is not None:
            raise RuntimeError("no figures today")
        return [SinkMetric(f"inspector_{self.name}_things", "Things", "counter", 3.0)]

    def close(self) -> None:
        self.closed = True
        if self.outcome is not None:
            raise self.outcome


def test_the_fan_out_reports_sink_figures_and_raises_what_a_sink_could_not_deliver() -> None:
    undelivered = BrokerError("2 events not acknowledged")
    good, bad, after = Measured("good"), Measured("bad", undelivered), Measured("after")
    good.lossless = True  # a lossless sink never drops, so it has no drop counter
    fanout = FanOut([good, bad, after, FailingSink()])
    figures = {name: [f.name for f in found] for name, found in fanout.metrics().items()}
    assert figures == {
        "good": ["inspector_good_things"],
        "bad": ["inspector_bad_dropped"],  # its own figures failed: left out, drops still count
        "after": ["inspector_after_dropped", "inspector_after_things"],
        "failing": ["inspector_failing_dropped"],
    }
    with pytest.raises(BrokerError, match="2 events not acknowledged"):
        fanout.close(timeout=5)
    assert good.closed and bad.closed and after.closed  # every sink closed before raising
    fanout.close()  # a second close does nothing, and raises nothing
