"""The systemd notify protocol (sd_notify(3)) in a few lines, and a pipeline watchdog.

READY=1 once the model is loaded, the cameras are open and the broker answered;
STATUS= with the current rates; WATCHDOG=1 only while frames really flow through
inference, so a stalled pipeline misses its keep-alive and systemd restarts it;
STOPPING=1 on shutdown. Without ``NOTIFY_SOCKET`` (not under systemd) every call
is a no-op.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable

import structlog

log = structlog.get_logger(__name__)


class SystemdNotifier:
    def __init__(self, address: str | None = None) -> None:
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        # "@name" is a socket in the abstract namespace: a leading NUL byte on the wire.
        self._address = "\0" + address[1:] if address.startswith("@") else address

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def notify(self, *assignments: str) -> bool:
        """Send ``KEY=value`` lines in one datagram; False when not under systemd or on error."""
        if not self._address:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                # Never block inspection on a reader that is not reading (a full datagram queue).
                sock.setblocking(False)
                sock.sendto("\n".join(assignments).encode(), self._address)
            return True
        except OSError as exc:  # systemd gone or socket unwritable: never fatal for inspection
            log.warning("sd_notify_failed", error=str(exc))
            return False

    def ready(self, status: str) -> bool:
        return self.notify("READY=1", f"STATUS={status}")

    def status(self, status: str) -> bool:
        return self.notify(f"STATUS={status}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def stopping(self, status: str = "stopping: draining in-flight batches") -> bool:
        return self.notify("STOPPING=1", f"STATUS={status}")


def watchdog_interval_s(environ: dict[str, str] | None = None) -> float | None:
    """Half of ``WATCHDOG_USEC`` (sd_watchdog_enabled(3)), or None when no watchdog is set
    for this process."""
    env = os.environ if environ is None else environ
    usec, pid = env.get("WATCHDOG_USEC"), env.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(int(usec) / 1e6 / 2, 0.01)
    except ValueError:
        return None


class PipelineWatchdog(threading.Thread):
    """Every ``interval_s``: WATCHDOG=1 (when ``keepalive``) if more frames were inferred
    since the last tick, and a STATUS= line either way, so ``systemctl status`` shows a stall.
    ``echo`` hears the same line (a terminal's status line)."""

    def __init__(
        self,
        notifier: SystemdNotifier,
        interval_s: float,
        frames_inferred: Callable[[], int],
        status: Callable[[], str],
        keepalive: bool = True,
        echo: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(name="watchdog", daemon=True)
        self._notifier = notifier
        self._keepalive = keepalive
        self._interval = interval_s
        self._frames = frames_inferred
        self._status = status
        self._echo = echo
        self._stop_event = threading.Event()
        self._last = frames_inferred()

    def run(self) -> None:
        while not self._stop_event.wait(self._interval):
            frames = self._frames()
            if frames > self._last:
                if self._keepalive:
                    self._notifier.watchdog()
                line = self._status()
            else:
                line = f"stalled: no frame inferred for {self._interval:g} s"
                log.warning("pipeline_stalled", seconds=self._interval, frames=frames)
            self._notifier.status(line)
            if self._echo is not None:
                self._echo(line)
            self._last = frames

    def stop(self) -> None:
        """No STATUS= after this returns: STOPPING=1 must be the last word systemd hears."""
        self._stop_event.set()
        if self.is_alive():
            self.join()
