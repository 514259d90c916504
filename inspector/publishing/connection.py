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
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.client import _ConnectionState  # type: ignore[attr-defined]  # paho 2.x, private
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from inspector.errors import ConfigError
from inspector.publishing.settings import MqttSettings, TlsSettings

Protocol = Literal["5", "3.1.1"]

_SESSION_EXPIRY_S = 3600  # keep the broker-side session across outages up to an hour
# MQTT 5 CONNACK reason codes that no retry will change (paho maps 3.1.1's rc 4 and 5 to
# 0x86 and 0x87): bad user name or password, not authorized, banned, bad auth method.
_PERMANENT_REFUSALS = {0x86, 0x87, 0x8A, 0x8C}
_PROBE_S = 0.5  # how often a broker that is down is looked for between two attempts


def port_answers(host: str, port: int) -> bool:
    """A TCP connection to the broker's port, closed at once: much cheaper than an MQTT
    attempt (no TLS, no CONNECT, no log line per attempt), so it can be tried often."""
    try:
        with socket.create_connection((host, port), timeout=_PROBE_S):
            return True
    except OSError:
        return False


def wait_before_retry(
    host: str, port: int, delay_s: float, keep_waiting: Callable[[], bool]
) -> None:
    """Wait out ``delay_s`` (the back-off), but end it as soon as the broker's port goes from
    refusing to answering: a broker back after a long outage is used within ``_PROBE_S``, not
    after the rest of a back-off that doubles to 30 s (measured before: 5-11 s late). A port
    that answers already (a broker that refuses us) waits the whole back-off."""
    refused = not port_answers(host, port)
    deadline = time.monotonic() + delay_s
    while keep_waiting() and (remaining := deadline - time.monotonic()) > 0:
        time.sleep(min(_PROBE_S, remaining))
        if refused and port_answers(host, port):
            return


class _ProbingClient(mqtt.Client):
    """paho's client, whose wait between two reconnects is :func:`wait_before_retry`."""

    def __init__(self, *args: Any, broker: tuple[str, int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._broker = broker

    def _reconnect_wait(self) -> None:
        # paho 2.x calls this private hook before each reconnect of its loop thread; the
        # back-off arithmetic is paho's own (tests/publishing/test_mqtt_reconnect.py notices
        # a change).
        with self._reconnect_delay_mutex:
            if self._reconnect_delay is None:
                self._reconnect_delay = self._reconnect_min_delay
            else:
                self._reconnect_delay = min(2 * self._reconnect_delay, self._reconnect_max_delay)
            delay_s = float(self._reconnect_delay)
        host, port = self._broker
        wait_before_retry(host, port, delay_s, self._still_reconnecting)

    def _still_reconnecting(self) -> bool:
        stopping = (_ConnectionState.MQTT_CS_DISCONNECTING, _ConnectionState.MQTT_CS_DISCONNECTED)
        return not self._thread_terminate and self._state not in stopping


def default_client_id(line_id: str) -> str:
    # Unique per process, so two daemons (or a crashed one's stale session) on
    # one broker never take over each other's connection.
    return f"inspector-{line_id}-{socket.gethostname()}-{os.getpid()}"


def build_client(
    settings: MqttSettings, client_id: str, protocol: Protocol, *, persistent_session: bool
) -> mqtt.Client:
    """A paho client with the configured credentials, TLS and reconnect back-off."""
    v5 = protocol == "5"
    client = _ProbingClient(
        broker=(settings.host, settings.port),
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
            raise tls_failure(tls, exc) from None
        if tls.insecure:
            client.tls_insecure_set(True)
    client.connect_timeout = settings.connect_timeout_s
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    return client


def tls_failure(tls: TlsSettings, exc: Exception) -> ConfigError:
    """The field, the file and the reason: paho and ssl name no file ("[Errno 2] No such file
    or directory"), and an operator with three files must not guess which."""
    files = {"ca_file": tls.ca_file, "cert_file": tls.cert_file, "key_file": tls.key_file}
    for key, path in files.items():
        if path is not None and not path.is_file():
            reason = "is not a file" if path.exists() else "no such file"
            return ConfigError(f"mqtt.tls.{key}: {path}: {reason}")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        if tls.ca_file is not None:
            context.load_verify_locations(str(tls.ca_file))
    except (OSError, ssl.SSLError) as error:
        return ConfigError(f"mqtt.tls.ca_file: {tls.ca_file}: not a PEM CA certificate ({error})")
    try:
        if tls.cert_file is not None:
            context.load_cert_chain(str(tls.cert_file), str(tls.key_file) if tls.key_file else None)
    except (OSError, ssl.SSLError) as error:
        pair = f"{tls.cert_file}" + (f" and {tls.key_file}" if tls.key_file else "")
        return ConfigError(
            f"mqtt.tls.cert_file: {pair}: not a PEM certificate and its private key ({error})"
        )
    return ConfigError(f"mqtt.tls: cannot load TLS files: {exc}")


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
