"""``inspector watch`` (issue 18): a payload it cannot show is skipped with one notice line on
stderr, and it goes on printing the next message (a real broker, the real command)."""

from __future__ import annotations

import json
import uuid

from inspector.cli import watch
from inspector.publishing.topics import defects_topic
from tests.fixtures.mqtt import Broker, compact, event, publish_raw, start_watch


def test_bad_payloads_are_skipped_and_watch_goes_on(mosquitto: Broker) -> None:
    line = f"t{uuid.uuid4().hex[:10]}"
    topic = defects_topic(line)
    child = start_watch(mosquitto, topic, "--count", "2", "--timeout", "15")
    bad = [
        compact({**event(line), "defects": [7]}),
        compact({**event(line), "defects": [{"class": "crack"}, "text"]}),
        b"[" * 5000 + b"]" * 5000,
        b"[" * 100 + b"]" * 100,
        b"\xff\xfe not utf-8",
        b"{not json",
    ]
    for payload in bad:
        publish_raw(mosquitto, topic, payload)
    publish_raw(mosquitto, topic, compact(event(line, 1)))
    # A class name with a line break and an unpaired surrogate: still one line, printable.
    odd = {**event(line, 2), "defects": [{"class": "a\nb\ud800", "score": 0.5}]}
    publish_raw(mosquitto, topic, json.dumps(odd).encode())
    out, err = child.communicate(timeout=20)
    assert child.returncode == 0, err
    assert out.splitlines() == [
        watch.format_event(event(line, 1)),
        watch.format_event({**odd, "defects": [{"class": "a\\nb\\ud800", "score": 0.5}]}),
    ]
    notices = [text for text in err.splitlines() if text.startswith(topic)]
    assert notices == [
        f"{topic}: skipped: defects[0] is int, not an object ({len(bad[0])} bytes)",
        f"{topic}: skipped: defects[1] is str, not an object ({len(bad[1])} bytes)",
        f"{topic}: skipped: JSON nested more than 64 deep (10000 bytes)",
        f"{topic}: skipped: JSON nested more than 64 deep (200 bytes)",
        f"{topic}: invalid JSON payload (12 bytes)",
        f"{topic}: invalid JSON payload (9 bytes)",
    ]
    assert "Traceback" not in err


def test_json_output_stays_one_line_of_json() -> None:
    out, err = watch.render("t", b'{"a":\t"\\ud800",\n"b": [1]}', as_json=True)
    assert err is None and out is not None
    assert out == '{"a":"\\ud800","b":[1]}'
    assert json.loads(out) == {"a": "\ud800", "b": [1]}
