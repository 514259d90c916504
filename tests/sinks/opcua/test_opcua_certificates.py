"""OPC UA with certificates: the server's own (signed and encrypted endpoints only) and a
client certificate as the PLC's login; the sink's server and a real asyncua client, in
process, with certificates generated for the test."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from asyncua import Client, ua
from asyncua.ua.uaerrors import BadIdentityTokenRejected, BadUserAccessDenied
from cryptography.x509.oid import ExtendedKeyUsageOID

from inspector.errors import ConfigError
from inspector.sinks.opcua import OpcUaSettings
from inspector.sinks.opcua.server import OpcUaServer
from tests.fixtures.net import free_port
from tests.fixtures.opcua import make_certificate


async def log_in(port: int, cert: Path, key: Path, identity: bool) -> Any:
    """Connect over Basic256Sha256 SignAndEncrypt; ``identity``: log in with the certificate
    (else anonymously); the value of LastVerdict, or the refusal."""
    client = Client(f"opc.tcp://127.0.0.1:{port}/line-inspector", timeout=10)
    client.application_uri = f"urn:{cert.name.removesuffix('-cert.der')}"
    await client.set_security_string(f"Basic256Sha256,SignAndEncrypt,{cert},{key}")
    if identity:
        await client.load_client_certificate(str(cert))
        await client.load_private_key(str(key))
    try:
        async with client:
            index = await client.get_namespace_index("urn:line-inspector")
            return await client.get_node(
                f"ns={index};s=LineInspector.l1.cam0.LastVerdict"
            ).read_value()
    except ua.UaStatusCodeError as exc:
        return type(exc)


def test_a_trusted_client_certificate_logs_in_and_others_are_refused(tmp_path: Path) -> None:
    server_cert, server_key = make_certificate(tmp_path, "server", ExtendedKeyUsageOID.SERVER_AUTH)
    plc_cert, plc_key = make_certificate(tmp_path, "plc", ExtendedKeyUsageOID.CLIENT_AUTH)
    other_cert, other_key = make_certificate(tmp_path, "other", ExtendedKeyUsageOID.CLIENT_AUTH)
    port = free_port()
    settings = OpcUaSettings(
        enabled=True, port=port, certificate=server_cert, private_key=server_key,
        trusted_certificates=[plc_cert], offline_grace_s=0,
    )  # fmt: skip
    server = OpcUaServer(settings, "l1", ["cam0"])
    server.start()
    try:
        server.verdict({"camera": "cam0", "frame_id": 3, "part_id": 3, "verdict": "nok",
                        "classes": ["crack"], "latency_ms": 5.0})  # fmt: skip

        async def attempts() -> list[Any]:
            return [
                await log_in(port, plc_cert, plc_key, identity=True),
                await log_in(port, other_cert, other_key, identity=True),
                await log_in(port, plc_cert, plc_key, identity=False),
            ]

        trusted, untrusted, anonymous = asyncio.run(attempts())
    finally:
        server.stop()
    assert trusted == "nok"
    assert untrusted is BadUserAccessDenied
    assert anonymous is BadIdentityTokenRejected


def test_an_unreadable_certificate_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "junk.der").write_bytes(b"not a certificate")
    settings = OpcUaSettings(
        enabled=True, port=free_port(), username="u", password="p",
        certificate=tmp_path / "junk.der", private_key=tmp_path / "junk.der",
    )  # fmt: skip
    with pytest.raises(ConfigError, match=r"opcua\.certificate: cannot load it"):
        OpcUaServer(settings, "l1", ["cam0"]).start()
