"""The ``[sparkplug]`` section: which Sparkplug group and edge node the line is."""

from __future__ import annotations

from pydantic import Field, field_validator

from inspector.sections import SinkSettings

_RESERVED = "/+#"  # MQTT topic separators and wildcards: never inside a Sparkplug id


def checked_id(value: str) -> str:
    """``value`` if it can stand as one level of a Sparkplug topic, else a ValueError."""
    if not value or any(char in value for char in _RESERVED):
        raise ValueError(f"must be non-empty, without '/', '+' or '#', got {value!r}")
    return value


class SparkplugSettings(SinkSettings):
    """Sparkplug B 3.0 for SCADA hosts: the line an edge node, each camera a device, on the
    broker of ``[mqtt]``."""

    group_id: str = "inspector"
    edge_node_id: str | None = Field(default=None, description="default: the line id")
    inbox_size: int = Field(
        default=10_000,
        ge=1,
        description="updates waiting for the publisher; beyond it the newest are dropped "
        "(counted): SCADA reads the latest values, inspection never waits",
    )

    @field_validator("group_id", "edge_node_id")
    @classmethod
    def _a_topic_level(cls, value: str | None) -> str | None:
        return None if value is None else checked_id(value)
