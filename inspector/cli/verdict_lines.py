"""``inspector watch --verdicts``: each part's verdict (schema ``inspector.verdict/1``) as one
line a person on the line can follow."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from inspector.publishing.topics import VERDICTS_WILDCARD

__all__ = ["VERDICTS_WILDCARD", "format_verdict", "render_verdict"]


def _clock(stamp: Any) -> str:
    try:
        return datetime.fromisoformat(str(stamp)).strftime("%H:%M:%S.%f")[:-3]
    except ValueError:
        return "--:--:--.---"


def format_verdict(verdict: Mapping[str, Any]) -> str:
    """``17:00:00.123 line1/cam0 part 1234 (frame 1234)  NOK  crack, stain  -> reject  (47.5 ms)``;
    a late one says ``LATE`` and the fail-safe, and the real verdict after it ``(late)``."""
    kind = str(verdict.get("verdict", "?"))
    text = (
        f"{_clock(verdict.get('captured_at'))} {verdict.get('line', '?')}/"
        f"{verdict.get('camera', '?')} part {verdict.get('part_id', '?')} "
        f"(frame {verdict.get('frame_id', '?')})  {kind.upper()}"
    )
    classes = verdict.get("classes")
    if isinstance(classes, list) and classes:
        text += "  " + ", ".join(str(c) for c in classes)
    if verdict.get("action"):
        text += f"  -> {verdict['action']}"
    notes = []
    if kind == "late":
        notes.append("dropped, never inspected" if verdict.get("dropped") else "deadline passed")
    elif verdict.get("late"):
        notes.append("late")
    if verdict.get("inspected") is False and kind != "late":
        notes.append("nothing to inspect")
    latency = verdict.get("latency_ms")
    if isinstance(latency, int | float):
        notes.append(f"{latency:.1f} ms")
    if notes:
        text += f"  ({', '.join(notes)})"
    return text


def render_verdict(topic: str, payload: bytes, as_json: bool) -> tuple[str | None, str | None]:
    """(line for stdout, line for stderr) for one message of the verdict stream."""
    try:
        text = payload.decode("utf-8")
        data = json.loads(text)
    except (UnicodeDecodeError, ValueError):
        return None, f"{topic}: invalid JSON payload ({len(payload)} bytes)"
    if as_json:
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False), None
    if not isinstance(data, dict) or "verdict" not in data:
        return f"{topic} {json.dumps(data, ensure_ascii=False)}", None
    return format_verdict(data), None
