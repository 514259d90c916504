"""``inspector --help`` and bad usage answer without loading the heavy libraries.

The time itself is a benchmark (``benchmarks/cli_startup.py``); what is checked here is the
cause of slowness that can regress silently: a module-level import in a command module.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("numpy", "cv2", "onnx", "onnxruntime", "openvino", "torch", "pydantic", "paho")

PROBE = """
import sys
from inspector.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit as exit:
    code = exit.code
print(sorted(m for m in {heavy!r} if m in sys.modules), code, file=sys.stderr)
"""


@pytest.mark.parametrize(
    ("arguments", "code"),
    [(["--help"], 0), (["run", "--help"], 0), (["replay", "--help"], 0), (["watch", "--help"], 0)],
)
def test_help_loads_no_heavy_library(arguments: list[str], code: int) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *arguments],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stderr.strip().splitlines()[-1] == f"[] {code}"
    assert "usage: inspector" in result.stdout
