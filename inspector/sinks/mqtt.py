"""The MQTT sink: defect events (through the durable outbox when it is on), camera status
and stats to the broker. Its health is the broker's and the outbox's."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from inspector.publishing.mqtt import MqttPublisher
from inspector.publishing.outbox import DurableSink, Outbox
from inspector.sinks.base import FrameResult, SinkHealth


class MqttSink:
    name = "mqtt"
    lossless = True  # events are the line's record: never dropped for speed

    def __init__(self, publisher: MqttPublisher, durable: DurableSink | None) -> None:
        self.publisher = publisher
        self._target: MqttPublisher | DurableSink = durable or publisher
        self._outbox: Outbox | None = durable.outbox if durable is not None else None

    def frame_result(self, result: FrameResult) -> None:
        if result.event is not None:
            self._target.publish_event(result.event)

    def camera_status(self, camera: str, status: Mapping[str, Any]) -> None:
        self._target.publish_camera_status(camera, status)

    def stats(self, stats: Mapping[str, Any]) -> None:
        self._target.publish_stats(stats)

    def health(self) -> SinkHealth:
        reasons: list[str] = []
        if not self.publisher.connected:
            why = self.publisher.down_reason
            reasons.append(f"broker: down ({why})" if why else "broker: down")
        outbox = self._outbox
        if outbox is not None and outbox.write_errors:
            reasons.append(f"outbox: {outbox.write_errors} events could not be written")
        if outbox is not None and outbox.undeletable:
            reasons.append(f"outbox: {outbox.undeletable} acknowledged rows could not be deleted")
        return SinkHealth("degraded", "; ".join(reasons)) if reasons else SinkHealth()

    def close(self) -> None:
        pass  # the daemon waits for the broker's acks, then closes the publisher
