"""Labelled image datasets and their splits: folder-per-class, and the built-in ``elpv``.

Only paths and labels are held here; pixels are read on demand by
:func:`read_image`, so a dataset of any size costs no memory until used.
A split is deterministic for a seed and is written into the model card.
"""

from __future__ import annotations

import csv
import importlib.util
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np

from inspector.errors import DatasetError
from inspector.types.frames import Image

IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}
)
SPLITS = ("train", "val", "test")
FOLDER_FRACTIONS = (0.8, 0.1, 0.1)  # the leather paper's 80:10:10
ELPV_TEST_FRACTION = 0.25  # Deitsch et al. 2019: 75% train, 25% test
ELPV_VAL_FRACTION = 0.1  # carved from the train part for early stopping
ELPV_BINARY = ("functional", "defective")
ELPV_FOUR = ("functional", "possibly_defective", "likely_defective", "defective")
ElpvMode = Literal["binary", "four"]


@dataclass(frozen=True, slots=True)
class Sample:
    path: Path
    label: int
    stratum: str  # what the split is stratified by (class, and cell type for elpv)


@dataclass(frozen=True)
class Dataset:
    name: str
    labels: tuple[str, ...]
    ok_label: str | None  # None: defect types only, no defect-free class (a type classifier)
    train: list[Sample]
    val: list[Sample]
    test: list[Sample]
    split: dict[str, Any] = field(default_factory=dict)  # how the split was made, for the card

    def part(self, name: str) -> list[Sample]:
        if name not in SPLITS:
            raise DatasetError(f"unknown split {name!r}; expected one of {', '.join(SPLITS)}")
        parts: dict[str, list[Sample]] = {"train": self.train, "val": self.val, "test": self.test}
        return parts[name]

    def counts(self) -> dict[str, dict[str, int]]:
        return {
            part: {
                label: sum(1 for s in self.part(part) if s.label == index)
                for index, label in enumerate(self.labels)
            }
            for part in SPLITS
        }


def read_image(path: Path, color: Literal["rgb", "gray"]) -> Image:
    """Any format OpenCV reads, 8 or 16 bit, gray or colour -> uint8 BGR (rgb) or HxW (gray)."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise DatasetError(f"{path}: not an image OpenCV can read")
    if image.dtype != np.uint8:  # 16-bit EL or X-ray images: keep the full range
        low, high = float(image.min()), float(image.max())
        image = ((image - low) * (255.0 / max(high - low, 1e-9))).astype(np.uint8)
    if image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if color == "gray" and image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    elif color == "rgb" and image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return np.ascontiguousarray(image, dtype=np.uint8)


def resize_to(image: Image, width: int, height: int) -> Image:
    """The one resize that training and evaluation share: area when shrinking, linear when
    growing, so a model sees the same pixels in both."""
    if (image.shape[1], image.shape[0]) == (width, height):
        return image
    shrink = image.shape[1] > width or image.shape[0] > height
    interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return np.asarray(cv2.resize(image, (width, height), interpolation=interpolation), np.uint8)


def stratified_split(
    strata: Sequence[str], fractions: Sequence[float], seed: int
) -> list[list[int]]:
    """Indices per part; every stratum is shuffled and cut by the same fractions."""
    by_stratum: dict[str, list[int]] = defaultdict(list)
    for index, stratum in enumerate(strata):
        by_stratum[stratum].append(index)
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in fractions]
    for stratum in sorted(by_stratum):
        members = np.array(by_stratum[stratum])
        rng.shuffle(members)
        bounds = np.round(np.cumsum(fractions) * len(members)).astype(int)
        start = 0
        for part, end in zip(parts, bounds, strict=True):
            part.extend(int(i) for i in members[start:end])
            start = end
    return [sorted(part) for part in parts]


def _class_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _class_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def load_folder_dataset(
    root: Path,
    seed: int = 0,
    ok_label: str | None = None,
    ok_dir: Path | None = None,
    types_only: bool = False,
) -> Dataset:
    """``root/<class>/*.png``, or ``root/{train,val,test}/<class>/*.png`` used as given.

    ``ok_dir``: defect-free images from elsewhere (a folder of images), added as class
    ``ok`` and split like the rest. ``types_only``: a folder with no defect-free class is
    accepted as a dataset of defect types (``ok_label`` None) instead of refused."""
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset folder not found")
    given = [root / part for part in SPLITS]
    if all(part.is_dir() for part in given):
        labels = tuple(p.name for p in _class_folders(given[0]))
        _check_labels(root, labels)
        parts: list[list[Sample]] = []
        for folder in given:
            names = tuple(p.name for p in _class_folders(folder))
            if names != labels:
                raise DatasetError(
                    f"{folder}: classes {list(names)} differ from train's {list(labels)}"
                )
            parts.append(_samples(folder, labels))
        split: dict[str, Any] = {"method": "given", "root": str(root)}
    else:
        labels = tuple(p.name for p in _class_folders(root))
        _check_labels(root, labels)
        samples = _samples(root, labels)
        indices = stratified_split([s.stratum for s in samples], FOLDER_FRACTIONS, seed)
        parts = [[samples[i] for i in chosen] for chosen in indices]
        split = {"method": "stratified", "fractions": list(FOLDER_FRACTIONS), "seed": seed}
    if ok_dir is not None:
        labels, parts = _add_ok_dir(root, labels, parts, ok_dir, seed)
        split["ok_dir"] = str(ok_dir)
        ok: str | None = OK_DIR_LABEL
    else:
        ok = _ok_label(root, labels, ok_label, types_only)
    dataset = Dataset(root.name, labels, ok, parts[0], parts[1], parts[2], split)
    for part in SPLITS:
        if not dataset.part(part):
            raise DatasetError(
                f"{root}: the {part} part is empty; add images or use more per class"
            )
    return dataset


def _check_labels(root: Path, labels: tuple[str, ...]) -> None:
    if len(labels) < 2:
        raise DatasetError(
            f"{root}: needs one sub-folder per class (at least 2), found {list(labels)}"
        )


def _samples(root: Path, labels: tuple[str, ...]) -> list[Sample]:
    samples: list[Sample] = []
    for index, label in enumerate(labels):
        images = _class_images(root / label)
        if not images:
            raise DatasetError(f"{root / label}: class folder holds no images")
        samples.extend(Sample(path, index, label) for path in images)
    return samples


OK_NAMES = ("ok", "good", "functional", "non_defective", "non-defective", "normal")
OK_DIR_LABEL = "ok"


def _ok_label(
    root: Path, labels: tuple[str, ...], wanted: str | None, types_only: bool = False
) -> str | None:
    if wanted is not None:
        if wanted not in labels:
            raise DatasetError(f"{root}: ok label {wanted!r} is not a class: {list(labels)}")
        return wanted
    for candidate in OK_NAMES:
        if candidate in labels:
            return candidate
    if types_only:
        return None
    raise DatasetError(
        f"{root}: cannot tell which class is defect-free among {list(labels)}; name it"
        " 'ok' (or good/normal/functional) or pass --ok-label"
    )


def _add_ok_dir(
    root: Path, labels: tuple[str, ...], parts: list[list[Sample]], ok_dir: Path, seed: int
) -> tuple[tuple[str, ...], list[list[Sample]]]:
    """Defect-free images from elsewhere become class ``ok``, split 80:10:10 by the seed."""
    present = [label for label in labels if label in OK_NAMES]
    if present:
        raise DatasetError(f"{root}: already has a defect-free class {present[0]!r}; drop --ok-dir")
    if not ok_dir.is_dir():
        raise DatasetError(f"{ok_dir}: --ok-dir folder not found")
    images = _class_images(ok_dir)
    if len(images) < 3:
        raise DatasetError(f"{ok_dir}: --ok-dir needs at least 3 images, found {len(images)}")
    # "ok" takes its sorted place among the classes, as a class folder would.
    new_labels = tuple(sorted((*labels, OK_DIR_LABEL)))
    index = {label: new_labels.index(label) for label in labels}
    moved = [[Sample(s.path, index[labels[s.label]], s.stratum) for s in part] for part in parts]
    ok_index = new_labels.index(OK_DIR_LABEL)
    chosen = stratified_split([OK_DIR_LABEL] * len(images), FOLDER_FRACTIONS, seed)
    for part, picked in zip(moved, chosen, strict=True):
        part.extend(Sample(images[i], ok_index, OK_DIR_LABEL) for i in picked)
    return new_labels, moved


def elpv_root() -> Path:
    spec = importlib.util.find_spec("elpv_dataset")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError("elpv: the dataset package is not installed: pip install elpv-dataset")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def load_elpv(mode: ElpvMode = "binary", seed: int = 0) -> Dataset:
    """ELPV solar cells: defect probability 0, 1/3, 2/3, 1; split stratified by it and cell type."""
    root = elpv_root()
    rows = list(csv.reader((root / "labels.csv").read_text().splitlines(), delimiter=" "))
    samples = []
    for row in rows:
        path, probability, cell_type = [cell for cell in row if cell]
        level = round(float(probability) * 3)  # 0..3
        label = level if mode == "four" else int(level >= 2)  # defective: probability >= 0.5
        samples.append(Sample(root / path, label, f"{level}-{cell_type}"))
    strata = [s.stratum for s in samples]
    train_val, test = stratified_split(strata, (1 - ELPV_TEST_FRACTION, ELPV_TEST_FRACTION), seed)
    train_strata = [strata[i] for i in train_val]
    train, val = stratified_split(train_strata, (1 - ELPV_VAL_FRACTION, ELPV_VAL_FRACTION), seed)
    labels = ELPV_FOUR if mode == "four" else ELPV_BINARY
    return Dataset(
        name="elpv" if mode == "binary" else "elpv4",
        labels=labels,
        ok_label="functional",
        train=[samples[train_val[i]] for i in train],
        val=[samples[train_val[i]] for i in val],
        test=[samples[i] for i in test],
        split={
            "method": "stratified by defect probability and cell type (Deitsch et al. 2019)",
            "test_fraction": ELPV_TEST_FRACTION,
            "val_fraction_of_train": ELPV_VAL_FRACTION,
            "seed": seed,
        },
    )


def load_dataset(
    spec: str,
    seed: int = 0,
    ok_label: str | None = None,
    ok_dir: Path | None = None,
    types_only: bool = False,
) -> Dataset:
    """``elpv`` (binary), ``elpv4`` (four classes), or a folder path."""
    if spec in ("elpv", "elpv4"):
        if ok_dir is not None:
            raise DatasetError(f"{spec}: has its defect-free class (functional); drop --ok-dir")
        return load_elpv("binary" if spec == "elpv" else "four", seed)
    return load_folder_dataset(Path(spec), seed, ok_label, ok_dir, types_only)
