"""The inference stage: batches in, probabilities out, in order, with the engine kept busy.

One loop serves every engine. An :class:`~inspector.engines.base.AsyncEngine` keeps
several batches in flight (submit while a context is free, collect the oldest when all
are busy or nothing new waits); a synchronous engine is wrapped as a one-slot async one,
so the drain and end-of-run code exists once.
"""

from __future__ import annotations

import queue
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from inspector.engines import Engine
from inspector.engines.base import AsyncEngine, Scores
from inspector.engines.base import Batch as Tiles
from inspector.pipeline.batcher import Batch, BufferPool
from inspector.pipeline.stats import PipelineStats
from inspector.postprocess import VerdictRule

Result = tuple[Batch, np.ndarray]


class OneSlot:
    """A synchronous engine seen as an async one with one context: ``submit`` runs the
    batch (the engine returns new memory, so the input buffer is free once it returns)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._scores: Scores | None = None

    @property
    def full(self) -> bool:
        return self._scores is not None

    def submit(self, batch: Tiles) -> None:
        self._scores = self.engine.infer(batch)

    def collect(self, ticket: Any = None) -> Scores:
        scores, self._scores = self._scores, None
        assert scores is not None, "collect() without submit()"
        return scores


class InferenceLoop:
    """Runs on the engine thread until the batcher's end marker (None) has come through."""

    def __init__(
        self,
        engine: Engine,
        batches: queue.Queue[Batch | None],
        results: queue.Queue[Result | None],
        pool: BufferPool,
        rule: VerdictRule,
        stats: PipelineStats,
        fail: Callable[[BaseException], None],
        failed: Callable[[], bool],
        on_idle: Callable[[], None] = lambda: None,
    ) -> None:
        self._engine: AsyncEngine | OneSlot = (
            engine if isinstance(engine, AsyncEngine) else OneSlot(engine)
        )
        self._batches, self._results, self._pool = batches, results, pool
        self._rule, self._stats = rule, stats
        self._fail, self._failed = fail, failed
        self._on_idle = on_idle
        self._pending: deque[tuple[Batch, float]] = deque()
        self.waiting = False  # nothing in flight, waiting for a batch: the batcher may send

    def run(self) -> None:
        engine, pending = self._engine, self._pending
        while True:
            try:
                if not pending:
                    self.waiting = True
                    self._on_idle()
                batch = self._batches.get(block=not pending)
                self.waiting = False
            except queue.Empty:
                self._collect_oldest()
                continue
            if batch is None or self._failed():
                if batch is not None:
                    self._pool.release(batch.buffer)
                    continue  # drain, so the batcher never blocks on a full queue
                while pending:
                    self._collect_oldest()
                self._results.put(None)
                return
            if batch.size == 0:
                while pending:  # keep the frames in order behind the batches in flight
                    self._collect_oldest()
                self._pass_through(batch)
                continue
            if engine.full:
                self._collect_oldest()
            started = time.perf_counter()
            try:
                engine.submit(batch.inputs)
            except Exception as exc:
                self._fail(exc)
                continue
            finally:
                self._pool.release(batch.buffer)  # submit copied it into the engine's memory
            pending.append((batch, started))

    def _collect_oldest(self) -> None:
        batch, started = self._pending.popleft()
        try:
            outputs = self._engine.collect()
        except Exception as exc:
            self._fail(exc)
            return
        self._stats.record_batch(batch.size, (time.perf_counter() - started) * 1e3)
        self._results.put((batch, self._rule.probabilities(outputs)))

    def _pass_through(self, batch: Batch) -> None:
        """A batch of frames with no product tile in view: nothing to infer, still reported."""
        self._pool.release(batch.buffer)
        self._results.put((batch, np.empty((0, len(self._rule.labels)), np.float32)))
