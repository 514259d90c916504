"""MQTT topic names: the contract in DESIGN.md that PLCs and dashboards subscribe to."""

from __future__ import annotations

# What PLCs and dashboards subscribe to: every line's events on one broker.
DEFECTS_WILDCARD = "line/+/defects"
# Every line's and camera's per-part verdicts.
VERDICTS_WILDCARD = "line/+/verdicts/+"


def _check(line: str) -> str:
    # A wildcard or separator in a line id would publish to (or subscribe to)
    # other lines' topics; config validation forbids them, this guards callers.
    if not line or any(ch in line for ch in "/+#\x00"):
        raise ValueError(f"invalid line id for an MQTT topic: {line!r}")
    return line


def defects_topic(line: str) -> str:
    """``line/<line>/defects``: one QoS 1 JSON event per frame with a defect."""
    return f"line/{_check(line)}/defects"


def status_topic(line: str) -> str:
    """``line/<line>/status``: retained ``online`` / ``offline`` (also the Last Will)."""
    return f"line/{_check(line)}/status"


def stats_topic(line: str) -> str:
    """``line/<line>/stats``: periodic QoS 0 JSON throughput and latency figures."""
    return f"line/{_check(line)}/stats"


def camera_status_topic(line: str, camera: str) -> str:
    """``line/<line>/status/<camera>``: retained JSON, the camera's state and last error."""
    return f"line/{_check(line)}/status/{_check(camera)}"


def snapshot_topic(line: str, camera: str) -> str:
    """``line/<line>/snapshot/<camera>``: retained JPEG, the latest annotated defect frame."""
    return f"line/{_check(line)}/snapshot/{_check(camera)}"


def verdicts_topic(line: str, camera: str) -> str:
    """``line/<line>/verdicts/<camera>``: one QoS 1 JSON verdict for every part, ok or not."""
    return f"line/{_check(line)}/verdicts/{_check(camera)}"
