"""Reading other programs' MQTT payloads for ``inspector watch`` without ever dying on one.

``watch`` looks at whatever a broker carries, so a payload may be anything: not UTF-8,
not JSON, nested thousands deep, an event whose ``defects`` holds a number. Each such
message is skipped with one notice line; what is printed is one line whatever the
payload holds (control characters and unpaired surrogates are escaped).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Deeper than any event this project publishes (4 levels) by far; bounds the recursion of
# printing and formatting a payload, whoever sent it.
MAX_DEPTH = 64


class PayloadError(ValueError):
    """A payload ``watch`` skips; ``not_json`` when it is no JSON at all (plain text)."""

    def __init__(self, reason: str, not_json: bool = False) -> None:
        super().__init__(reason)
        self.not_json = not_json


@dataclass(frozen=True, slots=True)
class Payload:
    text: str  # as received
    data: Any  # parsed, at most MAX_DEPTH deep


def _depth_exceeds(data: Any, limit: int) -> bool:
    """Whether ``data`` nests deeper than ``limit`` (iterative: no recursion to exhaust)."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def parse_payload(payload: bytes) -> Payload:
    """The payload's text and JSON value, or :class:`PayloadError` saying why not."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise PayloadError("not UTF-8", not_json=True) from None
    try:
        data = json.loads(text)
    except RecursionError:
        raise PayloadError(f"JSON nested more than {MAX_DEPTH} deep") from None
    except ValueError:  # malformed, or an integer too long to convert
        raise PayloadError("not JSON", not_json=True) from None
    if _depth_exceeds(data, MAX_DEPTH):
        raise PayloadError(f"JSON nested more than {MAX_DEPTH} deep")
    return Payload(text, data)


def event_problem(event: Mapping[str, Any]) -> str | None:
    """Why an object with a ``defects`` list cannot be shown as a defect event, or None."""
    defects = event.get("defects")
    if not isinstance(defects, list):
        return f"'defects' is {type(defects).__name__}, not a list"
    for i, defect in enumerate(defects):
        if not isinstance(defect, dict):
            return f"defects[{i}] is {type(defect).__name__}, not an object"
    return None


def one_line(text: str) -> str:
    """``text`` safe to print as one line: control characters, line breaks and unpaired
    surrogates (valid in JSON strings, not in UTF-8 output) escaped."""
    if text.isprintable():
        return text
    return "".join(
        c if c.isprintable() and not 0xD800 <= ord(c) <= 0xDFFF else ascii(c)[1:-1] for c in text
    )
