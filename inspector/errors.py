"""Errors that stop a command, each with the exit code a supervisor expects.

Every message is one line naming the file or field and the reason, so an
operator reading ``journalctl`` knows what to fix without a traceback.
"""

from __future__ import annotations

from typing import Any

# sysexits.h: systemd and shell scripts understand these.
EX_USAGE = 64
EX_DATAERR = 65
EX_NOINPUT = 66
EX_UNAVAILABLE = 69
EX_SOFTWARE = 70
EX_IOERR = 74
EX_CONFIG = 78


class InspectorError(Exception):
    """Base of every error the CLI turns into a one-line message and an exit code.

    A subclass gives its code in its class line, ``class X(InspectorError,
    exit_code=EX_CONFIG)``, so that declaring an error takes no body beyond its
    docstring; one that gives none keeps its parent's.
    """

    exit_code: int = EX_SOFTWARE

    def __init_subclass__(cls, *, exit_code: int | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if exit_code is not None:
            cls.exit_code = exit_code


class ConfigError(InspectorError, exit_code=EX_CONFIG):
    """A configuration value is missing or invalid."""


class ModelError(InspectorError, exit_code=EX_CONFIG):
    """A model file or its card is missing, inconsistent or unloadable."""


class SourceError(InspectorError, exit_code=EX_NOINPUT):
    """A camera or video source cannot be opened or read."""


class DatasetError(InspectorError, exit_code=EX_DATAERR):
    """A dataset folder or image cannot be used for training or evaluation."""


class BrokerError(InspectorError, exit_code=EX_UNAVAILABLE):
    """The MQTT broker cannot be reached or did not acknowledge in time."""


class StorageError(InspectorError, exit_code=EX_IOERR):
    """Events could not be written to disk (a full or failing outbox disk)."""


def first_line(exc: BaseException) -> str:
    """An exception's first line (a runtime's or an SDK's message can run to a page), or its
    type's name where it says nothing: what a one-line error quotes."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
