"""Ground truth of a recording: ``<video>.truth.jsonl`` (DESIGN.md).

One JSON object per line, ``{"frame_id": n, "defects": [{"class": c, "bbox_px": [x, y, w, h]}]}``;
a frame with no line has no defect. A malformed line is an error naming the file
and the line number: an acceptance verdict built on a half-read truth file would be wrong.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inspector.errors import DatasetError

Box = tuple[int, int, int, int]  # x, y, width, height in frame pixels


@dataclass(frozen=True, slots=True)
class Defect:
    """A labelled box in one frame: a true defect, or one region of an event."""

    label: str
    bbox: Box


Truth = dict[int, list[Defect]]  # frame_id -> its true defects; absent frames have none


def truth_path(video: Path) -> Path:
    return video.with_name(video.name + ".truth.jsonl")


def boxes_overlap(a: Box, b: Box) -> bool:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    return ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah


def truth_record(frame_id: int, defects: Iterable[Defect]) -> str:
    """One line of a truth file (without the newline)."""
    return json.dumps(
        {
            "frame_id": frame_id,
            "defects": [{"class": d.label, "bbox_px": list(d.bbox)} for d in defects],
        }
    )


def parse_box(value: Any) -> Box:
    if (
        not isinstance(value, Sequence)
        or isinstance(value, str)
        or len(value) != 4
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ):
        raise ValueError(f"bbox_px must be [x, y, w, h] numbers, got {value!r}")
    x, y, w, h = (round(v) for v in value)
    if w <= 0 or h <= 0:
        raise ValueError(f"bbox_px width and height must be positive, got {list(value)!r}")
    return x, y, w, h


def parse_defects(value: Any) -> list[Defect]:
    if not isinstance(value, list):
        raise ValueError(f"defects must be a list, got {type(value).__name__}")
    defects = []
    for item in value:
        if not isinstance(item, Mapping):
            raise ValueError(f"each defect must be an object, got {item!r}")
        label = item.get("class")
        if not isinstance(label, str) or not label:
            raise ValueError(f"a defect needs a non-empty string 'class', got {label!r}")
        defects.append(Defect(label, parse_box(item.get("bbox_px"))))
    return defects


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range for a number")
    return value


def parse_json(text: str) -> Any:
    """Strict JSON: no NaN/Infinity, no number that overflows to infinity, and deep nesting
    (which would exhaust Python's stack) as a ValueError like any other malformed line."""
    try:
        return json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:
        raise ValueError("not JSON this program reads (nested too deeply)") from None
    except ValueError as exc:  # ours above, or an integer too long to convert
        raise ValueError(f"not JSON this program reads ({exc})") from None


def parse_truth_line(text: str) -> tuple[int, list[Defect]]:
    record = parse_json(text)
    if not isinstance(record, dict):
        raise ValueError("each line must be a JSON object")
    frame_id = record.get("frame_id")
    if not isinstance(frame_id, int) or isinstance(frame_id, bool) or frame_id < 0:
        raise ValueError(f"frame_id must be a non-negative integer, got {frame_id!r}")
    return frame_id, parse_defects(record.get("defects"))


def load_truth(path: Path) -> Truth:
    """Read a truth file; :class:`DatasetError` names the file and line of the first bad line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read the truth file: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not a UTF-8 text file") from None
    truth: Truth = {}
    seen: set[int] = set()
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            frame_id, defects = parse_truth_line(text)
        except ValueError as exc:
            raise DatasetError(f"{path}:{number}: {exc}") from None
        if frame_id in seen:
            raise DatasetError(f"{path}:{number}: frame_id {frame_id} appears twice")
        seen.add(frame_id)
        if defects:
            truth[frame_id] = defects
    return truth
