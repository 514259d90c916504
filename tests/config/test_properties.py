"""Property-based tests (issue 18) of every parser that takes outside input: the config file
and ``INSPECTOR__`` variables, model cards, truth files and the payloads ``watch`` prints.

Whatever the input, the result is a valid parse or the command's own error, one line, with
a documented exit code: never another exception (a traceback at the line).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inspector.acceptance.truth import load_truth
from inspector.cli.watch import render
from inspector.config import Settings, load_settings
from inspector.engines.card import read_card
from inspector.errors import EX_CONFIG, EX_DATAERR, ConfigError, DatasetError, ModelError
from inspector.types.card import ModelCard

# The profile these run under in CI: a modest number of examples, no per-example deadline
# (a loaded 2-core runner is slow, not wrong), no example database left in the checkout.
FAST = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

SCRATCH = Path(tempfile.mkdtemp(prefix="inspector-properties-"))


def one_line(message: str) -> None:
    assert message and "\n" not in message and "\r" not in message, repr(message)
    assert "Traceback" not in message


# --- values: JSON-like data with the awkward corners -----------------------------------------

NUMBERS = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=12))


def values(keys: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return st.recursive(
        SCALARS,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)
        ),
        max_leaves=12,
    )


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def mutate(text: str, data: st.DataObject) -> str:
    """Cut, repeat or corrupt a piece of ``text``: the mistakes of an editor and a disk."""
    if not text:
        return text
    i = data.draw(st.integers(0, len(text) - 1))
    j = data.draw(st.integers(i, len(text)))
    kind = data.draw(st.sampled_from(["cut", "dup", "junk", "keep"]))
    if kind == "cut":
        return text[:i] + text[j:]
    if kind == "dup":
        return text[:j] + text[i:j] + text[j:]
    if kind == "junk":
        return text[:i] + data.draw(st.text(max_size=5)) + text[j:]
    return text


# --- the configuration: TOML and the environment ---------------------------------------------

SECTIONS = [*Settings.model_fields, "evidence", "mqqt", "camera", "tilling"]
KEYS = [
    "id", "source", "sorce", "type", "loop", "realtime", "fps", "width", "height", "path",
    "backend", "threads", "size", "stride", "roi", "port", "host", "tls", "ca_file", "level",
    "format", "max_batch", "enabled", "queue_size", "policy", "features", "0", "1",
]  # fmt: skip
CONFIG_KEYS = st.sampled_from(KEYS + SECTIONS) | st.text(min_size=1, max_size=6)


def toml_value(value: Any) -> str:
    """``value`` as TOML (an inline table for a dict), as far as TOML can hold it."""
    if value is None:
        return '""'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


CAMERA = st.fixed_dictionaries(
    {"id": st.sampled_from(["cam0", "cam 1", ""]) | st.text(max_size=4)},
    optional={
        "source": st.sampled_from(["a.mp4", "0", "/dev/video9", "rtsp://h/s", "serial:1", ""]),
        "type": st.sampled_from(["file", "usb", "rtsp", "gentl", "pylon", "onvif"]),
        "loop": values(CONFIG_KEYS),
        "sorce": st.just("a.mp4"),
        "width": NUMBERS,
    },
)
CONFIG = st.fixed_dictionaries(
    {},
    optional={
        "cameras": st.lists(CAMERA, max_size=3) | values(CONFIG_KEYS),
        "tiling": st.dictionaries(st.sampled_from(["size", "stride", "roi", "strde"]), NUMBERS),
        "model": st.dictionaries(st.sampled_from(["backend", "path", "threads"]), SCALARS),
        "mqtt": st.dictionaries(st.sampled_from(["port", "host", "tls", "portt"]), SCALARS),
    },
).flatmap(
    lambda base: st.dictionaries(CONFIG_KEYS, values(CONFIG_KEYS), max_size=2).map(
        lambda extra: {**extra, **base}
    )
)


def config_text(config: dict[str, Any]) -> str:
    return "".join(f"{json.dumps(key)} = {toml_value(value)}\n" for key, value in config.items())


def check_config(path: Path) -> None:
    try:
        load_settings(path)
    except ConfigError as exc:
        one_line(str(exc))
        assert exc.exit_code == EX_CONFIG


@FAST
@given(config=CONFIG, data=st.data())
def test_any_config_file_loads_or_is_one_line(config: dict[str, Any], data: st.DataObject) -> None:
    path = SCRATCH / "config.toml"
    text = config_text(config)
    path.write_text(data.draw(st.sampled_from([text, mutate(text, data)])), encoding="utf-8")
    with clean_environment({}):
        check_config(path)


@FAST
@given(raw=st.binary(max_size=200))
def test_any_bytes_as_a_config_file(raw: bytes) -> None:
    path = SCRATCH / "raw.toml"
    path.write_bytes(raw)
    with clean_environment({}):
        check_config(path)


@contextmanager
def clean_environment(variables: dict[str, str]) -> Iterator[None]:
    saved = {k: v for k, v in os.environ.items() if k.upper().startswith("INSPECTOR__")}
    for name in saved:
        del os.environ[name]
    os.environ.update(variables)
    try:
        yield
    finally:
        for name in variables:
            os.environ.pop(name, None)
        os.environ.update(saved)


ENV_PART = st.sampled_from([s.upper() for s in SECTIONS] + [k.upper() for k in KEYS] + ["CAM0"])
ENV_NAMES = st.lists(ENV_PART, min_size=1, max_size=4).map(
    lambda parts: "INSPECTOR__" + "__".join(parts)
) | st.sampled_from(["INSPECTOR__", "INSPECTOR____PORT", "inspector__mqtt__port"])
ENV_VALUES = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00")),
    values(CONFIG_KEYS).map(json.dumps),
    st.sampled_from(['[{"id":', "true", "1e400", "NaN", nested(5000), '[{"id": "c"}]']),
)


@FAST
@given(variables=st.dictionaries(ENV_NAMES, ENV_VALUES, max_size=3))
def test_any_environment_loads_or_is_one_line(variables: dict[str, str]) -> None:
    path = SCRATCH / "env.toml"
    path.write_text('[[cameras]]\nid = "cam0"\nsource = "a.mp4"\n', encoding="utf-8")
    with clean_environment(variables):
        check_config(path)


# --- model cards -------------------------------------------------------------------------------

CARD_KEYS = st.sampled_from(
    ["schema", "name", "sha256", "labels", "ok_label", "input", "output", "thresholds",
     "height", "width", "color", "scale", "mean", "std", "kind", "crack", "ok"]
)  # fmt: skip
GOOD_CARD = {
    "schema": "inspector.model/1",
    "name": "m",
    "sha256": "0" * 64,
    "labels": ["ok", "crack"],
    "ok_label": "ok",
    "input": {
        "name": "input",
        "height": 8,
        "width": 8,
        "color": "rgb",
        "scale": 255.0,
        "mean": [0.5, 0.5, 0.5],
        "std": [0.5, 0.5, 0.5],
    },
    "output": {"name": "logits", "kind": "logits"},
    "thresholds": {"crack": 0.5},
}


@FAST
@given(
    card=st.dictionaries(CARD_KEYS, values(CARD_KEYS), max_size=6).map(
        lambda extra: {**GOOD_CARD, **extra}
    )
    | values(CARD_KEYS),
    data=st.data(),
)
def test_any_model_card_reads_or_is_one_line(card: Any, data: st.DataObject) -> None:
    path = SCRATCH / "m.json"
    text = json.dumps(card)  # NaN/Infinity come out as JavaScript's, not JSON's
    odd = [nested(50_000), '{"input": ' + nested(3000) + "}", "1" * 5000]
    path.write_text(data.draw(st.sampled_from([text, mutate(text, data), *odd])), encoding="utf-8")
    try:
        assert isinstance(read_card(path), ModelCard)
    except ModelError as exc:
        one_line(str(exc))
        assert exc.exit_code == EX_CONFIG


# --- truth files -------------------------------------------------------------------------------

TRUTH_KEYS = st.sampled_from(["frame_id", "defects", "class", "bbox_px"])
TRUTH_LINE = st.one_of(
    st.fixed_dictionaries(
        {
            "frame_id": st.integers(-2, 10**20) | SCALARS,
            "defects": st.lists(
                st.fixed_dictionaries(
                    {"class": st.text(max_size=5) | SCALARS, "bbox_px": st.lists(NUMBERS)}
                )
                | values(TRUTH_KEYS),
                max_size=3,
            )
            | values(TRUTH_KEYS),
        }
    ).map(lambda record: json.dumps(record)),  # NaN/Infinity come out as JSON5 does
    values(TRUTH_KEYS).map(json.dumps),
    st.sampled_from(
        [
            '{"frame_id": 1, "defects": [{"class": "c", "bbox_px": [0, 0, 1e400, 1]}]}',
            nested(10_000),
            '{"a": ' + nested(3000) + "}",
            "-Infinity",
            "[1, 2]",
        ]
    ),
    st.text(max_size=30),
)


@FAST
@given(lines=st.lists(TRUTH_LINE, max_size=5), raw=st.binary(max_size=8))
def test_any_truth_file_loads_or_is_one_line(lines: list[str], raw: bytes) -> None:
    path = SCRATCH / "v.mp4.truth.jsonl"
    path.write_bytes("\n".join(lines).encode("utf-8", "surrogatepass") + raw)
    try:
        truth = load_truth(path)
    except DatasetError as exc:
        one_line(str(exc))
        assert exc.exit_code == EX_DATAERR
    else:
        assert all(isinstance(frame, int) and frame >= 0 for frame in truth)


# --- watch's payloads --------------------------------------------------------------------------

EVENT_KEYS = st.sampled_from(
    ["defects", "class", "score", "bbox_px", "captured_at", "line", "camera", "frame_id",
     "latency_ms"]
)  # fmt: skip
PAYLOAD = st.one_of(
    st.binary(max_size=64),
    values(EVENT_KEYS).map(lambda v: json.dumps(v).encode()),
    st.dictionaries(EVENT_KEYS, values(EVENT_KEYS), max_size=5).map(
        lambda event: json.dumps({"defects": [], **event}).encode()
    ),
    st.lists(values(EVENT_KEYS), max_size=3).map(
        lambda defects: json.dumps({"defects": defects, "captured_at": "2026-01-01T00:00:00Z"})
        .encode()
    ),
    st.integers(1, 20_000).map(lambda depth: nested(depth).encode()),
    st.text().map(lambda t: json.dumps({"defects": [{"class": t}]}, ensure_ascii=False).encode(
        "utf-8", "surrogatepass"
    )),
)  # fmt: skip


@FAST
@given(
    payload=PAYLOAD,
    topic=st.sampled_from(["line/l1/defects", "line/l1/status", "other/topic"]),
    as_json=st.booleans(),
)
def test_any_payload_is_one_printable_line_or_a_notice(
    payload: bytes, topic: str, as_json: bool
) -> None:
    out, err = render(topic, payload, as_json)
    assert (out is None) != (err is None)
    for line in (out, err):
        if line is not None:
            one_line(line)
            line.encode("utf-8")  # printable to a UTF-8 terminal or pipe
    if as_json and out is not None:
        json.loads(out)  # --json prints JSON, one payload per line
