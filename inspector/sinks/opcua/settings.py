"""``[opcua]``: the OPC UA server's address, logins and certificates."""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import Field, SecretStr, field_validator, model_validator

from inspector.publishing.settings import checked_host
from inspector.sections import SinkSettings, StateFolder


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
