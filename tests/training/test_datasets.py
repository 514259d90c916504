"""Datasets: folder-per-class with given or stratified splits, the built-in ELPV, evaluation."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspector.errors import EX_DATAERR, DatasetError
from inspector.training.datasets import load_dataset, load_elpv, load_folder_dataset, read_image
from inspector.training.evaluate import evaluate_model
from inspector.training.metrics import classification_report
from tests.fixtures.models import build_color_model

COLOURS = {"ok": (60, 60, 60), "crack": (245, 245, 245), "stain": (30, 30, 235)}  # BGR


def make_folder_dataset(root: Path, per_class: int = 20, size: tuple[int, int] = (100, 80)) -> Path:
    rng = np.random.default_rng(1)
    for label, colour in COLOURS.items():
        (root / label).mkdir(parents=True)
        for index in range(per_class):
            noise = rng.integers(-10, 10, (size[1], size[0], 3))
            image = np.clip(np.array(colour) + noise, 0, 255).astype(np.uint8)
            suffix = ".png" if index % 2 else ".jpg"
            cv2.imwrite(str(root / label / f"{index:03d}{suffix}"), image)
    return root


def test_folder_dataset_is_split_80_10_10_per_class_and_deterministic(tmp_path: Path) -> None:
    root = make_folder_dataset(tmp_path / "parts")
    dataset = load_folder_dataset(root, seed=3)
    assert dataset.labels == ("crack", "ok", "stain")
    assert dataset.ok_label == "ok"
    assert {part: sum(c.values()) for part, c in dataset.counts().items()} == {
        "train": 48, "val": 6, "test": 6,
    }  # fmt: skip
    assert all(count == 2 for count in dataset.counts()["test"].values())
    paths = [s.path for part in ("train", "val", "test") for s in dataset.part(part)]
    assert len(set(paths)) == 60, "parts must not overlap"
    again = load_folder_dataset(root, seed=3)
    assert [s.path for s in again.test] == [s.path for s in dataset.test]
    other = load_folder_dataset(root, seed=4)
    assert [s.path for s in other.test] != [s.path for s in dataset.test]


def test_given_train_val_test_folders_are_used_as_given(tmp_path: Path) -> None:
    for part, count in (("train", 4), ("val", 2), ("test", 3)):
        make_folder_dataset(tmp_path / "d" / part, per_class=count)
    dataset = load_folder_dataset(tmp_path / "d")
    assert len(dataset.train) == 12 and len(dataset.val) == 6 and len(dataset.test) == 9
    assert dataset.split["method"] == "given"


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda root: None, "dataset folder not found"),
        (lambda root: (root / "ok").mkdir(parents=True), "needs one sub-folder per class"),
        (
            lambda root: [(root / c).mkdir(parents=True) for c in ("ok", "hole")],
            "class folder holds no images",
        ),
    ],
)
def test_bad_dataset_folders_name_the_folder(tmp_path: Path, setup: object, message: str) -> None:
    root = tmp_path / "data"
    setup(root)  # type: ignore[operator]
    with pytest.raises(DatasetError, match=message):
        load_folder_dataset(root)


def test_ok_label_must_be_known(tmp_path: Path) -> None:
    root = make_folder_dataset(tmp_path / "parts")
    (root / "ok").rename(root / "fine")
    with pytest.raises(DatasetError, match="cannot tell which class is defect-free"):
        load_folder_dataset(root)
    assert load_folder_dataset(root, ok_label="fine").ok_label == "fine"


def test_read_image_handles_gray_16_bit_and_unreadable_files(tmp_path: Path) -> None:
    deep = np.linspace(0, 4095, 64 * 64, dtype=np.uint16).reshape(64, 64)
    cv2.imwrite(str(tmp_path / "deep.png"), deep)
    rgb = read_image(tmp_path / "deep.png", "rgb")
    assert rgb.shape == (64, 64, 3) and rgb.dtype == np.uint8
    assert rgb.min() == 0 and rgb.max() == 255
    assert read_image(tmp_path / "deep.png", "gray").shape == (64, 64)
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match=r"bad.png: not an image"):
        read_image(tmp_path / "bad.png", "rgb")


def test_elpv_split_follows_deitsch_et_al() -> None:
    dataset = load_elpv("binary")
    parts = (dataset.train, dataset.val, dataset.test)
    assert sum(len(p) for p in parts) == 2624
    assert len(dataset.test) == pytest.approx(0.25 * 2624, abs=8)
    assert len({s.path for p in parts for s in p}) == 2624
    # Stratified: each (probability, cell type) stratum is ~25% in test.
    total = Counter(s.stratum for p in parts for s in p)
    test = Counter(s.stratum for s in dataset.test)
    for stratum, count in total.items():
        assert test[stratum] == pytest.approx(0.25 * count, abs=1)
    # Binary label: defective when probability >= 0.5 (levels 2 and 3 of 0..3).
    for sample in dataset.test:
        assert sample.label == int(int(sample.stratum[0]) >= 2)
    four = load_elpv("four")
    assert four.labels == ("functional", "possibly_defective", "likely_defective", "defective")
    assert [s.path for s in four.test] == [s.path for s in dataset.test]
    image = read_image(dataset.test[0].path, "gray")
    assert image.shape == (300, 300)


def test_classification_report_on_known_predictions() -> None:
    report = classification_report([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 2, 2], ["a", "b", "c"])
    assert report["accuracy"] == pytest.approx(4 / 6)
    assert report["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert report["per_class"]["a"] == {"precision": 1.0, "recall": 0.6667, "f1": 0.8, "support": 3}
    assert report["per_class"]["b"]["precision"] == 0.5
    assert report["per_class"]["c"]["recall"] == 1.0


def test_evaluate_runs_the_model_like_the_daemon(tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    build_color_model(model, size=32)  # labels ok, crack, stain
    root = tmp_path / "parts"
    for part in ("train", "val", "test"):
        make_folder_dataset(root / part, per_class=5)  # 100x80 images, resized to 32x32
    report = evaluate_model(model, load_folder_dataset(root))
    assert report["labels"] == ["ok", "crack", "stain"]  # the card's order, not the folders'
    assert report["accuracy"] == 1.0
    assert report["confusion_matrix"] == [[5, 0, 0], [0, 5, 0], [0, 0, 5]]
    assert report["per_class"]["crack"] == {
        "precision": 1.0,
        "recall": 1.0,
        "f1": 1.0,
        "support": 5,
    }


def test_evaluate_cli_json_and_errors(tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    build_color_model(model, size=32)
    root = make_folder_dataset(tmp_path / "parts")
    (root / "stain").rename(root / "dirt")  # confuse "stain" with "dirt": all stains missed
    command = [sys.executable, "-m", "inspector", "evaluate", str(model), str(root), "--json"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == EX_DATAERR
    assert "differ from the model's" in result.stderr and "dirt" in result.stderr

    (root / "dirt").rename(root / "stain")
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["accuracy"] == 1.0
    assert set(report["per_class"]) == {"ok", "crack", "stain"}
    assert sum(map(sum, report["confusion_matrix"])) == len(load_dataset(str(root)).test)
