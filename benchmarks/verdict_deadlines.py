"""Verdicts by a deadline, timed at the subscriber: the three figures of README "Verdicts and
PLCs".

    .venv/bin/python benchmarks/verdict_deadlines.py [--config config.toml]
        [--video V.mp4] [--model M.onnx] [--threads N] [--seconds 90] [--json]

1. Half load: the recording played at half the pipeline's measured capacity (live, drop
   oldest), deadline_ms = 3x one frame's inference: late verdicts of N, and p50/p99 from
   capture to the verdict's arrival at an MQTT subscriber.
2. Overload: the same deadline with frames coming at twice the capacity (the model too slow
   for the frame rate): every frame has a verdict, the late verdicts equal the frames that
   missed the deadline, and how long after its deadline each late verdict arrives (p99).
3. OPC UA: at half load, from a verdict's arrival on MQTT to the same frame's value arriving
   at an asyncua client's subscription to LastFrameId (p99).

Each run is `inspector run` in its own process against a Mosquitto this script starts on
loopback; the subscribers are this process. ``--threads`` sets the engine's threads (default:
cores - 1, leaving a core to capture, the deadline timer and the broker).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from inspector.bench.measure import (
    frame_inference_ms,
    pipeline_throughput,
    sample_tiles,
    tiles_per_frame,
    with_backend,
)
from inspector.config import load_settings

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def stamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


class Verdicts:
    """Every verdict of a line with its arrival time (time.time()) at this subscriber."""

    def __init__(self, port: int, line: str) -> None:
        self.arrivals: list[tuple[float, dict[str, Any]]] = []
        ready = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"bench-{uuid.uuid4()}"
        )
        self.client.on_message = lambda _c, _u, m: self.arrivals.append(
            (time.time(), json.loads(m.payload))
        )
        self.client.on_subscribe = lambda *_: ready.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.client.subscribe(f"line/{line}/verdicts/+", qos=1)
        ready.wait(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class OpcUaWatch:
    """An asyncua client (the PLC) on its own loop, timing each LastFrameId value."""

    def __init__(self, port: int, line: str) -> None:
        self.values: dict[int, float] = {}
        self.port, self.line = port, line
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._watch()), daemon=True)
        self._thread.start()

    def datachange_notification(self, node: Any, value: Any, data: Any) -> None:
        self.values.setdefault(int(value), time.time())

    async def _watch(self) -> None:
        from asyncua import Client

        client = Client(f"opc.tcp://127.0.0.1:{self.port}/line-inspector", timeout=10)
        while True:
            try:
                await client.connect()
                break
            except (OSError, TimeoutError):
                if self._stop.is_set():
                    return
                await asyncio.sleep(0.2)
        try:
            index = await client.get_namespace_index("urn:line-inspector")
            node = client.get_node(f"ns={index};s=LineInspector.{self.line}.cam0.LastFrameId")
            subscription = await client.create_subscription(5, self)
            await subscription.subscribe_data_change(node, queuesize=1000)
            while not self._stop.is_set():
                await asyncio.sleep(0.05)
        finally:
            with contextlib.suppress(Exception):  # the daemon may have gone first
                await client.disconnect()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)


Run = tuple[dict[str, Any], Verdicts, "OpcUaWatch | None"]


def run_line(
    folder: Path, settings: Any, port: int, fps: float, deadline_ms: float, seconds: float,
    opcua_port: int | None = None,
) -> Run:  # fmt: skip
    """`inspector run` on the recording paced at ``fps`` (drop oldest), verdicts on."""
    line = f"bench{uuid.uuid4().hex[:6]}"
    camera = settings.cameras[0]
    model = settings.model
    threads = getattr(model, "threads", None)
    opcua = ""
    if opcua_port is not None:
        opcua = f"[opcua]\nenabled = true\nport = {opcua_port}\nallow_anonymous = true\n"
    config = folder / f"{line}.toml"
    config.write_text(
        f'[line]\nid = "{line}"\n[[cameras]]\nid = "cam0"\nsource = "{camera.source}"\n'
        f'realtime = true\nfps = {fps:.3f}\npolicy = "drop_oldest"\n'
        f"queue_size = {camera.queue_size}\n"
        f'[model]\npath = "{model.path}"\nbackend = "{model.backend}"\n'
        + (f"threads = {threads}\n" if threads is not None else "")
        + f"[tiling]\nsize = {settings.tiling.size}\nstride = {settings.tiling.stride}\n"
        f"[batching]\nmax_batch = {settings.batching.max_batch}\n"
        f"max_wait_ms = {settings.batching.max_wait_ms}\n[mqtt]\nport = {port}\n"
        f'[outbox]\npath = "{folder / line}.sqlite"\n'
        f"[verdicts]\nenabled = true\ndeadline_ms = {deadline_ms:.1f}\n{opcua}"
        '[logging]\nlevel = "warning"\n'
    )
    verdicts = Verdicts(port, line)
    watch = OpcUaWatch(opcua_port, line) if opcua_port is not None else None
    daemon = subprocess.Popen(
        [sys.executable, "-m", "inspector", "run", "--config", str(config), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    started = time.monotonic()  # the run's seconds count from its first verdict, not its start
    while not verdicts.arrivals and daemon.poll() is None and time.monotonic() - started < 600:
        time.sleep(0.1)
    try:
        out, err = daemon.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        daemon.send_signal(signal.SIGTERM)  # what was captured is still decided and sent
        out, err = daemon.communicate()
    if daemon.returncode != 0:
        raise SystemExit(f"inspector run failed ({daemon.returncode}): {err[-2000:]}")
    time.sleep(1.0)  # the last acknowledgements
    verdicts.close()
    if watch is not None:
        watch.close()
    return json.loads(out), verdicts, watch


def half_load(summary: dict[str, Any], verdicts: Verdicts) -> dict[str, Any]:
    firsts: dict[str, dict[str, Any]] = {}
    latencies = []
    for at, verdict in verdicts.arrivals:
        firsts.setdefault(verdict["event_id"], verdict)
        if verdict["verdict"] != "late":
            latencies.append((at - stamp(verdict["captured_at"])) * 1e3)
    late = sum(1 for _, v in verdicts.arrivals if v["verdict"] == "late")
    return {
        "frames": summary["frames_captured"],
        "parts_with_a_verdict": len(firsts),
        "late": late,
        "capture_to_verdict_p50_ms": pct(latencies, 0.5),
        "capture_to_verdict_p99_ms": pct(latencies, 0.99),
    }


def overload(summary: dict[str, Any], verdicts: Verdicts) -> dict[str, Any]:
    late_after_ms, sent_after_ms, missed = [], [], set()
    real: dict[str, dict[str, Any]] = {}
    late_ids = []
    for at, verdict in verdicts.arrivals:
        if verdict["verdict"] == "late":
            late_ids.append(verdict["event_id"])
            late_after_ms.append((at - stamp(verdict["deadline_at"])) * 1e3)
            sent_after_ms.append(
                (stamp(verdict["published_at"]) - stamp(verdict["deadline_at"])) * 1e3
            )
        else:
            real[verdict["event_id"]] = verdict
    ids = {v["event_id"] for _, v in verdicts.arrivals}
    for event_id in ids:  # missed: dropped, or decided after its deadline
        verdict = real.get(event_id)
        if verdict is None or stamp(verdict["published_at"]) > stamp(verdict["deadline_at"]):
            missed.add(event_id)
    # A late part is decided later, or dropped by the queue: flagged "dropped" when that
    # came before its deadline, else it is a late verdict that nothing follows.
    flagged = {v["event_id"] for _, v in verdicts.arrivals if v.get("dropped")}
    unfollowed = {e for e in late_ids if e not in real and e not in flagged}
    return {
        "frames": summary["frames_captured"],
        "frames_dropped": summary["frames_dropped"],
        "parts_with_a_verdict": len(ids),
        "late": len(late_ids),
        "missed_deadline": len(missed),
        "late_equals_missed": len(late_ids) == len(missed) == len(set(late_ids)),
        "late_without_real_verdict_equals_dropped": len(flagged | unfollowed)
        == summary["frames_dropped"],
        "late_after_deadline_p50_ms": pct(late_after_ms, 0.5),
        "late_after_deadline_p99_ms": pct(late_after_ms, 0.99),
        "late_after_deadline_max_ms": pct(late_after_ms, 1.0),
        # the daemon's share: when its deadline timer sent the late verdict
        "late_sent_after_deadline_p99_ms": pct(sent_after_ms, 0.99),
    }


def opcua_figures(verdicts: Verdicts, watch: OpcUaWatch) -> dict[str, Any]:
    mqtt_at = {v["frame_id"]: at for at, v in verdicts.arrivals if v["verdict"] != "late"}
    delays = [(watch.values[f] - at) * 1e3 for f, at in mqtt_at.items() if f in watch.values]
    return {
        "verdicts": len(mqtt_at),
        "matched": len(delays),
        "mqtt_to_opcua_p50_ms": pct(delays, 0.5),
        "mqtt_to_opcua_p99_ms": pct(delays, 0.99),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=ROOT / "config.toml")
    parser.add_argument("--video", type=Path, help="default: the config's first camera")
    parser.add_argument("--model", type=Path, help="default: the config's model")
    parser.add_argument("--threads", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    parser.add_argument(
        "--seconds", type=float, default=90.0, help="each run stops (SIGTERM) after this long"
    )
    parser.add_argument("--frame-ms", type=float, help="one frame's inference (skip measuring)")
    parser.add_argument("--capacity", type=float, help="pipeline frames/s (skip measuring)")
    parser.add_argument("--json", action="store_true", help="only the JSON figures on stdout")
    args = parser.parse_args()
    say = (lambda _m: None) if args.json else (lambda m: print(m, file=sys.stderr, flush=True))
    overrides: dict[str, Any] = {"outbox": {"enabled": False}}
    if args.video:
        overrides["cameras"] = [{"id": "cam0", "source": str(args.video.resolve())}]
    settings = load_settings(args.config, **overrides)
    settings = with_backend(settings, settings.model.backend, args.model and args.model.resolve())
    model = settings.model.model_copy(update={"threads": args.threads})
    settings = settings.model_copy(update={"model": model})
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        port = free_port()
        (folder / "mosquitto.conf").write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
        broker = subprocess.Popen([binary, "-c", str(folder / "mosquitto.conf")],
                                  stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(0.5)
        try:
            # The in-process measurements log as the daemon does: to stderr, not the JSON.
            with contextlib.redirect_stdout(sys.stderr):
                per_frame = tiles_per_frame(settings)
                frame_ms = args.frame_ms or frame_inference_ms(
                    settings, sample_tiles(settings), per_frame
                )
                lossless = settings.model_copy(update={"mqtt": settings.mqtt.model_copy(
                    update={"port": port})})  # fmt: skip
                capacity = args.capacity or pipeline_throughput(lossless).tiles_per_s / per_frame
            deadline = 3 * frame_ms
            say(f"one frame ({per_frame} tiles): {frame_ms:.1f} ms; capacity {capacity:.1f} "
                f"frames/s; deadline {deadline:.1f} ms")  # fmt: skip
            say(f"half load: {capacity / 2:.1f} frames/s")
            line = (folder, settings, port)
            half = half_load(*run_line(*line, capacity / 2, deadline, args.seconds)[:2])
            say(f"overload: {capacity * 2:.1f} frames/s")
            over = overload(*run_line(*line, capacity * 2, deadline, args.seconds)[:2])
            say("OPC UA at half load")
            _, verdicts, watch = run_line(*line, capacity / 2, deadline, args.seconds, free_port())
            assert watch is not None
            opc = opcua_figures(verdicts, watch)
        finally:
            broker.terminate()
    print(json.dumps({
        "tiles_per_frame": per_frame,
        "frame_inference_ms": round(frame_ms, 1),
        "capacity_fps": round(capacity, 2),
        "deadline_ms": round(deadline, 1),
        "model_threads": args.threads,
        "half_load": {"fps": round(capacity / 2, 2), **half},
        "overload": {"fps": round(capacity * 2, 2), **over},
        "opcua": opc,
    }, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
