"""Errors that stop a command, each with the exit code a supervisor expects.

Every message is one line naming the file or field and the reason, so an
operator reading ``journalctl`` knows what to fix without a traceback.
"""

from __future__ import annotations

# sysexits.h: systemd and shell scripts understand these.
EX_USAGE = 64
EX_DATAERR = 65
EX_NOINPUT = 66
EX_UNAVAILABLE = 69
EX_SOFTWARE = 70
EX_IOERR = 74
EX_CONFIG = 78


class InspectorError(Exception):
    """Base of every error the CLI turns into a one-line message and an exit code."""

    exit_code = EX_SOFTWARE


class ConfigError(InspectorError):
    """A configuration value is missing or invalid."""

    exit_code = EX_CONFIG


class ModelError(InspectorError):
    """A model file or its card is missing, inconsistent or unloadable."""

    exit_code = EX_CONFIG


class SourceError(InspectorError):
    """A camera or video source cannot be opened or read."""

    exit_code = EX_NOINPUT


class DatasetError(InspectorError):
    """A dataset folder or image cannot be used for training or evaluation."""

    exit_code = EX_DATAERR


class BrokerError(InspectorError):
    """The MQTT broker cannot be reached or did not acknowledge in time."""

    exit_code = EX_UNAVAILABLE


class StorageError(InspectorError):
    """Events could not be written to disk (a full or failing outbox disk)."""

    exit_code = EX_IOERR
