"""Reading a text file a command depends on (the configuration, a model card) into one
error line that names the file and says what it is, in the caller's error class (its
exit code)."""

from __future__ import annotations

from pathlib import Path

from inspector.errors import InspectorError


def read_text(path: Path, error: type[InspectorError], what: str, hint: str = "") -> str:
    """The UTF-8 text of ``path``, or ``error``: ``<path>: <what> not found<hint>`` or
    ``<path>: cannot read <what>: <reason>``."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: {what} not found{hint}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read {what}: {exc}") from None
