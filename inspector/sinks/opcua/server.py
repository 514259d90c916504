"""The asyncua server behind the ``opcua`` sink, in a thread with its own event loop.

Address space (DESIGN.md): namespace ``urn:line-inspector``; under
``Objects/LineInspector/<line>/<camera>/``: ``Online`` (Boolean), ``LastFrameId``,
``LastPartId`` (UInt64), ``LastVerdict`` (String: ok/nok/late), ``LastClasses`` (String,
comma separated), ``OkCount``, ``NokCount``, ``LateCount`` (UInt64), ``LatencyMsP99``
(Double). Node ids are strings, ``LineInspector.<line>.<camera>.<name>``, so a PLC program
can address them directly. Every node is read-only for clients.

The pipeline's threads only queue updates into the loop (``call_soon_threadsafe``); one
task applies them in order and writes each camera's nodes once per batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from asyncua import ua
from asyncua.crypto import uacrypto
from asyncua.server.server import Server

from inspector.errors import ConfigError
from inspector.sinks.opcua.auth import REASONS, Gate, GatedServer, identity_tokens
from inspector.sinks.opcua.settings import OpcUaSettings
from inspector.types.results import Verdict

log = structlog.get_logger(__name__)
# asyncua logs every session and request at INFO: a PLC polling each second would fill the
# journal. Its warnings (a password sent in plain text, a bad certificate) still show.
logging.getLogger("asyncua").setLevel(logging.WARNING)

NAMESPACE = "urn:line-inspector"
_START_TIMEOUT_S = 60.0
_LATENCY_WINDOW = 1000  # real verdicts whose capture-to-verdict times give LatencyMsP99

_U64, _STR, _BOOL, _DBL = (ua.VariantType.UInt64, ua.VariantType.String,
                           ua.VariantType.Boolean, ua.VariantType.Double)  # fmt: skip
# The nodes of one camera, in DESIGN.md's order, with their types and initial values.
NODES: tuple[tuple[str, ua.VariantType, Any], ...] = (
    ("Online", _BOOL, False),
    ("LastFrameId", _U64, 0),
    ("LastPartId", _U64, 0),
    ("LastVerdict", _STR, ""),
    ("LastClasses", _STR, ""),
    ("OkCount", _U64, 0),
    ("NokCount", _U64, 0),
    ("LateCount", _U64, 0),
    ("LatencyMsP99", _DBL, 0.0),
)
_TYPES = {name: kind for name, kind, _ in NODES}
_COUNTS = {"ok": "OkCount", "nok": "NokCount", "late": "LateCount"}


@dataclass
class _Camera:
    """What the nodes of one camera show, kept here and written after each batch."""

    values: dict[str, Any] = field(default_factory=lambda: {n: v for n, _, v in NODES})
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=_LATENCY_WINDOW))
    changed: set[str] = field(default_factory=set)

    def apply(self, verdict: Verdict) -> None:
        kind = str(verdict["verdict"])
        update = {
            "LastFrameId": int(verdict["frame_id"]),
            "LastPartId": int(verdict["part_id"]),
            "LastVerdict": kind,
            "LastClasses": ",".join(str(c) for c in verdict.get("classes") or []),
        }
        if kind in _COUNTS:
            update[_COUNTS[kind]] = self.values[_COUNTS[kind]] + 1
        latency = verdict.get("latency_ms")
        if kind != "late" and isinstance(latency, int | float):
            self.latencies.append(float(latency))
            ordered = sorted(self.latencies)
            update["LatencyMsP99"] = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
        self.set(update)

    def set(self, update: dict[str, Any]) -> None:
        for name, value in update.items():
            if self.values[name] != value or name.startswith("Last"):
                self.values[name] = value
                self.changed.add(name)


def _check_port(host: str, port: int) -> None:
    """Raise OSError when ``host:port`` cannot be bound, as the server will bind it (with
    SO_REUSEADDR, so a socket in TIME_WAIT from the last run is no obstacle)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))


def _node_id(text: str, index: int) -> ua.NodeId:
    return ua.NodeId(text, index)  # type: ignore[arg-type]


def _der(certificate: Any) -> bytes:
    return bytes(uacrypto.der_from_x509(certificate))  # type: ignore[no-untyped-call]


class OpcUaServer:
    def __init__(self, settings: OpcUaSettings, line: str, cameras: Sequence[str]) -> None:
        self.settings, self.line = settings, line
        self.updates = 0
        self._cameras = {camera: _Camera() for camera in cameras}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="opcua", daemon=True)
        self._started = threading.Event()
        self._error: ConfigError | None = None
        self._server: Server | None = None
        self._gate: Gate | None = None
        self._nodes: dict[tuple[str, str], ua.NodeId] = {}
        self._pending: list[tuple[str, Any]] = []
        self._wake: asyncio.Event | None = None
        self._stopping = False

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://{self.settings.host}:{self.settings.port}/line-inspector"

    # -- called from the pipeline's threads ----------------------------------------------------

    def start(self) -> None:
        """Serve, or raise ConfigError (port in use, unusable certificates): one line."""
        self._thread.start()
        if not self._started.wait(_START_TIMEOUT_S):
            raise ConfigError(f"opcua: the server did not start within {_START_TIMEOUT_S:g} s")
        if self._error is not None:
            self._thread.join(timeout=5)
            raise self._error
        log.info("opcua_serving", endpoint=self.endpoint, cameras=list(self._cameras))

    def verdict(self, verdict: Verdict) -> None:
        self._queue(("verdict", verdict))

    def camera_state(self, camera: str, online: bool) -> None:
        self._queue(("online", (camera, online)))

    def _queue(self, item: tuple[str, Any]) -> None:
        if self._stopping or not self.running:
            return
        with contextlib.suppress(RuntimeError):  # a loop closed meanwhile: nobody to show
            self._loop.call_soon_threadsafe(self._take, item)

    @property
    def running(self) -> bool:
        return self._thread.is_alive() and self._error is None

    @property
    def sessions(self) -> int:
        server = self._server
        return len(server.bserver.clients) if server is not None and server.bserver else 0

    @property
    def logins_refused(self) -> dict[str, int]:
        """Refused logins by reason (``opcua.auth.REASONS``, or an OPC UA status name)."""
        gate = self._gate
        return dict(gate.refused) if gate is not None else dict.fromkeys(REASONS, 0)

    def stop(self) -> None:
        """``Online`` false for every camera, a grace period for subscribed PLCs to be told,
        then the server closes."""
        if self._stopping or not self.running:
            return
        self._stopping = True
        try:
            self._loop.call_soon_threadsafe(self._take, ("stop", None))
        except RuntimeError:
            return
        self._thread.join(timeout=self.settings.offline_grace_s + 15)

    # -- the server's thread -------------------------------------------------------------------

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        finally:
            self._started.set()
            self._loop.close()

    async def _serve(self) -> None:
        self._wake = asyncio.Event()
        try:
            server = await self._open()
        except ConfigError as exc:
            self._error = exc
            return
        self._server = server
        self._started.set()
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                items, self._pending = self._pending, []
                try:
                    stop = await self._apply(items)
                except Exception as exc:  # one bad update must not take the PLCs' server down
                    log.warning("opcua_update_failed", error=str(exc), items=len(items))
                    stop = any(kind == "stop" for kind, _ in items)
                if stop:
                    await asyncio.sleep(self.settings.offline_grace_s)
                    return
        finally:
            await server.stop()
            log.info("opcua_stopped", endpoint=self.endpoint)

    def _take(self, item: tuple[str, Any]) -> None:
        self._pending.append(item)
        assert self._wake is not None
        self._wake.set()

    async def _apply(self, items: list[tuple[str, Any]]) -> bool:
        stop = False
        for kind, value in items:
            if kind == "verdict":
                camera = self._cameras.get(str(value["camera"]))
                if camera is not None:
                    camera.apply(value)
                    self.updates += 1
            elif kind == "online" and value[0] in self._cameras:
                self._cameras[value[0]].set({"Online": value[1]})
            elif kind == "stop":
                for camera in self._cameras.values():
                    camera.set({"Online": False})
                stop = True
        assert self._server is not None
        for name, camera in self._cameras.items():
            for node in sorted(camera.changed):
                variant = ua.Variant(camera.values[node], _TYPES[node])
                await self._server.write_attribute_value(
                    self._nodes[(name, node)], ua.DataValue(variant)
                )
            camera.changed.clear()
        return stop

    async def _open(self) -> Server:
        s = self.settings
        trusted = [await self._certificate(path, "trusted_certificates") for path in
                   s.trusted_certificates]  # fmt: skip
        self._gate = Gate(s, [_der(c) for c in trusted])
        server = Server(iserver=GatedServer(user_manager=self._gate))
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name(f"line-inspector {self.line}")
        await server.set_application_uri(f"{NAMESPACE}:{self.line}")
        if s.certificate is not None and s.private_key is not None:
            await self._load(server.load_certificate(str(s.certificate)), "certificate")
            await self._load(server.load_private_key(str(s.private_key)), "private_key")
            server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
                                        ua.SecurityPolicyType.Basic256Sha256_Sign])  # fmt: skip
        else:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        server.set_identity_tokens(identity_tokens(s))
        await self._address_space(server)
        try:
            _check_port(s.host, s.port)  # before asyncua, which would log a traceback
            await server.start()
        except OSError as exc:
            await server.stop()
            why = "already in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
            raise ConfigError(f"opcua.port: cannot listen on {s.host}:{s.port}: {why}") from None
        return server

    async def _certificate(self, path: Any, key: str) -> Any:
        return await self._load(uacrypto.load_certificate(str(path)), key)

    @staticmethod
    async def _load(loading: Any, key: str) -> Any:
        try:
            return await loading
        except (OSError, ValueError) as exc:
            raise ConfigError(f"opcua.{key}: cannot load it: {exc}") from None

    async def _address_space(self, server: Server) -> None:
        index = await server.register_namespace(NAMESPACE)
        root = await server.nodes.objects.add_object(
            _node_id("LineInspector", index), ua.QualifiedName("LineInspector", index)
        )
        line = await root.add_object(
            _node_id(f"LineInspector.{self.line}", index), ua.QualifiedName(self.line, index)
        )
        for camera in self._cameras:
            prefix = f"LineInspector.{self.line}.{camera}"
            folder = await line.add_object(_node_id(prefix, index), ua.QualifiedName(camera, index))
            for name, kind, initial in NODES:
                node = await folder.add_variable(
                    _node_id(f"{prefix}.{name}", index), ua.QualifiedName(name, index),
                    ua.Variant(initial, kind),
                )  # fmt: skip
                self._nodes[(camera, name)] = node.nodeid
