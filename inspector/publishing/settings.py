"""The ``[mqtt]`` and ``[outbox]`` sections: the broker, its TLS, and the durable outbox."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator

from inspector.sections import Section, SinkSettings

RESERVE_MB = 8.0  # a few thousand events: minutes of a line's output with the disk full

# A DNS name or an IPv4 address, or an IPv6 address (hex digits and colons); no port.
_HOST = re.compile(
    r"[A-Za-z0-9_]([A-Za-z0-9_.-]{0,252}[A-Za-z0-9_.])?"  # a name or IPv4
    r"|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*"  # IPv6
)


def checked_host(value: str) -> str:
    """``value`` if it is a host name or an IP address (no port), else a ValueError."""
    if not _HOST.fullmatch(value):
        raise ValueError(f"must be a host name or an IP address, got {value!r}")
    return value


class TlsSettings(Section):
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: bool = Field(default=False, description="skip hostname check (test benches only)")


class MqttSettings(SinkSettings):
    """The MQTT sink: on by default, as the line's record of defects."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    client_id: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    protocol: Literal["auto", "5", "3.1.1"] = "auto"
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    tls: TlsSettings | None = None
    connect_timeout_s: float = Field(default=10.0, gt=0)
    ack_timeout_s: float = Field(
        default=30.0, gt=0, description="how long a finishing run waits for the broker's acks"
    )
    stats_interval_s: float = Field(default=5.0, gt=0)
    snapshot_interval_s: float = Field(
        default=1.0,
        ge=0,
        description="at most one retained line/<line>/snapshot/<camera> JPEG per camera in "
        "this many seconds (the latest annotated defect frame); 0 = none",
    )
    snapshot_width: int = Field(default=640, ge=64, le=8192)

    @field_validator("host")
    @classmethod
    def _a_host_name(cls, value: str) -> str:
        # An empty or malformed host never heals by retrying: a configuration error, not an
        # unreachable broker.
        return checked_host(value)


class OutboxSettings(Section):
    """The durable outbox between post-processing and an acknowledging sink (SQLite, WAL)."""

    enabled: bool = True
    path: Path | None = Field(
        default=None,
        description="default: $STATE_DIRECTORY/outbox.sqlite under systemd, "
        "else state/<line>-outbox.sqlite beside the config file",
    )
    max_events: int = Field(default=100_000, ge=1, description="events kept unacknowledged")
    when_full: Literal["drop_oldest", "drop_newest"] = Field(
        default="drop_oldest", description="which event to give up when max_events is reached"
    )
    reserve_mb: float = Field(
        default=RESERVE_MB,
        description="MiB preallocated beside the outbox at start (<outbox>.reserve) and given "
        "back to it when the disk is full, so events that fit are kept; 0 = none",
    )

    @field_validator("reserve_mb")
    @classmethod
    def _a_size(cls, value: float) -> float:
        # pydantic's ge= would say "greater than or equal to 0" without the key's meaning.
        if not value >= 0:  # NaN too
            raise ValueError(f"must be 0 (none) or more MiB, got {value:g}")
        return value
