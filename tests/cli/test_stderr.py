"""A native library's expected failure stays off the terminal; what follows it does not."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import os
from inspector.stderr import silenced_stderr
os.write(2, b"before\\n")
with silenced_stderr():
    os.write(2, b"red codec error\\n")
os.write(2, b"after\\n")
"""


def test_silenced_stderr_hides_only_the_block() -> None:
    result = subprocess.run(
        [sys.executable, "-c", CODE], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stderr == "before\nafter\n"


def test_make_recording_prints_no_codec_errors(tmp_path: object) -> None:
    video = f"{tmp_path}/line.mp4"
    result = subprocess.run(
        [sys.executable, "-m", "inspector", "make-recording", "elpv", "--out", video,
         "--limit", "4"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    noise = [line for line in result.stderr.splitlines() if "ERROR" in line or "Failed" in line]
    assert noise == []
    assert "(mp4v)" in result.stderr or "(avc1)" in result.stderr  # says which codec it used
