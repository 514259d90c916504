"""The operator's page without a browser: its live state, the app's routes served by a real
uvicorn on loopback (path traversal, token, limits), bounded connections with idle timeouts
(for the page and for the metrics server), and the daemon refusing a public bind without a
token. The browser tests are in test_ui_browser.py."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inspector.service.bounded_http import BoundedHTTPServer
from inspector.ui.app import create_app
from inspector.ui.server import UiServer
from inspector.ui.state import LiveState
from tests.fixtures.models import build_color_model
from tests.fixtures.net import free_port, http_get
from tests.fixtures.ui import Clock, live_state, result
from tests.fixtures.videos import write_video

TILE = 32


def test_counts_cover_the_last_hour_and_events_come_newest_first() -> None:
    clock = Clock()
    state = live_state(clock)
    state.add_result(result(0, ("crack",)))
    state.add_result(result(1))
    clock.now += 1800
    state.add_result(result(2, ("crack", "stain")))
    state.add_result(result(3))
    state.add_result(result(4))
    counts = state.counts()
    assert (counts["ok"], counts["nok"], counts["classes"]) == (3, 2, {"crack": 2, "stain": 1})
    assert len(counts["minutes"]) == 60 and counts["minutes"][-1] == [2, 1]
    assert sum(ok + nok for ok, nok in counts["minutes"]) == 5
    clock.now += 1800  # the first minute has left the hour
    counts = state.counts()
    assert (counts["ok"], counts["nok"], counts["classes"]) == (2, 1, {"crack": 1, "stain": 1})
    events = state.events(10)
    assert [e["frame_id"] for e in events] == [2, 0]
    assert events[0]["evidence"]["crop_urls"] == [
        "/evidence/cam0/d/2-crop0.jpg",
        "/evidence/cam0/d/2-crop1.jpg",
    ]
    assert [e["frame_id"] for e in state.events(1)] == [2]


def test_camera_states_and_the_waiting_triggered_camera() -> None:
    clock = Clock()
    state = live_state(clock)
    state.camera_status("cam0", {"state": "up"})
    state.camera_status("cam1", {"state": "up"})
    state.add_result(result(7, camera="cam1"))
    views = {c["id"]: c for c in state.status()["cameras"]}
    assert views["cam0"]["state"] == "ok" and views["cam1"]["state"] == "ok"
    clock.now += 5  # a triggered camera between parts is waiting, not failing
    assert {c["id"]: c["state"] for c in state.status()["cameras"]}["cam1"] == "waiting for trigger"
    state.camera_status("cam0", {"state": "reconnecting", "error": "read timed out"})
    view = {c["id"]: c for c in state.status()["cameras"]}["cam0"]
    assert (view["state"], view["error"]) == ("reconnecting", "read timed out")


def test_the_picture_is_drawn_a_few_times_a_second_at_most() -> None:
    clock = Clock()
    state = live_state(clock)
    assert state.frame_jpeg("cam0") is None
    state.add_result(result(0, ("crack",)))
    first = state.frame_jpeg("cam0")
    assert first is not None and first[:2] == b"\xff\xd8"
    for i in range(1, 20):  # newer frames within the interval: the same picture
        state.add_result(result(i))
        assert state.frame_jpeg("cam0") is first
    clock.now += 0.3
    assert state.frame_jpeg("cam0") is not first
    assert state.frames_encoded == 2


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, LiveState, UiServer]]:
    evidence = tmp_path / "evidence"
    (evidence / "cam0" / "d").mkdir(parents=True)
    (evidence / "cam0" / "d" / "2-crop0.jpg").write_bytes(b"\xff\xd8crop")
    (tmp_path / "secret.txt").write_text("not for the page")
    state = live_state()
    server = UiServer(
        create_app(state, evidence), "127.0.0.1", 0, idle_timeout_s=1.0, header_timeout_s=1.0
    )
    server.start()
    try:
        yield f"http://127.0.0.1:{server.port}", state, server
    finally:
        server.close()


def test_routes_serve_the_page_json_and_evidence_but_nothing_outside(
    served: tuple[str, LiveState, UiServer],
) -> None:
    base, state, _ = served
    state.add_result(result(2, ("crack",)))
    status, body, _ = http_get(base + "/")
    assert status == 200 and b"/static/app.js" in body and b"http" not in body.split(b"<body")[1]
    assert http_get(base + "/static/app.js")[0] == 200
    status, body, headers = http_get(base + "/api/events?limit=5")
    assert status == 200 and b'"frame_id":2' in body.replace(b" ", b"")
    assert http_get(base + "/api/events?limit=0")[0] == 400
    assert http_get(base + "/api/events?limit=x")[0] == 400
    assert http_get(base + "/api/status")[0] == 200
    status, body, headers = http_get(base + "/api/frame/cam0")
    assert status == 200 and headers["content-type"] == "image/jpeg" and body[:2] == b"\xff\xd8"
    assert http_get(base + "/api/frame/nope")[0] == 404
    assert http_get(base + "/evidence/cam0/d/2-crop0.jpg")[1] == b"\xff\xd8crop"
    for path in ("../secret.txt", "%2e%2e/secret.txt", "cam0/../../secret.txt", "/etc/passwd",
                 "%2F..%2Fsecret.txt"):  # fmt: skip
        status, body, _ = http_get(base + "/evidence/" + path)
        assert status == 404 and b"not for the page" not in body, path
    with socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1]))) as raw:
        raw.sendall(b"GET /evidence/../secret.txt HTTP/1.1\r\nHost: x\r\n\r\n")  # unnormalized
        assert b"not for the page" not in raw.recv(4096)
    request = urllib.request.Request(base + "/api/status", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 405  # read-only


def test_a_token_guards_every_route(tmp_path: Path) -> None:
    state = live_state()
    server = UiServer(create_app(state, tmp_path, token="s3cret-token"), "127.0.0.1", 0)
    server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        for path in ("/", "/api/status", "/api/events", "/api/stream", "/static/app.js"):
            assert http_get(base + path)[0] == 401, path
        assert http_get(base + "/api/status", {"Authorization": "Bearer wrong-token"})[0] == 401
        assert http_get(base + "/api/status", {"Authorization": "Bearer s3cret-token"})[0] == 200
        status, _, headers = http_get(base + "/?token=s3cret-token")
        cookie = headers["set-cookie"].split(";")[0]
        assert status == 200 and "HttpOnly" in headers["set-cookie"]
        assert http_get(base + "/api/status", {"Cookie": cookie})[0] == 200
    finally:
        server.close()


def threads_now() -> int:
    return threading.active_count()


def test_idle_connections_to_the_page_are_bounded_and_time_out(
    served: tuple[str, LiveState, UiServer],
) -> None:
    base, _, server = served
    port = int(base.rsplit(":", 1)[1])
    before = threads_now()
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(300)]
    try:
        time.sleep(0.3)
        assert threads_now() <= before + 2  # no thread per connection
        # Past the bounds, the longest idle make room (answered 503, then closed): the page
        # still answers meanwhile.
        closed: set[int] = set()
        deadline = time.monotonic() + 5
        while len(closed) < 300 - 64 and time.monotonic() < deadline:
            for i, sock in enumerate(idle):
                sock.settimeout(0.001)
                with contextlib.suppress(TimeoutError):
                    if i not in closed and sock.recv(4096) == b"":  # after the 503
                        closed.add(i)
        assert len(closed) >= 300 - 64
        assert server.figures()["connections"] <= 64
        assert http_get(base + "/api/status")[0] == 200
        time.sleep(1.6)  # header_timeout_s = 1: the silent ones are closed
        for sock in idle:
            sock.settimeout(1.0)
            while sock.recv(4096):  # the 503 of those pushed out, then the close
                pass
        assert http_get(base + "/api/status")[0] == 200
    finally:
        for sock in idle:
            sock.close()


class Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "6")
        self.end_headers()
        self.wfile.write(b"hello\n")

    def log_message(self, *args: Any) -> None:
        pass


def test_the_metrics_server_keeps_a_few_threads_under_a_thousand_idle_connections() -> None:
    server = BoundedHTTPServer(("127.0.0.1", 0), Hello, idle_timeout_s=1.0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    before = threads_now()
    idle: list[socket.socket] = []
    try:
        for _ in range(1000):
            idle.append(socket.create_connection(("127.0.0.1", port)))
        # A slow client: half a request, then silence (it must not hold a worker for long).
        idle[-1].sendall(b"GET / HTTP/1.0\r\n")
        time.sleep(0.3)
        assert server.open_connections <= 64
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            assert response.read() == b"hello\n"  # a scrape still gets through
        assert threads_now() <= before + 4  # the fixed pool, whatever the clients do
        time.sleep(1.6)
        assert server.open_connections == 0  # the idle and the stalled ones were closed
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            assert response.read() == b"hello\n"
    finally:
        for sock in idle:
            sock.close()
        server.shutdown()
        server.server_close()
    thread.join(5)
    assert not thread.is_alive()


def write_config(folder: Path, ui: str) -> Path:
    build_color_model(folder / "m.onnx", size=TILE)
    config = folder / "line.toml"
    config.write_text(
        '[line]\nid = "uiconf"\n[[cameras]]\nid = "cam0"\nsource = "missing.mp4"\n'
        f'[model]\npath = "m.onnx"\n[tiling]\nsize = {TILE}\nstride = {TILE}\n[ui]\n{ui}'
    )
    return config


def test_a_public_bind_without_a_token_is_refused(tmp_path: Path) -> None:
    config = write_config(tmp_path, 'enabled = true\nhost = "0.0.0.0"\nport = 0\n')
    run = subprocess.run(
        [sys.executable, "-m", "inspector", "run", "--config", str(config)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 78, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "ui" in lines[0] and "ui.token" in lines[0], run.stderr
    assert "Traceback" not in run.stderr


@pytest.mark.e2e
def test_replay_serves_the_page_while_it_plays(tmp_path: Path, mosquitto: Any) -> None:
    video = tmp_path / "line.mp4"
    write_video(
        video,
        (np.full((TILE, 2 * TILE, 3), 245 if i % 3 == 0 else 60, np.uint8) for i in range(30)),
    )
    config = write_config(tmp_path, "")
    config.write_text(
        config.read_text().replace("[ui]\n", f"[mqtt]\nport = {mosquitto.port}\n[ui]\n")
    )
    port = free_port()
    env = {**os.environ, "INSPECTOR__UI__ENABLED": "true", "INSPECTOR__UI__PORT": str(port)}
    replay = subprocess.Popen(
        [sys.executable, "-m", "inspector", "replay", str(video), "--config", str(config),
         "--realtime", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    seen: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + 60
        while replay.poll() is None and time.monotonic() < deadline:
            try:
                status, body, _ = http_get(f"http://127.0.0.1:{port}/api/status")
            except OSError:
                time.sleep(0.1)
                continue
            if status == 200:
                seen.append(json.loads(body))
            time.sleep(0.2)
        out, err = replay.communicate(timeout=60)
    finally:
        if replay.poll() is None:
            replay.kill()
    assert replay.returncode == 0, err[-3000:]
    assert seen, "the page never answered during the replay"
    frames = [s["cameras"][0]["frames"] for s in seen]
    assert max(frames) > 0 and frames == sorted(frames)  # it played while being watched
    report = json.loads(out)
    assert seen[-1]["counts"]["nok"] <= report["events_published"]
