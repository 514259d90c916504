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
is logged and counted: ``_opcua_auth``.
``Online`` is true while a camera delivers, and turns false when the daemon stops.

asyncua is imported only when the sink opens (extra ``[opcua]``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from pydantic import Field, SecretStr, field_validator, model_validator

from inspector.errors import ConfigError
from inspector.publishing.settings import checked_host
from inspector.sections import SinkSettings, StateFolder
from inspector.sinks.registry import SinkPlugin
from inspector.types.results import FrameResult, SinkHealth, SinkMetric, Verdict

if TYPE_CHECKING:
    from inspector.config import Settings
    from inspector.sinks._opcua_server import OpcUaServer


class OpcUaSettings(SinkSettings):
    host: str = Field(default="127.0.0.1", description="0.0.0.0 to let PLCs on the network in")
    port: int = Field(default=4840, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    certificate: Path | None = Field(
        default=None, description="the server's certificate (DER or PEM): signed and encrypted"
    )
    private_key: Path | None = Field(default=None, description="the server certificate's key")
    trusted_certificates: list[Path] = Field(
        default_factory=list,
        description="the client applications' certificates let in (where no password is set, "
        "a login with one of them)",
    )
    allow_anonymous: bool = False
    offline_grace_s: float = Field(
        default=1.0,
        ge=0,
        le=60,
        description="at stop, Online turns false and the server keeps serving this long, so "
        "that subscribed PLCs are told before it goes",
    )

    @field_validator("host")
    @classmethod
    def _a_host_name(cls, value: str) -> str:
        return checked_host(value)

    @model_validator(mode="after")
    def _a_way_in(self) -> Self:
        if (self.username is None) != (self.password is None):
            raise ValueError("give username and password together")
        if (self.certificate is None) != (self.private_key is None):
            raise ValueError("give certificate and private_key together")
        if self.trusted_certificates and self.certificate is None:
            raise ValueError("trusted_certificates need the server's certificate and private_key")
        if self.enabled and not (
            self.allow_anonymous or self.username or self.trusted_certificates
        ):
            raise ValueError(
                "no way to log in: set username and password, trusted_certificates, or "
                "allow_anonymous = true"
            )
        return self

    def resolve_paths(self, base: Path, state: StateFolder | None = None) -> Self:
        settings = super().resolve_paths(base, state)
        trusted = [
            path if path.is_absolute() else base / path for path in self.trusted_certificates
        ]
        return settings.model_copy(update={"trusted_certificates": trusted})


class OpcUaSink:
    name = "opcua"
    lossless = False  # a PLC reads the latest value; the server never slows inspection

    def __init__(self, server: OpcUaServer) -> None:
        self.server = server

    @classmethod
    def open(cls, settings: OpcUaSettings, config: Settings) -> OpcUaSink:
        verdicts = getattr(config, "verdicts", None)
        if verdicts is None or not verdicts.enabled:
            raise ConfigError(
                "opcua: its nodes show the verdicts: set [verdicts] enabled = true as well"
            )
        try:
            from inspector.sinks._opcua_server import OpcUaServer
        except ImportError as exc:
            raise ConfigError(
                f"[opcua] needs the opcua extra: pip install 'line-inspector[opcua]' ({exc})"
            ) from None
        server = OpcUaServer(settings, config.line.id, [camera.id for camera in config.cameras])
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
