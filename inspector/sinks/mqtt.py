"""The MQTT sink: defect events (through the durable outbox when it is on), camera status
and stats to the broker, configured by ``[mqtt]`` (on by default); its durable outbox
(``[outbox]``) is opened for it by the daemon, through its context.

Its health is the broker's and the outbox's; its close waits up to ``mqtt.ack_timeout_s``
for the broker to acknowledge every event, including those still on disk because the
broker has not been reached yet, and reports what it could not deliver.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from typing import Any

from inspector.errors import BrokerError, StorageError
from inspector.evidence.pictures import annotate_frame, encode_jpeg
from inspector.publishing.acks import AckListener
from inspector.publishing.mqtt import MqttPublisher
from inspector.publishing.outbox import DurableSink, Outbox
from inspector.publishing.settings import MqttSettings
from inspector.publishing.topics import verdicts_topic
from inspector.sinks.base import SinkContext
from inspector.sinks.registry import SinkPlugin
from inspector.types.results import FrameResult, SinkHealth, SinkMetric, Verdict


class MqttSink:
    name = "mqtt"
    lossless = True  # events are the line's record: never dropped for speed

    def __init__(self, settings: MqttSettings, line_id: str, outbox: Outbox | None) -> None:
        self.settings = settings
        self.line_id = line_id
        self.publisher = MqttPublisher(settings, line_id, on_ack=self._acknowledged)
        self.outbox = outbox
        self._durable = DurableSink(self.publisher, outbox) if outbox is not None else None
        self._target: MqttPublisher | DurableSink = self._durable or self.publisher
        self._listeners: list[AckListener] = []
        self._snapshot_at: dict[str, float] = {}  # camera -> time.monotonic() of its last
        self._stop_waiting = threading.Event()

    @classmethod
    def open(cls, settings: MqttSettings, context: SinkContext) -> MqttSink:
        """Open the outbox and the connection; raise ConfigError for what no retry heals, and
        BrokerError for a broker that is down when there is no outbox to wait in."""
        outbox = context.open_outbox() if context.open_outbox is not None else None
        sink = cls(settings, context.line_id, outbox)
        try:
            if sink._durable is None:
                sink.publisher.connect()  # nowhere to keep events: the broker must be there
            else:
                # With the outbox, a broker that is down at start is an outage like any
                # other: inspect, keep the events on disk, deliver them (oldest first) once
                # it answers.
                sink.publisher.connect_in_background(sink._durable.go_live)
        except BaseException:
            sink.publisher.close()
            if outbox is not None:
                outbox.close()
            raise
        return sink

    def _acknowledged(self, event_id: str, acked_ns: int) -> None:
        if self.outbox is not None:
            self.outbox.remove_acked(event_id, acked_ns)
        for listener in self._listeners:
            listener(event_id, acked_ns)

    def add_ack_listener(self, listener: AckListener) -> None:
        self._listeners.append(listener)

    def frame_result(self, result: FrameResult) -> None:
        if result.event is not None:
            self._target.publish_event(result.event)
            self._snapshot(result)

    def verdict(self, verdict: Verdict) -> None:
        """One part's verdict on ``line/<line>/verdicts/<camera>``, QoS 1, through the outbox
        like an event (a late verdict and the real one that follows are two messages)."""
        payload = json.dumps(verdict, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        kind = "late" if verdict["verdict"] == "late" else "verdict"
        key = f"{verdict['event_id']}/{kind}"
        topic = verdicts_topic(self.line_id, str(verdict["camera"]))
        if self._durable is not None:
            self._durable.publish_message(key, payload.encode(), topic)
        else:
            self.publisher.publish_payload(key, payload.encode(), topic)

    def _snapshot(self, result: FrameResult) -> None:
        """The latest annotated defect frame, retained, at most once per interval per camera:
        encoding is the costly part, and a dashboard wants the newest picture, not each."""
        interval, camera = self.settings.snapshot_interval_s, result.frame.camera_id
        now = time.monotonic()
        if not interval or now - self._snapshot_at.get(camera, -interval) < interval:
            return
        self._snapshot_at[camera] = now
        picture = annotate_frame(result.frame.image, result.regions, self.settings.snapshot_width)
        self.publisher.publish_snapshot(camera, encode_jpeg(picture))

    def camera_status(self, camera: str, status: Mapping[str, Any]) -> None:
        self._target.publish_camera_status(camera, status)

    def stats(self, stats: Mapping[str, Any]) -> None:
        self._target.publish_stats(stats)

    def health(self) -> SinkHealth:
        reasons: list[str] = []
        if not self.publisher.connected:
            why = self.publisher.down_reason
            reasons.append(f"broker: down ({why})" if why else "broker: down")
        outbox = self.outbox
        if outbox is not None and outbox.write_errors:
            reasons.append(f"outbox: {outbox.write_errors} events could not be written")
        if outbox is not None and outbox.undeletable:
            reasons.append(f"outbox: {outbox.undeletable} acknowledged rows could not be deleted")
        return SinkHealth("degraded", "; ".join(reasons)) if reasons else SinkHealth()

    def metrics(self) -> list[SinkMetric]:
        figures = [
            SinkMetric("inspector_broker_connected", "1 while connected to the MQTT broker",
                       "gauge", int(self.publisher.connected)),
            SinkMetric("inspector_events_unacknowledged", "Events the broker has not acked yet",
                       "gauge", self.publisher.acks.pending),
        ]  # fmt: skip
        if self.outbox is not None:
            figures += [
                SinkMetric("inspector_outbox_backlog", "Events on disk awaiting an ack",
                           "gauge", len(self.outbox)),
                SinkMetric("inspector_outbox_dropped",
                           "Events given up because the outbox was full",
                           "counter", self.outbox.dropped),
                SinkMetric("inspector_outbox_write_errors",
                           "Events that could not be written to the outbox (disk full, I/O "
                           "error)", "counter", self.outbox.write_errors),
            ]  # fmt: skip
        return figures

    def close(self) -> None:
        """Wait for the broker's acks, then disconnect and close the outbox; raise what was
        not delivered (BrokerError) or not kept (StorageError)."""
        try:
            self._wait_for_delivery()
        finally:
            self.publisher.close()
            write_errors = self.outbox.write_errors if self.outbox is not None else 0
            if self.outbox is not None:
                self.outbox.close()
        if write_errors and self.outbox is not None:
            raise StorageError(
                f"{self.outbox.path}: {write_errors} events could not be written to the "
                "outbox (disk full or failing); those not acknowledged by the broker are lost"
            )

    def stop_waiting(self) -> None:
        """End the wait for acks, where the outbox keeps what is undelivered for the next
        start; without an outbox those events exist only in memory, so the wait goes on."""
        if self._durable is not None:
            self._stop_waiting.set()

    def _wait_for_delivery(self) -> None:
        deadline = time.monotonic() + self.settings.ack_timeout_s
        durable = self._durable

        def waiting() -> bool:
            return time.monotonic() < deadline and not self._stop_waiting.is_set()

        while durable is not None and durable.unsent() and waiting():
            time.sleep(0.05)
        pending = self.publisher.acks.pending
        while pending and waiting():
            pending = self.publisher.wait_for_acks(min(0.1, max(0.0, deadline - time.monotonic())))
        pending += durable.unsent() if durable is not None else 0
        if pending:
            where = f"{self.settings.host}:{self.settings.port}"
            kept = " (kept in the outbox for the next start)" if durable is not None else ""
            within = (
                "before the stop was hurried"
                if self._stop_waiting.is_set()
                else f"within {self.settings.ack_timeout_s:g} s"
            )
            raise BrokerError(f"{pending} events not acknowledged by {where} {within}{kept}")


PLUGIN = SinkPlugin("mqtt", MqttSettings, MqttSink.open)
