"""An evidence store as a folder-per-class dataset that ``inspector train`` reads, and the
``labels.csv`` in which a person corrects the model's labels.

Every defect crop is exported under its class and every uncertain tile under the label
the model proposed for it. ``labels.csv`` lists each picture with the proposed label and
a ``label`` column; a person edits ``label`` (another class name, a new one, or empty to
leave the picture out) and exports again: the pictures move to the folders their labels
name. Exporting again also adds what the store gained since, and keeps every correction.
"""

from __future__ import annotations

import csv
import re
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from inspector.errors import DatasetError
from inspector.evidence.files import INDEX
from inspector.evidence.index import EvidenceItem, Index

LABELS_CSV = "labels.csv"
_COLUMNS = ("file", "label", "proposed", "score", "kind", "event_id", "camera", "frame_id",
            "source")  # fmt: skip
_LABEL = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_. -]{0,63}")  # a class folder's name


@dataclass
class ExportSummary:
    out: str
    exported: int = 0
    corrected: int = 0  # pictures whose label a person changed in labels.csv
    left_out: int = 0  # pictures a person gave an empty label
    missing: int = 0  # indexed pictures no longer on disk (evicted since)
    classes: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Picture:
    source: str  # relative to the evidence root: the picture's identity across exports
    proposed: str
    score: float
    item: EvidenceItem


def _pictures(item: EvidenceItem) -> list[_Picture]:
    if item.kind == "uncertain":
        label = item.proposed_label or (item.classes[0] if item.classes else "")
        score = item.proposed_score if item.proposed_score is not None else 0.0
        return [_Picture(item.paths[0], label, score, item)]
    crops = item.paths[1:]  # the first is the annotated frame: not a training picture
    return [
        _Picture(path, label, score, item)
        for path, label, score in zip(crops, item.classes, item.scores, strict=False)
    ]


def read_corrections(path: Path) -> dict[str, str]:
    """``source -> label`` from a ``labels.csv`` a person may have edited; raise
    :class:`DatasetError` naming the line of anything unusable."""
    if not path.is_file():
        return {}
    corrections: dict[str, str] = {}
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = csv.DictReader(handle)
            missing = {"label", "source"} - set(rows.fieldnames or ())
            if missing:
                raise DatasetError(
                    f"{path}: line 1: missing column(s) {', '.join(sorted(missing))}"
                )
            for row in rows:
                label = (row.get("label") or "").strip()
                if label and (not _LABEL.fullmatch(label) or label in (".", "..")):
                    raise DatasetError(
                        f"{path}: line {rows.line_num}: label {label!r} cannot name a class "
                        "folder (letters, digits, _ . - and spaces, at most 64)"
                    )
                corrections[row.get("source") or ""] = label
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path}: cannot read: {exc}") from None
    return corrections


def export_dataset(evidence: Path, out: Path) -> ExportSummary:
    """Write ``out/<label>/<picture>.jpg`` and ``out/labels.csv`` from the store at
    ``evidence`` (read-only: a running daemon may keep writing to it)."""
    if not (evidence / INDEX).is_file():
        raise DatasetError(f"{evidence}: not an evidence folder (no {INDEX})")
    index = Index.read_only(evidence / INDEX)
    try:
        items = index.select([], newest_first=False)
    finally:
        index.close()
    labels_csv = out / LABELS_CSV
    corrections = read_corrections(labels_csv)
    out.mkdir(parents=True, exist_ok=True)
    summary = ExportSummary(str(out))
    classes: Counter[str] = Counter()
    rows: list[dict[str, object]] = []
    for picture in (p for item in items for p in _pictures(item)):
        source = evidence / picture.source
        if not source.is_file():
            summary.missing += 1
            continue
        label = corrections.get(picture.source, picture.proposed)
        summary.corrected += picture.source in corrections and label != picture.proposed
        name = picture.source.replace("/", "_")
        _remove_stale(out, name, keep=label)
        if not label:
            summary.left_out += 1
        else:
            target = out / label / name
            if not target.exists():
                target.parent.mkdir(exist_ok=True)
                shutil.copyfile(source, target)
            classes[label] += 1
            summary.exported += 1
        item = picture.item
        rows.append({
            "file": f"{label}/{name}" if label else "", "label": label,
            "proposed": picture.proposed, "score": round(picture.score, 4), "kind": item.kind,
            "event_id": item.event_id, "camera": item.camera, "frame_id": item.frame_id,
            "source": picture.source,
        })  # fmt: skip
    _write_csv(labels_csv, rows)
    for folder in out.iterdir():  # a class every picture left would be an empty class
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    summary.classes = dict(sorted(classes.items()))
    return summary


def _remove_stale(out: Path, name: str, keep: str) -> None:
    """A picture relabelled since the last export leaves its old class folder."""
    for stale in out.glob(f"*/{name}"):
        if stale.parent.name != keep:
            stale.unlink()


def _write_csv(path: Path, rows: list[dict[str, object]]) -> None:
    temporary = path.with_name(path.name + ".tmp")  # a person's corrections are never half-written
    with temporary.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    temporary.replace(path)
