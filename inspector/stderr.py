"""Silencing C libraries that write to file descriptor 2 directly (FFmpeg inside OpenCV)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def silenced_stderr() -> Iterator[None]:
    """File descriptor 2 points at /dev/null inside the block.

    For probes whose failure is expected and handled (a codec this build lacks), whose
    native library prints alarming red lines. It silences every thread of the process,
    so keep the block short and use it only where nothing else is running.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
