"""The OPC UA sink: `inspector run` with a real asyncua client as the PLC, verdicts also read
from a real Mosquitto, as the line would run them."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from asyncua import Client, ua
from asyncua.ua.uaerrors import BadIdentityTokenRejected, BadUserAccessDenied
from prometheus_client.parser import text_string_to_metric_families

from inspector.errors import EX_CONFIG
from tests.fixtures.models import build_color_model
from tests.fixtures.net import free_port
from tests.fixtures.verdicts import (
    FRAMES,
    TILE,
    TRUTH,
    run_daemon,
    start_daemon,
    write_config,
    write_video,
)

pytestmark = pytest.mark.e2e

NODES = ("Online", "LastFrameId", "LastPartId", "LastVerdict", "LastClasses", "OkCount",
         "NokCount", "LateCount", "LatencyMsP99")  # fmt: skip
USER, PASSWORD = "plc", "s3cret"


def opcua_section(port: int, extra: str = "") -> str:
    return (
        f'[verdicts]\nenabled = true\n[opcua]\nenabled = true\nport = {port}\nusername = "{USER}"\n'
        f'password = "{PASSWORD}"\noffline_grace_s = 2.0\n{extra}'
    )


def endpoint(port: int) -> str:
    return f"opc.tcp://127.0.0.1:{port}/line-inspector"


def plc(port: int, user: str | None = USER, password: str | None = PASSWORD) -> Client:
    client = Client(endpoint(port), timeout=10)
    if user is not None:
        client.set_user(user)
        client.set_password(password or "")
    return client


async def nodes_of(client: Client, line: str, camera: str = "cam0") -> dict[str, Any]:
    index = await client.get_namespace_index("urn:line-inspector")
    return {n: client.get_node(f"ns={index};s=LineInspector.{line}.{camera}.{n}") for n in NODES}


async def read_all(client: Client, nodes: dict[str, Any]) -> dict[str, Any]:
    """Every node in one Read request: the values of one moment of the server."""
    values = await client.read_values(list(nodes.values()))
    return dict(zip(nodes, values, strict=True))


async def connect_when_up(client: Client, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while True:
        try:
            await client.connect()
            return
        except (TimeoutError, OSError):
            if time.monotonic() > end:
                raise
            await asyncio.sleep(0.2)


def expected_verdict(frame_id: int) -> tuple[str, str]:
    classes = TRUTH.get(frame_id % FRAMES)
    return ("nok", ",".join(classes)) if classes else ("ok", "")


class OnlineWatch:
    """A subscription handler: every value ``Online`` took, in order."""

    def __init__(self) -> None:
        self.values: list[bool] = []

    def datachange_notification(self, node: Any, value: Any, data: Any) -> None:
        self.values.append(bool(value))


@pytest.fixture()
def looping_line(tmp_path: Path) -> Path:
    build_color_model(tmp_path / "m.onnx", size=TILE)
    write_video(tmp_path / "line.mp4")
    return tmp_path


def test_the_nodes_hold_the_last_verdict_and_counts_and_online_ends_false(
    looping_line: Path, mosquitto: Any, verdict_subscriber: Any
) -> None:
    port, metrics_port = free_port(), free_port()
    cameras = (
        '[[cameras]]\nid = "cam0"\nsource = "line.mp4"\nrealtime = true\nloop = true\nfps = 25\n'
    )
    extra = opcua_section(port) + f"[metrics]\nport = {metrics_port}\n"
    line = write_config(looping_line, mosquitto.port, cameras, extra)
    stream = verdict_subscriber(line)
    daemon = start_daemon(looping_line)
    online = OnlineWatch()

    async def as_the_plc() -> tuple[list[dict[str, Any]], dict[str, Any]]:
        client = plc(port)
        await connect_when_up(client)
        try:
            nodes = await nodes_of(client, line)
            subscription = await client.create_subscription(20, online)
            await subscription.subscribe_data_change(nodes["Online"])
            moments = []
            while len(moments) < 8:  # while the recording loops: what the nodes say at once
                await asyncio.sleep(0.3)
                moment = await read_all(client, nodes)
                if moment["LastVerdict"]:
                    moments.append(moment)
            daemon.send_signal(signal.SIGTERM)
            end = time.monotonic() + 60
            while (not online.values or online.values[-1]) and time.monotonic() < end:
                await asyncio.sleep(0.05)
            return moments, await read_all(client, nodes)  # within the offline grace period
        finally:
            await client.disconnect()

    try:
        moments, final = asyncio.run(as_the_plc())
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics") as response:
            metrics_text = response.read().decode()
    except BaseException:
        daemon.kill()
        raise
    finally:
        _, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err[-3000:]

    for moment in moments:  # one verdict per frame in order: the counts follow the frame id
        frame_id = moment["LastFrameId"]
        assert moment["LastPartId"] == frame_id
        assert (moment["LastVerdict"], moment["LastClasses"]) == expected_verdict(frame_id)
        assert moment["OkCount"] + moment["NokCount"] == frame_id + 1
        assert moment["NokCount"] == sum(1 for i in range(frame_id + 1) if i % FRAMES in TRUTH)
        assert moment["LateCount"] == 0 and moment["Online"] is True
        assert 0 < moment["LatencyMsP99"] < 5000
    assert moments[-1]["LastFrameId"] > moments[0]["LastFrameId"] >= 0

    assert online.values[0] is True and online.values[-1] is False  # Online false after SIGTERM
    received = stream.settle()
    assert stream.errors == []
    last = received[-1]
    assert final["Online"] is False
    assert final["LastFrameId"] == last["frame_id"] and final["LastVerdict"] == last["verdict"]
    assert final["OkCount"] == sum(v["verdict"] == "ok" for v in received)
    assert final["NokCount"] == sum(v["verdict"] == "nok" for v in received)

    samples = {
        (s.labels.get("camera"), s.labels.get("verdict"), s.labels.get("class")): s.value
        for family in text_string_to_metric_families(metrics_text)
        for s in family.samples
        if s.name in ("inspector_parts_total", "inspector_defects_total")
    }
    assert samples[("cam0", "ok", None)] >= moments[-1]["OkCount"]
    assert samples[("cam0", "nok", None)] >= moments[-1]["NokCount"]
    assert samples[("cam0", "late", None)] == 0
    assert samples[("cam0", None, "crack")] >= 1 and samples[("cam0", None, "stain")] >= 1


def test_anonymous_and_wrong_passwords_are_refused(
    looping_line: Path, mosquitto: Any, verdict_subscriber: Any
) -> None:
    port, metrics_port = free_port(), free_port()
    cameras = '[[cameras]]\nid = "cam0"\nsource = "line.mp4"\nrealtime = true\nloop = true\n'
    extra = opcua_section(port) + f"[metrics]\nport = {metrics_port}\n"
    line = write_config(looping_line, mosquitto.port, cameras, extra)
    daemon = start_daemon(looping_line)

    async def attempts() -> dict[str, Any]:
        client = plc(port)
        await connect_when_up(client)  # the right login works
        try:
            nodes = await nodes_of(client, line)
            values = await read_all(client, nodes)
            end = time.monotonic() + 20  # the server is up before the camera delivers
            while values["Online"] is not True and time.monotonic() < end:
                await asyncio.sleep(0.1)
                values = await read_all(client, nodes)
        finally:
            await client.disconnect()
        outcomes: dict[str, Any] = {"values": values}
        for name, user, password in (("anonymous", None, None), ("wrong", USER, "guess")):
            try:
                async with plc(port, user, password):
                    outcomes[name] = "let in"
            except ua.UaStatusCodeError as exc:
                outcomes[name] = type(exc)
        return outcomes

    try:
        outcomes = asyncio.run(attempts())
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics") as response:
            metrics_text = response.read().decode()
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err[-3000:]
    assert outcomes["anonymous"] is BadIdentityTokenRejected
    assert outcomes["wrong"] is BadUserAccessDenied
    assert outcomes["values"]["Online"] is True
    # each refusal one line of the daemon's, no traceback, no lines of asyncua's, counted
    refusals = [json.loads(x) for x in err.splitlines() if "opcua_login_refused" in x]
    assert [(r["reason"], r["status"]) for r in refusals] == [
        ("not_offered", "BadIdentityTokenRejected"),
        ("password", "BadUserAccessDenied"),
    ]
    assert "Traceback" not in err and "guess" not in err and PASSWORD not in err
    assert "service fault" not in err and "UserIdentityToken" not in err
    refused = {
        s.labels["reason"]: s.value
        for family in text_string_to_metric_families(metrics_text)
        for s in family.samples
        if s.name == "inspector_opcua_logins_refused_total"
    }
    assert refused == {"not_offered": 1, "password": 1, "certificate": 0, "invalid_token": 0}


def test_a_plc_that_disconnects_or_misbehaves_changes_nothing(
    tmp_path: Path, mosquitto: Any, verdict_subscriber: Any
) -> None:
    build_color_model(tmp_path / "m.onnx", size=TILE)
    frames = 3 * FRAMES
    write_video(tmp_path / "line.mp4", frames=frames, fps=10)
    port = free_port()
    cameras = '[[cameras]]\nid = "cam0"\nsource = "line.mp4"\nrealtime = true\n'
    line = write_config(tmp_path, mosquitto.port, cameras, opcua_section(port))
    stream = verdict_subscriber(line)
    daemon = start_daemon(tmp_path)

    async def misbehave() -> None:
        client = plc(port)
        await connect_when_up(client)
        nodes = await nodes_of(client, line)
        subscription = await client.create_subscription(10, OnlineWatch())
        await subscription.subscribe_data_change(list(nodes.values()))
        with pytest.raises(ua.UaStatusCodeError):  # the nodes are read-only
            await nodes["OkCount"].write_value(ua.Variant(0, ua.VariantType.UInt64))
        await asyncio.sleep(1.0)
        # Gone mid-run without closing its session or subscription: the cable pulled.
        client.uaclient.protocol.transport.abort()
        # And a client that speaks no OPC UA at all.
        with socket.create_connection(("127.0.0.1", port)) as raw:
            raw.sendall(b"\x00garbage\xff" * 100)
            await asyncio.sleep(0.5)

    try:
        asyncio.run(misbehave())
    except BaseException:
        daemon.kill()
        raise
    finally:
        out, err = daemon.communicate(timeout=120)
    assert daemon.returncode == 0, err[-3000:]
    summary = json.loads(out)
    assert summary["frames_inferred"] == frames and summary["frames_dropped"] == 0
    received = stream.settle()
    assert stream.errors == []
    assert [v["frame_id"] for v in received] == list(range(frames))
    assert [(v["verdict"], ",".join(v["classes"])) for v in received] == [
        expected_verdict(i) for i in range(frames)
    ]


def test_a_port_in_use_is_one_line_and_exit_78(looping_line: Path, mosquitto: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cameras = '[[cameras]]\nid = "cam0"\nsource = "line.mp4"\n'
        write_config(looping_line, mosquitto.port, cameras, opcua_section(port))
        result = run_daemon(looping_line)
    assert result.returncode == EX_CONFIG
    assert f"opcua.port: cannot listen on 127.0.0.1:{port}: already in use" in result.stderr
    assert "Traceback" not in result.stderr
