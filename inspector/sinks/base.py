"""The one interface every sink implements, and what it receives.

A sink is where results leave the daemon: MQTT today; evidence pictures, an OPC UA
server, the operator's page next. Each gets every :class:`FrameResult`, camera status
changes and periodic stats, and says how it is doing through :meth:`Sink.health`.
Sinks never call each other and never see the pipeline: the fan-out
(:mod:`inspector.sinks.fanout`) runs each on its own thread, so one that raises or
stalls costs only itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from inspector.publishing.acks import AckListener
from inspector.types.frames import Frame
from inspector.types.results import (
    FrameResult,
    SinkHealth,
    SinkMetric,
    Verdict,
    VerdictListener,
)


class ResultSink(Protocol):
    """What the pipeline hands results to: one sink, or the fan-out to all of them."""

    def frame_result(self, result: FrameResult) -> None: ...

    def camera_status(self, camera: str, status: Mapping[str, Any]) -> None: ...

    def stats(self, stats: Mapping[str, Any]) -> None: ...


class Sink(ResultSink, Protocol):
    """Called from one thread per sink (the fan-out's), in frame order per camera.

    ``lossless`` sinks (MQTT, behind its durable outbox) make the fan-out wait when their
    queue is full; the others lose the oldest work instead, counted, and never slow
    inference.
    """

    name: str
    lossless: bool

    def health(self) -> SinkHealth: ...

    def close(self) -> None:
        """Finish what was handed over (flush, wait for acknowledgements) and let go.

        An :class:`~inspector.errors.InspectorError` raised here (events left
        unacknowledged, a store that could not keep them) is the run's outcome: the
        fan-out raises it once every sink is closed.
        """
        ...


@runtime_checkable
class MeasuredSink(Protocol):
    """A sink with figures of its own for ``/metrics`` (a broker connection, a disk store)."""

    def metrics(self) -> Sequence[SinkMetric]: ...


@runtime_checkable
class DeliveryWaitingSink(Protocol):
    """A sink whose close waits for its receiver (MQTT's acks). ``stop_waiting`` (the third
    stop signal) ends that wait where what is undelivered is kept on disk; called from any
    thread."""

    def stop_waiting(self) -> None: ...


@runtime_checkable
class EventDescribingSink(Protocol):
    """A sink that adds fields to the defect event before any sink sees it (the evidence
    sink names the pictures it will write). Runs on the results thread: names, no I/O."""

    def event_fields(self, result: FrameResult) -> Mapping[str, Any]: ...


@runtime_checkable
class AcknowledgingSink(Protocol):
    """A sink whose receiver acknowledges each event (MQTT's PUBACK): a replay times them."""

    def add_ack_listener(self, listener: AckListener) -> None: ...


@runtime_checkable
class CaptureWatchingSink(Protocol):
    """A sink that hears of each frame when its camera's queue takes it in, and of each frame
    a ``drop_oldest`` queue gives up: what a per-part deadline is measured from.

    Called synchronously on the capture thread, under the queue's lock: record and return,
    no I/O, no waiting."""

    def frame_captured(self, frame: Frame, event_id: str) -> None: ...

    def frame_dropped(self, frame: Frame, event_id: str) -> None: ...


@runtime_checkable
class VerdictProducingSink(Protocol):
    """A sink that decides one verdict per part (the ``verdicts`` sink); the fan-out hands
    each one to every :class:`VerdictSink`. The listener may be called from any thread."""

    def listen_for_verdicts(self, listener: VerdictListener) -> None: ...


@runtime_checkable
class VerdictSink(Protocol):
    """A sink that passes verdicts on (MQTT, OPC UA). Called in the order they were decided,
    on the thread that decided them (the deadline's timer, for a late one), and so from
    another thread than its other calls: hand the message on and return, never wait."""

    def verdict(self, verdict: Verdict) -> None: ...
