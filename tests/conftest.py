"""Shared pytest fixtures, grouped by subject."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fixtures.mqtt import Broker, Collector
from tests.fixtures.net import free_port
from tests.fixtures.verdicts import VerdictSubscriber

# --- MQTT: a real mosquitto on loopback (tests/mqtt_helpers.py) --------------------------------


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """One broker for the session; tests use their own line ids, as retained messages persist."""
    broker = Broker(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def mqtt_messages(mosquitto: Broker) -> Iterator[Callable[[str], Collector]]:
    """``subscribe(topic) -> Collector``: subscribed when it returns, closed after the test."""
    collectors: list[Collector] = []

    def subscribe(topic: str) -> Collector:
        mosquitto.start()  # a fault test may have left it stopped
        collector = Collector(mosquitto.host, mosquitto.port, topic)
        collectors.append(collector)
        return collector

    yield subscribe
    for collector in collectors:
        collector.close()


@pytest.fixture
def unused_port() -> int:
    """A loopback port nothing listens on: for 'broker unreachable' tests."""
    return free_port()


# --- end MQTT ----------------------------------------------------------------------------------


@pytest.fixture
def verdict_subscriber(mosquitto: Broker) -> Iterator[Callable[[str], VerdictSubscriber]]:
    """Subscribers to a line's verdicts (``line/<line>/verdicts/#``), closed after the test."""
    subscribers: list[VerdictSubscriber] = []

    def make(line: str) -> VerdictSubscriber:
        mosquitto.start()
        subscriber = VerdictSubscriber(mosquitto.host, mosquitto.port, line)
        subscribers.append(subscriber)
        return subscriber

    yield make
    for subscriber in subscribers:
        subscriber.close()


# --- disks: a real small filesystem ---------------------------------------------------------


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str, str], Path]]:
    """``mount(name, options) -> Path``: a real tmpfs (``mount -o OPTIONS``, as ``size=1m``)
    at ``tmp_path/name``, unmounted after the test; the test is skipped where it cannot be
    mounted (it needs root or CAP_SYS_ADMIN)."""
    mounted: list[Path] = []

    def mount(name: str, options: str) -> Path:
        point = tmp_path / name
        point.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            pytest.skip(
                f"cannot mount a tmpfs (needs root or CAP_SYS_ADMIN): {done.stderr.strip()}"
            )
        mounted.append(point)
        return point

    yield mount
    for point in reversed(mounted):
        subprocess.run(["umount", "-l", str(point)], check=False)
