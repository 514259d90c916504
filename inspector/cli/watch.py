"""``inspector watch [TOPIC]``: print the defect events (or any topic) a broker carries."""

from __future__ import annotations

import argparse
import json
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from inspector.cli.arguments import positive_float, positive_int
from inspector.cli.payloads import PayloadError, event_problem, one_line, parse_payload
from inspector.cli.verdict_lines import VERDICTS_WILDCARD, render_verdict
from inspector.errors import EX_USAGE
from inspector.publishing.topics import DEFECTS_WILDCARD

if TYPE_CHECKING:  # pydantic and paho load when a command runs, not for --help
    from inspector.publishing.settings import MqttSettings
    from inspector.publishing.subscription import Subscription

PROG = "inspector watch"

DESCRIPTION = """\
Subscribe to an MQTT topic (QoS 1) and print each message as it arrives: defect
events as one readable line each, anything else as topic and payload. Status
lines go to stderr, so stdout holds only messages. Payloads that are not valid
JSON are reported on stderr and skipped.
"""

EPILOG = """\
examples:
  inspector watch                                  every line's defects on 127.0.0.1:1883
  inspector watch 'line/line1/#' --host broker.lan  everything line1 publishes
  inspector watch --config /etc/inspector/line1.toml  broker, TLS and login from the config
  inspector watch --json | jq .defects              one raw JSON payload per line, for scripts
  inspector watch --json --count 1 --timeout 60     wait for one event (exit 1 if none came)
  inspector watch --verdicts                       every part's verdict (ok, nok, late)

exit status: 0 after --count messages, on Ctrl-C, or at --timeout without --count;
1 if --timeout passed before --count messages; 69 if the broker cannot be reached.
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "watch",
        help="print defect events from the MQTT broker",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "topic",
        nargs="?",
        default=DEFECTS_WILDCARD,
        metavar="TOPIC",
        help=f"topic filter, MQTT wildcards allowed (default: {DEFECTS_WILDCARD})",
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="take broker address, TLS and login from this config file's [mqtt]",
    )
    parser.add_argument("--host", help="broker host (default: from --config, else 127.0.0.1)")
    parser.add_argument("--port", type=int, help="broker port (default: from --config, else 1883)")
    parser.add_argument(
        "--json", action="store_true", help="print each raw JSON payload on one line, nothing else"
    )
    parser.add_argument(
        "--verdicts",
        action="store_true",
        help="print the per-part verdict stream (default topic line/+/verdicts/+), one line each",
    )
    parser.add_argument(
        "--count", type=positive_int, metavar="N", help="exit after N messages are printed"
    )
    parser.add_argument(
        "--timeout",
        type=positive_float,
        metavar="S",
        help="exit after S seconds (status 1 if --count messages did not all arrive)",
    )
    parser.set_defaults(func=run)


def _settings(args: argparse.Namespace) -> MqttSettings:
    from inspector.config import load_settings
    from inspector.publishing.settings import MqttSettings

    settings = load_settings(args.config).mqtt if args.config else MqttSettings()
    update = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    return settings.model_copy(update=update)


def valid_filter(topic: str) -> bool:
    """MQTT topic filter rules: '+' and '#' fill a whole level, '#' only the last one."""
    levels = topic.split("/")
    if not topic or "\x00" in topic:
        return False
    for i, level in enumerate(levels):
        if ("+" in level or "#" in level) and len(level) > 1:
            return False
        if level == "#" and i != len(levels) - 1:
            return False
    return True


def _clock(stamp: Any) -> str:
    # The event's own capture time (as published, UTC), so lines match the
    # daemon's logs; arrival time only where the event has none.
    try:
        when = datetime.fromisoformat(str(stamp))
    except ValueError:
        when = datetime.now()
    return when.strftime("%H:%M:%S.%f")[:-3]


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def format_event(event: Mapping[str, Any]) -> str:
    """``17:00:00.123 line1/cam0 frame 1234  crack 0.97 @ [448,224,224,224]  (47.5 ms)``."""
    parts = []
    for defect in event.get("defects") or []:
        score = defect.get("score")
        text = f"{defect.get('class', '?')} " + (
            f"{score:.2f}" if isinstance(score, int | float) else str(score)
        )
        bbox = defect.get("bbox_px")
        if isinstance(bbox, list):
            text += f" @ [{','.join(_number(v) for v in bbox)}]"
        parts.append(text)
    line = (
        f"{_clock(event.get('captured_at'))} {event.get('line', '?')}/{event.get('camera', '?')} "
        f"frame {event.get('frame_id', '?')}  {'; '.join(parts) or 'no defects'}"
    )
    latency = event.get("latency_ms")
    if isinstance(latency, int | float):
        line += f"  ({latency:.1f} ms)"
    return line


def render(topic: str, payload: bytes, as_json: bool) -> tuple[str | None, str | None]:
    """(line for stdout, line for stderr) for one message; either may be None. A payload
    that cannot be shown is skipped with a notice (see :mod:`inspector.cli.payloads`)."""
    try:
        parsed = parse_payload(payload)
    except PayloadError as exc:
        if exc.not_json and not as_json and topic.endswith("/status") and payload.isascii():
            return one_line(f"{topic} {payload.decode()}"), None  # "online"/"offline": text
        if exc.not_json:
            return None, one_line(f"{topic}: invalid JSON payload ({len(payload)} bytes)")
        return None, one_line(f"{topic}: skipped: {exc} ({len(payload)} bytes)")
    text, data = parsed.text, parsed.data
    if as_json:
        if not text.isprintable():  # line breaks, tabs; escaped, it stays JSON on one line
            text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
            if not text.isprintable():  # an unpaired surrogate ("\ud800") cannot be UTF-8
                text = json.dumps(data, separators=(",", ":"))
        return text, None
    if isinstance(data, dict) and isinstance(data.get("defects"), list):
        problem = event_problem(data)
        if problem is not None:
            return None, one_line(f"{topic}: skipped: {problem} ({len(payload)} bytes)")
        return one_line(format_event(data)), None
    return one_line(f"{topic} {json.dumps(data, ensure_ascii=False)}"), None


class _StopRequest:
    """Ctrl-C or SIGTERM as a flag the print loop polls. A KeyboardInterrupt raised at any
    bytecode could leave the message queue's lock held while paho's thread waits on it in
    ``put``, and the stop would then wait for that thread forever (seen: watch still up 10 s
    after SIGINT, in a busy test run). Setting an attribute takes no lock."""

    requested = False

    def __init__(self, subscription: Subscription) -> None:
        self._subscription = subscription

    def __call__(self, _signum: int, _frame: object) -> None:
        self.requested = True
        # A broker that goes down with us (the demo stops both) is no "connection lost".
        self._subscription.stopping = True


@contextmanager
def _stop_on_signals(subscription: Subscription) -> Iterator[_StopRequest]:
    stop = _StopRequest(subscription)
    if threading.current_thread() is not threading.main_thread():
        yield stop  # embedded in a thread: the caller stops it
        return
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = [signal.signal(signum, stop) for signum in signals]
    try:
        yield stop
    finally:
        for signum, handler in zip(signals, previous, strict=True):
            signal.signal(signum, handler)


def _print_messages(
    subscription: Subscription, args: argparse.Namespace, stop: _StopRequest
) -> int:
    """Print until --count, --timeout or a stop signal; returns how many went to stdout."""
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    printed = 0
    while (args.count is None or printed < args.count) and not stop.requested:
        # Short waits: the deadline is honoured and Ctrl-C is noticed promptly.
        wait = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
        if wait <= 0:
            break
        try:
            msg = subscription.messages.get(timeout=wait)
        except queue.Empty:
            continue
        out, err = (render_verdict if args.verdicts else render)(
            msg.topic, bytes(msg.payload), args.json
        )
        if err is not None:
            print(err, file=sys.stderr, flush=True)
        if out is not None:
            print(out, flush=True)
            printed += 1
    return printed


def run(args: argparse.Namespace) -> int:
    if args.verdicts and args.topic == DEFECTS_WILDCARD:
        args.topic = VERDICTS_WILDCARD
    if not valid_filter(args.topic):
        print(f"{PROG}: error: invalid MQTT topic filter {args.topic!r}", file=sys.stderr)
        return EX_USAGE
    from inspector.publishing.subscription import Subscription

    settings = _settings(args)
    subscription = Subscription(
        settings,
        args.topic,
        on_notice=lambda message: print(f"{PROG}: {message}", file=sys.stderr, flush=True),
    )
    try:
        subscription.start()
        print(
            f"{PROG}: subscribed to {args.topic} on {settings.host}:{settings.port} "
            f"(MQTT {subscription.protocol}); Ctrl-C to stop",
            file=sys.stderr,
            flush=True,
        )
        with _stop_on_signals(subscription) as stop:
            printed = _print_messages(subscription, args, stop)
        if stop.requested:
            return 0
    except KeyboardInterrupt:  # before the handler was in place
        return 0
    except BrokenPipeError:
        # The reader (e.g. `| head -1`) has gone: done, not an error; keep the
        # interpreter's final flush from complaining about the closed pipe.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        subscription.stop()
    if args.count is not None and printed < args.count:
        print(
            f"{PROG}: timed out after {args.timeout:g} s with {printed} of {args.count} messages",
            file=sys.stderr,
        )
        return 1
    return 0
