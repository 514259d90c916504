"""The defect event, schema ``inspector.defect/1`` (DESIGN.md; JSON Schema in inspector/schemas).

Fields may be added freely; renaming or removing one needs a new schema version,
because PLC programs and dashboards parse these payloads.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from inspector.types.frames import Frame, iso_utc
from inspector.types.results import Region

DEFECT_SCHEMA = "inspector.defect/1"


def new_run_id() -> str:
    """Six hex digits: part of every event_id, so ids stay unique across restarts."""
    return secrets.token_hex(3)


def event_id(line: str, camera: str, run_id: str, frame_id: int) -> str:
    return f"{line}/{camera}/{run_id}/{frame_id}"


def defect_event(
    *,
    line: str,
    run_id: str,
    frame: Frame,
    tiles: int,
    regions: list[Region],
    model_name: str,
    model_sha256: str,
    published_at: datetime,
    latency_ms: float,
    mm_per_px: float | None = None,
    conveyor_mm: float | None = None,
) -> dict[str, Any]:
    frame_info: dict[str, Any] = {"width": frame.width, "height": frame.height, "tiles": tiles}
    if conveyor_mm is not None:
        frame_info["conveyor_mm"] = round(conveyor_mm, 2)  # belt travel since the run began
    return {
        "schema": DEFECT_SCHEMA,
        "event_id": event_id(line, frame.camera_id, run_id, frame.frame_id),
        "line": line,
        "camera": frame.camera_id,
        "frame_id": frame.frame_id,
        "captured_at": iso_utc(frame.captured_at),
        "published_at": iso_utc(published_at),
        "latency_ms": round(latency_ms, 3),
        "model": {"name": model_name, "sha256": model_sha256},
        "frame": frame_info,
        "defects": [_defect(region, mm_per_px) for region in regions],
    }


def _defect(region: Region, mm_per_px: float | None) -> dict[str, Any]:
    defect: dict[str, Any] = {
        "class": region.label,
        "score": round(region.score, 4),
        "bbox_px": list(region.bbox_px),
    }
    if mm_per_px is not None:  # only where a calibration gives a scale (DESIGN.md)
        defect["bbox_mm"] = [round(v * mm_per_px, 2) for v in region.bbox_px]
    defect["tiles"] = [list(cell) for cell in region.tiles]
    return defect
