"""Evaluate an exported model with ONNX Runtime, the way the daemon runs it."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from inspector.engines.card import ModelCard, load_model
from inspector.engines.onnxruntime_engine import OnnxRuntimeEngine
from inspector.engines.preprocess import TileNormalizer
from inspector.errors import DatasetError
from inspector.frames import Image
from inspector.pipeline.postprocess import NO_DEFECT, VerdictRule
from inspector.training.datasets import Dataset, Sample, read_image, resize_to
from inspector.training.metrics import classification_report


def fit_to_input(image: Image, card: ModelCard) -> Image:
    """A whole sample image becomes one model input (resized, as one tile would be)."""
    return resize_to(image, card.input.width, card.input.height)


def batches(samples: Sequence[Sample], size: int) -> Iterator[Sequence[Sample]]:
    for start in range(0, len(samples), size):
        yield samples[start : start + size]


def evaluate_model(
    onnx_path: Path,
    dataset: Dataset,
    part: str = "test",
    batch_size: int = 32,
    threads: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    card = load_model(onnx_path)
    if set(card.labels) != set(dataset.labels):
        raise DatasetError(
            f"{dataset.name}: classes {sorted(dataset.labels)} differ from the model's "
            f"{sorted(card.labels)} ({onnx_path})"
        )
    # Folder datasets list classes alphabetically; the card has its own order.
    to_card = [card.labels.index(label) for label in dataset.labels]
    samples = dataset.part(part)
    engine = OnnxRuntimeEngine(onnx_path, card, threads=threads, max_batch=batch_size)
    normalizer = TileNormalizer(card.input)
    rule = VerdictRule(card)
    buffer = np.empty((batch_size, *normalizer.shape), np.float32)
    predicted: list[int] = []
    ok_index = card.labels.index(card.ok_label)
    chunks = batches(samples, batch_size)
    if progress:
        from tqdm import tqdm

        chunks = tqdm(
            chunks, total=-(-len(samples) // batch_size), desc=f"evaluate {part}", unit="batch"
        )
    try:
        for chunk in chunks:
            tiles = np.stack(
                [fit_to_input(read_image(s.path, card.input.color), card) for s in chunk]
            )
            inputs = normalizer.normalize(tiles, out=buffer[: len(chunk)])
            probabilities = rule.probabilities(engine.infer(inputs))
            # The daemon's own rule (thresholds), not a bare argmax: the figures then
            # describe what the line will report.
            verdicts, _ = rule.verdicts(probabilities)
            predicted.extend(int(v) if v != NO_DEFECT else ok_index for v in verdicts)
    finally:
        engine.close()
    truth = [to_card[s.label] for s in samples]
    report = classification_report(truth, predicted, card.labels)
    report.update({"model": card.name, "dataset": dataset.name, "part": part})
    return report
