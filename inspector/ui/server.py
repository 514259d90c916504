"""uvicorn serving the page from its own thread, with its own event loop.

Connections are bounded and idle ones time out: beyond ``max_connections``, a new connection
pushes out the one idle the longest (or is closed at once when all are busy), and one that
carries no request being served for ``idle_timeout_s`` (never sent one, sent half of one, or
kept alive after its answer) is closed. Everything runs on the one loop thread: 1,000 idle
connections are 1,000 sockets and no thread.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import structlog
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

from inspector.errors import ConfigError

log = structlog.get_logger(__name__)


def _bounded_protocol(max_connections: int, idle_timeout_s: float) -> type[H11Protocol]:
    class BoundedH11Protocol(H11Protocol):
        _idle: asyncio.TimerHandle | None = None
        _since = 0.0

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._since = self.loop.time()
            if len(self.connections) > max_connections:
                # The one idle the longest makes room (a flood of silent clients cannot lock
                # the operators out); when every one is busy, the newcomer is turned away.
                idle = [c for c in self.connections if isinstance(c, BoundedH11Protocol)
                        and c is not self and c.idle()]  # fmt: skip
                victim = min(idle, key=lambda c: c._since) if idle else self
                victim.transport.close()  # connection_lost takes it out of the count
                if victim is self:
                    return
            self._arm()

        def idle(self) -> bool:
            """No request being served: none yet, half of one, or kept alive after one."""
            return self.cycle is None or self.cycle.response_complete

        def _arm(self) -> None:
            if self._idle is not None:
                self._idle.cancel()
            self._idle = self.loop.call_later(idle_timeout_s, self._idle_out)

        def _idle_out(self) -> None:
            self._idle = None
            if self.idle():
                self.transport.close()
            else:
                self._arm()  # a request in progress (a live page's stream): look again later

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._since = self.loop.time()
            self._arm()  # kept alive for the next request, or closed when none comes

        def connection_lost(self, exc: Exception | None) -> None:
            if self._idle is not None:
                self._idle.cancel()
                self._idle = None
            super().connection_lost(exc)

    return BoundedH11Protocol


def listening_socket(host: str, port: int) -> socket.socket:
    """Bound here, not by uvicorn: a port in use is the configuration's error, raised at
    start (uvicorn would log it and exit its thread)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, IndexError) as exc:
        raise ConfigError(f"ui.host: cannot listen on {host!r}: {exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"ui.port: cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


class UiServer:
    def __init__(
        self,
        app: ASGIApp,
        host: str,
        port: int,
        max_connections: int = 64,
        idle_timeout_s: float = 10.0,
    ) -> None:
        self.host = host
        self._socket = listening_socket(host, port)
        config = uvicorn.Config(
            app,
            http=_bounded_protocol(max_connections, idle_timeout_s),
            ws="none",
            lifespan="off",
            log_config=None,  # the daemon's logging stays as configured
            log_level="warning",
            access_log=False,
            limit_concurrency=max_connections + 1,  # requests at once; connections above
            timeout_keep_alive=max(1, int(idle_timeout_s)),
            timeout_graceful_shutdown=1,  # live pages' streams never end by themselves
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="ui", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._socket.getsockname()[1])

    @property
    def url(self) -> str:
        host = self.host if self.host not in ("0.0.0.0", "::", "") else socket.gethostname()
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/"

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and self._server.started

    def start(self, timeout_s: float = 10.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started and self._thread.is_alive():
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
        log.info("ui_serving", url=self.url)

    def close(self, timeout_s: float = 5.0) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        self._socket.close()

    def figures(self) -> dict[str, Any]:
        state = self._server.server_state
        return {"connections": len(state.connections), "tasks": len(state.tasks)}
