"""The one interface every sink implements, what it receives, and what it is made from.

A sink is where results leave the daemon (MQTT, evidence pictures, OPC UA, the operator's
page, an installed package's). Each gets every :class:`FrameResult`, every verdict (where it
carries them), camera status changes and periodic stats, and says how it is doing through
:meth:`Sink.health`. Sinks never call each other and never see the pipeline: the fan-out
(:mod:`inspector.sinks.fanout`) runs each on its own thread, so one that raises or stalls
costs only itself. A sink is made from its own section and a :class:`SinkContext`: never the
whole configuration, never another sink's section (docs/architecture.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from inspector.publishing.acks import AckListener
from inspector.publishing.outbox import Outbox
from inspector.publishing.settings import MqttSettings
from inspector.sections import StateFolder
from inspector.types.card import ModelCard
from inspector.types.results import (
    FrameResult,
    SinkHealth,
    SinkMetric,
    Verdict,
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
class VerdictSink(Protocol):
    """A sink that passes verdicts on (MQTT, OPC UA). Called in the order they were decided,
    on the thread that decided them (the deadline's timer, for a late one), and so from
    another thread than its other calls: hand the message on and return, never wait."""

    def verdict(self, verdict: Verdict) -> None: ...


class LineView:
    """The whole line as a sink may look at it: every sink's health and figures (the
    operator's page shows the broker and the outbox). Answers once the fan-out exists."""

    def __init__(self) -> None:
        self._health: Callable[[], Mapping[str, SinkHealth]] = dict
        self._figures: Callable[[], Mapping[str, Sequence[SinkMetric]]] = dict

    def bind(
        self,
        health: Callable[[], Mapping[str, SinkHealth]],
        figures: Callable[[], Mapping[str, Sequence[SinkMetric]]],
    ) -> None:
        self._health, self._figures = health, figures

    def health(self) -> Mapping[str, SinkHealth]:
        return self._health()

    def figures(self) -> Mapping[str, Sequence[SinkMetric]]:
        return self._figures()


@dataclass(frozen=True, slots=True)
class SinkContext:
    """What a sink is made from besides its own section: facts of the line, never the whole
    configuration. One per sink (``open_outbox`` opens that sink's own file)."""

    line_id: str
    camera_ids: tuple[str, ...]
    card: ModelCard  # the active model: labels, thresholds, input size, name
    state: StateFolder  # where the daemon keeps its files
    broker: MqttSettings  # the line's broker, for a sink that speaks MQTT ([mqtt])
    # Cameras whose frames carry a trigger count (part ids from a PLC's encoder).
    triggered: frozenset[str] = frozenset()
    verdicts: bool = False  # the pipeline decides one verdict per part ([verdicts] enabled)
    # The folder whose pictures a sink keeps for others to show (the evidence store's).
    pictures: Path | None = None
    # This sink's own durable outbox, for acknowledged delivery; None with [outbox] off.
    open_outbox: Callable[[], Outbox] | None = None
    line: LineView = field(default_factory=LineView)
    clock: Callable[[], float] = time.time
