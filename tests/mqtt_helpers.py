"""A real mosquitto broker and subscribers for tests; see the fixtures in conftest.py."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any, NamedTuple

import paho.mqtt.client as mqtt
import paho.mqtt.publish as paho_publish
import pytest
from paho.mqtt.enums import CallbackAPIVersion

MOSQUITTO_FALLBACK = "/usr/sbin/mosquitto"  # Debian installs it outside a user's PATH


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for_port(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return True
        time.sleep(0.05)
    return False


def mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or (
        MOSQUITTO_FALLBACK if Path(MOSQUITTO_FALLBACK).exists() else None
    )
    if found is None:
        # A fail, not a skip: the publishing contract must never go untested silently.
        pytest.fail("mosquitto not installed: apt-get install mosquitto")
    return found


class Broker:
    """One mosquitto on loopback; stop() and start() keep its port for fault tests."""

    def __init__(
        self,
        workdir: Path,
        host: str = "127.0.0.1",
        port: int | None = None,
        persistence: bool = False,
        listener_options: str = "",
    ) -> None:
        """``listener_options``: extra mosquitto.conf lines for the listener (TLS, passwords)."""
        self.host = host
        self.port = port or free_port()
        self.binary = mosquitto_binary()
        self.config = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"
        # persistence: sessions and queued QoS 1 messages survive a restart, as on a plant broker.
        stored = "persistence false\n"
        if persistence:
            # Started as root, mosquitto would drop to its own user, who cannot write here.
            stay = "user root\n" if os.geteuid() == 0 else ""
            stored = f"persistence true\npersistence_location {workdir}/\n{stay}"
        if listener_options and os.geteuid() == 0 and "user root" not in stored:
            stored += "user root\n"  # certificates and password files stay readable
        anonymous = "false" if "password_file" in listener_options else "true"
        self.config.write_text(
            f"listener {self.port} {host}\n{listener_options}allow_anonymous {anonymous}\n"
            f"{stored}log_dest stderr\nlog_type all\n"
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "-c", str(self.config)], stdout=log, stderr=subprocess.STDOUT
            )
        if not wait_for_port(self.host, self.port, timeout):
            self.stop()
            tail = self.log.read_text(errors="replace")[-2000:]
            pytest.fail(f"mosquitto did not listen on {self.host}:{self.port}:\n{tail}")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class Message(NamedTuple):
    """Unpacks as ``topic, payload, retain``."""

    topic: str
    payload: bytes
    retain: bool


class Collector:
    """A paho subscriber that records every message; subscribed once the constructor returns."""

    def __init__(
        self, host: str, port: int, topic: str, qos: int = 1, persistent: bool = False
    ) -> None:
        """``persistent``: a durable session (clean_session=False) that reconnects by itself,
        so a broker with persistence queues what arrives while the collector is cut off."""
        self.topic = topic
        self.messages: list[Message] = []
        self._seen = 0  # how many a wait_for() has handed out, for assert_no_more()
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self._client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"test-collector-{uuid.uuid4().hex[:8]}",
            clean_session=not persistent,
        )
        self._client.reconnect_delay_set(min_delay=1, max_delay=2)
        self._client.on_message = self._on_message
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.connect(host, port, keepalive=10)
        self._client.loop_start()
        self._client.subscribe(topic, qos=qos)
        if not self._subscribed.wait(5):
            self.close()
            raise TimeoutError(f"no SUBACK for {topic} from {host}:{port}")

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            self.messages.append(Message(msg.topic, bytes(msg.payload), bool(msg.retain)))
            self._cond.notify_all()

    def wait_for(self, n: int, timeout: float = 5.0) -> list[Message]:
        """Up to ``timeout`` for ``n`` messages; returns what arrived (assert on its length)."""
        with self._cond:
            self._cond.wait_for(lambda: len(self.messages) >= n, timeout)
            self._seen = len(self.messages)
            return list(self.messages)

    def assert_no_more(self, timeout: float = 0.5) -> None:
        """Fail if anything beyond what wait_for() returned arrives within ``timeout``."""
        with self._cond:
            self._cond.wait_for(lambda: len(self.messages) > self._seen, timeout)
            extra = self.messages[self._seen :]
        assert not extra, f"unexpected messages on {self.topic}: {extra}"

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


class V311OnlyProxy:
    """A TCP proxy to the broker that, like an MQTT 3.1.1-only broker, refuses MQTT 5.

    mode "refuse": answers a v5 CONNECT with a 3.1.1 CONNACK rc 1 (unacceptable
    protocol version), as the 3.1.1 spec asks; mode "drop": just closes the socket.
    """

    def __init__(self, broker_host: str, broker_port: int, mode: str = "refuse") -> None:
        self.target = (broker_host, broker_port)
        self.mode = mode
        self.v5_attempts = 0
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        head = b""
        # Fixed header (1) + remaining length (1-4) + "\x00\x04MQTT" (6) + level (1).
        while len(head) < 12:
            chunk = conn.recv(4096)
            if not chunk:
                conn.close()
                return
            head += chunk
        length_bytes = next(i for i in range(1, 5) if head[i] < 0x80)
        level = head[1 + length_bytes + 6]
        if level == 5:
            self.v5_attempts += 1
            if self.mode == "refuse":
                conn.sendall(b"\x20\x02\x00\x01")
            conn.close()
            return
        upstream = socket.create_connection(self.target)
        upstream.sendall(head)
        threading.Thread(target=self._pipe, args=(upstream, conn), daemon=True).start()
        self._pipe(conn, upstream)

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def close(self) -> None:
        self._server.close()


# --- `inspector watch` and defect events -----------------------------------------------------

REPO = Path(__file__).resolve().parents[1]
WATCH = [sys.executable, "-m", "inspector", "watch"]
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def event(line: str, frame_id: int = 1234) -> dict[str, Any]:
    return {
        "schema": "inspector.defect/1",
        "event_id": f"{line}/cam0/3f2a9c/{frame_id}",
        "line": line,
        "camera": "cam0",
        "frame_id": frame_id,
        "captured_at": "2026-11-21T17:00:00.123456Z",
        "latency_ms": 47.5,
        "defects": [
            {"class": "crack", "score": 0.97, "bbox_px": [448, 224, 224, 224], "note": "résumé"},
            {"class": "stain", "score": 0.61, "bbox_px": [0, 0, 224, 224]},
        ],
    }


def compact(data: Any) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def publish_raw(broker: Broker, topic: str, payload: bytes) -> None:
    paho_publish.single(topic, payload, qos=1, hostname=broker.host, port=broker.port)


def inspector_watch(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*WATCH, *argv], cwd=REPO, env=ENV, capture_output=True, text=True, timeout=20
    )


def start_watch(broker: Broker, *argv: str) -> subprocess.Popen[str]:
    """``inspector watch`` in a subprocess, returned once it has subscribed."""
    child = subprocess.Popen(
        [*WATCH, "--port", str(broker.port), *argv],
        cwd=REPO,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stderr is not None
    first = child.stderr.readline()  # blocks until subscribed or failed
    assert "subscribed" in first, first + child.stderr.read()
    return child
