"""Truth files (issue 18): numbers JSON does not have, overflowing numbers, deep nesting and
lines that are not objects are exit 65 with the file and line number, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from inspector.acceptance.truth import load_truth
from inspector.errors import EX_DATAERR, DatasetError
from tests.fixtures.processes import clean_env, inspector

GOOD = '{"frame_id": 0, "defects": [{"class": "crack", "bbox_px": [0, 0, 10, 10]}]}'


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (
            '{"frame_id": 1, "defects": [{"class": "crack", "bbox_px": [0, 0, Infinity, 10]}]}',
            "not JSON this program reads (Infinity is not a number JSON allows)",
        ),
        (
            '{"frame_id": 1, "defects": [{"class": "crack", "bbox_px": [NaN, 0, 1, 10]}]}',
            "not JSON this program reads (NaN is not a number JSON allows)",
        ),
        (
            '{"frame_id": 1, "defects": [{"class": "crack", "bbox_px": [0, 0, 1e400, 10]}]}',
            "not JSON this program reads (1e400 is out of range for a number)",
        ),
        ("[" * 100_000 + "]" * 100_000, "not JSON this program reads (nested too deeply)"),
        ('{"frame_id": 1, "defects": ' + "[" * 50_000 + "]" * 50_000 + "}", "nested too deeply"),
        ("[1, 2]", "each line must be a JSON object"),
        ('"text"', "each line must be a JSON object"),
        ('{"frame_id": 1, "defects": [7]}', "each defect must be an object, got 7"),
        ('{"frame_id": 1, "defects": [{"class": "a", "bbox_px": [0, 0, 1e3]}]}', "bbox_px must be"),
        ('{"frame_id": 1', "not JSON (Expecting ',' delimiter at column 15)"),
    ],
)
def test_a_bad_line_is_named_with_its_number(tmp_path: Path, line: str, reason: str) -> None:
    path = tmp_path / "v.mp4.truth.jsonl"
    path.write_text(f"{GOOD}\n\n{line}\n")
    with pytest.raises(DatasetError) as caught:
        load_truth(path)
    assert str(caught.value).startswith(f"{path}:3: ")
    assert reason in str(caught.value)
    assert "\n" not in str(caught.value)


def test_replay_exits_65_with_one_line(tmp_path: Path) -> None:
    video = tmp_path / "v.mp4"
    video.write_bytes(b"not read: the truth file is checked first")
    truth = tmp_path / "t.jsonl"
    truth.write_text(
        f"{GOOD}\n"
        + '{"frame_id": 2, "defects": [{"class": "c", "bbox_px": [0, 0, 1, Infinity]}]}\n'
    )
    config = tmp_path / "config.toml"
    config.write_text('[[cameras]]\nid = "cam0"\nsource = "v.mp4"\n')
    result = inspector(
        "replay", str(video), "--truth", str(truth), "--config", str(config), timeout=60,
        env=clean_env(),
    )  # fmt: skip
    assert result.returncode == EX_DATAERR
    assert result.stderr.strip() == (
        f"inspector replay: error: {truth}:2: not JSON this program reads "
        "(Infinity is not a number JSON allows)"
    )
