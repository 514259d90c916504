"""One thread per camera: grab, stamp, queue; reconnect a live camera with backoff."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import structlog

from inspector.capture.frame_queue import FrameQueue
from inspector.capture.source import FrameSource, NoFrameYet
from inspector.errors import SourceError
from inspector.types.frames import Frame, utc_now

log = structlog.get_logger(__name__)

_BACKOFF_FIRST_S = 0.5
_BACKOFF_MAX_S = 30.0

# (capture thread, state, error): states "up", "reconnecting", "ended", "failed".
StateListener = Callable[["CaptureThread", str, "str | None"], None]


class CaptureThread(threading.Thread):
    """Feeds one camera's frames into its queue until the source ends or ``stop`` is set.

    The source must already be open (so a bad recording fails start-up, not a
    thread). A live source that fails is reopened with exponential backoff;
    ``frame_id`` keeps counting across reconnects so it never goes backwards.
    """

    def __init__(
        self,
        camera_id: str,
        source: FrameSource,
        frames: FrameQueue,
        stop: threading.Event,
        on_state: StateListener | None = None,
        correct: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> None:
        super().__init__(name=f"capture-{camera_id}", daemon=True)
        self.camera_id = camera_id
        self.source = source
        self.frames = frames
        self.stop_event = stop
        self.captured = 0
        self.errors = 0  # failed reads and reopen attempts
        self.reconnects = 0  # successful reopens after a loss
        self.corrupt = 0  # frames delivered but unusable (empty, wrong type), skipped
        self._on_state = on_state
        self._clock = CameraClock()
        self._correct = correct
        self.error: SourceError | None = None
        self._next_id = 0
        self._log = log.bind(camera=camera_id, source=source.description)

    def _state(self, state: str, error: str | None = None) -> None:
        if self._on_state is not None:
            self._on_state(self, state, error)

    def run(self) -> None:
        try:
            if self.source.is_open:
                self._state("up")
            else:
                self.errors += 1
                # Why it did not open (already logged once at start), else a plain word.
                reason = getattr(self.source, "open_error", None)
                reason = reason or f"camera {self.camera_id}: not open at start"
                self._state("reconnecting", reason)
                if not self._reopen(reason):
                    return
            self._loop()
        except Exception as exc:  # a decoder crash must end this camera, not hang the run
            self.error = SourceError(f"camera {self.camera_id}: capture failed: {exc}")
            self._log.error("capture_failed", error=str(exc))
        finally:
            if self.error is not None:
                self._state("failed", str(self.error))
            elif not self.stop_event.is_set():
                self._state("ended")
            self.source.close()
            self.frames.close()

    def _loop(self) -> None:
        fps = self.source.nominal_fps() if self.source.paced else None
        period_ns = int(1e9 / fps) if fps else 0
        started_ns = time.monotonic_ns()
        while not self.stop_event.is_set():
            try:
                grab = self.source.grab()
            except NoFrameYet:
                continue  # a triggered camera between parts: look at the stop flag, wait again
            except SourceError as exc:
                if not self.source.live:
                    self.error = exc
                    self._log.error("source_failed", error=str(exc))
                    return
                self.errors += 1
                self._log.warning("source_lost", error=str(exc))
                self._state("reconnecting", str(exc))
                if not self._reopen():
                    return
                continue
            if grab is None:
                self._log.info("source_ended", frames=self.captured)
                return
            if not _usable(grab.image):
                self.corrupt += 1
                self._log.warning("corrupt_frame_skipped", corrupt=self.corrupt)
                continue
            if period_ns:
                # Pace a recording as the live line would deliver it.
                due_ns = started_ns + self.captured * period_ns
                delay_s = (due_ns - time.monotonic_ns()) / 1e9
                if delay_s > 0 and self.stop_event.wait(delay_s):
                    return
            frame_id = grab.frame_id if grab.frame_id is not None else self._next_id
            self._next_id = max(self._next_id, frame_id) + 1
            image = grab.image if self._correct is None else self._correct(grab.image)
            frame = Frame(
                camera_id=self.camera_id,
                frame_id=frame_id,
                image=image,
                captured_at=self._clock.wall(grab.timestamp_ns),
                captured_ns=time.monotonic_ns(),
                part_id=grab.part_id,
            )
            self.captured += 1
            if not self.frames.put(frame, self.stop_event):
                return

    def _reopen(self, said: str | None = None) -> bool:
        """Reopen with exponential backoff until it works or ``stop`` is set. Quietly: why
        it fails is logged once, and again only when that changes (``said``: already told),
        so a camera that stays away does not fill the journal; its state is on the status
        topic."""
        delay = _BACKOFF_FIRST_S
        attempts = 0
        if said is not None:
            self._log.info(
                "reconnecting", retry=f"quietly, with backoff up to {_BACKOFF_MAX_S:g} s"
            )
        while not self.stop_event.wait(delay):
            try:
                self.source.open()
            except SourceError as exc:
                self.errors += 1
                attempts += 1
                reason = str(exc)
                if reason != said:
                    self._log.warning(
                        "reopen_failed",
                        error=reason,
                        retry=f"quietly, with backoff up to {_BACKOFF_MAX_S:g} s",
                    )
                    said = reason
                else:
                    self._log.debug("reopen_failed", attempts=attempts, retry_in_s=delay)
                delay = min(delay * 2, _BACKOFF_MAX_S)
                continue
            self.reconnects += 1
            self._log.info("source_reopened", reconnects=self.reconnects)
            self._state("up")
            return True
        return False


def _usable(image: object) -> bool:
    """A decoder can hand back an empty or malformed array for a corrupt frame."""
    return (
        isinstance(image, np.ndarray)
        and image.dtype == np.uint8
        and image.ndim in (2, 3)
        and image.shape[0] > 0
        and image.shape[1] > 0
    )


class CameraClock:
    """Capture times from the camera's own clock where it has one: its timestamps keep the
    exposure's spacing, anchored to the host's wall clock at the first frame."""

    def __init__(self) -> None:
        self._offset_ns: int | None = None

    def wall(self, device_ns: int | None) -> datetime:
        now = utc_now()
        if device_ns is None:
            return now
        host_ns = int(now.timestamp() * 1e9)
        if self._offset_ns is None or abs(host_ns - (device_ns + self._offset_ns)) > 10**9:
            self._offset_ns = host_ns - device_ns  # first frame, or the camera clock reset
        return datetime.fromtimestamp((device_ns + self._offset_ns) / 1e9, tz=UTC)
