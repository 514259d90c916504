"""The OPC UA sink, ``[opcua]``: the verdicts and counts of every camera as OPC UA nodes,
for PLCs that speak OPC UA rather than MQTT (DESIGN.md, "OPC UA address space").

An asyncua server in a thread of its own, with its own event loop: the pipeline only hands
it verdicts (a thread-safe call that never waits), so a PLC client that is slow, goes away
or misbehaves costs the server's thread, never inspection. Anonymous access is off unless
``allow_anonymous = true``; clients log in with the configured username and password, or
with a client certificate listed in ``trusted_certificates`` (which needs the server's own
``certificate`` and ``private_key``: then only signed and encrypted endpoints are offered,
and every client application's certificate must be trusted). Where a password and
certificates are both configured, a client needs both. The whole matrix, and how a refusal
is logged and counted: ``auth``.
``Online`` is true while a camera delivers, and turns false when the daemon stops.

asyncua is imported only when the sink opens (extra ``[opcua]``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from inspector.errors import ConfigError
from inspector.sinks.base import SinkContext
from inspector.sinks.opcua.settings import OpcUaSettings
from inspector.sinks.registry import SinkPlugin
from inspector.types.results import FrameResult, SinkHealth, SinkMetric, Verdict

__all__ = ["PLUGIN", "OpcUaSettings", "OpcUaSink"]

if TYPE_CHECKING:
    from inspector.sinks.opcua.server import OpcUaServer


class OpcUaSink:
    name = "opcua"
    lossless = False  # a PLC reads the latest value; the server never slows inspection

    def __init__(self, server: OpcUaServer) -> None:
        self.server = server

    @classmethod
    def open(cls, settings: OpcUaSettings, context: SinkContext) -> OpcUaSink:
        if not context.verdicts:
            raise ConfigError(
                "opcua: its nodes show the verdicts: set [verdicts] enabled = true as well"
            )
        try:
            from inspector.sinks.opcua.server import OpcUaServer
        except ImportError as exc:
            raise ConfigError(
                f"[opcua] needs the opcua extra: pip install 'line-inspector[opcua]' ({exc})"
            ) from None
        server = OpcUaServer(settings, context.line_id, list(context.camera_ids))
        server.start()  # raises ConfigError for a port in use or unusable certificates
        return cls(server)

    def verdict(self, verdict: Verdict) -> None:
        self.server.verdict(verdict)

    def frame_result(self, result: FrameResult) -> None:
        pass  # the verdicts sink decides; this one shows what it decided

    def camera_status(self, camera: str, status: Mapping[str, Any]) -> None:
        self.server.camera_state(camera, status.get("state") == "up")

    def stats(self, stats: Mapping[str, Any]) -> None:
        pass

    def health(self) -> SinkHealth:
        if not self.server.running:
            return SinkHealth("down", "OPC UA server stopped")
        return SinkHealth()

    def metrics(self) -> list[SinkMetric]:
        return [
            SinkMetric("inspector_opcua_clients", "OPC UA client connections open", "gauge",
                       self.server.sessions),
            SinkMetric("inspector_opcua_updates", "Verdicts written to the OPC UA nodes",
                       "counter", self.server.updates),
        ] + [
            SinkMetric("inspector_opcua_logins_refused", "OPC UA logins refused, by reason",
                       "counter", count, (("reason", reason),))
            for reason, count in sorted(self.server.logins_refused.items())
        ]  # fmt: skip

    def close(self) -> None:
        self.server.stop()


PLUGIN = SinkPlugin("opcua", OpcUaSettings, OpcUaSink.open)
