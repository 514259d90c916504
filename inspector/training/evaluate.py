"""Evaluate an exported model with ONNX Runtime, the way the daemon runs it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TypedDict, Unpack

import numpy as np
import numpy.typing as npt
from pydantic import ValidationError

from inspector.engines.card import load_model
from inspector.engines.normalize import TileNormalizer
from inspector.engines.registry import PLUGINS, create_engine, parse_model_settings
from inspector.errors import ConfigError, DatasetError
from inspector.postprocess import VerdictRule
from inspector.training.datasets import Dataset, Sample, read_image, resize_to
from inspector.training.metrics import classification_report
from inspector.types.card import ModelCard
from inspector.types.frames import Image
from inspector.types.tiles import NO_DEFECT


def fit_to_input(image: Image, card: ModelCard) -> Image:
    """A whole sample image becomes one model input (resized, as one tile would be)."""
    return resize_to(image, card.input.width, card.input.height)


def batches(samples: Sequence[Sample], size: int) -> Iterator[Sequence[Sample]]:
    for start in range(0, len(samples), size):
        yield samples[start : start + size]


class RunOptions(TypedDict, total=False):
    """What :func:`evaluate_model` passes on to :func:`predict`, so predict's defaults are
    written once."""

    batch_size: int
    threads: int
    progress: bool
    backend: str
    precision: str | None


def predict(
    onnx_path: Path,
    dataset: Dataset,
    part: str = "test",
    batch_size: int = 32,
    threads: int = 0,
    progress: bool = False,
    backend: str = "onnxruntime",
    precision: str | None = None,
) -> tuple[ModelCard, npt.NDArray[np.float32], list[int]]:
    """The model's class probabilities on a dataset part (run as the daemon runs it, on
    ``backend`` at ``precision`` where the backend has that option), and the true labels in
    the card's label order."""
    card = load_model(onnx_path)
    if set(card.labels) != set(dataset.labels):
        raise DatasetError(
            f"{dataset.name}: classes {sorted(dataset.labels)} differ from the model's "
            f"{sorted(card.labels)} ({onnx_path})"
        )
    # Folder datasets list classes alphabetically; the card has its own order.
    to_card = [card.labels.index(label) for label in dataset.labels]
    samples = dataset.part(part)
    options: dict[str, Any] = {"backend": backend, "path": onnx_path}
    if backend in PLUGINS and "threads" in PLUGINS[backend].settings.model_fields:
        options["threads"] = threads
    if precision is not None:
        options["precision"] = precision
    try:
        settings = parse_model_settings(options)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"][1:]) or "backend"
        raise ConfigError(f"--{where}: {first['msg']}") from None
    engine = create_engine(settings, batch_size)
    normalizer = TileNormalizer(card.input)
    rule = VerdictRule(card)
    buffer = np.empty((batch_size, *normalizer.shape), np.float32)
    chunks = batches(samples, batch_size)
    if progress:
        from tqdm import tqdm

        chunks = tqdm(
            chunks, total=-(-len(samples) // batch_size), desc=f"evaluate {part}", unit="batch"
        )
    outputs = []
    try:
        for chunk in chunks:
            tiles = np.stack(
                [fit_to_input(read_image(s.path, card.input.color), card) for s in chunk]
            )
            inputs = normalizer.normalize(tiles, out=buffer[: len(chunk)])
            outputs.append(rule.probabilities(engine.infer(inputs)))
    finally:
        engine.close()
    probabilities = np.concatenate(outputs) if outputs else np.empty((0, len(card.labels)))
    return card, probabilities.astype(np.float32), [to_card[s.label] for s in samples]


def verdict_labels(card: ModelCard, probabilities: npt.NDArray[np.float32]) -> list[int]:
    """The daemon's own rule (thresholds), not a bare argmax: the figures then describe
    what the line will report."""
    if not card.has_ok:
        # A type classifier is scored on the class it names (every sample is a defect);
        # its thresholds only decide what the line reports.
        return [int(i) for i in probabilities.argmax(axis=1)]
    verdicts, _ = VerdictRule(card).verdicts(probabilities)
    ok_index = card.ok_index
    return [int(v) if v != NO_DEFECT else ok_index for v in verdicts]


def evaluate_model(
    onnx_path: Path, dataset: Dataset, part: str = "test", **options: Unpack[RunOptions]
) -> dict[str, Any]:
    card, probabilities, truth = predict(onnx_path, dataset, part, **options)
    report = classification_report(truth, verdict_labels(card, probabilities), card.labels)
    report.update({"model": card.name, "dataset": dataset.name, "part": part})
    return report


def tune_threshold(onnx_path: Path, dataset: Dataset, part: str = "val") -> float | None:
    """For a model with one defect class: the defect threshold with the best accuracy on
    ``part`` (never the test part), ties going to the one nearest 0.5. None otherwise.

    Class-weighted training moves the probabilities; this puts the decision where the
    held-out images say it belongs."""
    card, probabilities, truth = predict(onnx_path, dataset, part)
    if not card.has_ok or len(card.defect_labels) != 1 or not len(truth):
        return None
    defect = card.labels.index(card.defect_labels[0])
    scores, is_defect = probabilities[:, defect], np.asarray(truth) == defect
    candidates = np.round(np.linspace(0.2, 0.8, 61), 3)
    accuracy = [float(((scores >= t) == is_defect).mean()) for t in candidates]
    best = max(range(len(candidates)), key=lambda i: (accuracy[i], -abs(candidates[i] - 0.5)))
    return float(candidates[best])
