"""Scores back onto their frames, and each finished frame into a :class:`FrameResult`:
tile verdicts, merged defect regions, the defect event and the belt position."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from inspector.capture.sources.registry import CameraSettings
from inspector.pipeline.batcher import Batch, FrameJob
from inspector.pipeline.events import defect_event, event_id
from inspector.pipeline.stats import PipelineStats
from inspector.postprocess import VerdictRule, merge_regions
from inspector.types.card import ModelCard
from inspector.types.frames import utc_now
from inspector.types.results import FrameResult


@dataclass(frozen=True, slots=True)
class CameraGeometry:
    """What turns pixels into millimetres and frames into belt travel, per camera."""

    settings: CameraSettings
    mm_per_px: float | None


class ResultAssembler:
    def __init__(
        self,
        line: str,
        run_id: str,
        card: ModelCard,
        cameras: Mapping[str, CameraGeometry],
        stats: PipelineStats,
        deliver: Callable[[FrameResult], None],
    ) -> None:
        self.line, self.run_id, self.card = line, run_id, card
        self.rule = VerdictRule(card)
        self.cameras, self.stats, self.deliver = cameras, stats, deliver

    def add(self, batch: Batch, probabilities: np.ndarray) -> None:
        """Scatter one batch's rows to their frames; finish each frame whose tiles are in."""
        for span in batch.spans:
            job = span.job
            if job.scores is None:
                job.scores = self._blank_scores(job, probabilities.shape[1])
            rows = slice(span.first, span.first + span.count)
            targets = rows if job.active is None else job.active[rows]
            job.scores[targets] = probabilities[span.offset : span.offset + span.count]
            job.remaining -= span.count
            if job.remaining == 0:
                self._finish(job)

    def _blank_scores(self, job: FrameJob, classes: int) -> np.ndarray:
        if job.active is None:
            return np.empty((job.grid.count, classes), np.float32)
        # Tiles outside the product mask are not inferred: they count as certainly ok.
        scores = np.zeros((job.grid.count, classes), np.float32)
        if self.rule.has_ok:  # a type classifier's all-zero row reaches no threshold
            scores[:, self.rule.ok_index] = 1.0
        return scores

    def _finish(self, job: FrameJob) -> None:
        assert job.scores is not None
        labels, scores = self.rule.verdicts(job.scores)
        regions = merge_regions(job.grid, labels, scores, self.rule.labels)
        latency_ms = (time.monotonic_ns() - job.frame.captured_ns) / 1e6
        event = None
        if regions:
            camera = self.cameras[job.frame.camera_id]
            event = defect_event(
                line=self.line,
                run_id=self.run_id,
                frame=job.frame,
                tiles=job.inferred,
                regions=regions,
                model_name=self.card.name,
                model_sha256=self.card.sha256,
                published_at=utc_now(),
                latency_ms=latency_ms,
                mm_per_px=camera.mm_per_px,
                conveyor_mm=self._conveyor_mm(camera.settings, job),
            )
        self.stats.record_frame(latency_ms, event=bool(regions))
        inferred = np.ones(job.grid.count, np.bool_)
        if job.active is not None:
            inferred[:] = False
            inferred[job.active] = True
        frame_event_id = event_id(self.line, job.frame.camera_id, self.run_id, job.frame.frame_id)
        result = FrameResult(
            job.frame, tuple(regions), event, latency_ms, job.inferred, event_id=frame_event_id,
            grid=job.grid, tile_labels=labels, tile_probabilities=job.scores,
            tile_inferred=inferred,
        )  # fmt: skip
        self.deliver(result)

    def _conveyor_mm(self, camera: CameraSettings, job: FrameJob) -> float | None:
        """Belt travel since the run began, at this frame's capture."""
        if camera.conveyor_mm_per_frame is not None:
            return camera.conveyor_mm_per_frame * job.frame.frame_id
        if camera.conveyor_mm_per_s is not None:
            return camera.conveyor_mm_per_s * (job.frame.captured_ns - self.stats.started_ns) / 1e9
        return None
