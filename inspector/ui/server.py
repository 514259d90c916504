"""uvicorn serving the page from its own thread, with its own event loop.

Connections are accounted by :mod:`inspector.ui.protocol` (idle ones are cheap, short-lived
and the only ones pushed out; refusals are counted, not logged), not by uvicorn's
``limit_concurrency``, which counted strangers' idle sockets against the operators' requests.
Everything runs on the one loop thread: 1,000 idle connections are 1,000 sockets and no
thread.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import structlog
import uvicorn
from starlette.types import ASGIApp

from inspector.errors import ConfigError
from inspector.ui.protocol import Book, Limits, bounded_protocol
from inspector.ui.refusals import Refusals

log = structlog.get_logger(__name__)


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
        *,
        header_timeout_s: float = 5.0,
        max_pending_per_client: int = 8,
        refusals: Refusals | None = None,
    ) -> None:
        self.host = host
        self.refusals = refusals if refusals is not None else Refusals()
        self._book = Book()
        limits = Limits(max_connections, max_pending_per_client, header_timeout_s, idle_timeout_s)
        self._socket = listening_socket(host, port)
        config = uvicorn.Config(
            app,
            http=bounded_protocol(limits, self.refusals, self._book),
            ws="none",
            lifespan="off",
            log_config=None,  # the daemon's logging stays as configured
            log_level="warning",
            access_log=False,
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
        return {
            "connections": len(state.connections),
            "tasks": len(state.tasks),
            "lingering": len(self._book.lingering),
        }
