"""The ``sparkplug`` sink (plugins/inspector-sparkplug) against a real mosquitto, every message
decoded by an independent Sparkplug B implementation (pysparkplug and its protobuf module
generated from Eclipse Tahu's sparkplug_b.proto), never by the sink's own encoder.

Both are imported, not skipped where missing: scripts/setup.sh installs them (the dev extra
and plugins/inspector-sparkplug), and a contract must never go untested silently."""

from __future__ import annotations

import ast
import itertools
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from importlib.metadata import entry_points
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
import pysparkplug
import pytest
from inspector_sparkplug import PLUGIN, SparkplugSettings, SparkplugSink
from paho.mqtt.enums import CallbackAPIVersion
from pysparkplug import _protobuf as tahu  # the module generated from Tahu's .proto

from inspector.publishing.settings import MqttSettings
from inspector.sections import StateFolder
from inspector.types.frames import Frame
from inspector.types.results import FrameResult, Region
from tests.fixtures.mqtt import Broker, publish_raw
from tests.fixtures.processes import REPO
from tests.fixtures.sparkplug import DEVICE_TYPES, DT, Host, births, latest

# The protobuf field each data type's value must travel in (Sparkplug B 3.0, 6.4.16).


@pytest.fixture
def spb(mosquitto: Broker) -> Iterator[Callable[..., tuple[SparkplugSink, Host]]]:
    """``open(cameras, **settings) -> (sink, host)``: the host subscribed before the sink."""
    opened: list[SparkplugSink] = []
    hosts: list[Host] = []

    def open_sink(
        cameras: tuple[str, ...] = ("cam0", "cam1"), from_frames: bool = False
    ) -> tuple[SparkplugSink, Host]:
        mosquitto.start()
        host = Host(mosquitto, f"g{uuid.uuid4().hex[:8]}")
        broker = MqttSettings(host=mosquitto.host, port=mosquitto.port, keepalive_s=5)
        settings = SparkplugSettings(enabled=True, group_id=host.group)
        sink = SparkplugSink(settings, "line1", cameras, "elpv-lite0", broker, None, from_frames)
        opened.append(sink)
        hosts.append(host)
        return sink, host

    yield open_sink
    for sink in opened:
        sink.close()
    for host in hosts:
        host.collector.close()


def verdict(camera: str, kind: str, frame_id: int, late: bool = False) -> dict[str, Any]:
    return {"schema": "inspector.verdict/1", "line": "line1", "camera": camera,
            "frame_id": frame_id, "part_id": frame_id, "verdict": kind, "late": late,
            "classes": ["crack"] if kind == "nok" else [],
            "event_id": f"line1/{camera}/r/{frame_id}"}  # fmt: skip


def frame_result(camera: str, frame_id: int, defect: bool = False) -> FrameResult:
    now = datetime.now(UTC)
    frame = Frame(camera, frame_id, np.zeros((2, 2, 3), np.uint8), now, time.monotonic_ns())
    regions = (Region("crack", 0.9, (0, 0, 2, 2), ((0, 0),)),) if defect else ()
    return FrameResult(frame, regions, None, 12.5, 1)


# -- births ----------------------------------------------------------------------------------


def test_births_carry_every_metric_with_its_datatype(spb: Any) -> None:
    before_ms = time.time_ns() // 1_000_000
    _, host = spb()
    nbirth, *dbirths = births(host)
    node = {m.name: m for m in nbirth.payload.metrics}
    assert set(node) == {"bdSeq", "Node Control/Rebirth"}
    assert node["bdSeq"].datatype == DT.UINT64 and node["bdSeq"].value == 0
    assert node["Node Control/Rebirth"].datatype == DT.BOOLEAN
    assert node["Node Control/Rebirth"].value is False
    assert nbirth.seq == 0 and nbirth.device is None
    assert abs(nbirth.payload.timestamp - before_ms) < 10_000
    assert [(m.device, m.seq) for m in dbirths] == [("cam0", 1), ("cam1", 2)]
    for dbirth in dbirths:
        metrics = {m.name: m for m in dbirth.payload.metrics}
        assert {n: m.datatype for n, m in metrics.items()} == DEVICE_TYPES
        assert all(m.timestamp and m.timestamp >= before_ms for m in metrics.values())
        assert dbirth.values["Model/Name"] == "elpv-lite0"
        assert dbirth.values["Verdict/OkCount"] == 0
        assert metrics["Verdict/Last"].is_null and metrics["Frame/LastId"].is_null
    host.assert_no_more(0.3)  # no NDATA, no DDATA before anything happened


def test_open_reads_the_daemon_context(mosquitto: Broker, tmp_path: Path) -> None:
    host = Host(mosquitto, "inspector")
    context = SimpleNamespace(  # the attributes of inspector.sinks.base.SinkContext it reads
        line_id="lineX", camera_ids=("top",), card=SimpleNamespace(name="elpv-lite0"),
        broker=MqttSettings(host=mosquitto.host, port=mosquitto.port),
        state=StateFolder(tmp_path, "lineX-"), verdicts=True,
    )  # fmt: skip
    sink = PLUGIN.create(SparkplugSettings(enabled=True), context)
    try:
        got = host.wait(2)
        assert [(m.kind, m.device) for m in got] == [("NBIRTH", None), ("DBIRTH", "top")]
        assert host.collector.messages[1].topic == "spBv1.0/inspector/DBIRTH/lineX/top"
        assert (tmp_path / "lineX-sparkplug-bdseq").read_text().strip() == "0"
    finally:
        sink.close()
        host.collector.close()


# -- data ------------------------------------------------------------------------------------


def test_ddata_carries_only_what_changed(spb: Any) -> None:
    sink, host = spb()
    births(host)
    steps: list[tuple[Callable[[], None], dict[str, Any]]] = [
        (lambda: sink.verdict(verdict("cam0", "ok", 1)),
         {"Verdict/Last": "ok", "Verdict/OkCount": 1}),
        (lambda: sink.verdict(verdict("cam0", "ok", 2)), {"Verdict/OkCount": 2}),
        (lambda: sink.verdict(verdict("cam0", "late", 3)),
         {"Verdict/Last": "late", "Verdict/LateCount": 1}),
        (lambda: sink.verdict(verdict("cam0", "nok", 3, late=True)),
         {"Verdict/Last": "nok", "Verdict/NokCount": 1}),
        (lambda: sink.frame_result(frame_result("cam0", 3)), {"Frame/LastId": 3}),
        (lambda: sink.stats({"latency_ms": {"p50": 10.0, "p99": 41.25}}), {}),
        (lambda: sink.verdict({**verdict("cam0", "nok", 4), "model": {"name": "v2"}}),
         {"Verdict/NokCount": 2, "Model/Name": "v2"}),
    ]  # fmt: skip
    seen = 3
    for step, expected in steps:
        step()
        if not expected:  # stats: one DDATA per camera, Latency/P99Ms alone
            got = host.wait(seen + 2)[seen:]
            assert [(m.kind, m.device, m.values) for m in got] == [
                ("DDATA", cam, {"Latency/P99Ms": 41.25}) for cam in ("cam0", "cam1")
            ]
            seen += 2
            continue
        got = host.wait(seen + 1)[seen:]
        assert [(m.kind, m.device) for m in got] == [("DDATA", "cam0")]
        assert got[0].values == expected
        assert {m.datatype for m in got[0].payload.metrics} <= set(DEVICE_TYPES.values())
        seen += 1
    sink.stats({"latency_ms": {"p99": 41.25}})  # unchanged: nothing to say
    host.assert_no_more(0.5)


def test_counts_match_the_verdicts_fed(spb: Any) -> None:
    rng = np.random.default_rng(7)
    sink, host = spb(cameras=("cam0", "cam1", "cam2"))
    births(host, 3)
    expected = {c: {"ok": 0, "nok": 0, "late": 0} for c in ("cam0", "cam1", "cam2")}
    last: dict[str, str] = {}
    for frame_id in range(600):  # fed as fast as it goes: DDATA folds what is queued
        camera = f"cam{rng.integers(3)}"
        kinds = ["late", str(rng.choice(["ok", "nok"]))] if rng.random() < 0.2 else []
        kinds = kinds or [str(rng.choice(["ok", "nok"]))]
        for i, kind in enumerate(kinds):
            sink.verdict(verdict(camera, kind, frame_id, late=i > 0))
            expected[camera][kind] += 1
            last[camera] = kind

    want = {
        c: {"Verdict/OkCount": n["ok"], "Verdict/NokCount": n["nok"],
            "Verdict/LateCount": n["late"], "Verdict/Last": last[c]}
        for c, n in expected.items()
    }  # fmt: skip
    got = host.wait_until(
        lambda got: all(want[c].items() <= latest(got).get(c, {}).items() for c in want), 15
    )
    assert sum(sum(n.values()) for n in expected.values()) > 600
    assert all(m.kind == "DDATA" for m in got[4:])
    assert sink.dropped == 0 and sink.errors == 0


def test_seq_increments_and_wraps_at_256(spb: Any) -> None:
    sink, host = spb(cameras=("cam0",))
    births(host, 1)
    frame_id = 0
    while len(host.collector.messages) < 300:  # one frame at a time: one DDATA each
        before = len(host.collector.messages)
        sink.frame_result(frame_result("cam0", frame_id))
        frame_id += 1
        assert len(host.collector.wait_for(before + 1, timeout=5)) > before
    got = host.wait(300)
    seqs = [m.seq for m in got]
    assert seqs[0] == 0
    assert all(b == (a + 1) % 256 for a, b in itertools.pairwise(seqs)), seqs
    assert seqs[256] == 0 and seqs[255] == 255
    assert max(seqs) == 255 and min(seqs) == 0


def test_without_verdicts_each_frame_counts_as_a_part(spb: Any) -> None:
    sink, host = spb(cameras=("cam0",), from_frames=True)
    births(host, 1)
    for frame_id, defect in enumerate([False, True, True]):
        sink.frame_result(frame_result("cam0", frame_id, defect))
    want = {"Verdict/OkCount": 1, "Verdict/NokCount": 2, "Verdict/Last": "nok", "Frame/LastId": 2}
    host.wait_until(lambda got: want.items() <= latest(got).get("cam0", {}).items())


# -- commands, deaths, sessions --------------------------------------------------------------


def ncmd(rebirth: bool) -> bytes:
    metric = pysparkplug.Metric(timestamp=1, name="Node Control/Rebirth",
                                datatype=DT.BOOLEAN, value=rebirth)  # fmt: skip
    encoded: bytes = pysparkplug.NCmd(timestamp=1, metrics=(metric,)).encode(include_dtypes=True)
    return encoded


def test_rebirth_on_ncmd(spb: Any, mosquitto: Broker) -> None:
    sink, host = spb()
    first = births(host)
    for i in (1, 2):
        sink.verdict(verdict("cam1", "nok", i))
    host.wait_until(lambda got: any(m.values.get("Verdict/NokCount") == 2 for m in got))
    seen = len(host.collector.messages)
    topic = f"spBv1.0/{host.group}/NCMD/line1"
    publish_raw(mosquitto, topic, b"\xff\xff not protobuf")
    publish_raw(mosquitto, topic, ncmd(False))
    publish_raw(mosquitto, topic, ncmd(True))
    got = host.wait(seen + 3)[seen:]
    assert [(m.kind, m.device, m.seq) for m in got] == [
        ("NBIRTH", None, 0), ("DBIRTH", "cam0", 1), ("DBIRTH", "cam1", 2)
    ]  # fmt: skip
    assert got[0].values["bdSeq"] == first[0].values["bdSeq"]  # the same session
    assert got[2].values["Verdict/NokCount"] == 2 and got[2].values["Verdict/Last"] == "nok"
    assert set(got[1].values) == set(DEVICE_TYPES)
    host.assert_no_more(0.3)
    assert sink.rebirths == 1 and sink.bad_commands == 1


def test_clean_close_sends_ddeaths_then_ndeath(spb: Any) -> None:
    sink, host = spb()
    nbirth = births(host)[0]
    sink.verdict(verdict("cam0", "ok", 1))
    host.wait(4)
    sink.close()
    got = host.wait(7)[4:]
    assert [(m.kind, m.device) for m in got] == [
        ("DDEATH", "cam0"), ("DDEATH", "cam1"), ("NDEATH", None)
    ]  # fmt: skip
    assert [m.seq for m in got[:2]] == [4, 5]
    assert got[2].payload.bd_seq_metric.name == "bdSeq"
    assert got[2].payload.bd_seq_metric.datatype == DT.UINT64
    assert got[2].payload.bd_seq_metric.value == nbirth.values["bdSeq"]
    assert not tahu.Payload.FromString(got[2].raw).HasField("seq")  # NDEATH has no seq
    host.assert_no_more(0.5)  # and the will is not published after a clean close
    assert sink.health().state == "degraded"  # closed: no broker


KILLED = textwrap.dedent("""
    import sys, time
    from inspector.publishing.settings import MqttSettings
    from inspector_sparkplug import SparkplugSettings, SparkplugSink
    group, port, state = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    from pathlib import Path
    sink = SparkplugSink(SparkplugSettings(enabled=True, group_id=group), "line1", ("cam0",),
                         "m", MqttSettings(port=port, keepalive_s=5), Path(state))
    while True:
        time.sleep(1)
""")


def test_a_killed_daemon_leaves_ndeath_and_the_next_start_a_new_bdseq(
    mosquitto: Broker, tmp_path: Path
) -> None:
    mosquitto.start()
    group = f"k{uuid.uuid4().hex[:8]}"
    host = Host(mosquitto, group)
    state = tmp_path / "bdseq"
    state.write_text("41\n")  # an earlier run opened session 41
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    argv = [sys.executable, "-c", KILLED, group, str(mosquitto.port), str(state)]
    child = subprocess.Popen(argv, cwd=REPO, env=env, stderr=subprocess.PIPE)
    try:
        nbirth = host.wait(2, timeout=20)[0]
        assert nbirth.kind == "NBIRTH" and nbirth.values["bdSeq"] == 42
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        death = host.wait(3, timeout=10)[2]  # the broker sees the socket close: the will
        assert death.kind == "NDEATH" and death.payload.bd_seq_metric.value == 42
        assert state.read_text().strip() == "42"
        sink = SparkplugSink(
            SparkplugSettings(enabled=True, group_id=group), "line1", ("cam0",), "m",
            MqttSettings(host=mosquitto.host, port=mosquitto.port), state,
        )  # fmt: skip
        try:
            assert host.wait(4)[3].values["bdSeq"] == 43
        finally:
            sink.close()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(5)
        host.collector.close()


def test_a_lost_connection_is_a_new_session_with_the_next_bdseq(
    spb: Any, mosquitto: Broker
) -> None:
    """Another client taking over the sink's client id cuts its connection, as a network
    outage would: the broker publishes the will, and the sink's reconnect is a new session."""
    sink, host = spb(cameras=("cam0",))
    births(host, 1)
    sink.verdict(verdict("cam0", "ok", 1))
    host.wait(3)
    intruder = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=sink.client_id)
    intruder.connect(mosquitto.host, mosquitto.port)
    intruder.disconnect()
    got = host.wait(6, timeout=20)[3:]
    assert [(m.kind, m.seq if m.kind != "NDEATH" else None) for m in got] == [
        ("NDEATH", None), ("NBIRTH", 0), ("DBIRTH", 1)
    ]  # fmt: skip
    assert got[0].payload.bd_seq_metric.value == 0  # the will of the first session
    assert got[1].values["bdSeq"] == 1
    assert got[2].values["Verdict/OkCount"] == 1  # kept across the outage
    host.wait_until(lambda _: sink.health().state == "ok")


def test_a_failed_camera_dies_and_is_born_again_when_up(spb: Any) -> None:
    sink, host = spb()
    births(host)
    sink.verdict(verdict("cam1", "ok", 1))
    host.wait(4)
    sink.camera_status("cam1", {"camera": "cam1", "state": "reconnecting"})
    sink.camera_status("cam1", {"camera": "cam1", "state": "failed"})
    got = host.wait(5)[4]
    assert (got.kind, got.device, got.seq) == ("DDEATH", "cam1", 4)
    sink.verdict(verdict("cam1", "nok", 2))  # kept, not published for a dead device
    host.assert_no_more(0.3)
    sink.camera_status("cam1", {"camera": "cam1", "state": "up"})
    got = host.wait(6)[5]
    assert (got.kind, got.device, got.seq) == ("DBIRTH", "cam1", 5)
    assert got.values["Verdict/NokCount"] == 1 and got.values["Verdict/OkCount"] == 1


# -- the plugin and its parts ----------------------------------------------------------------


def test_the_distribution_declares_its_entry_point() -> None:
    points = [p for p in entry_points(group="inspector.sinks") if p.name == "sparkplug"]
    assert [p.value for p in points] == ["inspector_sparkplug:PLUGIN"]
    plugin = points[0].load()
    assert plugin is PLUGIN and plugin.name == "sparkplug" and plugin.settings is SparkplugSettings
    defaults = SparkplugSettings()
    assert (defaults.enabled, defaults.group_id, defaults.edge_node_id) == (
        False, "inspector", None
    )  # fmt: skip
    with pytest.raises(ValueError, match="without '/', '\\+' or '#'"):
        SparkplugSettings(group_id="a/b")
    importing = [
        path
        for path in (REPO / "inspector").rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Import | ast.ImportFrom)
        and "inspector_sparkplug" in ast.unparse(node)
    ]
    assert not importing, f"inspector/ must not import the plugin: {importing}"


def test_payloads_decode_with_the_reference_implementation() -> None:
    from inspector_sparkplug.payload import DataType, Metric, decode_commands, encode_payload

    metrics = [Metric("big", DataType.UINT64, 2**64 - 1, 5), Metric("d", DataType.DOUBLE, -0.5, 6),
               Metric("b", DataType.BOOLEAN, True, 7), Metric("s", DataType.STRING, "é/ü", 8),
               Metric("n", DataType.STRING, None, 9)]  # fmt: skip
    pb = tahu.Payload.FromString(encode_payload(1_700_000_000_000, metrics, 255))
    assert (pb.timestamp, pb.seq) == (1_700_000_000_000, 255)
    assert [(m.name, m.timestamp, m.datatype) for m in pb.metrics] == [
        ("big", 5, 8), ("d", 6, 10), ("b", 7, 11), ("s", 8, 12), ("n", 9, 12)
    ]  # fmt: skip
    assert (pb.metrics[0].long_value, pb.metrics[1].double_value) == (2**64 - 1, -0.5)
    assert (pb.metrics[2].boolean_value, pb.metrics[3].string_value) == (True, "é/ü")
    assert pb.metrics[4].is_null and pb.metrics[4].WhichOneof("value") is None
    assert not tahu.Payload.FromString(encode_payload(1, [], None)).HasField("seq")
    with pytest.raises(ValueError, match="is not a UINT64"):
        encode_payload(1, [Metric("x", DataType.UINT64, "1", 1)], 0)
    commands = decode_commands(ncmd(True))
    assert [(c.name, c.value) for c in commands] == [("Node Control/Rebirth", True)]
    with pytest.raises(ValueError):
        decode_commands(b"\x12\x05ab")  # a metric longer than the bytes left


def test_handing_over_never_waits_for_the_broker(unused_port: int) -> None:
    """No broker at all: a verdict is still only queued (and beyond ``inbox_size`` dropped)."""
    sink = SparkplugSink(
        SparkplugSettings(enabled=True, inbox_size=1000), "line1", ("cam0",), "m",
        MqttSettings(port=unused_port, connect_timeout_s=1),
    )  # fmt: skip
    try:
        start = time.perf_counter()
        for i in range(20_000):
            sink.verdict(verdict("cam0", "ok", i))
        per_call_us = (time.perf_counter() - start) / 20_000 * 1e6
        assert per_call_us < 200, f"{per_call_us:.1f} us per verdict"
        health = sink.health()
        assert health.state == "degraded" and "broker: down" in health.detail
        metrics = {m.name: m.value for m in sink.metrics()}
        assert metrics["inspector_sparkplug_connected"] == 0
        assert metrics["inspector_sparkplug_dropped"] == sink.dropped
    finally:
        start = time.perf_counter()
        sink.close()
        assert time.perf_counter() - start < 7
