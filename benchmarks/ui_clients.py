"""What does the operator's page cost the pipeline? The whole pipeline to a real Mosquitto,
with the evidence sink on, in interleaved rounds: the page off, the page on with nobody
watching, and the page with browsers attached; medians of tiles/s and the cost of each.

    .venv/bin/python benchmarks/ui_clients.py [--config config.toml] [--rounds 5] [--clients 3]

Starts its own Mosquitto on loopback; the recording is the config's first camera, replayed
losslessly (as fast as the engine allows), so every frame the page costs shows. A client
does what the page's script does, from another process (a browser is one): it holds the live
stream open, fetches every camera picture the stream announces (one in flight at a time)
and every new defect's crop.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MODES = ("off", "idle", "clients")
# The page's threads in the daemon's process: uvicorn's loop, the pictures' worker threads,
# and the sink's fan-out thread.
UI_THREADS = ("ui", "AnyIO worker thread", "sink-ui")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(connection: http.client.HTTPConnection, path: str) -> int:
    connection.request("GET", path)
    response = connection.getresponse()
    size = len(response.read())
    return size if response.status == 200 else 0


def _browser(port: int, stop: Any, fetched: Any) -> None:
    """One page: the live stream, and each picture it names (over a second connection)."""
    while not stop.is_set():
        try:
            stream = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            pictures = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            stream.request("GET", "/api/stream")
            response = stream.getresponse()
            if response.status != 200:
                raise OSError(f"stream: {response.status}")
            shown: dict[str, str] = {}
            crops: set[str] = set()
            while not stop.is_set():
                line = response.readline()
                if not line:
                    break
                if not line.startswith(b"data: "):
                    continue
                status = json.loads(line[6:])
                for camera in status["cameras"]:
                    url = camera.get("frame_url")
                    if url and shown.get(camera["id"]) != url:
                        shown[camera["id"]] = url
                        fetched[0] += _get(pictures, url) > 0
                for event in status["events"]:
                    for url in (event.get("evidence") or {}).get("crop_urls", [])[:1]:
                        if url not in crops:
                            crops.add(url)
                            fetched[1] += _get(pictures, url) > 0
                fetched[2] += 1
        except (OSError, http.client.HTTPException, ValueError):
            time.sleep(0.02)  # the page's server is not up yet (or has closed): try again


def clients(port: int, count: int, stop: Any, ready: Any, fetched: Any) -> None:
    threads = [
        threading.Thread(target=_browser, args=(port, stop, fetched), daemon=True)
        for _ in range(count)
    ]
    for thread in threads:
        thread.start()
    ready.set()
    for thread in threads:
        thread.join()


class ThreadClock:
    """CPU seconds of this process's page threads (from /proc), sampled while a run lasts:
    the share of the daemon's CPU the page takes, whatever else loads the machine."""

    def __init__(self) -> None:
        self.seconds: dict[int, float] = {}  # page thread id -> CPU seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._tick = os.sysconf("SC_CLK_TCK")

    def _sample(self) -> None:
        for thread in threading.enumerate():
            tid = thread.native_id
            if tid is None or not thread.name.startswith(UI_THREADS):
                continue
            try:
                stat = Path(f"/proc/self/task/{tid}/stat").read_text()
            except OSError:
                continue  # it has just ended: its last sample stands
            fields = stat.rsplit(")", 1)[1].split()
            self.seconds[tid] = (int(fields[11]) + int(fields[12])) / self._tick

    def _loop(self) -> None:
        while not self._stop.wait(0.05):
            self._sample()

    def __enter__(self) -> ThreadClock:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def total(self) -> float:
        return sum(self.seconds.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=ROOT / "config.toml")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--clients", type=int, default=3, help="browsers attached")
    parser.add_argument("--video", type=Path, help="default: the config's first camera")
    parser.add_argument("--model", type=Path, help="default: the config's model")
    args = parser.parse_args()
    # Imported here: the clients' process (spawned) loads this module without the daemon.
    from inspector.config import load_settings
    from inspector.daemon import run_pipeline
    from inspector.logs import configure_logging

    configure_logging("warning")  # stdout is the figures
    broker_port, ui_port = free_port(), free_port()
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    spawn = multiprocessing.get_context("spawn")
    rates: dict[str, list[float]] = {mode: [] for mode in MODES}
    cpu_ms: dict[str, list[float]] = {mode: [] for mode in MODES}  # this process, per frame
    ui_share: dict[str, list[float]] = {mode: [] for mode in MODES}  # of this process's CPU
    ui_cores: dict[str, list[float]] = {mode: [] for mode in MODES}  # CPU s per wall s
    fetched_per_run: list[list[int]] = []
    with tempfile.TemporaryDirectory() as folder:
        conf = Path(folder) / "mosquitto.conf"
        conf.write_text(f"listener {broker_port} 127.0.0.1\nallow_anonymous true\n")
        broker = subprocess.Popen([binary, "-c", str(conf)], stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        try:
            base: dict[str, Any] = {
                "mqtt": {"port": broker_port},
                "outbox": {"enabled": False},
                "evidence": {"enabled": True, "path": Path(folder) / "evidence"},
            }
            if args.video:
                base["cameras"] = [{"id": "cam0", "source": str(args.video.resolve())}]
            if args.model:
                base["model"] = {"path": args.model.resolve()}
            for round_ in range(args.rounds):
                # The order turns every round: no mode always runs on a warmer machine.
                for mode in MODES[round_ % 3 :] + MODES[: round_ % 3]:
                    ui = {"enabled": mode != "off", "port": ui_port}
                    settings = load_settings(args.config, **base, ui=ui)
                    stop, ready, fetched = spawn.Event(), spawn.Event(), spawn.Array("l", 3)
                    watcher = None
                    if mode == "clients":
                        watcher = spawn.Process(
                            target=clients, args=(ui_port, args.clients, stop, ready, fetched)
                        )
                        watcher.start()
                        ready.wait(60)  # knocking before the server opens: there from the start
                    cpu, wall = time.process_time(), time.perf_counter()
                    try:
                        with ThreadClock() as page:
                            summary = run_pipeline(settings)
                    finally:
                        stop.set()
                        if watcher is not None:
                            watcher.join(10)
                            if watcher.is_alive():
                                watcher.terminate()
                    rates[mode].append(summary.tiles_inferred / max(summary.elapsed_s, 1e-9))
                    frames = max(summary.frames_inferred, 1)
                    cpu_ms[mode].append((time.process_time() - cpu) * 1e3 / frames)
                    ui_share[mode].append(page.total / max(time.process_time() - cpu, 1e-9))
                    ui_cores[mode].append(page.total / (time.perf_counter() - wall))
                    if mode == "clients":
                        fetched_per_run.append(list(fetched))
        finally:
            broker.terminate()
    medians = {mode: statistics.median(values) for mode, values in rates.items()}
    # Each round's modes ran back to back: their ratio cancels most of the machine's drift.
    paired = {
        mode: statistics.median(
            [1 - r / off for r, off in zip(rates[mode], rates["off"], strict=True)]
        )
        for mode in ("idle", "clients")
    }
    cpu = {mode: statistics.median(values) for mode, values in cpu_ms.items()}
    print(json.dumps({
        "rounds": args.rounds,
        "clients": args.clients,
        "tiles_per_s": {k: round(v, 1) for k, v in medians.items()},
        "tiles_per_s_each_round": {k: [round(v, 1) for v in vs] for k, vs in rates.items()},
        # Throughput lost against the page off: the median of each round's paired ratio.
        "ui_idle_cost": round(paired["idle"], 4),
        "ui_clients_cost": round(paired["clients"], 4),
        # CPU time of the daemon's process per frame (the clients run in another process).
        "cpu_ms_per_frame": {k: round(v, 2) for k, v in cpu.items()},
        "ui_clients_cpu_cost": round(cpu["clients"] / cpu["off"] - 1, 4),
        # The page's threads' share of the daemon's CPU time (medians of the runs).
        "ui_cpu_share": {m: round(statistics.median(v), 4) for m, v in ui_share.items()},
        # The same as a load: cores the page's threads kept busy while the pipeline ran.
        "ui_cores": {m: round(statistics.median(v), 4) for m, v in ui_cores.items()},
        "cpu_cores": os.cpu_count(),
        # Per run with clients: camera pictures, crops and live updates they received in all.
        "fetched_pictures_crops_updates": fetched_per_run,
    }, indent=2))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
