"""The ``inspector`` command: one sub-command per module in this folder."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from inspector import __version__
from inspector.errors import EX_SOFTWARE, EX_USAGE, InspectorError


class UsageParser(argparse.ArgumentParser):
    """Bad usage is one line and exit 64 (EX_USAGE, as the README documents), not argparse's
    usage block and exit 2. Sub-command parsers are made of this class too."""

    def error(self, message: str) -> NoReturn:
        self.exit(EX_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    # Imported here so `inspector --help` stays fast and each command's heavy
    # dependencies load only when that command runs.
    from inspector.cli import (
        bench,
        build_engine,
        calibrate,
        cameras,
        dataset,
        evaluate,
        make_recording,
        replay,
        run,
        train,
        watch,
    )

    parser = UsageParser(
        prog="inspector",
        description="Production-line camera inspection: frames -> tiles -> CNN -> MQTT events.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in (
        run,
        watch,
        replay,
        make_recording,
        train,
        evaluate,
        calibrate,
        build_engine,
        bench,
        cameras,
        dataset,
    ):
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from inspector.logs import configure_logging  # structlog: not for --help

    configure_logging()  # stderr, so stdout stays clean for --json; `run` refines it from config
    try:
        return int(args.func(args))
    except InspectorError as exc:
        print(f"inspector {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug: one line for the operator, the traceback on request
        if os.environ.get("INSPECTOR_TRACEBACK"):
            raise
        print(
            f"inspector {args.command}: internal error: {type(exc).__name__}: {exc} "
            "(a bug; rerun with INSPECTOR_TRACEBACK=1 and report the traceback)",
            file=sys.stderr,
        )
        return EX_SOFTWARE


if __name__ == "__main__":
    sys.exit(main())
