"""Classification metrics: accuracy, per-class precision/recall/F1, confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.intp]


def confusion_matrix(truth: IntArray, predicted: IntArray, classes: int) -> IntArray:
    """Rows are true classes, columns predicted ones."""
    matrix = np.zeros((classes, classes), dtype=np.intp)
    np.add.at(matrix, (truth, predicted), 1)
    return matrix


def classification_report(
    truth: Sequence[int] | IntArray, predicted: Sequence[int] | IntArray, labels: Sequence[str]
) -> dict[str, Any]:
    truth_array = np.asarray(truth, dtype=np.intp)
    predicted_array = np.asarray(predicted, dtype=np.intp)
    matrix = confusion_matrix(truth_array, predicted_array, len(labels))
    true_positive = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1)
    predicted_count = matrix.sum(axis=0)
    # A class never predicted (or absent) has precision (recall) 0, not NaN: JSON-safe.
    precision = np.divide(
        true_positive, predicted_count, out=np.zeros(len(labels)), where=predicted_count > 0
    )
    recall = np.divide(true_positive, support, out=np.zeros(len(labels)), where=support > 0)
    denominator = precision + recall
    f1 = np.divide(
        2 * precision * recall, denominator, out=np.zeros(len(labels)), where=denominator > 0
    )
    total = int(matrix.sum())
    return {
        "accuracy": float(true_positive.sum() / total) if total else 0.0,
        "samples": total,
        "per_class": {
            label: {
                "precision": round(float(precision[i]), 4),
                "recall": round(float(recall[i]), 4),
                "f1": round(float(f1[i]), 4),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
        "macro_f1": round(float(f1.mean()), 4),
        "labels": list(labels),
        "confusion_matrix": matrix.tolist(),
    }
