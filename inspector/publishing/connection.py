"""One MQTT connection attempt: the paho client, its session options, and what a failure means.

A failure is *transient* (the broker is down, unreachable or slow: retry, it heals) or
*permanent* (a refused password, a certificate that does not verify: retrying only
fills the journal, an operator must fix the configuration).
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from inspector.errors import ConfigError
from inspector.publishing.settings import MqttSettings

Protocol = Literal["5", "3.1.1"]

_SESSION_EXPIRY_S = 3600  # keep the broker-side session across outages up to an hour
# MQTT 5 CONNACK reason codes that no retry will change (paho maps 3.1.1's rc 4 and 5 to
# 0x86 and 0x87): bad user name or password, not authorized, banned, bad auth method.
_PERMANENT_REFUSALS = {0x86, 0x87, 0x8A, 0x8C}


def default_client_id(line_id: str) -> str:
    # Unique per process, so two daemons (or a crashed one's stale session) on
    # one broker never take over each other's connection.
    return f"inspector-{line_id}-{socket.gethostname()}-{os.getpid()}"


def build_client(
    settings: MqttSettings, client_id: str, protocol: Protocol, *, persistent_session: bool
) -> mqtt.Client:
    """A paho client with the configured credentials, TLS and reconnect back-off."""
    v5 = protocol == "5"
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        # paho rejects clean_session for MQTT 5, whose clean_start goes to connect().
        clean_session=None if v5 else not persistent_session,
        protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
    )
    if settings.username is not None:
        password = settings.password.get_secret_value() if settings.password else None
        client.username_pw_set(settings.username, password)
    if settings.tls is not None:
        tls = settings.tls
        try:
            client.tls_set(
                ca_certs=str(tls.ca_file) if tls.ca_file else None,
                certfile=str(tls.cert_file) if tls.cert_file else None,
                keyfile=str(tls.key_file) if tls.key_file else None,
            )
        except (OSError, ValueError) as exc:
            raise ConfigError(f"mqtt.tls: cannot load TLS files: {exc}") from None
        if tls.insecure:
            client.tls_insecure_set(True)
    client.connect_timeout = settings.connect_timeout_s
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    return client


def session_options(protocol: Protocol) -> dict[str, Any]:
    """connect() arguments that keep the broker session (and QoS 1 state) over a reconnect."""
    if protocol != "5":
        return {}  # 3.1.1 takes clean_session=False in the constructor instead
    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    properties.SessionExpiryInterval = _SESSION_EXPIRY_S
    return {"clean_start": False, "properties": properties}


def is_permanent(exc: BaseException) -> bool:
    """A socket-level failure that retrying cannot heal: the broker's certificate."""
    return isinstance(exc, ssl.SSLCertVerificationError)


@dataclass
class Handshake:
    """The outcome of one connection attempt, settled by the first callback that knows it."""

    done: threading.Event = field(default_factory=threading.Event)
    ok: bool = False
    reason: str = "no CONNACK"
    code: int | None = None
    dropped: bool = False
    permanent: bool = False

    def settle(
        self,
        ok: bool,
        reason: str,
        code: int | None = None,
        dropped: bool = False,
        permanent: bool = False,
    ) -> None:
        if not self.done.is_set():
            self.ok, self.reason, self.code, self.dropped = ok, reason, code, dropped
            self.permanent = permanent or code in _PERMANENT_REFUSALS
            self.done.set()
