"""``inspector run``: the daemon."""

from __future__ import annotations

import argparse
import json
import sys
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from inspector.errors import InspectorError
    from inspector.pipeline.runner import RunSummary

DEFAULT_CONFIG = Path("config.toml")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "run",
        help="run the inspection daemon",
        description=(
            "Capture frames from the configured cameras, classify their tiles and publish "
            "defect events to line/<line>/defects. A recording plays once and the run ends "
            "(exit 0) when the broker has acknowledged every event; live cameras run until "
            "SIGINT/SIGTERM."
        ),
        epilog=(
            "exit codes: 0 done, 66 a source cannot be opened, 69 events unacknowledged "
            "(or the broker unreachable at start with the outbox off), 74 events could not be "
            "written to the outbox, 78 bad configuration, model or credentials.\n"
            "example: inspector run --config config.toml"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config", type=Path, default=DEFAULT_CONFIG, help="TOML file (default: config.toml)"
    )
    parser.add_argument(
        "--json", action="store_true", help="print the run summary as one JSON object on stdout"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Imported here: `inspector --help` must not pay for the runtimes (see main.py).
    from inspector.config import load_settings
    from inspector.daemon import run_pipeline
    from inspector.logs import configure_logging

    settings = load_settings(args.config)
    configure_logging(settings.logging.level, settings.logging.format)
    run_pipeline(settings, on_finished=partial(_report, as_json=args.json))
    return 0


def _report(summary: RunSummary, error: InspectorError | None, *, as_json: bool) -> None:
    """The run's summary, also when it fails (the error follows on stderr): what was
    inspected and what became of its events is what the operator asks next."""
    from inspector.daemon import summary_dict

    if as_json:
        outcome = {"exit_code": error.exit_code, "error": str(error)} if error else {}
        print(json.dumps({**summary_dict(summary), **outcome}), flush=True)
        return
    delivered = "delivered" if error is None else "published, not all delivered (see below)"
    print(
        f"inspected {summary.frames_inferred} frames ({summary.tiles_inferred} tiles) "
        f"in {summary.elapsed_s:.1f} s; {summary.events} defect events {delivered}; "
        f"{summary.frames_dropped} frames dropped",
        file=sys.stderr,
    )
