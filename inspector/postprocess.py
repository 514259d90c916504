"""Scores -> tile verdicts -> defect regions of a frame. Pure functions, no I/O."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from inspector.types.card import ModelCard
from inspector.types.results import Region
from inspector.types.tiles import NO_DEFECT, TileGrid

FloatArray = npt.NDArray[np.float32]


def softmax(logits: FloatArray) -> FloatArray:
    shifted = logits - logits.max(axis=1, keepdims=True)  # avoids overflow in exp
    exp = np.exp(shifted)
    probabilities: FloatArray = (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)
    return probabilities


class VerdictRule:
    """A tile is a defect when its best non-ok class reaches that class's threshold.

    For a defect-type classifier (card ``ok_label`` null) every class is a defect class:
    a tile is a defect where its best class reaches that class's threshold, and no
    defect otherwise. Nothing stands in for the ok class it never learned."""

    def __init__(self, card: ModelCard) -> None:
        self.card = card
        self.labels = list(card.labels)
        self.logits = card.output.kind == "logits"
        self.has_ok = card.has_ok
        ok_index = card.ok_index if card.has_ok else None
        self.defect_indices = np.array(
            [i for i in range(len(self.labels)) if i != ok_index], dtype=np.intp
        )
        self.thresholds = np.array(
            [card.threshold_for(self.labels[i]) for i in self.defect_indices], dtype=np.float32
        )

    @property
    def ok_index(self) -> int:
        """The ok class's column; a type classifier has none (ModelError)."""
        return self.card.ok_index

    def probabilities(self, outputs: FloatArray) -> FloatArray:
        return softmax(outputs) if self.logits else outputs

    def verdicts(self, probabilities: FloatArray) -> tuple[npt.NDArray[np.intp], FloatArray]:
        """Per tile: the defect label index (or NO_DEFECT) and its probability."""
        defect_probs = probabilities[:, self.defect_indices]
        best = defect_probs.argmax(axis=1)
        best_score = defect_probs[np.arange(len(best)), best]
        is_defect = best_score >= self.thresholds[best]
        labels = np.where(is_defect, self.defect_indices[best], NO_DEFECT)
        return labels.astype(np.intp), best_score.astype(np.float32)


def merge_regions(
    grid: TileGrid,
    tile_labels: npt.NDArray[np.intp],
    tile_scores: FloatArray,
    label_names: list[str],
) -> list[Region]:
    """Group 4-connected defect tiles of the same class on the tile grid into regions."""
    label_grid = tile_labels.reshape(grid.rows, grid.cols)
    score_grid = tile_scores.reshape(grid.rows, grid.cols)
    regions: list[Region] = []
    for label in np.unique(label_grid[label_grid != NO_DEFECT]):
        mask = (label_grid == label).astype(np.uint8)
        count, components = cv2.connectedComponents(mask, connectivity=4)
        for component in range(1, count):
            rows, cols = np.nonzero(components == component)
            x0, y0 = int(grid.xs[cols].min()), int(grid.ys[rows].min())
            x1 = int(grid.xs[cols].max()) + grid.size
            y1 = int(grid.ys[rows].max()) + grid.size
            regions.append(
                Region(
                    label=label_names[int(label)],
                    score=float(score_grid[rows, cols].max()),
                    bbox_px=(x0, y0, x1 - x0, y1 - y0),
                    tiles=tuple((int(c), int(r)) for r, c in zip(rows, cols, strict=True)),
                )
            )
    regions.sort(key=lambda region: (region.bbox_px[1], region.bbox_px[0], region.label))
    return regions
