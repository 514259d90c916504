"""systemd integration: the notify protocol with a real datagram socket, the watchdog on a real
daemon process, and the unit file through systemd-analyze."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from inspector.service.systemd import SystemdNotifier, watchdog_interval_s
from tests.fixtures.models import build_color_model
from tests.fixtures.processes import REPO
from tests.fixtures.videos import tiles, write_video

UNIT = REPO / "systemd" / "inspector@.service"
TILE = 32


class FakeSystemd:
    """A NOTIFY_SOCKET read continuously, as systemd does (the queue holds only ~10)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.05)
        self.datagrams: list[list[str]] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        while not self.done.is_set():
            try:
                self.datagrams.append(self.sock.recv(4096).decode().split("\n"))
            except TimeoutError:
                continue

    def received(self) -> list[list[str]]:
        time.sleep(0.2)
        self.done.set()
        self.thread.join()
        return self.datagrams


@pytest.fixture
def fake_systemd(tmp_path: Path) -> Any:
    systemd = FakeSystemd(tmp_path / "notify.sock")
    yield systemd
    systemd.done.set()
    systemd.sock.close()


def test_notifier_sends_one_datagram_per_call(fake_systemd: FakeSystemd) -> None:
    notifier = SystemdNotifier(str(fake_systemd.path))
    assert notifier.ready("up") and notifier.watchdog() and notifier.stopping()
    assert fake_systemd.received() == [
        ["READY=1", "STATUS=up"],
        ["WATCHDOG=1"],
        ["STOPPING=1", "STATUS=stopping: draining in-flight batches"],
    ]


def test_abstract_socket_names_and_no_systemd() -> None:
    name = f"inspector-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(1)
    try:
        assert SystemdNotifier("@" + name).watchdog()
        assert sock.recv(100) == b"WATCHDOG=1"
    finally:
        sock.close()
    assert not SystemdNotifier("").enabled and not SystemdNotifier("").ready("x")


def test_watchdog_interval_is_half_of_watchdog_usec_for_this_process() -> None:
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}) == 1
    assert watchdog_interval_s({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval_s({}) is None


def write_line(tmp_path: Path, port: int, frames: int, fps: float, busy_layers: int) -> Path:
    video = tmp_path / "line.mp4"
    crack = [(0, 0, 245)]  # a "crack" tile: events flow too
    write_video(
        video, (tiles(2, 1, TILE, 60, crack if i % 3 == 0 else []) for i in range(frames)), fps
    )
    build_color_model(tmp_path / "m.onnx", size=TILE, busy_layers=busy_layers)
    config = tmp_path / "line.toml"
    config.write_text(
        f'[line]\nid = "sd{uuid.uuid4().hex[:8]}"\n[[cameras]]\nid = "cam0"\nsource = "{video}"\n'
        'realtime = true\n[model]\npath = "m.onnx"\nthreads = 1\n'
        f"[tiling]\nsize = {TILE}\nstride = {TILE}\n[batching]\nmax_batch = 2\nmax_wait_ms = 1\n"
        f'[mqtt]\nport = {port}\n[logging]\nformat = "json"\n'
    )
    return config


def run_under_fake_systemd(config: Path, socket_path: Path, watchdog_usec: int) -> int:
    env = {**os.environ, "NOTIFY_SOCKET": str(socket_path), "WATCHDOG_USEC": str(watchdog_usec)}
    result = subprocess.run(
        [sys.executable, "-m", "inspector", "run", "--config", str(config)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.returncode


@pytest.mark.e2e
def test_ready_watchdog_while_frames_flow_and_stopping(
    tmp_path: Path, mosquitto: Any, fake_systemd: FakeSystemd
) -> None:
    config = write_line(tmp_path, mosquitto.port, frames=30, fps=15, busy_layers=0)
    run_under_fake_systemd(config, fake_systemd.path, watchdog_usec=200_000)
    datagrams = fake_systemd.received()
    assert datagrams[0][0] == "READY=1" and datagrams[0][1].startswith("STATUS=inspecting 1 ")
    assert datagrams[-1] == ["STOPPING=1", "STATUS=stopped"]
    keepalives = sum(d == ["WATCHDOG=1"] for d in datagrams)
    assert keepalives >= 3  # 2 s of frames at a 0.1 s tick: most ticks see new frames
    assert any(d[0].startswith("STATUS=") and "frames/s" in d[0] for d in datagrams)


@pytest.mark.e2e
def test_no_watchdog_while_inference_is_stalled(
    tmp_path: Path, mosquitto: Any, fake_systemd: FakeSystemd
) -> None:
    # ~0.1 s a batch (150 convolutions) against a 0.02 s tick: most ticks see no new frame.
    config = write_line(tmp_path, mosquitto.port, frames=4, fps=30, busy_layers=150)
    run_under_fake_systemd(config, fake_systemd.path, watchdog_usec=40_000)
    datagrams = fake_systemd.received()
    keepalives = sum(d == ["WATCHDOG=1"] for d in datagrams)
    stalls = [d for d in datagrams if d[0].startswith("STATUS=stalled")]
    assert stalls, datagrams
    assert 1 <= keepalives <= 4  # one at most per newly inferred frame, never on a stalled tick
    ticks = [d for d in datagrams if d == ["WATCHDOG=1"] or d[0].startswith("STATUS=stalled")]
    assert len(ticks) > keepalives


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    # verify checks ExecStart exists: point it at this environment's inspector.
    unit = tmp_path / "inspector@line1.service"
    inspector = Path(sys.executable).with_name("inspector")
    unit.write_text(
        UNIT.read_text().replace("/opt/line-inspector/.venv/bin/inspector", str(inspector))
    )
    verify = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert verify.returncode == 0, verify.stderr
    assert "inspector" not in verify.stderr  # no warning about our unit
    security = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", str(unit)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    exposure = float(security.stdout.rsplit("exposure level for", 1)[1].split(":")[1].split()[0])
    assert exposure <= 2.0, security.stdout[-300:]


def test_a_reader_that_does_not_read_never_blocks_the_daemon(tmp_path: Path) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "stuck.sock"))
    try:
        notifier = SystemdNotifier(str(tmp_path / "stuck.sock"))
        started = time.monotonic()
        sent = [notifier.watchdog() for _ in range(200)]  # far beyond the datagram queue
        assert time.monotonic() - started < 5
        assert sent[0] and not all(sent)
    finally:
        sock.close()
