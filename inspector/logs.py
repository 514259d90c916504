"""structlog set-up: JSON lines under systemd, readable lines in a terminal.

Stages bind ``line``, ``camera`` and ``frame_id`` to their loggers so every
line in the journal can be traced to the frame it is about.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Literal, TextIO, cast

import structlog

LogFormat = Literal["auto", "json", "console"]


class _CurrentStderr:
    """Whatever ``sys.stderr`` is when a line is written, not when logging was set up: a
    caller that swaps it (a test's capture, an embedding program) must not leave the
    loggers writing to a closed file."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def interactive_terminal() -> bool:
    """A person reads stderr: a terminal, and not systemd's journal (which sets
    JOURNAL_STREAM when stderr goes to it; machines read those logs)."""
    return sys.stderr.isatty() and "JOURNAL_STREAM" not in os.environ


def configure_logging(level: str = "info", fmt: LogFormat = "auto") -> None:
    if fmt == "auto":
        fmt = "console" if interactive_terminal() else "json"
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=cast(TextIO, _CurrentStderr())),
        cache_logger_on_first_use=False,
    )


def at_doubling(count: int) -> bool:
    """True at 1, 2, 4, 8...: a failure that repeats on every frame is logged each time its
    count doubles, not once per frame (the count itself goes to /metrics)."""
    return count > 0 and count & (count - 1) == 0
