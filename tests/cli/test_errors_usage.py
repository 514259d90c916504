"""Exit codes (issue 18): bad usage is exit 64 and one line, as the README says, and every
code the program can exit with is in the README's table."""

from __future__ import annotations

import re

import pytest

from inspector import errors
from inspector.engines import trt_build
from inspector.errors import EX_USAGE, InspectorError
from inspector.pipeline import runner
from tests.fixtures.processes import REPO, inspector


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["run", "--bogus"], "inspector: error: unrecognized arguments: --bogus"),
        ([], "inspector: error: the following arguments are required: COMMAND"),
        (["watch", "--count", "0"], "inspector watch: error: argument --count: must be at least 1"),
        (["bench", "--backends"], "inspector bench: error: argument --backends: expected one"),
    ],
)
def test_bad_usage_exits_64_with_one_line(argv: list[str], line: str) -> None:
    result = inspector(*argv, timeout=60, cwd=REPO)
    assert result.returncode == EX_USAGE
    assert result.stdout == ""
    (only,) = result.stderr.splitlines()
    assert only.startswith(line), only
    assert only.endswith("--help)")


def _subclasses(cls: type[InspectorError]) -> set[type[InspectorError]]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _subclasses(sub)
    return found


def test_every_exit_code_is_documented() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    documented = {int(code) for code in re.findall(r"^\| (\d+) \| ", readme, re.MULTILINE)}
    assert trt_build.CudaError and runner.PipelineError  # their modules declare error classes
    constants = {v for k, v in vars(errors).items() if k.startswith("EX_")}
    raised = {cls.exit_code for cls in _subclasses(InspectorError)}
    # 0 success, 1 a failed check (replay, watch --timeout), 130 Ctrl-C.
    assert constants | raised | {0, 1, 130} == documented


def test_a_bug_is_one_line_and_exit_70_with_the_traceback_on_request(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from inspector.cli import cameras
    from inspector.cli import main as cli

    def broken(_args: object) -> int:
        raise KeyError("stage")

    monkeypatch.setattr(cameras, "run", broken)  # registered when the parser is built
    monkeypatch.delenv("INSPECTOR_TRACEBACK", raising=False)
    assert cli.main(["cameras"]) == 70
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        "inspector cameras: internal error: KeyError: 'stage' (a bug; rerun with "
        "INSPECTOR_TRACEBACK=1 and report the traceback)"
    ]
    monkeypatch.setenv("INSPECTOR_TRACEBACK", "1")
    with pytest.raises(KeyError):
        cli.main(["cameras"])
