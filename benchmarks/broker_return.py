"""How long after a broker comes back the daemon's MQTT connection is up again.

A real Mosquitto on loopback is stopped for each outage length, started again, and the
publisher's reconnect timed from the moment the broker listens. Prints one line per outage
and, with --json, one JSON object.

    .venv/bin/python benchmarks/broker_return.py --outages 2,4,10,30 2>/dev/null  # no logs
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from inspector.publishing.connection import port_answers
from inspector.publishing.mqtt import MqttPublisher
from inspector.publishing.settings import MqttSettings


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start(binary: str, conf: Path, port: int) -> subprocess.Popen[bytes]:
    broker = subprocess.Popen([binary, "-c", str(conf)], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not port_answers("127.0.0.1", port):
        if time.monotonic() > deadline:
            raise SystemExit(f"broker_return: mosquitto did not listen on 127.0.0.1:{port}")
        time.sleep(0.01)
    return broker


def _wait(condition: object, timeout: float = 120.0) -> float:
    started = time.monotonic()
    while not condition():  # type: ignore[operator]
        if time.monotonic() - started > timeout:
            raise SystemExit("broker_return: no reconnect within 120 s")
        time.sleep(0.01)
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outages", default="2,4,10,30", help="outage lengths in s (2,4,10,30)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = _free_port()
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        conf = Path(folder) / "mosquitto.conf"
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
        broker = _start(binary, conf, port)
        settings = MqttSettings(port=port)
        with MqttPublisher(settings, f"bench{uuid.uuid4().hex[:6]}") as publisher:
            for outage in (float(text) for text in args.outages.split(",")):
                broker.terminate()
                broker.wait()
                _wait(lambda: not publisher.connected)
                time.sleep(outage)
                broker = _start(binary, conf, port)
                took = _wait(lambda: publisher.connected)
                figures[f"{outage:g}"] = round(took, 2)
                print(f"outage {outage:g} s: connected {took:.2f} s after the broker listened")
        broker.terminate()
        broker.wait()
    if args.json:
        print(json.dumps({"reconnect_s_by_outage_s": figures}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
