"""Does a bad sink cost inference anything? The whole pipeline to a real Mosquitto, with MQTT
alone and with MQTT plus a sink that raises on every call and one that sleeps 1 s per call,
in interleaved rounds; medians of tiles/s and their ratio, and MQTT completeness.

    .venv/bin/python benchmarks/sink_isolation.py [--config config.toml] [--rounds 5]

Starts its own Mosquitto on loopback; the recording is config.toml's first camera, replayed
losslessly (as fast as the engine allows).
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from inspector.config import load_settings
from inspector.daemon import run_pipeline
from inspector.pipeline.runner import RunSummary
from inspector.sinks import Sink
from inspector.types.results import FrameResult, SinkHealth

ROOT = Path(__file__).resolve().parent.parent


class Failing:
    name, lossless = "failing", False

    def _fail(self, *_: Any) -> None:
        raise RuntimeError("fails on every call")

    frame_result = camera_status = stats = _fail

    def health(self) -> SinkHealth:
        return SinkHealth("down", "fails on every call")

    def close(self) -> None:
        pass


class Sleeping:
    name, lossless = "sleeping", False

    def frame_result(self, result: FrameResult) -> None:
        time.sleep(1.0)

    def camera_status(self, camera: str, status: Mapping[str, Any]) -> None:
        time.sleep(1.0)

    def stats(self, stats: Mapping[str, Any]) -> None:
        time.sleep(1.0)

    def health(self) -> SinkHealth:
        return SinkHealth()

    def close(self) -> None:
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=ROOT / "config.toml")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--video", type=Path, help="default: the config's first camera")
    parser.add_argument("--model", type=Path, help="default: the config's model")
    args = parser.parse_args()
    with socket.socket() as probe:  # a free loopback port for this run's broker
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    with tempfile.TemporaryDirectory() as folder:
        conf = Path(folder) / "mosquitto.conf"
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
        broker = subprocess.Popen([binary, "-c", str(conf)], stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        try:
            overrides: dict[str, Any] = {"mqtt": {"port": port}, "outbox": {"enabled": False}}
            if args.video:
                overrides["cameras"] = [{"id": "cam0", "source": str(args.video.resolve())}]
            if args.model:
                overrides["model"] = {"path": args.model.resolve()}
            settings = load_settings(args.config, **overrides)
            rates: dict[str, list[float]] = {"mqtt": [], "mqtt+bad": []}
            events: dict[str, list[int]] = {"mqtt": [], "mqtt+bad": []}
            for _ in range(args.rounds):
                for name, extra in (("mqtt", ()), ("mqtt+bad", (Failing(), Sleeping()))):
                    sinks: tuple[Sink, ...] = extra  # type: ignore[assignment]
                    summary: RunSummary = run_pipeline(settings, extra_sinks=sinks)
                    rates[name].append(summary.tiles_inferred / max(summary.elapsed_s, 1e-9))
                    events[name].append(summary.events)
        finally:
            broker.terminate()
    medians = {name: statistics.median(values) for name, values in rates.items()}
    print(json.dumps({
        "rounds": args.rounds,
        "tiles_per_s": {k: round(v, 1) for k, v in medians.items()},
        "bad_sinks_vs_mqtt_only": round(medians["mqtt+bad"] / medians["mqtt"], 3),
        "events_acknowledged": events,
    }, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
