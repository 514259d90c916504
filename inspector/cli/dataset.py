"""``inspector dataset export``: an evidence store as a dataset to relabel and train on."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "dataset",
        help="export evidence pictures as a folder-per-class dataset",
        description=(
            "Export the defect crops and the uncertain tiles of an evidence store (the "
            "[evidence] sink's folder) as a folder-per-class dataset that `inspector train` "
            "reads, with labels.csv: the model's proposed label for each picture, and a label "
            "column for a person to correct. Edit `label` (another class, a new class, or "
            "empty to leave the picture out) and export again: the corrections are applied, "
            "and what the store gained since is added. The store is only read: a running "
            "daemon may keep writing to it."
        ),
        epilog=(
            "examples:\n"
            "  inspector dataset export /var/lib/inspector/line1/evidence --out relabel/\n"
            "  $EDITOR relabel/labels.csv && inspector dataset export "
            "/var/lib/inspector/line1/evidence --out relabel/\n"
            "  inspector train relabel/ --out engines/line1-v2"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    export = actions.add_parser(
        "export", help="write DIR/<class>/*.jpg and DIR/labels.csv from EVIDENCE_DIR"
    )
    export.add_argument("evidence", type=Path, metavar="EVIDENCE_DIR")
    export.add_argument("--out", type=Path, required=True, metavar="DIR")
    export.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    export.set_defaults(func=run_export)


def run_export(args: argparse.Namespace) -> int:
    from inspector.cli.output import print_summary
    from inspector.evidence.export import export_dataset

    summary = export_dataset(args.evidence, args.out)
    classes = ", ".join(f"{name} {count}" for name, count in summary.classes.items()) or "none"
    line = (
        f"dataset export: {summary.exported} pictures in {args.out} ({classes}); "
        f"{summary.corrected} corrected, {summary.left_out} left out, "
        f"{summary.missing} no longer in the store; labels in {args.out / 'labels.csv'}"
    )
    print_summary(asdict(summary), line, args.json)
    return 0
