"""A broker back after an outage is used at once, not after the rest of a doubling back-off.

Measured before: the daemon reconnected 5-11 s after the broker returned (paho's back-off,
and the start-up retry's, double to 30 s). Both now probe the port between two attempts.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from inspector.publishing.connection import wait_before_retry
from inspector.publishing.mqtt import MqttPublisher
from inspector.publishing.settings import MqttSettings
from tests.fixtures.mqtt import Broker

OUTAGE_S = 4.0  # the back-off is then 4 s: the old next attempt came ~3 s after the return
PROMPT_S = 1.5


def _seconds_until(condition: Callable[[], bool], timeout: float = 20.0) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, "not reconnected"
        time.sleep(0.02)
    return time.monotonic() - started


def test_a_dropped_connection_comes_back_promptly_after_the_outage(tmp_path: Path) -> None:
    broker = Broker(tmp_path)
    broker.start()
    line = f"rc{uuid.uuid4().hex[:8]}"
    try:
        with MqttPublisher(MqttSettings(port=broker.port), line) as publisher:
            broker.stop()
            _seconds_until(lambda: not publisher.connected)
            time.sleep(OUTAGE_S)
            broker.start()
            took = _seconds_until(lambda: publisher.connected)
            assert took < PROMPT_S, f"reconnected {took:.1f} s after the broker returned"
    finally:
        broker.stop()


def test_a_broker_down_at_start_is_used_promptly_once_it_listens(tmp_path: Path) -> None:
    broker = Broker(tmp_path)  # not started
    line = f"rc{uuid.uuid4().hex[:8]}"
    connected: list[float] = []
    publisher = MqttPublisher(MqttSettings(port=broker.port, connect_timeout_s=2), line)
    try:
        publisher.connect_in_background(lambda: connected.append(time.monotonic()))
        time.sleep(OUTAGE_S)
        broker.start()
        took = _seconds_until(lambda: bool(connected))
        assert took < PROMPT_S, f"connected {took:.1f} s after the broker started"
    finally:
        publisher.close()
        broker.stop()


def test_a_port_that_answers_but_refuses_waits_the_whole_back_off(tmp_path: Path) -> None:
    """A broker that refuses us (a wrong password) must not be retried four times a second."""
    broker = Broker(tmp_path)
    broker.start()
    try:
        started = time.monotonic()
        wait_before_retry(broker.host, broker.port, 1.2, lambda: True)
        assert time.monotonic() - started == pytest.approx(1.2, abs=0.3)
    finally:
        broker.stop()
