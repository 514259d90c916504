"""``inspector cameras``: the industrial cameras this PC sees, and what can be set on them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from inspector.cli.run import DEFAULT_CONFIG
from inspector.errors import ConfigError

EPILOG = """\
examples:
  inspector cameras --cti /opt/mvIMPACT_Acquire/lib/x86_64/mvGenTLProducer.cti
  inspector cameras --config /etc/line-inspector/line1.toml    producers of its gentl cameras
  inspector cameras --pylon --features serial:40012345        a Basler camera's features
  PYLON_CAMEMU=1 inspector cameras --pylon                     pylon's emulated camera

The serial, user-defined name or index goes into the config as source = "serial:…",
"name:…" or "index:…", the features into [cameras.features].
"""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "cameras",
        help="list USB (V4L2), GenICam (GenTL) and Basler pylon cameras, or one camera's features",
        description="List the USB (V4L2) video devices, and the cameras each GenTL producer "
        "(and pylon) sees: vendor, model, "
        "serial, user-defined name, interface. With --features, list one camera's features "
        "with their type, access and current value.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--cti", type=Path, action="append", default=[], help="GenTL producer")
    parser.add_argument("--pylon", action="store_true", help="also ask pylon (pypylon)")
    parser.add_argument(
        "--config", type=Path, help=f"take the producers from a config (e.g. {DEFAULT_CONFIG})"
    )
    parser.add_argument("--features", metavar="CAMERA", help="serial:SN, name:NAME or index:N")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from inspector.capture import discovery

    producers = list(args.cti)
    if args.config is not None:
        from inspector.capture.sources.gentl import GenTlSettings
        from inspector.config import load_settings

        settings = load_settings(args.config)
        producers += [c.cti for c in settings.cameras if isinstance(c, GenTlSettings)]
        args.pylon = args.pylon or any(c.type == "pylon" for c in settings.cameras)
    if args.features and not producers and not args.pylon:
        raise ConfigError("cameras: --features needs --cti PRODUCER.cti, --pylon, or a --config")
    rows: list[dict[str, Any]] = []
    columns: tuple[str, ...]
    if args.features:
        selector = args.features if ":" in args.features else f"serial:{args.features}"
        if producers:
            rows = discovery.gentl_features(producers[0], selector)
        else:
            rows = discovery.pylon_features(selector)
        columns = ("name", "type", "access", "value")
    else:
        rows += discovery.usb_cameras()  # V4L2: source = "/dev/videoN" or its index
        for cti in dict.fromkeys(producers):
            rows += discovery.gentl_cameras(cti)
        if args.pylon:
            rows += discovery.pylon_cameras()
        columns = ("index", "vendor", "model", "serial", "name", "interface", "producer")
    if args.json:
        for row in rows:
            print(json.dumps(row, default=str))
        return 0

    def cell(row: dict[str, Any], column: str) -> str:
        value = row.get(column)
        return "-" if value is None or value == "" else str(value)

    widths = {c: max([len(c), *(len(cell(r, c)) for r in rows)]) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns).rstrip())
    for row in rows:
        print("  ".join(cell(row, c).ljust(widths[c]) for c in columns).rstrip())
    return 0
