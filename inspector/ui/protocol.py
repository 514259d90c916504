"""The page's HTTP connections, accounted by what they carry, not by how many there are.

uvicorn's ``limit_concurrency`` counts every open socket, so strangers holding idle
connections got every operator a 503. Here a connection with no request being answered
(``pending``: none yet, half of one, or kept alive after one) is cheap and short-lived, and
is the only kind ever pushed out:

- it must send a whole request head within ``header_timeout_s`` (later ones, after a kept
  alive answer, within ``idle_timeout_s``), else it is closed;
- one address holds at most ``max_pending_per_client`` of them: more push out its own oldest;
- beyond ``max_connections`` in all, the oldest pending anywhere makes room; when every one
  carries a request (live pages are bounded by the app), the newcomer is turned away.

A connection turned away gets a 503 and a half-close, and is drained for ``linger_s`` so
that its request, sent meanwhile, does not turn the answer into a reset. Refusals are
counted (:mod:`inspector.ui.refusals`); uvicorn's per-request warnings are silenced.
Everything runs on the server's one loop thread: no locks.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

from inspector.ui.refusals import Reason, Refusals

_BODY = b"503: the page's server is busy; try again in a moment\n"
BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: %d\r\nretry-after: 2\r\nconnection: close\r\n\r\n%s" % (len(_BODY), _BODY)
)

# uvicorn logs a warning per bad request ("Invalid HTTP request received.", "Unsupported
# upgrade request."): a stranger's flood would fill the journal. They are counted instead;
# errors still reach the log.
_QUIET = logging.getLogger("inspector.ui.http")
_QUIET.setLevel(logging.ERROR)


@dataclass(frozen=True, slots=True)
class Limits:
    max_connections: int = 64
    max_pending_per_client: int = 8
    header_timeout_s: float = 5.0
    idle_timeout_s: float = 10.0
    linger_s: float = 1.0


@dataclass(slots=True)
class Book:
    """The connections of one server, beside uvicorn's own set of them."""

    by_host: dict[str, set[Any]] = field(default_factory=dict)
    lingering: set[Any] = field(default_factory=set)  # answered 503, draining until closed


def bounded_protocol(limits: Limits, refusals: Refusals, book: Book) -> type[H11Protocol]:
    by_host, lingering = book.by_host, book.lingering

    class BoundedH11Protocol(H11Protocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.logger = _QUIET
            self._timer: asyncio.TimerHandle | None = None
            self._since = 0.0
            self._host = ""
            self._refused = False

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._since = self.loop.time()
            self._host = self.client[0] if self.client else ""
            by_host.setdefault(self._host, set()).add(self)
            self._arm(limits.header_timeout_s)
            # Admitted one turn of the loop later, after the sockets ready now were read: a
            # burst of requests from one address (an operator's tabs, a control room behind
            # one router) has its requests in flight by then, not taken for idle ones.
            self.loop.call_later(0, self._admit)

        def idle(self) -> bool:
            """No request being served: none yet, half of one, or kept alive after one."""
            return self.cycle is None or self.cycle.response_complete

        def _admit(self) -> None:
            if self._refused or self.transport.is_closing():
                return
            mine = sorted((c for c in by_host.get(self._host, ()) if c.idle()),
                          key=lambda c: c._since)  # fmt: skip
            for victim in mine[: max(0, len(mine) - limits.max_pending_per_client)]:
                victim.refuse("per_client")
            if len(self.connections) > limits.max_connections:
                idle = sorted((c for c in self.connections
                               if isinstance(c, BoundedH11Protocol) and c.idle()),
                              key=lambda c: c._since)  # fmt: skip
                # Without an idle one, all carry requests that end by themselves (live pages
                # are bounded by ui.max_pages): the count comes back under by itself.
                for victim in idle[: len(self.connections) - limits.max_connections]:
                    victim.refuse("capacity")

        def refuse(self, reason: Reason) -> None:
            refusals.add(reason)
            self._refused = True
            self._forget()
            self._unset_keepalive_if_required()
            if self.transport.is_closing():
                return
            self.transport.write(BUSY)
            if len(lingering) >= limits.max_connections or not self.transport.can_write_eof():
                self.transport.close()  # lingering is bounded too: past it, a plain close
                return
            try:
                self.transport.write_eof()
            except OSError:  # the client has gone already
                self.transport.close()
                return
            lingering.add(self)
            self.transport.resume_reading()
            self._timer = self.loop.call_later(limits.linger_s, self.transport.close)

        def _forget(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self.connections.discard(self)
            peers = by_host.get(self._host)
            if peers is not None:
                peers.discard(self)
                if not peers:
                    del by_host[self._host]

        def _arm(self, seconds: float) -> None:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self.loop.call_later(seconds, self._expire)

        def _expire(self) -> None:
            self._timer = None
            if not self.idle():
                self._arm(limits.idle_timeout_s)  # a request in progress (a live page's stream)
                return
            if self.cycle is None:
                refusals.add("header_timeout")  # never sent a whole request
            self.transport.close()

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return  # answered already: read only so that the close is clean
            super().data_received(data)

        def send_400_response(self, msg: str) -> None:
            refusals.add("malformed")
            super().send_400_response(msg)

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._since = self.loop.time()
            if not self._refused:
                self._arm(limits.idle_timeout_s)  # kept alive for the next request, or closed

        def connection_lost(self, exc: Exception | None) -> None:
            self._forget()
            lingering.discard(self)
            super().connection_lost(exc)

    return BoundedH11Protocol
