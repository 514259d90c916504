"""``inspector bench``: how close the whole pipeline comes to the bare engine, and INT8 to FP32."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inspector.cli.arguments import positive_int
from inspector.cli.run import DEFAULT_CONFIG

if TYPE_CHECKING:
    from inspector.bench.measure import Throughput
    from inspector.config import Settings

DESCRIPTION = """\
Measure, in one run, on the config's model, batch size (batching.max_batch) and
threads (model.threads):
  engine    the backend alone on full batches of real tiles, back to back;
  pipeline  the daemon replaying the first camera's recording: decode, tiling,
            batching, inference, post-processing, MQTT publish to the configured
            broker (start one first), timed from the pipeline's start to its last
            verdict (acks are awaited after, and must all arrive);
  naive     one tile at a time (resize, normalise, run): how the papers' code runs;
and their ratios. With --int8 MODEL the engine and pipeline are measured again on
that model, and int8_vs_fp32 is the ratio of the engine figures. When a camera has
calibration files, the pipeline is measured again without them: correction_cost.
With --evidence the pipeline is measured again with the [evidence] sink on (pictures
of every defect event into a temporary folder): evidence_cost.

A shared machine drifts by several per cent within a minute, so every measurement
is repeated --rounds times, interleaved (engine, pipeline, ..., engine, pipeline, ...),
and each figure is its median run; detail.*.rounds_tiles_per_s shows the spread.
"""

EPILOG = """\
example (benchmarks/bench.sh starts a broker and runs this):
  inspector bench --config config.toml --int8 engines/elpv-lite0-int8.onnx --json

exit status: 0 measured; 66 the recording cannot be read; 69 broker unreachable;
78 bad config or model.
"""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "bench",
        help="benchmark the pipeline against the bare engine (and INT8 against FP32)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config", type=Path, default=DEFAULT_CONFIG, help="TOML file (default: config.toml)"
    )
    parser.add_argument("--int8", type=Path, metavar="MODEL", help="an INT8 (Q/DQ) model too")
    parser.add_argument(
        "--evidence", action="store_true", help="the pipeline with the evidence sink on too"
    )
    parser.add_argument(
        "--backends",
        type=lambda text: [name.strip() for name in text.split(",") if name.strip()],
        metavar="LIST",
        help="every backend to measure, e.g. onnxruntime,openvino (default: the configured "
        "one); with --int8 each runs the INT8 model too, openvino bf16 where the CPU has it",
    )
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="per engine/naive measurement (default 10)"
    )
    parser.add_argument(
        "--rounds",
        type=positive_int,
        default=3,
        help="measure everything this many times, interleaved; report medians (default 3)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.set_defaults(func=run)


def _ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else 0.0


def run(args: argparse.Namespace) -> int:
    from inspector.bench.measure import (
        engine_throughput,
        frame_inference_ms,
        has_corrections,
        interleaved,
        median_run,
        naive_throughput,
        paced,
        pipeline_throughput,
        sample_tiles,
        tiles_per_frame,
        with_evidence,
        with_model,
        without_corrections,
    )
    from inspector.config import load_settings
    from inspector.logs import configure_logging

    settings = load_settings(args.config)
    configure_logging("warning", settings.logging.format)
    tiles = sample_tiles(settings)

    def say(text: str) -> None:
        print(f"bench: {text}", file=sys.stderr, flush=True)

    measurements: dict[str, Callable[[], Throughput]] = {
        "engine": lambda: engine_throughput(settings, tiles, args.seconds),
        "pipeline": lambda: pipeline_throughput(settings),
    }
    if has_corrections(settings):
        bare = without_corrections(settings)
        measurements["pipeline_uncorrected"] = lambda: pipeline_throughput(bare)
    if args.evidence:
        evidence_root = Path(tempfile.mkdtemp(prefix="inspector-bench-evidence-"))
        evidence = with_evidence(settings, evidence_root)
        measurements["pipeline_evidence"] = lambda: pipeline_throughput(evidence)
    if args.int8 is not None:
        int8_settings = with_model(settings, args.int8)
        measurements["int8_engine"] = lambda: engine_throughput(int8_settings, tiles, args.seconds)
        measurements["int8_pipeline"] = lambda: pipeline_throughput(int8_settings)
    variants = _variants(settings, args.backends or [settings.model.backend], args.int8, say)
    for name, (_, variant) in variants.items():
        if name not in (settings.model.backend, f"{settings.model.backend}-int8"):
            measurements[f"{name}:engine"] = _engine_run(engine_throughput, variant, tiles, args)
            measurements[f"{name}:pipeline"] = _pipeline_run(pipeline_throughput, variant)
    say(
        f"{settings.model.path.name}, batch {settings.batching.max_batch}, "
        f"replaying {settings.cameras[0].source}, {args.rounds} round(s)"
    )
    runs = interleaved(measurements, args.rounds, on_start=say)
    say("naive loop, one tile at a time")
    naive = naive_throughput(settings, tiles, args.seconds)
    typical = {name: median_run(series) for name, series in runs.items()}
    engine, pipeline = typical["engine"], typical["pipeline"]
    detail = {name: _detail(run, runs[name]) for name, run in typical.items()}
    detail["naive"] = naive.as_dict()
    result: dict[str, Any] = {
        "model": str(settings.model.path),
        "backend": settings.model.backend,
        "batch": settings.batching.max_batch,
        "threads": getattr(settings.model, "threads", None),  # onnxruntime's option
        "rounds": args.rounds,
        "engine_tiles_per_s": round(engine.tiles_per_s, 1),
        "pipeline_tiles_per_s": round(pipeline.tiles_per_s, 1),
        "naive_tiles_per_s": round(naive.tiles_per_s, 1),
        "pipeline_vs_engine": _ratio(pipeline.tiles_per_s, engine.tiles_per_s),
        "engine_vs_naive": _ratio(engine.tiles_per_s, naive.tiles_per_s),
        "latency_ms": pipeline.latency_ms,
        "engine_batch_ms": engine.latency_ms,
        "detail": detail,
    }
    if "pipeline_uncorrected" in typical:
        uncorrected = typical["pipeline_uncorrected"].tiles_per_s
        result["pipeline_uncorrected_tiles_per_s"] = round(uncorrected, 1)
        result["correction_cost"] = round(1 - pipeline.tiles_per_s / uncorrected, 3)
    if "pipeline_evidence" in typical:
        shutil.rmtree(evidence_root, ignore_errors=True)
        with_pictures = typical["pipeline_evidence"].tiles_per_s
        result["pipeline_evidence_tiles_per_s"] = round(with_pictures, 1)
        result["evidence_cost"] = round(1 - with_pictures / pipeline.tiles_per_s, 3)
    if args.int8 is not None:
        int8_engine, int8_pipeline = typical["int8_engine"], typical["int8_pipeline"]
        result.update(
            {
                "int8_model": str(args.int8),
                "int8_engine_tiles_per_s": round(int8_engine.tiles_per_s, 1),
                "int8_pipeline_tiles_per_s": round(int8_pipeline.tiles_per_s, 1),
                "int8_pipeline_vs_engine": _ratio(
                    int8_pipeline.tiles_per_s, int8_engine.tiles_per_s
                ),
                "int8_vs_fp32": _ratio(int8_engine.tiles_per_s, engine.tiles_per_s),
                "int8_latency_ms": int8_pipeline.latency_ms,
            }
        )
    result["backends"] = {}
    for name, (precision, _) in variants.items():
        key = {settings.model.backend: "", f"{settings.model.backend}-int8": "int8_"}.get(name)
        alone, whole = (
            (typical[f"{key}engine"], typical[f"{key}pipeline"]) if key is not None
            else (typical[f"{name}:engine"], typical[f"{name}:pipeline"])
        )  # fmt: skip
        result["backends"][name] = {
            "precision": precision,
            "engine_tiles_per_s": round(alone.tiles_per_s, 1),
            "pipeline_tiles_per_s": round(whole.tiles_per_s, 1),
            "pipeline_vs_engine": _ratio(whole.tiles_per_s, alone.tiles_per_s),
            "engine_vs_fp32": _ratio(alone.tiles_per_s, engine.tiles_per_s),
        }
    best = max(entry["engine_tiles_per_s"] for entry in result["backends"].values())
    result["pipeline_vs_best_engine"] = _ratio(pipeline.tiles_per_s, best)
    per_frame = tiles_per_frame(settings)
    half = pipeline.tiles_per_s / per_frame / 2
    say(f"latency at half load: {half:.1f} frames/s, paced")
    at_half = pipeline_throughput(paced(settings, half))
    result["latency"] = {
        "load": 0.5,
        "fps": round(half, 2),
        "frame_inference_ms": round(frame_inference_ms(settings, tiles, per_frame), 1),
        "p50_ms": at_half.latency_ms["p50"],
        "p99_ms": at_half.latency_ms["p99"],
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(_table(result))
    return 0


Variant = tuple[str, "Settings"]  # (precision, the settings that run it)


def _variants(
    settings: Settings,
    backends: list[str],
    int8: Path | None,
    say: Callable[[str], None],
) -> dict[str, Variant]:
    """Every backend and precision to measure, by name (``openvino``, ``openvino-int8``...)."""
    from inspector.bench.measure import with_backend
    from inspector.engines.openvino_engine import cpu_capabilities

    found: dict[str, Variant] = {}
    for backend in backends:
        found[backend] = ("fp32", with_backend(settings, backend))
        if int8 is not None:
            precision = "int8" if backend == "openvino" else None
            found[f"{backend}-int8"] = ("int8", with_backend(settings, backend, int8, precision))
        if backend == "openvino":
            if "BF16" in cpu_capabilities():
                found["openvino-bf16"] = ("bf16", with_backend(settings, backend, None, "bf16"))
            else:
                say("openvino bf16: not measured, this CPU has no bf16 units")
    return found


def _engine_run(
    measure: Callable[[Settings, Any, float], Throughput], settings: Settings, tiles: Any,
    args: argparse.Namespace,
) -> Callable[[], Throughput]:  # fmt: skip
    return lambda: measure(settings, tiles, args.seconds)


def _pipeline_run(
    measure: Callable[[Settings], Throughput], settings: Settings
) -> Callable[[], Throughput]:
    return lambda: measure(settings)


def _detail(typical: Throughput, series: list[Throughput]) -> dict[str, Any]:
    """The median run, and every round's figure beside it (the spread shows the noise)."""
    return {**typical.as_dict(), "rounds_tiles_per_s": [round(r.tiles_per_s, 1) for r in series]}


def _table(result: dict[str, Any]) -> str:
    latency = result["latency_ms"]
    detail = result["detail"]

    def spread(name: str) -> str:
        figures = detail[name]["rounds_tiles_per_s"]
        return f"[rounds {min(figures):.0f}-{max(figures):.0f}]" if len(figures) > 1 else ""

    lines = [
        f"model {result['model']}  batch {result['batch']}  threads {result['threads']}  "
        f"(medians of {result['rounds']} interleaved rounds)",
        f"  engine    {result['engine_tiles_per_s']:>9.1f} tiles/s  {spread('engine')}",
        f"  pipeline  {result['pipeline_tiles_per_s']:>9.1f} tiles/s  {spread('pipeline')}  "
        f"= {result['pipeline_vs_engine']:.3f} x engine  "
        f"(latency p50 {latency['p50']:.0f} ms, p99 {latency['p99']:.0f} ms)",
        f"  naive     {result['naive_tiles_per_s']:>9.1f} tiles/s  "
        f"(engine = {result['engine_vs_naive']:.1f} x naive)",
    ]
    if "correction_cost" in result:
        lines.append(
            f"  corrections (flat-field, undistortion) cost {result['correction_cost']:.1%} "
            f"of pipeline throughput ({result['pipeline_uncorrected_tiles_per_s']:.1f} tiles/s "
            f"without {spread('pipeline_uncorrected')})"
        )
    if "evidence_cost" in result:
        lines.append(
            f"  evidence (crops and annotated frames of every event) cost "
            f"{result['evidence_cost']:.1%} of pipeline throughput "
            f"({result['pipeline_evidence_tiles_per_s']:.1f} tiles/s with it "
            f"{spread('pipeline_evidence')})"
        )
    if "int8_vs_fp32" in result:
        lines += [
            f"INT8 {result['int8_model']}",
            f"  engine    {result['int8_engine_tiles_per_s']:>9.1f} tiles/s  "
            f"{spread('int8_engine')}  = {result['int8_vs_fp32']:.2f} x FP32",
            f"  pipeline  {result['int8_pipeline_tiles_per_s']:>9.1f} tiles/s  "
            f"{spread('int8_pipeline')}  = {result['int8_pipeline_vs_engine']:.3f} x engine",
        ]
    if len(result["backends"]) > 1:
        lines.append("backends (engine alone / whole pipeline, tiles/s; engine vs the first):")
        for name, entry in result["backends"].items():
            lines.append(
                f"  {name:<18} {entry['engine_tiles_per_s']:>8.1f} / "
                f"{entry['pipeline_tiles_per_s']:>8.1f}   {entry['engine_vs_fp32']:.2f} x"
            )
    latency = result["latency"]
    lines.append(
        f"latency at half load ({latency['fps']:.1f} frames/s): p50 {latency['p50_ms']:.0f} ms, "
        f"p99 {latency['p99_ms']:.0f} ms; one frame's inference "
        f"{latency['frame_inference_ms']:.0f} ms"
    )
    on_cpu = result["backend"] == "onnxruntime"
    if on_cpu and result["pipeline_vs_engine"] < 0.95 and result["threads"] != 1:
        lines.append(
            "note: the pipeline's own work (decode, corrections, tiling) competes with the "
            "engine's threads for the cores; model.threads = (cores - 1) leaves it one"
        )
    return "\n".join(lines)
