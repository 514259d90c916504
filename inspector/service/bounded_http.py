"""A small HTTP server with a fixed number of threads, bounded connections and idle timeouts.

``http.server.ThreadingHTTPServer`` starts a thread per connection and keeps it while the
client stays silent: 1,000 idle connections made 1,014 threads. Here one thread waits on
every open connection at once (``selectors``) and hands a connection to one of ``workers``
threads only once its request has started to arrive. At most ``max_connections`` are open:
a new one pushes out the connection idle the longest (so a flood of silent clients cannot
lock Prometheus out); one that carries no request for ``idle_timeout_s`` is closed, and so is
one whose request stalls that long.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any


class BoundedHTTPServer:
    """Serves a ``BaseHTTPRequestHandler`` class; one request per connection (HTTP/1.0)."""

    def __init__(
        self,
        address: tuple[str, int],
        handler: Any,
        workers: int = 4,
        max_connections: int = 64,
        idle_timeout_s: float = 10.0,
    ) -> None:
        self.handler, self.idle_timeout_s = handler, idle_timeout_s
        self.max_connections = max_connections
        host, port = address
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        self.socket = socket.create_server((host, port), family=family, backlog=128)
        self.socket.setblocking(False)
        self.server_address = self.socket.getsockname()
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="http")
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.socket, selectors.EVENT_READ)
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ)
        self._waiting: dict[socket.socket, tuple[float, Any]] = {}  # no request yet: since
        self._busy = 0  # handed to a worker, not yet closed
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._stopped = threading.Event()
        self._serving = False

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._waiting) + self._busy

    def serve_forever(self) -> None:
        self._serving = True
        try:
            while not self._stop.is_set():
                for key, _ in self._selector.select(timeout=min(1.0, self.idle_timeout_s / 4)):
                    if key.fileobj is self.socket:
                        self._accept()
                    elif key.fileobj is self._wake_r:
                        self._wake_r.recv(64)
                    else:
                        self._dispatch(key.fileobj)  # type: ignore[arg-type]
                self._expire()
        finally:
            for conn in list(self._waiting):
                self._drop(conn)
            self._stopped.set()

    def _accept(self) -> None:
        try:
            conn, client = self.socket.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return  # out of descriptors, a reset before accept: the next one may work
        if self.open_connections >= self.max_connections:
            if not self._waiting:  # every one is being answered: no room for this one
                conn.close()
                return
            self._drop(min(self._waiting, key=lambda c: self._waiting[c][0]))
        conn.setblocking(False)
        self._waiting[conn] = (time.monotonic(), client)
        self._selector.register(conn, selectors.EVENT_READ)

    def _dispatch(self, conn: socket.socket) -> None:
        _, client = self._waiting.pop(conn)
        self._selector.unregister(conn)
        with self._lock:
            self._busy += 1
        self._pool.submit(self._handle, conn, client)

    def _handle(self, conn: socket.socket, client: Any) -> None:
        try:
            conn.setblocking(True)
            conn.settimeout(self.idle_timeout_s)  # a request that stalls half-way times out
            self.handler(conn, client, self)
        except Exception:
            pass  # a client that went away mid-answer is its own problem
        finally:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
            with self._lock:
                self._busy -= 1

    def _expire(self) -> None:
        cutoff = time.monotonic() - self.idle_timeout_s
        for conn in [c for c, (since, _) in self._waiting.items() if since < cutoff]:
            self._drop(conn)

    def _drop(self, conn: socket.socket) -> None:
        self._waiting.pop(conn, None)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(conn)
        conn.close()

    def shutdown(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if self._serving:
            self._stopped.wait(5.0)

    def server_close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._selector.close()
        for sock in (self.socket, self._wake_r, self._wake_w):
            sock.close()
