"""MqttPublisher and `inspector watch` against a real mosquitto (see conftest.py)."""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from inspector.cli import watch
from inspector.config import MqttSettings
from inspector.errors import BrokerError
from inspector.publishing.mqtt import MqttPublisher
from inspector.publishing.topics import (
    DEFECTS_WILDCARD,
    defects_topic,
    stats_topic,
    status_topic,
)
from tests.fixtures.mqtt import (
    Broker,
    Collector,
    V311OnlyProxy,
    compact,
    event,
    inspector_watch,
    publish_raw,
    start_watch,
)
from tests.fixtures.net import free_port
from tests.fixtures.processes import REPO

Subscribe = Callable[[str], Collector]


@pytest.fixture
def line() -> str:
    # Retained status outlives a test on the session's broker: one line id per test.
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def publisher_for(mosquitto: Broker) -> Iterator[Callable[..., MqttPublisher]]:
    made: list[MqttPublisher] = []

    def make(line: str, **settings: Any) -> MqttPublisher:
        publisher = MqttPublisher(MqttSettings(port=mosquitto.port, **settings), line)
        made.append(publisher)
        return publisher

    yield make
    for publisher in made:
        publisher.close()


def test_topics() -> None:
    assert defects_topic("line1") == "line/line1/defects"
    assert status_topic("line1") == "line/line1/status"
    assert stats_topic("line1") == "line/line1/stats"
    assert DEFECTS_WILDCARD == "line/+/defects"
    with pytest.raises(ValueError):
        defects_topic("a/+")


def test_connect_leaves_retained_online(
    publisher_for: Callable[..., MqttPublisher], mqtt_messages: Subscribe, line: str
) -> None:
    publisher = publisher_for(line)
    publisher.connect()
    assert publisher.connected
    assert publisher.protocol == "5"  # "auto" on a broker that speaks 5
    got = mqtt_messages(status_topic(line)).wait_for(1)
    assert [(m.payload, m.retain) for m in got] == [(b"online", True)]


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_events_are_delivered_and_acknowledged(
    publisher_for: Callable[..., MqttPublisher],
    mqtt_messages: Subscribe,
    line: str,
    protocol: str,
) -> None:
    events = mqtt_messages(DEFECTS_WILDCARD)
    with publisher_for(line, protocol=protocol) as publisher:
        assert publisher.protocol == protocol
        sent = [event(line, frame_id) for frame_id in range(200)]
        mids = [publisher.publish_event(e) for e in sent]
        assert len(set(mids)) == len(mids)
        assert publisher.wait_for_acks(5) == 0
        assert publisher.acks.published == publisher.acks.acknowledged == len(sent)
        assert publisher.acks.pending == 0
        publisher.publish_stats({"fps": 12.5})
    got = [m for m in events.wait_for(len(sent)) if m.topic == defects_topic(line)]
    assert [m.payload for m in got] == [compact(e) for e in sent]
    assert not any(m.retain for m in got)


def test_an_ack_that_beats_publish_returning_is_counted(
    publisher_for: Callable[..., MqttPublisher], line: str
) -> None:
    publisher = publisher_for(line)
    publisher.connect()

    class RacingClient:  # paho's thread acks before publish() hands us the mid
        def publish(self, topic: str, payload: bytes, qos: int, retain: bool) -> Any:
            info = mqtt.MQTTMessageInfo(4242)
            publisher._on_publish(self, None, info.mid, ReasonCode(PacketTypes.PUBACK), None)  # type: ignore[arg-type]
            return info

    publisher._client, real = RacingClient(), publisher._client  # type: ignore[assignment]
    try:
        assert publisher.publish_event(event(line)) == 4242
    finally:
        publisher._client = real
    assert (publisher.acks.published, publisher.acks.acknowledged, publisher.acks.pending) == (
        1,
        1,
        0,
    )
    assert publisher.wait_for_acks(0) == 0


def test_reconnects_and_resends_after_a_broker_restart(tmp_path: Path, line: str) -> None:
    broker = Broker(tmp_path)  # its own broker: restarting the session's would disturb others
    broker.start()
    try:
        with MqttPublisher(MqttSettings(port=broker.port), line) as publisher:
            broker.stop()
            deadline = time.monotonic() + 5
            while publisher.connected and time.monotonic() < deadline:
                time.sleep(0.02)
            assert not publisher.connected
            for frame_id in range(5):
                publisher.publish_event(event(line, frame_id))
            assert publisher.acks.pending == 5
            broker.start()
            assert publisher.wait_for_acks(10) == 0
            assert publisher.connected
            # The new broker kept no retained state: "online" is there only if re-published.
            status = Collector(broker.host, broker.port, status_topic(line))
            assert [m.payload for m in status.wait_for(1)] == [b"online"]
            status.close()
    finally:
        broker.stop()


def test_close_leaves_retained_offline(
    publisher_for: Callable[..., MqttPublisher], mqtt_messages: Subscribe, line: str
) -> None:
    publisher = publisher_for(line)
    publisher.connect()
    publisher.close()
    assert not publisher.connected
    got = mqtt_messages(status_topic(line)).wait_for(1)
    assert [(m.payload, m.retain) for m in got] == [(b"offline", True)]


def test_last_will_marks_a_killed_daemon_offline(
    mosquitto: Broker, mqtt_messages: Subscribe, line: str
) -> None:
    status = mqtt_messages(status_topic(line))
    script = textwrap.dedent(f"""
        import time
        from inspector.config import MqttSettings
        from inspector.publishing.mqtt import MqttPublisher
        MqttPublisher(MqttSettings(port={mosquitto.port}, keepalive_s=5), {line!r}).connect()
        print("connected", flush=True)
        time.sleep(60)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None
        # structlog's default set-up logs to stdout too: skip to our marker.
        while (line_out := child.stdout.readline()) not in (b"connected\n", b""):
            pass
        assert line_out == b"connected\n"
        assert [m.payload for m in status.wait_for(1)] == [b"online"]
    finally:
        child.send_signal(signal.SIGKILL)  # no DISCONNECT: the broker must send the Will
        child.wait()
    assert [m.payload for m in status.wait_for(2)] == [b"online", b"offline"]
    retained = mqtt_messages(status_topic(line)).wait_for(1)
    assert [(m.payload, m.retain) for m in retained] == [(b"offline", True)]


@pytest.mark.parametrize("mode", ["refuse", "drop"])
def test_auto_falls_back_to_311_on_a_broker_without_5(
    mosquitto: Broker, mqtt_messages: Subscribe, line: str, mode: str
) -> None:
    proxy = V311OnlyProxy(mosquitto.host, mosquitto.port, mode)
    events = mqtt_messages(defects_topic(line))
    try:
        with MqttPublisher(MqttSettings(port=proxy.port, connect_timeout_s=5), line) as publisher:
            assert publisher.protocol == "3.1.1"
            assert proxy.v5_attempts == 1
            publisher.publish_event(event(line))
            assert publisher.wait_for_acks(5) == 0
        assert [m.payload for m in events.wait_for(1)] == [compact(event(line))]
        strict = MqttPublisher(MqttSettings(port=proxy.port, protocol="5"), line)
        with pytest.raises(BrokerError, match=f"127.0.0.1:{proxy.port}"):
            strict.connect()
    finally:
        proxy.close()


def test_closed_port_fails_fast_with_the_address() -> None:
    port = free_port()
    publisher = MqttPublisher(MqttSettings(port=port, connect_timeout_s=5), "line1")
    started = time.monotonic()
    with pytest.raises(BrokerError, match=f"cannot connect to MQTT broker 127.0.0.1:{port}"):
        publisher.connect()
    assert time.monotonic() - started < 2
    assert not publisher.connected
    with pytest.raises(RuntimeError):
        publisher.publish_event(event("line1"))


# --- inspector watch ---------------------------------------------------------------------------


def watch_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="inspector")
    watch.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["watch", *argv])


def test_format_event() -> None:
    assert watch.format_event(event("line1")) == (
        "17:00:00.123 line1/cam0 frame 1234  crack 0.97 @ [448,224,224,224]; "
        "stain 0.61 @ [0,0,224,224]  (47.5 ms)"
    )


def test_watch_in_process_prints_events_and_survives_bad_json(
    mosquitto: Broker, capsys: pytest.CaptureFixture[str], line: str
) -> None:
    args = watch_args(defects_topic(line), "--port", str(mosquitto.port), "--count", "2")
    args.timeout = 10.0
    result: list[int] = []
    runner = threading.Thread(target=lambda: result.append(watch.run(args)))
    runner.start()
    err = ""
    deadline = time.monotonic() + 5
    while "subscribed" not in err and time.monotonic() < deadline:
        time.sleep(0.02)
        err += capsys.readouterr().err
    assert "subscribed" in err
    publish_raw(mosquitto, defects_topic(line), b"{not json")
    publish_raw(mosquitto, defects_topic(line), compact(event(line)))
    publish_raw(mosquitto, defects_topic(line), compact({"fps": 3}))
    runner.join(15)
    out, more = capsys.readouterr()
    assert result == [0]
    assert f"{defects_topic(line)}: invalid JSON payload (9 bytes)" in more
    assert out.splitlines() == [
        watch.format_event(event(line)),
        f'{defects_topic(line)} {{"fps": 3}}',
    ]


def test_watch_json_subprocess(mosquitto: Broker, line: str) -> None:
    child = start_watch(mosquitto, "--json", "--count", "2", "--timeout", "10")
    sent = [event(line, 1), event(line, 2)]
    publish_raw(mosquitto, defects_topic(line), b"\xff\xfe garbage")
    for e in sent:
        publish_raw(mosquitto, defects_topic(line), compact(e))
    out, err = child.communicate(timeout=15)
    assert child.returncode == 0, err
    assert [json.loads(text) for text in out.splitlines()] == sent
    assert f"{defects_topic(line)}: invalid JSON payload (10 bytes)" in err


def test_watch_ctrl_c_exits_0(mosquitto: Broker) -> None:
    child = start_watch(mosquitto)
    child.send_signal(signal.SIGINT)
    _out, err = child.communicate(timeout=10)
    assert child.returncode == 0, err


def test_watch_takes_the_broker_from_config(
    mosquitto: Broker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "line.toml"
    config.write_text(
        f'[[cameras]]\nid = "cam0"\nsource = "x.mp4"\n[mqtt]\nport = {mosquitto.port}\n'
    )
    assert watch.run(watch_args("--config", str(config), "--timeout", "0.1")) == 0
    assert f"on 127.0.0.1:{mosquitto.port}" in capsys.readouterr().err


def test_watch_timeout_before_count_exits_1(mosquitto: Broker, line: str) -> None:
    args = watch_args(defects_topic(line), "--port", str(mosquitto.port), "--count", "1")
    args.timeout = 0.3
    assert watch.run(args) == 1
    args.count = None
    assert watch.run(args) == 0


def test_watch_unreachable_broker_exits_69() -> None:
    port = free_port()
    result = inspector_watch("--port", str(port))
    assert result.returncode == 69
    assert result.stderr.strip().splitlines() == [
        f"inspector watch: error: cannot connect to MQTT broker 127.0.0.1:{port}: "
        "[Errno 111] Connection refused"
    ]
