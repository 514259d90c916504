"""Datasets of defect types only: a type classifier (card ok_label null) trained on real
cells, then served by `inspector run` with the documented rule; and --ok-dir."""

from __future__ import annotations

import json
import shutil
import uuid
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from inspector.engines.card import load_model
from inspector.engines.normalize import TileNormalizer
from inspector.postprocess import VerdictRule
from inspector.training.datasets import Sample, elpv_root, load_elpv, load_folder_dataset
from inspector.types.tiles import NO_DEFECT
from tests.fixtures import processes
from tests.fixtures.videos import write_video

pytest.importorskip("torch", reason="training needs the [train] extra (PyTorch)")

TILE, COLS, ROWS, FRAMES = 64, 3, 2, 6


inspector = partial(processes.inspector, timeout=600)  # a training run takes minutes


def defect_types(root: Path, per_class: int = 12) -> Path:
    """Real defective ELPV cells, one folder per cell type: two defect types, no ok class."""
    dataset = load_elpv("binary")
    for cell_type in ("mono", "poly"):
        (root / f"crack_{cell_type}").mkdir(parents=True)
        cells = [s for s in dataset.train if s.label == 1 and s.stratum.endswith(cell_type)]
        for sample in cells[:per_class]:
            shutil.copy(sample.path, root / f"crack_{cell_type}" / sample.path.name)
    return root


def test_ok_dir_adds_a_defect_free_class(tmp_path: Path) -> None:
    data = defect_types(tmp_path / "types", per_class=10)
    good = tmp_path / "good"
    good.mkdir()
    functional = [s for s in load_elpv("binary").train if s.label == 0][:10]
    for sample in functional:
        shutil.copy(sample.path, good / sample.path.name)
    dataset = load_folder_dataset(data, ok_dir=good)
    assert dataset.labels == ("crack_mono", "crack_poly", "ok") and dataset.ok_label == "ok"
    assert {part: counts["ok"] for part, counts in dataset.counts().items()} == {
        "train": 8, "val": 1, "test": 1,
    }  # fmt: skip
    assert load_folder_dataset(data, types_only=True).ok_label is None


def write_line(path: Path, cells: list[Path]) -> None:
    def frame(index: int) -> np.ndarray:
        image = np.zeros((ROWS * TILE, COLS * TILE, 3), np.uint8)
        for tile in range(COLS * ROWS):
            cell = cv2.imread(str(cells[(index * COLS * ROWS + tile) % len(cells)]))
            row, col = divmod(tile, COLS)
            image[row * TILE : (row + 1) * TILE, col * TILE : (col + 1) * TILE] = cv2.resize(
                cell, (TILE, TILE), interpolation=cv2.INTER_AREA
            )
        return image

    write_video(path, map(frame, range(FRAMES)))


def expected_defects(video: Path, model: Path) -> dict[int, set[str]]:
    """The documented rule, computed here from the decoded frames: a tile is a defect where
    its best class reaches that class's threshold."""
    card = load_model(model)
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    normalizer, rule = TileNormalizer(card), VerdictRule(card)
    capture = cv2.VideoCapture(str(video))
    expected: dict[int, set[str]] = {}
    for frame_id in range(FRAMES):
        ok, frame = capture.read()
        assert ok
        tiles = np.stack([frame[r * TILE : (r + 1) * TILE, c * TILE : (c + 1) * TILE]
                          for r in range(ROWS) for c in range(COLS)])  # fmt: skip
        inputs = normalizer.normalize(tiles, out=np.empty((len(tiles), *normalizer.shape),
                                                          np.float32))  # fmt: skip
        labels, _ = rule.verdicts(rule.probabilities(session.run(None, {"input": inputs})[0]))
        found = {card.labels[int(i)] for i in labels if i != NO_DEFECT}
        if found:
            expected[frame_id] = found
    return expected


def test_a_type_classifier_trains_and_is_served_with_the_documented_rule(
    tmp_path: Path, mosquitto: Any, mqtt_messages: Any
) -> None:
    data = defect_types(tmp_path / "types")
    out = tmp_path / "types-model"
    result = inspector("train", str(data), "--out", str(out), "--epochs", "1", "--image-size",
                       str(TILE), "--threads", "2", "--batch", "8", "--views", "1",
                       "--feature-cache", "none")  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "defect types only" in result.stderr
    model = out.with_name("types-model.onnx")
    card = load_model(model)
    assert card.ok_label is None and not card.has_ok
    assert card.labels == ("crack_mono", "crack_poly")
    assert "no defect-free class" in card.model_dump()["classifier"]
    # A strict threshold for one class, so the rule visibly decides: a tile of that class
    # is reported only where the model is that sure of it.
    data_card = json.loads(model.with_suffix(".json").read_text())
    data_card["thresholds"] = {"crack_mono": 0.5, "crack_poly": 0.9}
    model.with_suffix(".json").write_text(json.dumps(data_card))

    cells = sorted(elpv_root().joinpath("images").glob("*.png"))[: FRAMES * COLS * ROWS]
    write_line(tmp_path / "line.mp4", cells)
    expected = expected_defects(tmp_path / "line.mp4", model)
    assert expected, "the rule should report some tiles of real cells"
    line = f"types{uuid.uuid4().hex[:8]}"
    config = tmp_path / "config.toml"
    config.write_text(f"""
[line]
id = "{line}"
[[cameras]]
id = "cam0"
source = "line.mp4"
[model]
path = "{model}"
threads = 1
[tiling]
size = {TILE}
stride = {TILE}
[mqtt]
port = {mosquitto.port}
""")
    events = mqtt_messages(f"line/{line}/defects")
    served = inspector("run", "--config", str(config), "--json")
    assert served.returncode == 0, served.stderr[-3000:]
    assert json.loads(served.stdout)["events"] == len(expected)
    received = [json.loads(p) for _t, p, _r in events.wait_for(len(expected))]
    got = {e["frame_id"]: {d["class"] for d in e["defects"]} for e in received}
    assert got == expected
    for event in received:
        for defect in event["defects"]:
            limit = data_card["thresholds"][defect["class"]]
            assert defect["score"] >= limit
    # evaluate reads the card: a type classifier is scored on the types-only folder.
    scored = inspector("evaluate", str(model), str(data), "--json")
    assert scored.returncode == 0, scored.stderr[-3000:]
    assert 0.0 <= json.loads(scored.stdout)["accuracy"] <= 1.0


def type_card(**changes: Any) -> dict[str, Any]:
    card = {
        "schema": "inspector.model/1", "name": "types", "sha256": "0" * 64,
        "labels": ["scratch", "dent", "stain"], "ok_label": None,
        "input": {"name": "input", "height": 8, "width": 8, "color": "rgb", "scale": 255.0,
                  "mean": [0.5] * 3, "std": [0.5] * 3},
        "output": {"name": "logits", "kind": "probabilities"},
        "thresholds": {"dent": 0.8},
    }  # fmt: skip
    card.update(changes)
    return card


def test_the_verdict_rule_of_a_type_classifier() -> None:
    from inspector.errors import ModelError
    from inspector.types.card import ModelCard

    card = ModelCard.model_validate(type_card())
    rule = VerdictRule(card)
    scores = np.array(
        [[0.6, 0.3, 0.1],  # scratch reaches 0.5: a scratch
         [0.1, 0.7, 0.2],  # dent is best but below its 0.8: no defect
         [0.4, 0.3, 0.3],  # no class reaches its threshold: no defect
         [0.0, 0.0, 0.0]],  # a tile outside the product mask: no defect
        np.float32,
    )  # fmt: skip
    labels, _ = rule.verdicts(scores)
    assert labels.tolist() == [0, NO_DEFECT, NO_DEFECT, NO_DEFECT]
    assert card.defect_labels == ("scratch", "dent", "stain") and not rule.has_ok
    with pytest.raises(ModelError, match="has no ok class"):
        _ = rule.ok_index
    # ok_label stays required: a card that forgets it is not read as a type classifier.
    without = type_card()
    del without["ok_label"]
    with pytest.raises(ValueError, match="ok_label"):
        ModelCard.model_validate(without)


def test_image_size_comes_from_the_data(tmp_path: Path) -> None:
    from inspector.training.features import choose_image_size

    size, why = choose_image_size(load_elpv("binary").train, 224)
    assert size == 300 and "300 px" in why  # ELPV cells: kept whole
    small = tmp_path / "small"
    small.mkdir()
    for index in range(4):
        cv2.imwrite(str(small / f"{index}.png"), np.full((40, 50), 128, np.uint8))
    tiny = [Sample(p, 0, "x") for p in sorted(small.glob("*.png"))]
    size, why = choose_image_size(tiny, 224)
    assert size == 96 and "raised" in why
