"""Every result to every sink, each on its own thread behind its own bounded queue.

A sink that raises is logged and counted (``errors``) and gets the next result as
usual; a slow one fills its queue, then loses its oldest queued work (``dropped``),
unless it is lossless, where the fan-out waits: that is the durable MQTT path, whose
calls only append to SQLite and paho's queue.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import structlog

from inspector.errors import InspectorError
from inspector.logs import at_doubling
from inspector.publishing.acks import AckListener
from inspector.sinks.base import (
    AcknowledgingSink,
    DeliveryWaitingSink,
    EventDescribingSink,
    MeasuredSink,
    Sink,
    VerdictSink,
)
from inspector.types.results import FrameResult, SinkHealth, SinkMetric, Verdict

log = structlog.get_logger(__name__)

_QUEUE = 256  # results waiting per sink: seconds of a busy line
_Work = Callable[[Sink], None]


class _Worker:
    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.errors = 0
        self.dropped = 0
        self._queue: queue.Queue[_Work | None] = queue.Queue(maxsize=_QUEUE)
        self._thread = threading.Thread(target=self._loop, name=f"sink-{sink.name}", daemon=True)
        self._thread.start()

    def put(self, work: _Work | None) -> None:
        """Queue ``work`` (None: the end); a full queue waits (lossless) or loses its oldest."""
        if self.sink.lossless:
            self._queue.put(work)
            return
        while True:
            try:
                self._queue.put_nowait(work)
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()  # the oldest goes: the newest is what people see
                    self.dropped += 1
                except queue.Empty:
                    pass

    def _loop(self) -> None:
        while (work := self._queue.get()) is not None:
            try:
                work(self.sink)
            except Exception as exc:
                self.failed(exc)

    def failed(self, exc: Exception) -> None:
        """Count a call of this sink that raised; log it at each doubling of the count."""
        self.errors += 1
        if at_doubling(self.errors):
            log.warning("sink_failed", sink=self.sink.name, error=str(exc),
                        error_type=type(exc).__name__, errors=self.errors)  # fmt: skip

    def finish(self, deadline: float) -> InspectorError | None:
        """Wait for the queue to drain (lossless: for as long as it takes), then close; return
        the run's outcome if the sink's close reports one (events it could not deliver)."""
        timeout = None if self.sink.lossless else max(0.0, deadline - time.monotonic())
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("sink_did_not_finish", sink=self.sink.name, queued=self._queue.qsize())
            return None
        try:
            self.sink.close()
        except InspectorError as exc:
            return exc
        except Exception as exc:
            self.errors += 1
            log.warning("sink_close_failed", sink=self.sink.name, error=str(exc))
        return None


class FanOut:
    """The pipeline's one sink: hands each call to every configured sink."""

    def __init__(self, sinks: Sequence[Sink]) -> None:
        names = [sink.name for sink in sinks]
        if len(set(names)) != len(names):
            raise ValueError(f"sink names must be unique: {names}")
        self._workers = [_Worker(sink) for sink in sinks]
        self._describers = [w for w in self._workers if isinstance(w.sink, EventDescribingSink)]
        self._carriers = [w for w in self._workers if isinstance(w.sink, VerdictSink)]
        self._closed = False

    def _each(self, work: _Work) -> None:
        for worker in self._workers:
            worker.put(work)

    def frame_result(self, result: FrameResult) -> None:
        if result.event is not None and self._describers:
            result = replace(result, event={**result.event, **self._event_fields(result)})
        self._each(lambda sink: sink.frame_result(result))

    def _event_fields(self, result: FrameResult) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        for worker in self._describers:
            try:
                fields.update(worker.sink.event_fields(result))  # type: ignore[attr-defined]
            except Exception as exc:
                worker.errors += 1
                log.warning("sink_event_fields_failed", sink=worker.sink.name, error=str(exc))
        return fields

    @staticmethod
    def _watch(worker: _Worker, call: Callable[[Any], None]) -> None:
        try:
            call(worker.sink)
        except Exception as exc:  # never the calling thread's problem (results, deadline)
            worker.failed(exc)

    def verdict(self, verdict: Verdict) -> None:
        """Straight to each carrier, on the thread that decided it (the results thread, the
        verdict stage's deadline timer for a late one): not behind a carrier's queue of other
        work, such as the MQTT sink's snapshot encoding, which would make the fail-safe late
        itself. A carrier's ``verdict`` only hands the message on (an outbox row and paho's
        queue, the OPC UA server's loop)."""
        for worker in self._carriers:
            self._watch(worker, lambda sink: sink.verdict(verdict))

    def camera_status(self, camera: str, status: Mapping[str, Any]) -> None:
        self._each(lambda sink: sink.camera_status(camera, status))

    def stats(self, stats: Mapping[str, Any]) -> None:
        self._each(lambda sink: sink.stats(stats))

    def health(self) -> dict[str, SinkHealth]:
        report: dict[str, SinkHealth] = {}
        for worker in self._workers:
            try:
                report[worker.sink.name] = worker.sink.health()
            except Exception as exc:
                report[worker.sink.name] = SinkHealth("down", f"health check failed: {exc}")
        return report

    def counters(self) -> dict[str, tuple[int, int]]:
        """Per sink: (errors, dropped)."""
        return {w.sink.name: (w.errors, w.dropped) for w in self._workers}

    def metrics(self) -> dict[str, list[SinkMetric]]:
        """Per sink: the figures it measures itself (left out where that fails), and for a
        best-effort sink the work it lost, ``inspector_<name>_dropped``."""
        report: dict[str, list[SinkMetric]] = {}
        for worker in self._workers:
            name, figures = worker.sink.name, []
            if not worker.sink.lossless:
                doc = f"Results the {name} sink lost because it fell behind"
                figures.append(SinkMetric(f"inspector_{name}_dropped", doc, "counter",
                                          worker.dropped))  # fmt: skip
            if isinstance(worker.sink, MeasuredSink):
                try:
                    figures += worker.sink.metrics()
                except Exception as exc:
                    log.warning("sink_metrics_failed", sink=name, error=str(exc))
            if figures:
                report[name] = figures
        return report

    def add_ack_listener(self, listener: AckListener) -> None:
        """Hear every acknowledgement of every sink whose receiver acknowledges."""
        for worker in self._workers:
            if isinstance(worker.sink, AcknowledgingSink):
                worker.sink.add_ack_listener(listener)

    def stop_waiting(self) -> None:
        """Tell each sink that waits for its receiver on closing to stop waiting (any thread)."""
        for worker in self._workers:
            if isinstance(worker.sink, DeliveryWaitingSink):
                worker.sink.stop_waiting()

    def close(self, timeout: float = 10.0) -> None:
        """Let every sink finish its queue and close it; a best-effort sink gets ``timeout``
        seconds in all, then is left behind (its thread is a daemon). A second call does
        nothing. Raises the first outcome a sink reported on closing (undelivered events),
        after every sink is closed."""
        if self._closed:
            return
        self._closed = True
        deadline = time.monotonic() + timeout
        for worker in self._workers:
            worker.put(None)  # after everything already queued
        outcomes = [worker.finish(deadline) for worker in self._workers]
        failure = next((outcome for outcome in outcomes if outcome is not None), None)
        if failure is not None:
            raise failure
