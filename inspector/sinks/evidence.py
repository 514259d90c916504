"""The evidence sink: a picture for every defect event, and uncertain tiles for relabelling.

For each event it stores one crop per defect region (with a margin) and the whole frame,
downscaled to ``frame_width`` with every region drawn, under ``<camera>/<date>/`` of the
evidence root, indexed in SQLite (:mod:`inspector.evidence.store`). The event names
those pictures (``evidence``: paths relative to the root) before any sink sees it.

The JPEG work runs on this sink's own fan-out thread, behind a bounded queue that loses
its oldest work when the sink falls behind (``inspector_evidence_dropped_total``): it
never slows inference. A full disk or an unwritable folder at run time is counted and
shown in health, and inspection goes on; an unusable ``path`` at start is exit 78.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

import cv2
import numpy as np
from pydantic import Field, model_validator

from inspector.evidence.pictures import (
    annotate_frame,
    crop_region,
    encode_jpeg,
    uncertain_tiles_for,
)
from inspector.evidence.store import EvidenceStore, stored_paths
from inspector.postprocess import VerdictRule
from inspector.sections import Section, SinkSettings, StateFolder
from inspector.sinks.base import SinkContext
from inspector.sinks.registry import SinkPlugin
from inspector.types.results import FrameResult, SinkHealth, SinkMetric


class UncertainSettings(Section):
    """Tiles the model was unsure of: the ones a person should label for the next model."""

    band: float = Field(
        default=0.15, gt=0, le=0.5, description="half-width of the band around each threshold"
    )
    per_minute: int = Field(default=30, ge=1, le=10_000, description="tiles kept per minute")


class EvidenceSettings(SinkSettings):
    path: Path | None = Field(
        default=None,
        description="default: $STATE_DIRECTORY/evidence under systemd, else "
        "state/<line>-evidence beside the config file",
    )
    max_mb: float = Field(default=2048.0, gt=0, description="the store's bound on disk")
    max_days: float = Field(default=30.0, gt=0, description="pictures older than this go")
    frame_width: int = Field(default=1280, ge=64, le=16384, description="annotated frame width")
    jpeg_quality: int = Field(default=85, ge=10, le=100)
    uncertain: UncertainSettings | None = None

    def resolve_paths(self, base: Path, state: StateFolder | None = None) -> Self:
        settings = super().resolve_paths(base, state)
        if settings.path is None and state is not None:
            return settings.model_copy(update={"path": state.place("evidence")})
        return settings

    def pictures(self) -> Path | None:
        return self.path if self.enabled else None  # the operator's page serves them

    @model_validator(mode="after")
    def _room_for_one_event(self) -> Self:
        if self.max_mb < 0.1:
            raise ValueError(f"max_mb {self.max_mb:g} leaves no room for one event's pictures")
        return self


_FRAME = "frame.jpg"


def _picture_names(result: FrameResult) -> list[str]:
    return [_FRAME, *(f"crop{i}.jpg" for i in range(len(result.regions)))]


class EvidenceSink:
    name = "evidence"
    lossless = False  # pictures are for people: the newest matter, a backlog does not

    def __init__(
        self, settings: EvidenceSettings, store: EvidenceStore, rule: VerdictRule, tile_px: int
    ) -> None:
        self.settings, self.store, self.rule, self.tile_px = settings, store, rule, tile_px
        self.encode_errors = 0
        self.uncertain_kept = 0
        self._minute = time.monotonic()
        self._left_this_minute = settings.uncertain.per_minute if settings.uncertain else 0

    @classmethod
    def open(cls, settings: EvidenceSettings, context: SinkContext) -> EvidenceSink:
        assert settings.path is not None  # load_settings fills in the default
        card = context.card  # the labels and thresholds of the line's model
        store = EvidenceStore(settings.path, settings.max_mb, settings.max_days)
        return cls(settings, store, VerdictRule(card), card.input.width)

    def event_fields(self, result: FrameResult) -> Mapping[str, Any]:
        frame, *crops = stored_paths(
            result.frame.camera_id,
            result.event_id,
            result.frame.captured_at,
            _picture_names(result),
        )
        return {"evidence": {"frame": frame, "crops": crops}}

    def frame_result(self, result: FrameResult) -> None:
        if result.event is not None:
            self._store_event(result)
        if self.settings.uncertain is not None:
            self._store_uncertain(result)

    def _store_event(self, result: FrameResult) -> None:
        image = result.frame.image
        quality = self.settings.jpeg_quality
        annotated = annotate_frame(image, result.regions, self.settings.frame_width)
        pictures = [encode_jpeg(annotated, quality)]
        pictures += [encode_jpeg(crop_region(image, r.bbox_px), quality) for r in result.regions]
        self.store.add_event(
            result.event_id,
            result.frame.camera_id,
            result.frame.frame_id,
            result.frame.captured_at,
            [region.label for region in result.regions],
            [region.score for region in result.regions],
            dict(zip(_picture_names(result), pictures, strict=True)),
        )

    def _store_uncertain(self, result: FrameResult) -> None:
        assert self.settings.uncertain is not None
        probabilities, grid = result.tile_probabilities, result.grid
        if probabilities is None or grid is None or not self._budget():
            return
        inferred = result.tile_inferred
        origins = grid.origins
        for tile in uncertain_tiles_for(self.rule, probabilities, self.settings.uncertain.band):
            if inferred is not None and not inferred[tile.index]:
                continue
            if not self._budget():
                return
            x, y = (int(v) for v in origins[tile.index])
            crop = result.frame.image[y : y + grid.size, x : x + grid.size]
            size = (self.tile_px, self.tile_px)  # what the model saw, at its input size
            tile_image = np.asarray(cv2.resize(crop, size, interpolation=cv2.INTER_AREA), np.uint8)
            jpeg = encode_jpeg(tile_image, 95)
            # Below its threshold the model called it ok: that is the label it proposes. A
            # type classifier has no ok class: it proposes its best class for a person to check.
            below = tile.score < tile.threshold and self.rule.has_ok
            label = self.rule.labels[self.rule.ok_index] if below else tile.label
            stored = self.store.add_uncertain(
                result.event_id, result.frame.camera_id, result.frame.frame_id,
                result.frame.captured_at, tile.index, label, tile.score, jpeg,
            )  # fmt: skip
            self._left_this_minute -= 1
            self.uncertain_kept += bool(stored)

    def _budget(self) -> bool:
        """The rate limit: ``per_minute`` uncertain tiles in each minute, the rest let go."""
        assert self.settings.uncertain is not None
        now = time.monotonic()
        if now - self._minute >= 60.0:
            self._minute, self._left_this_minute = now, self.settings.uncertain.per_minute
        return self._left_this_minute > 0

    def camera_status(self, camera: str, status: Mapping[str, Any]) -> None:
        pass

    def stats(self, stats: Mapping[str, Any]) -> None:
        self.store.expire()  # the age bound holds on a quiet line too, not only on adds

    def health(self) -> SinkHealth:
        figures = self.store.stats()
        if figures["write_errors"]:
            return SinkHealth(
                "degraded",
                f"{figures['write_errors']} pictures could not be written to {self.store.root}",
            )
        return SinkHealth()

    def metrics(self) -> list[SinkMetric]:
        figures = self.store.stats()
        return [
            SinkMetric("inspector_evidence_bytes",
                       "Bytes the evidence folder takes on disk (pictures, index, folders)",
                       "gauge", figures["disk_bytes"]),
            SinkMetric("inspector_evidence_items", "Events and tiles in the evidence store",
                       "gauge", figures["items"]),
            SinkMetric("inspector_evidence_write_errors",
                       "Pictures lost to a disk error (full, read-only, failing)",
                       "counter", figures["write_errors"]),
            SinkMetric("inspector_evidence_evicted",
                       "Items deleted to keep under max_mb and max_days",
                       "counter", figures["evicted"] + figures["expired"]),
        ]  # fmt: skip

    def close(self) -> None:
        self.store.close()


PLUGIN = SinkPlugin("evidence", EvidenceSettings, EvidenceSink.open)
