"""The OPC UA login matrix (inspector/sinks/opcua.auth.py), cell by cell: the sink's real
server and a real asyncua client, in process, with certificates generated for the test. A
client is let in when its session reads ``LastFrameId``; a refusal is the status asyncua
raises. Where a password and certificates are both configured, both must hold."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import structlog
from asyncua import Client, ua
from cryptography.x509.oid import ExtendedKeyUsageOID

from inspector.sinks.opcua import OpcUaSettings
from inspector.sinks.opcua.server import OpcUaServer
from tests.fixtures.net import free_port
from tests.fixtures.opcua import make_certificate

USER, PASSWORD, FRAME = "plc", "s3cret", 7
IN, REJECTED, DENIED = "in", "BadIdentityTokenRejected", "BadUserAccessDenied"


@dataclass(frozen=True)
class Login:
    """What a client presents: ``app`` the certificate of its secure channel (None: no
    security), a username and password, ``token`` the certificate it logs in with."""

    app: str | None = None
    user: str | None = None
    password: str | None = None
    token: str | None = None


# "trusted" is the certificate in trusted_certificates (where any are), "other" is not.
CLIENTS = {
    "none": Login("trusted"),
    "right": Login("trusted", USER, PASSWORD),
    "wrong": Login("trusted", USER, "guess"),
    "wrong user": Login("trusted", "intruder", PASSWORD),
    "cert": Login("trusted", token="trusted"),
    "untrusted cert": Login("other", token="other"),
    "untrusted cert, trusted app": Login("trusted", token="other"),
    "trusted cert, untrusted app": Login("other", token="trusted"),
    "none, untrusted app": Login("other"),
    "right, untrusted app": Login("other", USER, PASSWORD),
    "wrong, untrusted app": Login("other", USER, "guess"),
    "none, no security": Login(),
    "right, no security": Login(None, USER, PASSWORD),
    "wrong, no security": Login(None, USER, "guess"),
}

PASSWORD_ONLY = {"username": USER, "password": PASSWORD}
CERTS_ONLY = {"trusted_certificates": ["trusted"]}
BOTH = PASSWORD_ONLY | CERTS_ONLY
ANONYMOUS = {"allow_anonymous": True}
ENCRYPTED = {"certificate": "server"}  # the server's own certificate: encrypted endpoints only

# configuration -> {client: outcome}; the columns of the docstring's table and their mixes
MATRIX: dict[str, tuple[dict[str, Any], dict[str, str]]] = {
    "password, no security": (PASSWORD_ONLY, {
        "none, no security": REJECTED, "right, no security": IN,
        "wrong, no security": DENIED,
    }),
    "password": (PASSWORD_ONLY | ENCRYPTED, {
        "none": REJECTED, "right": IN, "wrong": DENIED, "wrong user": DENIED,
        "cert": REJECTED, "untrusted cert": REJECTED, "none, untrusted app": REJECTED,
        "right, untrusted app": IN, "wrong, untrusted app": DENIED,
    }),
    "password, anonymous": (PASSWORD_ONLY | ENCRYPTED | ANONYMOUS, {
        "none": IN, "right": IN, "wrong": DENIED, "wrong user": DENIED, "cert": REJECTED,
        "none, untrusted app": IN, "right, untrusted app": IN, "wrong, untrusted app": DENIED,
    }),
    "certificates": (CERTS_ONLY | ENCRYPTED, {
        "none": REJECTED, "right": REJECTED, "wrong": REJECTED, "cert": IN,
        "untrusted cert": DENIED, "untrusted cert, trusted app": DENIED,
        "trusted cert, untrusted app": DENIED, "none, untrusted app": REJECTED,
        "right, untrusted app": REJECTED,
    }),
    "certificates, anonymous": (CERTS_ONLY | ENCRYPTED | ANONYMOUS, {
        "none": IN, "none, untrusted app": DENIED, "right": REJECTED, "cert": IN,
        "untrusted cert": DENIED, "untrusted cert, trusted app": DENIED,
        "trusted cert, untrusted app": DENIED,
    }),
    "both": (BOTH | ENCRYPTED, {
        "right": IN, "right, untrusted app": DENIED, "wrong": DENIED,
        "wrong user": DENIED, "wrong, untrusted app": DENIED, "none": REJECTED,
        "none, untrusted app": REJECTED, "cert": REJECTED, "untrusted cert": REJECTED,
        "trusted cert, untrusted app": REJECTED,
    }),
    "both, anonymous": (BOTH | ENCRYPTED | ANONYMOUS, {
        "none": IN, "none, untrusted app": DENIED, "right": IN,
        "right, untrusted app": DENIED, "wrong": DENIED, "wrong, untrusted app": DENIED,
        "cert": REJECTED,
    }),
    "anonymous only": (ANONYMOUS, {
        "none, no security": IN, "right, no security": REJECTED,
        "wrong, no security": REJECTED,
    }),
}  # fmt: skip


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    folder = tmp_path_factory.mktemp("opcua-logins")
    return {
        "server": make_certificate(folder, "server", ExtendedKeyUsageOID.SERVER_AUTH),
        "trusted": make_certificate(folder, "trusted", ExtendedKeyUsageOID.CLIENT_AUTH),
        "other": make_certificate(folder, "other", ExtendedKeyUsageOID.CLIENT_AUTH),
    }


def settings_of(config: dict[str, Any], certs: dict[str, tuple[Path, Path]]) -> OpcUaSettings:
    named = dict(config)
    if "certificate" in named:
        named["certificate"], named["private_key"] = certs[named["certificate"]]
    named["trusted_certificates"] = [certs[n][0] for n in named.get("trusted_certificates", [])]
    return OpcUaSettings(enabled=True, port=free_port(), offline_grace_s=0, **named)


async def attempt(port: int, login: Login, certs: dict[str, tuple[Path, Path]]) -> str:
    """``in`` when a session opened and read LastFrameId (the verdict's), else the refusal."""
    client = Client(f"opc.tcp://127.0.0.1:{port}/line-inspector", timeout=10)
    if login.app is not None:
        cert, key = certs[login.app]
        client.application_uri = f"urn:{login.app}"
        await client.set_security_string(f"Basic256Sha256,SignAndEncrypt,{cert},{key}")
    if login.user is not None:
        client.set_user(login.user)
        client.set_password(login.password or "")
    if login.token is not None:
        await client.load_client_certificate(str(certs[login.token][0]))
        await client.load_private_key(str(certs[login.token][1]))
    try:
        async with client:
            index = await client.get_namespace_index("urn:line-inspector")
            node = client.get_node(f"ns={index};s=LineInspector.l1.cam0.LastFrameId")
            value = await node.read_value()
    except ua.UaStatusCodeError as exc:
        return type(exc).__name__
    return IN if value == FRAME else f"read {value!r}"


@pytest.mark.parametrize("config", list(MATRIX))
def test_the_login_matrix(
    config: str, certificates: dict[str, tuple[Path, Path]], caplog: pytest.LogCaptureFixture
) -> None:
    settings, expected = MATRIX[config]
    server = OpcUaServer(settings_of(settings, certificates), "l1", ["cam0"])
    server.start()
    try:
        server.verdict({"camera": "cam0", "frame_id": FRAME, "part_id": FRAME,
                        "verdict": "ok", "classes": [], "latency_ms": 1.0})  # fmt: skip

        async def every_client() -> dict[str, str]:
            return {
                name: await attempt(server.settings.port, CLIENTS[name], certificates)
                for name in expected
            }

        with caplog.at_level(logging.INFO), structlog.testing.capture_logs() as logs:
            before = len(caplog.records)
            outcomes = asyncio.run(every_client())
            server_records = [r for r in caplog.records[before:] if r.name.startswith(
                "asyncua.server")]  # fmt: skip
    finally:
        server.stop()
    assert outcomes == expected

    # one line per refusal, from us; none from asyncua, and no traceback anywhere
    refusals = [entry for entry in logs if entry["event"] == "opcua_login_refused"]
    assert len(refusals) == sum(outcome != IN for outcome in expected.values())
    assert all(PASSWORD not in str(entry) and "guess" not in str(entry) for entry in refusals)
    assert [r.getMessage() for r in server_records if r.levelno >= logging.WARNING] == []
    assert not any(r.exc_info for r in server_records)
    refused_counts = server.logins_refused
    assert sum(refused_counts.values()) == len(refusals)
    assert refused_counts["not_offered"] == sum(o == REJECTED for o in expected.values())


def test_both_configured_need_both_even_with_the_trusted_key(
    certificates: dict[str, tuple[Path, Path]],
) -> None:
    """The issue's two cells, apart: the trusted application with a wrong password, and the
    right password from an untrusted application, are refused; the two together get in."""
    server = OpcUaServer(settings_of(BOTH | ENCRYPTED, certificates), "l1", ["cam0"])
    server.start()
    try:
        server.verdict({"camera": "cam0", "frame_id": FRAME, "part_id": FRAME,
                        "verdict": "ok", "classes": [], "latency_ms": 1.0})  # fmt: skip

        async def three() -> list[str]:
            port = server.settings.port
            return [
                await attempt(port, Login("trusted", USER, "guess"), certificates),
                await attempt(port, Login("other", USER, PASSWORD), certificates),
                await attempt(port, Login("trusted", USER, PASSWORD), certificates),
            ]

        wrong_password, untrusted_app, both = asyncio.run(three())
    finally:
        server.stop()
    assert (wrong_password, untrusted_app, both) == (DENIED, DENIED, IN)
    counts = server.logins_refused
    assert counts["password"] == 1 and counts["certificate"] == 1
