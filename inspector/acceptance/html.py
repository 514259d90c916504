"""The replay report as one self-contained HTML page: inline SVG plots, no scripts, no fetches.

Rendered from the report dict alone, so a saved ``report.json`` can be re-rendered.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from html import escape
from itertools import chain
from typing import Any

_PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
_MISSED, _FALSE = "#d62728", "#7f7f7f"
_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.4em}h2{font-size:1.1em;margin-top:1.6em}
table{border-collapse:collapse}
td,th{padding:.25em .8em;border-bottom:1px solid #ddd;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#2ca02c;font-weight:bold}.fail{color:#d62728;font-weight:bold}
svg text{font:11px system-ui,sans-serif}code{background:#f4f4f4;padding:0 .3em}
.thumbs{display:flex;flex-wrap:wrap;gap:10px}.thumbs figure{margin:0;max-width:100%}
.thumbs img{display:block;max-width:100%;height:auto;border:1px solid #ccc}
figcaption{font-size:12px;color:#444}.notice{color:#b35900}
.swatch{display:inline-block;width:1.4em;height:.9em;border:3px solid;margin:0 .3em 0 .8em;
vertical-align:middle}
"""


def _colour(index: int) -> str:
    return _PALETTE[index % len(_PALETTE)]


def _svg(width: int, height: int, body: Sequence[str], label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(label)}">' + "".join(body) + "</svg>"
    )


def histogram_svg(edges: Sequence[float], counts: Sequence[int]) -> str:
    if not counts:
        return "<p>No events were delivered, so there is no latency to plot.</p>"
    width, height, left, bottom = 640, 220, 48, 30
    plot_w, plot_h = width - left - 10, height - bottom - 10
    peak = max(counts) or 1
    bar_w = plot_w / len(counts)
    body = [
        f'<line x1="{left}" y1="{10 + plot_h}" x2="{width - 10}" y2="{10 + plot_h}" stroke="#444"/>'
    ]
    for i, count in enumerate(counts):
        h = plot_h * count / peak
        body.append(
            f'<rect x="{left + i * bar_w:.1f}" y="{10 + plot_h - h:.1f}" width="{bar_w - 1:.1f}" '
            f'height="{h:.1f}" fill="{_colour(0)}"><title>{edges[i]:.1f}-{edges[i + 1]:.1f} ms: '
            f"{count}</title></rect>"
        )
    for i in (0, len(counts) // 2, len(counts)):
        body.append(
            f'<text x="{left + i * bar_w:.1f}" y="{height - 10}" text-anchor="middle">'
            f"{edges[i]:.0f}</text>"
        )
    body.append(f'<text x="{left - 6}" y="18" text-anchor="end">{peak}</text>')
    body.append(f'<text x="{width - 10}" y="{height - 10}" text-anchor="end">ms</text>')
    return _svg(width, height, body, "latency histogram")


def class_bars_svg(per_class: Mapping[str, Mapping[str, Any]]) -> str:
    if not per_class:
        return "<p>No ground truth, so no per-class figures.</p>"
    row_h, left, width = 26, 130, 640
    height = 30 + row_h * 2 * len(per_class)
    scale = width - left - 60
    body = []
    y = 10
    for label, score in per_class.items():
        body.append(
            f'<text x="{left - 8}" y="{y + row_h - 6}" text-anchor="end">{escape(label)}</text>'
        )
        for i, metric in enumerate(("recall", "precision")):
            value = float(score[metric])
            body.append(
                f'<rect x="{left}" y="{y + 3}" width="{scale * value:.1f}" height="{row_h - 8}" '
                f'fill="{_colour(i)}"><title>{metric} {value:.3f}</title></rect>'
                f'<text x="{left + scale * value + 4:.1f}" y="{y + row_h - 9}">{metric} '
                f"{value:.3f}</text>"
            )
            y += row_h
    body.append(f'<line x1="{left}" y1="5" x2="{left}" y2="{y}" stroke="#444"/>')
    return _svg(width, height, body, "per-class recall and precision")


def timeline_svg(report: Mapping[str, Any]) -> str:
    """One lane per class for the truth and one for the events; misses and false alarms marked."""
    frames = max(int(report["frames"]), 1)
    truth: Mapping[str, list[int]] = report["timeline"]["true"]
    reported: Mapping[str, list[int]] = report["timeline"]["reported"]
    labels = sorted(set(truth) | set(reported))
    lanes: list[tuple[str, list[int], str]] = []
    for i, label in enumerate(labels):
        lanes.append((f"true {label}", truth.get(label, []), _colour(i)))
        lanes.append((f"event {label}", reported.get(label, []), _colour(i)))
    lanes.append(("missed frames", list(report["missed_frames"]), _MISSED))
    lanes.append(("false frames", list(report["false_frames"]), _FALSE))
    left, width, lane_h = 120, 1000, 18
    height = 30 + lane_h * len(lanes)
    scale = (width - left - 10) / frames
    tick = max(scale, 1.0)
    body = []
    for row, (name, frame_ids, colour) in enumerate(lanes):
        y = 5 + row * lane_h
        body.append(f'<text x="{left - 8}" y="{y + 12}" text-anchor="end">{escape(name)}</text>')
        body.extend(
            f'<rect x="{left + f * scale:.2f}" y="{y + 2}" width="{tick:.2f}" '
            f'height="{lane_h - 4}" fill="{colour}"><title>frame {f}</title></rect>'
            for f in frame_ids
        )
    axis_y = 8 + lane_h * len(lanes)
    body.append(f'<line x1="{left}" y1="{axis_y}" x2="{width - 10}" y2="{axis_y}" stroke="#444"/>')
    for fraction in (0, 0.25, 0.5, 0.75, 1):
        f = round(fraction * frames)
        body.append(
            f'<text x="{left + f * scale:.1f}" y="{axis_y + 14}" text-anchor="middle">{f}</text>'
        )
    return _svg(width, height, body, "timeline of true and reported defects")


def _rows(pairs: Sequence[tuple[str, Any]]) -> str:
    return "".join(
        f"<tr><th>{escape(name)}</th><td class=num>{escape(str(value))}</td></tr>"
        for name, value in pairs
    )


def _ids(frames: Sequence[int]) -> str:
    return escape(", ".join(map(str, frames)) or "none")


def _gallery(entries: Sequence[Mapping[str, Any]]) -> str:
    figures = []
    for entry in entries:
        true = ", ".join(entry["true"]) or "none"
        reported = ", ".join(entry["reported"]) or "none"
        figures.append(
            f'<figure><img src="{escape(entry["path"])}" alt="frame {entry["frame_id"]}" '
            f'width="{entry["width"]}" height="{entry["height"]}" loading="lazy">'
            f"<figcaption>frame {entry['frame_id']} · true: {escape(true)} · "
            f"reported: {escape(reported)}</figcaption></figure>"
        )
    return f'<div class="thumbs">{"".join(figures)}</div>' if figures else ""


def _left_out(count: int, limit: int, what: str) -> str:
    if not count:
        return ""
    return (
        f"<p>{count} more {what} frames are not pictured: at most {limit} are, "
        "spread over the run.</p>"
    )


def frames_html(report: Mapping[str, Any]) -> str:
    """Missed, false and example frames: as pictures where the replay took them, else IDs."""
    missed, false = report["missed_frames"], report["false_frames"]
    pictures: Mapping[str, Any] | None = report.get("thumbnails")
    if pictures is None:
        return (
            f"<h2>Missed and false frames</h2>\n<p>Missed: {_ids(missed)}</p>\n"
            f"<p>False: {_ids(false)}</p>"
        )
    colours, limit = pictures["colours"], pictures["limit"]
    notice = pictures.get("notice")
    shown = [*pictures["missed"], *pictures["false"], *chain(*pictures["examples"].values())]
    legend = shown and (
        f'<p>In the pictures:<span class="swatch" style="border-color:{colours["true"]}"></span>'
        "true defects from the truth file (outer box, class at its top left)"
        f'<span class="swatch" style="border-color:{colours["reported"]}"></span>'
        "defects of the delivered event (inner box, class at its bottom left).</p>"
    )
    examples = []
    for label in sorted(report["timeline"]["true"]):
        entries = pictures["examples"].get(label, [])
        if entries:
            found = _gallery(entries)
        elif report["per_class"].get(label, {}).get("detected"):
            found = "<p>Found, but not pictured (see the notice above).</p>"
        else:
            found = f"<p>No true {escape(label)} defect was found.</p>"
        examples.append(f"<h3>{escape(label)}</h3>\n{found}")
    return f"""{f'<p class="notice">Pictures: {escape(notice)}</p>' if notice else ""}
<h2>Missed frames</h2>
{legend or ""}
<p>{_ids(missed)}</p>
{_gallery(pictures["missed"])}
{_left_out(pictures["missed_left_out"], limit, "missed")}
<h2>False frames</h2>
<p>{_ids(false)}</p>
{_gallery(pictures["false"])}
{_left_out(pictures["false_left_out"], limit, "false")}
<h2>Examples per class</h2>
<p>A few frames per class in which a true defect of the class was found, spread over the
run.</p>
{"".join(examples)}"""


def render_html(report: Mapping[str, Any]) -> str:
    lat = report["latency_ms"]
    verdict = ""
    if report["checks"]:
        css, word = ("pass", "PASS") if report["passed"] else ("fail", "FAIL")
        verdict = f'<p>Verdict: <span class="{css}">{word}</span></p>'
    checks = "".join(
        f"<tr><td>{escape(c['name'])}</td><td class=num>{c['value']}</td><td>{escape(c['op'])} "
        f"{c['limit']}</td><td class={'pass' if c['passed'] else 'fail'}>"
        f"{'ok' if c['passed'] else 'FAIL'}</td></tr>"
        for c in report["checks"]
    )
    classes = "".join(
        f"<tr><td>{escape(label)}</td><td class=num>{s['recall']:.3f}</td>"
        f"<td class=num>{s['precision']:.3f}</td><td class=num>{s['support']}</td>"
        f"<td class=num>{s['reported']}</td></tr>"
        for label, s in report["per_class"].items()
    )
    summary = _rows(
        [
            ("frame precision", report["frame_precision"]),
            ("frame recall", report["frame_recall"]),
            ("frame F1", report["frame_f1"]),
            (
                "frames read / inspected / dropped",
                f"{report['frames']} / {report['frames_inferred']} / {report['dropped_frames']}",
            ),
            ("throughput", f"{report['frames_per_s']} frames/s, {report['tiles_per_s']} tiles/s"),
            (
                "events delivered / published",
                f"{report['events_delivered']} / {report['events_published']}",
            ),
            (
                "latency capture→ack p50 / p95 / p99 / max (ms)",
                f"{lat['p50']} / {lat['p95']} / {lat['p99']} / {lat['max']}",
            ),
        ]
    )
    hist = report["latency_histogram_ms"]
    title = f"Replay of {report['video']}"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>{_STYLE}</style></head><body>
<h1>{escape(title)}</h1>
<p>Line <code>{escape(report["line"])}</code>, camera <code>{escape(report["camera"])}</code>,
run <code>{escape(report["run_id"])}</code>, model <code>{escape(str(report["model"].get("name")))}
</code>, {"paced in real time" if report["realtime"] else "as fast as the engine allows"}.
Truth: <code>{escape(str(report["truth"]))}</code>.</p>
{verdict}
<table>{summary}</table>
{f"<h2>Checks</h2><table>{checks}</table>" if checks else ""}
<h2>Per class</h2>
{class_bars_svg(report["per_class"])}
{
        f"<table><tr><th>class</th><th>recall</th><th>precision</th><th>true defects</th>"
        f"<th>reported regions</th></tr>{classes}</table>"
        if classes
        else ""
    }
<h2>Timeline</h2>
{timeline_svg(report)}
<h2>Latency, capture to broker acknowledgement</h2>
{histogram_svg(hist["edges"], hist["counts"])}
{frames_html(report)}
<h2>Raw report</h2>
<details><summary>report.json</summary><pre>{escape(json.dumps(report, indent=1))}</pre></details>
</body></html>
"""
