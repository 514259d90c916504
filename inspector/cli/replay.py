"""``inspector replay VIDEO``: a recorded line through the daemon, scored against its truth."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from inspector.cli.arguments import fraction, positive_float
from inspector.cli.run import DEFAULT_CONFIG
from inspector.errors import ConfigError

EX_CHECKS_FAILED = 1

DESCRIPTION = """\
Play a recording through the same pipeline as `inspector run`, publishing to the
configured broker, and subscribe to the line's own defects topic to count what
the broker delivered. Score the delivered events against the recording's ground
truth (<video>.truth.jsonl beside the video, or --truth) and write the report:
report.json and a self-contained report.html with plots, plus a summary here.

By default frames go as fast as the engine allows and none is dropped; with
--realtime the file plays at its own frame rate and, as on a live line, the oldest
frame is dropped when inference falls behind.
"""

EPILOG = """\
thresholds (each also settable in the config's [acceptance] section):
  --min-recall / --min-precision   recall / precision, 0..1, of the frames and of each
                                   class's defects
  --max-p99-ms                     p99 latency from capture to broker acknowledgement

exit status: 0 replayed (and every threshold met), 1 a threshold missed,
65 bad truth file, 66 video unreadable, 69 broker unreachable, 78 bad config or model.

examples:
  inspector replay recordings/elpv-line.mp4 --report reports/elpv-line
  inspector replay line3-monday.mp4 --config /etc/inspector/line3.toml --realtime \\
      --min-recall 0.98 --max-p99-ms 250
"""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "replay",
        help="replay a recording through the daemon and score the delivered events",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("video", metavar="VIDEO", type=Path, help="the recording to replay")
    parser.add_argument("--truth", type=Path, help="truth file (default: VIDEO.truth.jsonl)")
    parser.add_argument(
        "--config", type=Path, default=DEFAULT_CONFIG, help="TOML file (default: config.toml)"
    )
    parser.add_argument(
        "--realtime", action="store_true", help="pace at the file's frame rate; drops count"
    )
    parser.add_argument(
        "--report", type=Path, metavar="DIR", help="write DIR/report.json and DIR/report.html"
    )
    parser.add_argument("--min-recall", type=fraction, metavar="R", help="fail below R")
    parser.add_argument("--min-precision", type=fraction, metavar="P", help="fail below P")
    parser.add_argument("--max-p99-ms", type=positive_float, metavar="MS", help="fail above MS")
    parser.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Imported here: `inspector --help` must not pay for the runtimes (see main.py).
    from inspector.acceptance.replay import replay
    from inspector.acceptance.report import summary_text
    from inspector.acceptance.truth import truth_path
    from inspector.config import load_settings
    from inspector.logs import configure_logging

    settings = load_settings(args.config)
    configure_logging(settings.logging.level, settings.logging.format)
    overrides = {
        key: value
        for key in ("min_recall", "min_precision", "max_p99_ms")
        if (value := getattr(args, key)) is not None
    }
    limits = settings.acceptance.model_copy(update=overrides)
    truth = args.truth
    if truth is None and truth_path(args.video).is_file():
        truth = truth_path(args.video)
    if truth is None and (limits.min_recall is not None or limits.min_precision is not None):
        raise ConfigError(
            f"{args.video}: recall/precision thresholds need a truth file "
            f"({truth_path(args.video).name} beside the video, or --truth)"
        )
    result = replay(settings, args.video, truth, args.realtime, args.report, limits)
    summary = summary_text(result.report, str(result.html_path) if result.html_path else None)
    if args.json:
        print(json.dumps(result.report))
    print(summary, file=sys.stderr if args.json else sys.stdout)
    return 0 if result.report["passed"] else EX_CHECKS_FAILED
