"""The replay report: one JSON-able dict, the pass/fail checks, and the terminal summary."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from inspector.acceptance.scoring import Reported, score_classes, score_frames
from inspector.acceptance.truth import Truth
from inspector.config import AcceptanceSettings
from inspector.pipeline.stats import percentiles

REPORT_SCHEMA = "inspector.replay-report/1"
_HISTOGRAM_BINS = 30


@dataclass(frozen=True, slots=True)
class ReplayRun:
    """What a replay measured, before scoring."""

    video: str
    truth: str | None
    line: str
    camera: str
    run_id: str
    model: Mapping[str, str]
    realtime: bool
    frames: int
    frames_inferred: int
    tiles: int
    elapsed_s: float
    dropped_frames: int
    events_published: int
    events_delivered: int
    ack_latency_ms: Sequence[float]  # capture -> broker acknowledgement, one per event
    frame_latency_ms: Mapping[str, float]  # capture -> verdict, the pipeline's own percentiles


def _histogram(samples: Sequence[float]) -> dict[str, list[float]]:
    if not samples:
        return {"edges": [], "counts": []}
    counts, edges = np.histogram(np.asarray(samples, np.float64), bins=_HISTOGRAM_BINS)
    return {"edges": [round(float(e), 3) for e in edges], "counts": [int(c) for c in counts]}


def _timeline(defects: Mapping[int, Sequence[Any]]) -> dict[str, list[int]]:
    by_label: dict[str, set[int]] = {}
    for frame, items in defects.items():
        for item in items:
            by_label.setdefault(item.label, set()).add(frame)
    return {label: sorted(frames) for label, frames in sorted(by_label.items())}


def build_report(
    run: ReplayRun, truth: Truth | None, reported: Reported, limits: AcceptanceSettings
) -> dict[str, Any]:
    elapsed = max(run.elapsed_s, 1e-9)
    report: dict[str, Any] = {
        "schema": REPORT_SCHEMA,
        "video": run.video,
        "truth": run.truth,
        "line": run.line,
        "camera": run.camera,
        "run_id": run.run_id,
        "model": dict(run.model),
        "realtime": run.realtime,
        "frames": run.frames,
        "frames_inferred": run.frames_inferred,
        "tiles": run.tiles,
        "elapsed_s": round(run.elapsed_s, 3),
        "frames_per_s": round(run.frames_inferred / elapsed, 2),
        "tiles_per_s": round(run.tiles / elapsed, 1),
        "dropped_frames": run.dropped_frames,
        "events_published": run.events_published,
        "events_delivered": run.events_delivered,
        "latency_ms": percentiles(list(run.ack_latency_ms)),
        "latency_histogram_ms": _histogram(run.ack_latency_ms),
        "pipeline_latency_ms": dict(run.frame_latency_ms),
        "frame_precision": None,
        "frame_recall": None,
        "frame_f1": None,
        "true_frames": None,
        "reported_frames": len([f for f, regions in reported.items() if regions]),
        "per_class": {},
        "missed_frames": [],
        "false_frames": [],
        "timeline": {"true": {}, "reported": _timeline(reported)},
        "thumbnails": None,  # pictures of frames, filled in where the replay writes a report
    }
    if truth is not None:
        frames = score_frames(truth, reported)
        report.update(
            frame_precision=frames.precision,
            frame_recall=frames.recall,
            frame_f1=frames.f1,
            true_frames=frames.true_frames,
            per_class={
                label: score.as_dict() for label, score in score_classes(truth, reported).items()
            },
            missed_frames=frames.missed,
            false_frames=frames.false,
        )
        report["timeline"]["true"] = _timeline(truth)
    report["checks"] = checks(report, limits)
    report["passed"] = all(check["passed"] for check in report["checks"])
    return report


def checks(report: Mapping[str, Any], limits: AcceptanceSettings) -> list[dict[str, Any]]:
    """One entry per limit and figure; a limit on a figure the replay lacks fails.

    Recall and precision limits hold for the frames and for every class's defects,
    since a line is accepted when each kind of defect is found, not just most frames.
    """
    per_class = report["per_class"]
    wanted = [
        ("frame_recall", report["frame_recall"], ">=", limits.min_recall),
        *((f"recall[{c}]", s["recall"], ">=", limits.min_recall) for c, s in per_class.items()),
        ("frame_precision", report["frame_precision"], ">=", limits.min_precision),
        *(
            (f"precision[{c}]", s["precision"], ">=", limits.min_precision)
            for c, s in per_class.items()
        ),
        ("latency_p99_ms", report["latency_ms"]["p99"], "<=", limits.max_p99_ms),
    ]
    result = []
    for name, value, op, limit in wanted:
        if limit is None:
            continue
        passed = value is not None and (value >= limit if op == ">=" else value <= limit)
        result.append({"name": name, "value": value, "op": op, "limit": limit, "passed": passed})
    return result


def _ids(frames: Sequence[int], most: int = 15) -> str:
    shown = ", ".join(str(f) for f in frames[:most])
    return shown + (f", … ({len(frames)} in all)" if len(frames) > most else "") if frames else "-"


def summary_text(report: Mapping[str, Any], html_path: str | None = None) -> str:
    """The one-screen summary printed at the end of a replay."""
    lat = report["latency_ms"]
    model = report["model"]
    pace = "realtime" if report["realtime"] else "as fast as possible"
    lines = [
        f"replay  {report['video']}  (line {report['line']}, run {report['run_id']}, "
        f"model {model.get('name')}, {pace})",
        f"frames  {report['frames']} read, {report['frames_inferred']} inspected, "
        f"{report['dropped_frames']} dropped; {report['tiles']} tiles in "
        f"{report['elapsed_s']:.1f} s "
        f"= {report['frames_per_s']:.1f} frames/s, {report['tiles_per_s']:.0f} tiles/s",
        f"events  {report['events_delivered']} delivered by the broker "
        f"of {report['events_published']} published",
        f"latency capture->broker ack  p50 {lat['p50']:.0f} ms  p95 {lat['p95']:.0f} ms  "
        f"p99 {lat['p99']:.0f} ms  max {lat['max']:.0f} ms",
    ]
    if report["frame_recall"] is None:
        lines.append("truth   none given: detection was not scored")
    else:
        lines += [
            f"frames with defects  precision {report['frame_precision']:.3f}  "
            f"recall {report['frame_recall']:.3f}  F1 {report['frame_f1']:.3f}  "
            f"(true {report['true_frames']}, reported {report['reported_frames']})",
            *(
                f"  {label:<16} recall {score['recall']:.3f} ({score['detected']}/"
                f"{score['support']})  precision {score['precision']:.3f} "
                f"({score['confirmed']}/{score['reported']})"
                for label, score in report["per_class"].items()
            ),
            f"missed frames  {_ids(report['missed_frames'])}",
            f"false frames   {_ids(report['false_frames'])}",
        ]
    pictures = report.get("thumbnails")
    if pictures and pictures.get("notice"):
        lines.append(f"pictures  {pictures['notice']}")
    for check in report["checks"]:
        verdict = "ok  " if check["passed"] else "FAIL"
        lines.append(f"{verdict} {check['name']} {check['value']} {check['op']} {check['limit']}")
    if report["checks"]:
        lines.append("verdict PASS" if report["passed"] else "verdict FAIL")
    if html_path:
        lines.append(f"report  {html_path}")
    return "\n".join(lines)
