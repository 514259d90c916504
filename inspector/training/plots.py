"""Training report plots: accuracy and loss per epoch, and the confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; a line PC or CI has no display
import matplotlib.pyplot as plt

from inspector.training.state import EpochRecord


def plot_curves(history: Sequence[EpochRecord], path: Path, best_epoch: int) -> None:
    """Epoch 0 is the probe; then the fine-tuning epochs. The kept model is marked."""
    epochs = [r.epoch for r in history]
    figure, (accuracy, loss) = plt.subplots(1, 2, figsize=(11, 4.2))
    for part, style in (("train", "-o"), ("val", "-s")):
        accuracy.plot(epochs, [getattr(r, f"{part}_accuracy") for r in history], style, label=part)
        loss.plot(epochs, [getattr(r, f"{part}_loss") for r in history], style, label=part)
    kept = "probe" if best_epoch == 0 else f"epoch {best_epoch}"
    for axis, title in ((accuracy, "accuracy"), (loss, "loss")):
        axis.axvline(best_epoch, color="gray", linestyle=":", label=f"kept ({kept})")
        axis.set_xlabel("fine-tuning epoch (0 = the probe)")
        axis.set_title(title)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_confusion(matrix: Sequence[Sequence[int]], labels: Sequence[str], path: Path) -> None:
    figure, axis = plt.subplots(figsize=(1.2 * len(labels) + 2.5, 1.1 * len(labels) + 2))
    image = axis.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axis)
    axis.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    axis.set_yticks(range(len(labels)), labels)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    peak = max(max(row) for row in matrix) or 1
    for row, counts in enumerate(matrix):
        for col, count in enumerate(counts):
            colour = "white" if count > peak / 2 else "black"
            axis.text(col, row, str(count), ha="center", va="center", color=colour)
    axis.set_title("confusion matrix (test)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
