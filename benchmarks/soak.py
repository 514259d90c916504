"""Soak test (issue 6): the daemon on a looping recording, paced like a live line, for N
minutes; resident memory, queue depths and drops sampled; the growth reported.

    .venv/bin/python benchmarks/soak.py --minutes 10          # writes reports/soak.json (+ .png)

Starts its own Mosquitto on loopback and runs ``inspector run`` on config.toml's first
camera with ``loop = true`` and ``realtime = true``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from inspector.config import load_settings

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if "le" not in sample.labels:
                values[sample.name] = values.get(sample.name, 0.0) + sample.value
    return values


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=ROOT / "config.toml")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "soak.json")
    args = parser.parse_args()

    settings = load_settings(args.config)
    camera = settings.cameras[0].model_dump(mode="json")  # paths and enums as JSON strings
    camera.update(loop=True, realtime=True)
    workdir = Path(tempfile.mkdtemp(prefix="soak-"))
    broker_port, metrics_port = free_port(), free_port()
    (workdir / "mosquitto.conf").write_text(
        f"listener {broker_port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
    )
    broker = subprocess.Popen(
        ["mosquitto", "-c", str(workdir / "mosquitto.conf")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    env = {
        **os.environ,
        "INSPECTOR__CAMERAS": json.dumps([camera]),
        "INSPECTOR__MQTT__PORT": str(broker_port),
        "INSPECTOR__METRICS__PORT": str(metrics_port),
        "INSPECTOR__OUTBOX__PATH": str(workdir / "outbox.sqlite"),
        "INSPECTOR__LOGGING__LEVEL": "warning",
    }
    time.sleep(0.5)
    daemon = subprocess.Popen(
        [sys.executable, "-m", "inspector", "run", "--config", str(args.config)], env=env
    )
    samples: list[dict[str, Any]] = []
    started = time.monotonic()
    try:
        while (elapsed := time.monotonic() - started) < args.minutes * 60:
            time.sleep(args.interval)
            if daemon.poll() is not None:
                print(f"soak: the daemon exited with {daemon.returncode}", file=sys.stderr)
                return 1
            try:
                metrics = scrape(metrics_port)
            except OSError:
                continue
            sample = {
                "t_s": round(elapsed + args.interval, 1),
                "rss_mb": round(rss_mb(daemon.pid), 1),
                "frames_inferred": metrics.get("inspector_frames_inferred_total", 0),
                "frames_dropped": metrics.get("inspector_frames_dropped_total", 0),
                "queue_depth": metrics.get("inspector_queue_depth", 0),
                "engine_queue_depth": metrics.get("inspector_engine_queue_depth", 0),
                "outbox_backlog": metrics.get("inspector_outbox_backlog", 0),
            }
            samples.append(sample)
            print(f"soak: {json.dumps(sample)}", file=sys.stderr, flush=True)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
        broker.terminate()
        shutil.rmtree(workdir, ignore_errors=True)
    if len(samples) < 2:
        print("soak: too short to say anything; run for longer", file=sys.stderr)
        return 1
    # Growth after warm-up: the first minute holds arenas and caches being filled.
    settled = [s for s in samples if s["t_s"] >= 60] or samples
    first, last = settled[0], settled[-1]
    hours = max((last["t_s"] - first["t_s"]) / 3600, 1e-9)
    summary = {
        "minutes": args.minutes,
        "frames_inferred": last["frames_inferred"],
        "frames_dropped": last["frames_dropped"],
        "rss_mb_after_warmup": first["rss_mb"],
        "rss_mb_at_end": last["rss_mb"],
        "rss_growth_mb": round(last["rss_mb"] - first["rss_mb"], 1),
        "rss_growth_mb_per_hour": round((last["rss_mb"] - first["rss_mb"]) / hours, 1),
        "max_queue_depth": max(s["queue_depth"] for s in samples),
        "max_engine_queue_depth": max(s["engine_queue_depth"] for s in samples),
        "max_outbox_backlog": max(s["outbox_backlog"] for s in samples),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": summary, "samples": samples}, indent=2) + "\n")
    _plot(samples, args.out.with_suffix(".png"))
    print(json.dumps(summary, indent=2))
    return 0


def _plot(samples: list[dict[str, Any]], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return  # the [train] extra brings matplotlib; the JSON says it all anyway
    minutes = [s["t_s"] / 60 for s in samples]
    figure, (memory, queues) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    memory.plot(minutes, [s["rss_mb"] for s in samples])
    memory.set_ylabel("resident memory (MB)")
    for key in ("queue_depth", "engine_queue_depth", "outbox_backlog"):
        queues.plot(minutes, [s[key] for s in samples], label=key)
    queues.set_ylabel("depth")
    queues.set_xlabel("minutes")
    queues.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


if __name__ == "__main__":
    sys.exit(main())
