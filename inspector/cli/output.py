"""How a command that writes files says what it wrote.

``--json`` puts the summary on stdout for a script to parse; otherwise one line
goes to stderr for the person at the terminal, so stdout never carries prose a
pipe would have to skip.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any


def print_summary(summary: Mapping[str, Any], line: str, as_json: bool) -> None:
    """``summary`` as one JSON line on stdout if ``as_json``, else ``line`` on stderr."""
    if as_json:
        print(json.dumps(summary))
    else:
        print(line, file=sys.stderr)
