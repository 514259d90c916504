"""The operator's page against strangers and bad requests (issue 27, items 2 and 5), with real
sockets against the real uvicorn server on loopback.

Strangers come from other loopback addresses (127.0.0.0/8 is all loopback): idle ones,
half-sent heads and a reconnecting flood must not cost an operator (on 127.0.0.1) his
answers or his live stream; live pages beyond ``max_pages`` get a clean 503; refusals are
counted on ``/metrics``, never logged one by one. A malformed request gets a 4xx and no
traceback, and only pictures leave the evidence store. Every loop is bounded in count and
time."""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from inspector.service.metrics import _sink_families
from inspector.sinks.ui import UiSink
from inspector.ui.app import create_app
from inspector.ui.server import UiServer
from inspector.ui.state import LiveState
from tests.fixtures.ui import live_state

TOKEN = "s3cret-token"
HOST = "127.0.0.1"


@contextlib.contextmanager
def serving(tmp_path: Path, **limits: Any) -> Iterator[tuple[int, LiveState, UiServer]]:
    evidence = tmp_path / "evidence"
    evidence.mkdir(exist_ok=True)
    state = live_state()
    app = create_app(state, evidence, token=TOKEN, max_live_pages=16, push_interval_s=0.1)
    server = UiServer(app, HOST, 0, refusals=state.refused, **limits)
    server.start()
    try:
        yield server.port, state, server
    finally:
        state.closing.set()
        server.close()


def connect(port: int, source: str = HOST, timeout_s: float = 5.0) -> socket.socket:
    sock = socket.socket()
    sock.settimeout(timeout_s)
    sock.bind((source, 0))
    sock.connect((HOST, port))
    return sock


def head(path: str, auth: bool = True, close: bool = True) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: page"]
    lines += [f"Authorization: Bearer {TOKEN}"] if auth else []
    lines += ["Connection: close"] if close else []
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_all(sock: socket.socket, timeout_s: float = 5.0, limit: int = 1 << 20) -> bytes:
    data, deadline = b"", time.monotonic() + timeout_s
    with contextlib.suppress(OSError):
        while len(data) < limit and time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return data


def until_closed(sock: socket.socket, timeout_s: float) -> bytes | None:
    """What the server sent before closing, or None when it is still open after
    ``timeout_s``."""
    data, deadline = b"", time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return None
        except OSError:
            return data
        if not chunk:
            return data
        data += chunk
    return None


def ask(port: int, path: str, auth: bool = True) -> tuple[int, bytes, float]:
    """A whole request on a fresh connection: (status, answer, seconds to the answer)."""
    start = time.monotonic()
    with connect(port) as sock:
        sock.sendall(head(path, auth))
        answer = read_all(sock)
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0
    return status, answer, time.monotonic() - start


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


class Stream(threading.Thread):
    """An operator's live page: the times at which its updates came."""

    def __init__(self, port: int, seconds: float) -> None:
        super().__init__(daemon=True)
        self.port, self.seconds = port, seconds
        self.updates: list[float] = []
        self.status = 0
        self.stop = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + self.seconds
        with connect(self.port) as sock:
            sock.sendall(head("/api/stream", close=False))
            buffer = b""
            while not self.stop.is_set() and time.monotonic() < deadline:
                sock.settimeout(0.2)
                try:
                    chunk = sock.recv(65536)
                except TimeoutError:
                    continue
                if not chunk:
                    return
                buffer += chunk
                self.status = self.status or status_of(buffer)
                self.updates += [time.monotonic()] * chunk.count(b"data: ")


class Flood(threading.Thread):
    """``size`` strangers' connections from ``sources``, each opened again as soon as the
    server answers or closes it: silent, half a request head, or a request without the
    token, in turn. Bounded by ``seconds`` and ``max_connects``."""

    PAYLOADS = (b"", b"GET / HTTP/1.1\r\nHost: x\r\n", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")

    def __init__(self, port: int, sources: list[str], size: int, seconds: float) -> None:
        super().__init__(daemon=True)
        self.port, self.sources, self.size, self.seconds = port, sources, size, seconds
        self.max_connects = 30_000
        self.connects = self.answered = 0
        self.stop = threading.Event()

    def _open(self, selector: selectors.BaseSelector, i: int) -> None:
        self.connects += 1
        try:
            sock = connect(self.port, self.sources[i % len(self.sources)], timeout_s=0.5)
            sock.sendall(self.PAYLOADS[self.connects % len(self.PAYLOADS)])
        except OSError:
            return
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, i)

    def run(self) -> None:
        deadline = time.monotonic() + self.seconds
        with selectors.DefaultSelector() as selector:
            for i in range(self.size):
                self._open(selector, i)
            while not self.stop.is_set() and time.monotonic() < deadline:
                if self.connects >= self.max_connects:
                    break
                for key, _ in selector.select(0.05):
                    sock: socket.socket = key.fileobj  # type: ignore[assignment]
                    with contextlib.suppress(OSError):
                        self.answered += bool(sock.recv(65536))
                    selector.unregister(sock)
                    sock.close()
                    self._open(selector, key.data)
            for key in list(selector.get_map().values()):
                key.fileobj.close()  # type: ignore[union-attr]


def burst(port: int, sources: list[str], payload: bytes) -> list[socket.socket]:
    """Clients from ``sources`` all connecting at once (a control room opening its pages),
    then each sending ``payload``."""
    clients, waiting = [], selectors.DefaultSelector()
    for source in sources:
        sock = socket.socket()
        sock.bind((source, 0))
        sock.setblocking(False)
        sock.connect_ex((HOST, port))
        clients.append(sock)
        waiting.register(sock, selectors.EVENT_WRITE)
    deadline = time.monotonic() + 10
    while waiting.get_map() and time.monotonic() < deadline:
        for key, _ in waiting.select(0.1):
            waiting.unregister(key.fileobj)
    waiting.close()
    for sock in clients:
        with contextlib.suppress(OSError):
            sock.send(payload)
    return clients


def loud_records(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_strangers_idle_and_flooding_cannot_lock_out_the_operator(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with serving(tmp_path) as (port, state, server):
        stream = Stream(port, seconds=30)
        stream.start()
        deadline = time.monotonic() + 5
        while not stream.updates and time.monotonic() < deadline:
            time.sleep(0.02)
        assert stream.status == 200 and stream.updates, "the operator's live page never opened"
        idle = [connect(port, f"127.0.0.{2 + i}") for i in range(100)]  # 100 silent strangers
        flood = Flood(port, [f"127.0.1.{1 + i}" for i in range(10)], size=100, seconds=4)
        flood.start()
        latencies: list[float] = []
        try:
            started = time.monotonic()
            for n in range(20):  # the page keeps moving meanwhile: its stream must follow
                state.camera_status("cam0", {"state": "up", "reconnects": n})
                status, _, seconds = ask(port, "/api/status")
                assert status == 200, f"request {n} got {status} during the flood"
                latencies.append(seconds)
                time.sleep(0.1)
            flooded = (started, time.monotonic())
            flood.join(10)
        finally:
            flood.stop.set()
            for sock in idle:
                sock.close()
        during = [t for t in stream.updates if flooded[0] <= t <= flooded[1]]
        gaps = [b - a for a, b in zip([flooded[0], *during], [*during, flooded[1]], strict=True)]
        stream.stop.set()
        stream.join(5)
        median = statistics.median(latencies)
        print(
            f"authorised /api/status under the flood: median {median:.4f} s, max "
            f"{max(latencies):.4f} s; flood connects {flood.connects}; stream updates "
            f"{len(during)}, longest gap {max(gaps):.3f} s; {state.refused.counts()}"
        )
        assert max(latencies) < 1.0
        assert len(during) >= 5 and max(gaps) < 1.0, "the live stream stalled under the flood"
        assert flood.connects > 200 and server.figures()["connections"] <= 64
        refused = state.refused
        assert refused["capacity"] + refused["per_client"] > 100
        assert refused["unauthorised"] > 0
    assert not loud_records(caplog), loud_records(caplog)[:3]  # counted, not logged


def test_live_pages_up_to_the_bound_stream_and_the_rest_get_a_clean_503(tmp_path: Path) -> None:
    with serving(tmp_path) as (port, state, _):
        sources = [f"127.0.2.{1 + i % 20}" for i in range(200)]  # 20 desks, 10 pages each
        clients = burst(port, sources, head("/api/stream", close=False))
        answers = dict.fromkeys(range(200), b"")
        deadline = time.monotonic() + 10
        with selectors.DefaultSelector() as selector:
            for i, sock in enumerate(clients):
                sock.setblocking(False)
                selector.register(sock, selectors.EVENT_READ, i)
            # Until every page has its answer: a status line, and an update for the streams.
            while time.monotonic() < deadline and selector.get_map():
                for key, _ in selector.select(0.1):
                    try:
                        chunk = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    except OSError:
                        chunk = b""
                    answers[key.data] += chunk
                    if not chunk or b"data: " in answers[key.data]:
                        selector.unregister(key.fileobj)
        statuses = [status_of(a) for a in answers.values()]
        streams = [a for a in answers.values() if status_of(a) == 200]
        print(f"200 live clients: {statuses.count(200)} streams, {statuses.count(503)} "
              f"refused with 503, others {200 - statuses.count(200) - statuses.count(503)}; "
              f"refused {state.refused.counts()}")  # fmt: skip
        assert statuses.count(200) == 16 and statuses.count(503) == 184
        assert all(b"text/event-stream" in a and b"data: " in a for a in streams)
        assert ask(port, "/api/status")[0] == 200  # the operators' requests still pass
        refused = state.refused
        assert refused["streams"] + refused["capacity"] + refused["per_client"] == 184
        for sock in clients:
            sock.close()
        deadline = time.monotonic() + 5
        while state.live_pages and time.monotonic() < deadline:
            time.sleep(0.05)
        assert state.live_pages == 0  # the streams' slots come back when their pages go


def test_silent_and_trickling_connections_are_closed_after_the_header_timeout(
    tmp_path: Path,
) -> None:
    with serving(tmp_path, header_timeout_s=0.5) as (port, state, _):
        silent = connect(port, "127.0.0.2")
        trickling = connect(port, "127.0.0.3")
        start = time.monotonic()
        closed_at: float | None = None
        for byte in head("/api/status")[:40]:  # one byte every 50 ms: never a whole head
            with contextlib.suppress(OSError):
                trickling.sendall(bytes([byte]))
            trickling.settimeout(0.05)
            with contextlib.suppress(TimeoutError, OSError):
                if trickling.recv(1) == b"":
                    closed_at = time.monotonic() - start
                    break
        assert until_closed(silent, timeout_s=2) == b""
        assert closed_at is not None and closed_at < 1.5, closed_at
        assert state.refused["header_timeout"] == 2
        silent.close()
        trickling.close()


def test_one_address_holds_a_few_idle_connections_and_its_operator_still_gets_in(
    tmp_path: Path,
) -> None:
    with serving(tmp_path, max_pending_per_client=8) as (port, state, server):
        crowd = [connect(port, "127.0.0.9") for _ in range(30)]
        others = [connect(port, "127.0.0.10") for _ in range(8)]
        time.sleep(0.5)
        answers = [until_closed(sock, timeout_s=0.1) for sock in crowd + others]
        pushed = [a for a in answers if a is not None]
        assert len(pushed) == 22 and all(a.startswith(b"HTTP/1.1 503 ") for a in pushed)
        assert all(a is None for a in answers[30:])  # the other address keeps its own
        assert state.refused["per_client"] == 22 and server.figures()["connections"] == 16
        with connect(port, "127.0.0.9") as operator:  # the same address as the crowd
            operator.sendall(head("/api/status"))
            assert status_of(read_all(operator)) == 200
        for sock in crowd + others:
            sock.close()


MALFORMED = [
    "/evidence/%00", "/evidence/..%00", "/evidence/cam0/%00.jpg", "/api/frame/%00",
    "/static/%00", "/api/events?limit=%C2%B2", "/api/events?limit=%E2%91%A0",
    "/api/events?limit=" + "9" * 5000, "/api/events?limit=%D9%A3", "/api/events?limit=1001",
    "/api/events?limit=-1", "/api/events?limit=+5", "/api/events?limit=%205",
    "/evidence/index.sqlite", "/evidence/index.sqlite-wal", "/evidence/index.sqlite-shm",
    "/evidence/index.sqlite.lock", "/evidence/cam0/fake.jpg", "/evidence/cam0/link.jpg",
    "/evidence/" + "a" * 300 + ".jpg", "/evidence/../secret.jpg", "/evidence/cam0",
    "/evidence/", "/" + "x" * 3000,
]  # fmt: skip


def test_malformed_requests_get_a_4xx_and_no_traceback_and_only_pictures_are_served(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO)
    store = tmp_path / "evidence" / "cam0"
    store.mkdir(parents=True)
    for name in ("index.sqlite", "index.sqlite-wal", "index.sqlite-shm", "index.sqlite.lock"):
        (store.parent / name).write_bytes(b"SQLite format 3\x00")
    (store / "crop.jpg").write_bytes(b"\xff\xd8\xff\xe0 a crop")
    (store / "frame.PNG").write_bytes(b"\x89PNG\r\n\x1a\n a frame")
    (store / "fake.jpg").write_text("not a picture")
    (store / "link.jpg").symlink_to(store.parent / "index.sqlite")
    (tmp_path / "secret.jpg").write_bytes(b"\xff\xd8 outside the store")
    with serving(tmp_path) as (port, state, _):
        capfd.readouterr()
        answers = {path: ask(port, path) for path in MALFORMED}
        wrong = {p[:40]: a[1][:60] for p, a in answers.items() if not 400 <= a[0] < 500}
        assert not wrong, wrong
        assert all(b"SQLite" not in a[1] for a in answers.values())
        status, answer, _ = ask(port, "/evidence/cam0/crop.jpg")
        assert status == 200 and b"image/jpeg" in answer and answer.endswith(b"a crop")
        status, answer, _ = ask(port, "/evidence/cam0/frame.PNG")
        assert status == 200 and b"image/png" in answer
        assert ask(port, "/api/events?limit=1000")[0] == 200
        for raw in (b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X: y\r\n" * 4000,
                    b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    b"Authorization: Bearer " + TOKEN.encode() + b"\r\n\r\n"):  # fmt: skip
            with connect(port) as sock:
                sock.sendall(raw)
                assert 200 <= status_of(read_all(sock, timeout_s=2)) < 500
        out, err = capfd.readouterr()
        assert "Traceback" not in out + err and "Exception in ASGI" not in out + err
        assert not loud_records(caplog), loud_records(caplog)[:3]
        assert state.refused["not_picture"] >= 8 and state.refused["bad_request"] >= 10
        assert state.refused["malformed"] == 2


def test_an_unforeseen_failure_is_a_500_and_one_log_line(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with serving(tmp_path) as (port, state, _):

        def broken(max_age_s: float = 0.2) -> tuple[int, bytes]:
            raise RuntimeError("the status broke\nacross two lines")

        monkeypatch.setattr(state, "status_json", broken)
        capfd.readouterr()
        assert ask(port, "/api/status")[0] == 500
        assert ask(port, "/api/events?limit=1")[0] == 200  # the server goes on
        out, err = capfd.readouterr()
        lines = [line for line in (out + err).splitlines() if line.strip()]
        assert len(lines) == 1 and "ui_request_failed" in lines[0], lines
        assert state.refused["error"] == 1


def test_refusals_are_counted_on_metrics_by_reason(tmp_path: Path) -> None:
    with serving(tmp_path) as (port, state, server):
        for _ in range(3):
            assert ask(port, "/api/status", auth=False)[0] == 401
        assert ask(port, "/api/events?limit=x")[0] == 400
        sink = UiSink(state, server)
        registry = CollectorRegistry()

        class Figures:
            def collect(self) -> Iterator[Any]:
                yield from _sink_families("l", [sink.metrics()])

        registry.register(Figures())  # type: ignore[arg-type]
        text = generate_latest(registry).decode()
    assert 'inspector_ui_refused_total{line="l",reason="unauthorised"} 3.0' in text
    assert 'inspector_ui_refused_total{line="l",reason="bad_request"} 1.0' in text
    assert 'inspector_ui_refused_total{line="l",reason="capacity"} 0.0' in text
