"""The TensorRT backend: a prebuilt plan, N execution contexts, N batches in flight.

Each context has its own non-blocking CUDA stream, pinned host buffers, device
buffers and a completion event, so while one batch is copied in, another is
computed and a third is copied out. :meth:`TensorRtEngine.submit` /
:meth:`TensorRtEngine.collect` expose that; :meth:`TensorRtEngine.infer` (the
synchronous :class:`~inspector.engines.base.Engine` protocol) is one of each.
The first batch of each size on a context is enqueued as usual and then
captured as a CUDA graph (copy in, network, copy out), so later batches of that
size cost one ``cudaGraphLaunch``; where capture fails, plain enqueues go on.

TensorRT and cuda-python (``cuda.bindings``) are imported inside the
constructor (through ``trt_build.py``'s glue): this module imports, type-checks
and reports a clear :class:`ModelError` on machines without them. Plans are
built ahead of time by ``inspector build-engine``; ``plan.py`` says how a plan
is found and when it is stale.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import structlog
from pydantic import Field

from inspector.engines.base import Batch, Engine, EngineBase, EnginePlugin, EngineSettings, Scores
from inspector.engines.plan import (
    PlanMetadata,
    Precision,
    choose_precision,
    plan_buffers,
    rebuild_command,
    require_plan,
)
from inspector.engines.scheduler import StreamScheduler, Ticket
from inspector.engines.trt_build import Cuda, CudaError, import_tensorrt, open_cuda, trt_logger
from inspector.engines.trt_slots import Slot, check_plan_io, pinned_view
from inspector.errors import ModelError
from inspector.types.card import ModelCard

log = structlog.get_logger(__name__)


class TensorRtSettings(EngineSettings):
    """``[model]`` with ``backend = "tensorrt"``: the plan's options, fixed at build time too."""

    backend: Literal["tensorrt"] = "tensorrt"
    contexts: int = Field(
        default=2, ge=1, le=16, description="execution contexts, i.e. batches in flight"
    )
    precision: Precision | None = Field(
        default=None, description="fp32, fp16 or int8; default: what the model and plan say"
    )
    cuda_graphs: bool = Field(
        default=True, description="replay each batch size as a CUDA graph after its first run"
    )


# --- the engine ----------------------------------------------------------------------------------


class TensorRtEngine(EngineBase):
    """A TensorRT plan for this GPU, with ``contexts`` batches in flight.

    Not thread-safe: one inference thread calls ``infer`` or ``submit``/``collect``.
    """

    def __init__(
        self,
        onnx_path: Path,
        card: ModelCard,
        max_batch: int,
        contexts: int = 2,
        *,
        precision: Precision | None = None,
        cuda_graphs: bool = True,
    ) -> None:
        if max_batch < 1 or contexts < 1:
            raise ValueError(f"max_batch and contexts must be >= 1, got {max_batch}, {contexts}")
        # Everything close() frees exists before anything can fail.
        self._closed = False
        self._cuda: Cuda | None = None
        self._slots: list[Slot] = []
        self._trt_contexts: list[Any] = []
        self._streams: list[Any] = []
        self._events: list[Any] = []
        self._host: list[int] = []
        self._device: list[int] = []
        self._engine: Any = None
        self._runtime: Any = None
        self._logger: Any = None
        super().__init__(card, max_batch)
        self._tile = (card.channels, card.input.height, card.input.width)
        self._tile_size = int(np.prod(self._tile))
        self._labels = len(card.labels)
        self._use_graphs = cuda_graphs
        self._scheduler = StreamScheduler(contexts)

        prefix = f"{onnx_path}: model.backend = 'tensorrt'"
        trt = import_tensorrt(prefix)
        self._cuda, gpu = open_cuda(prefix)
        base = PlanMetadata(
            model=card.name,
            gpu=gpu.name,
            compute_capability=gpu.compute_capability,
            tensorrt_version=str(trt.__version__),
            sha256=card.sha256,
            precision="fp32",
            min_batch=1,
            opt_batch=max_batch,
            max_batch=max_batch,
            contexts=contexts,
        )
        self._meta = base.model_copy(
            update={"precision": choose_precision(onnx_path, base, precision)}
        )
        self._plan = require_plan(onnx_path, self._meta)
        try:
            self._open(trt, onnx_path)
        except BaseException:
            self.close()
            raise
        log.info(
            "tensorrt_engine_ready",
            plan=str(self._plan),
            gpu=gpu.name,
            precision=self._meta.precision,
            contexts=contexts,
            max_batch=max_batch,
        )

    # --- set-up ---------------------------------------------------------------------------------

    def _open(self, trt: Any, onnx_path: Path) -> None:
        cuda = self._require_cuda()
        rt = cuda.rt
        self._logger = trt_logger(trt)
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(self._plan.read_bytes())
        if self._engine is None:
            raise ModelError(
                f"{self._plan}: TensorRT cannot deserialise this plan (see the log); rebuild it "
                f"with: {rebuild_command(onnx_path, self._meta)}"
            )
        check_plan_io(
            trt,
            self._engine,
            self._card,
            self._plan,
            contexts=self._scheduler.contexts,
            max_batch=self._max_batch,
            tile=self._tile,
        )
        shape = self._tile
        for plan in plan_buffers(self._max_batch, shape, self._labels, self._scheduler.contexts):
            stream = cuda("cudaStreamCreateWithFlags", rt.cudaStreamNonBlocking)
            self._streams.append(stream)
            # Blocking sync lets the waiting thread sleep instead of spinning a
            # core that capture and pre-processing need.
            flags = rt.cudaEventDisableTiming | rt.cudaEventBlockingSync
            event = cuda("cudaEventCreateWithFlags", flags)
            self._events.append(event)
            pointers = []
            for allocate, nbytes in (
                ("cudaMallocHost", plan.input_nbytes),
                ("cudaMallocHost", plan.output_nbytes),
                ("cudaMalloc", plan.input_nbytes),
                ("cudaMalloc", plan.output_nbytes),
            ):
                pointer = int(cuda(allocate, nbytes))
                (self._host if allocate == "cudaMallocHost" else self._device).append(pointer)
                pointers.append(pointer)
            host_in, host_out, dev_in, dev_out = pointers
            context = self._engine.create_execution_context()
            if context is None:
                raise CudaError(
                    f"{self._plan}: TensorRT cannot create execution context {plan.context}"
                )
            self._trt_contexts.append(context)
            # Profile i belongs to context i alone, so contexts never wait for each other.
            if not context.set_optimization_profile_async(plan.context, int(stream)):
                raise CudaError(f"{self._plan}: cannot select optimisation profile {plan.context}")
            for name, pointer in (
                (self._card.input.name, dev_in),
                (self._card.output.name, dev_out),
            ):
                if not context.set_tensor_address(name, pointer):
                    raise CudaError(f"{self._plan}: cannot bind tensor {name!r}")
            self._slots.append(
                Slot(
                    index=plan.context,
                    context=context,
                    stream=stream,
                    event=event,
                    host_in=pinned_view(host_in, plan.input_nbytes // 4),
                    host_out=pinned_view(host_out, plan.output_nbytes // 4),
                    host_in_ptr=host_in,
                    host_out_ptr=host_out,
                    dev_in=dev_in,
                    dev_out=dev_out,
                )
            )
        for stream in self._streams:
            cuda("cudaStreamSynchronize", stream)

    # --- the Engine protocol --------------------------------------------------------------------

    @property
    def plan(self) -> Path:
        return self._plan

    @property
    def metadata(self) -> PlanMetadata:
        """What the loaded plan was checked against (GPU, TensorRT, precision, ranges)."""
        return self._meta

    @property
    def in_flight(self) -> int:
        return self._scheduler.in_flight

    @property
    def full(self) -> bool:
        """True when :meth:`submit` would raise: collect the oldest ticket first."""
        return self._scheduler.full

    def infer(self, batch: Batch) -> Scores:
        if self._scheduler.in_flight:
            raise RuntimeError("infer() while submit()ted batches are in flight; collect() them")
        return self.collect(self.submit(batch))

    def submit(self, batch: Batch) -> Ticket:
        """Start ``batch`` on the next context; the caller may reuse ``batch`` at once.

        Raises :class:`~inspector.engines.plan.SchedulerFull` when every context
        is busy: :meth:`collect` the oldest ticket first.
        """
        cuda = self._require_cuda()
        n = self._check_batch(batch)
        ticket = self._scheduler.submit()
        slot = self._slots[ticket.context]
        try:
            # The one host copy: into pinned memory, so the H2D copy is truly asynchronous.
            np.copyto(slot.host_in[: n * self._tile_size].reshape(batch.shape), batch)
            slot.n = n
            if n in slot.graphs:
                cuda("cudaGraphLaunch", slot.graphs[n], slot.stream)
            else:
                self._enqueue(slot, n)
                if self._use_graphs and n not in slot.no_graph:
                    self._capture(slot, n)
            cuda("cudaEventRecord", slot.event, slot.stream)
        except BaseException:
            # Let whatever was queued finish before the context's buffers are reused.
            cuda.rt.cudaStreamSynchronize(slot.stream)
            self._scheduler.retract(ticket)
            raise
        return ticket

    def collect(self, ticket: Ticket | None = None) -> Scores:
        """Wait for the oldest batch in flight (``ticket`` must be it) and return its scores."""
        cuda = self._require_cuda()
        oldest = self._scheduler.next_to_collect()
        if oldest is None:
            raise RuntimeError("collect() with no batch in flight")
        ticket = oldest if ticket is None else ticket
        self._scheduler.check_next(ticket)
        slot = self._slots[ticket.context]
        cuda("cudaEventSynchronize", slot.event)  # releases the GIL while it waits
        n = slot.n
        scores = slot.host_out[: n * self._labels].reshape(n, self._labels).copy()
        self._scheduler.complete(ticket)
        return scores

    def warmup(self, sizes: Sequence[int] = ()) -> None:
        """Run zeros of each size (default ``max_batch``) on every context: graphs ready early."""
        for n in sizes or (self._max_batch,):
            zeros = np.zeros((n, *self._tile), dtype=np.float32)
            for _ in range(self._scheduler.contexts):
                self.infer(zeros)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        rt = self._cuda.rt if self._cuda is not None else None
        if rt is not None:
            # Return codes are ignored from here on: closing must free all it can.
            for stream in self._streams:
                rt.cudaStreamSynchronize(stream)
            for slot in self._slots:
                for graph in slot.graphs.values():
                    rt.cudaGraphExecDestroy(graph)
        # Pinned views first (nothing may read freed memory), contexts before the engine.
        self._slots.clear()
        self._trt_contexts.clear()
        self._engine = None
        self._runtime = None
        if rt is not None:
            for pointer in self._device:
                rt.cudaFree(pointer)
            for pointer in self._host:
                rt.cudaFreeHost(pointer)
            for event in self._events:
                rt.cudaEventDestroy(event)
            for stream in self._streams:
                rt.cudaStreamDestroy(stream)
        self._device.clear()
        self._host.clear()
        self._events.clear()
        self._streams.clear()

    # --- internals ------------------------------------------------------------------------------

    def _require_cuda(self) -> Cuda:
        if self._closed or self._cuda is None:
            raise RuntimeError("TensorRtEngine used after close()")
        return self._cuda

    def _check_batch(self, batch: Batch) -> int:
        n = batch.shape[0] if batch.ndim == 4 else 0
        if batch.dtype != np.float32 or batch.ndim != 4 or tuple(batch.shape[1:]) != self._tile:
            raise ValueError(
                f"batch must be float32 (n, *{self._tile}), got {batch.dtype} {batch.shape}"
            )
        self._check_size(n)
        return int(n)

    def _enqueue(self, slot: Slot, n: int) -> None:
        cuda = self._require_cuda()
        kinds = cuda.rt.cudaMemcpyKind
        if slot.shape_n != n:
            if not slot.context.set_input_shape(self._card.input.name, (n, *self._tile)):
                raise CudaError(f"TensorRT rejected input shape {(n, *self._tile)}")
            slot.shape_n = n
        in_bytes, out_bytes = n * self._tile_size * 4, n * self._labels * 4
        h2d, d2h = kinds.cudaMemcpyHostToDevice, kinds.cudaMemcpyDeviceToHost
        cuda("cudaMemcpyAsync", slot.dev_in, slot.host_in_ptr, in_bytes, h2d, slot.stream)
        if not slot.context.execute_async_v3(int(slot.stream)):
            raise CudaError(
                f"TensorRT execute_async_v3 failed on context {slot.index} (see the log)"
            )
        cuda("cudaMemcpyAsync", slot.host_out_ptr, slot.dev_out, out_bytes, d2h, slot.stream)

    def _capture(self, slot: Slot, n: int) -> None:
        """Record copy in, network and copy out for size ``n`` as a CUDA graph, if CUDA lets us.

        Runs right after a plain enqueue of the same size, which TensorRT needs
        before a capture (it flushes shape-dependent set-up). Nothing captured
        executes now; the stream's queued work is untouched.
        """
        cuda = self._require_cuda()
        rt = cuda.rt
        graph = None
        try:
            mode = rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
            cuda("cudaStreamBeginCapture", slot.stream, mode)
            try:
                self._enqueue(slot, n)
            finally:
                graph = cuda("cudaStreamEndCapture", slot.stream)  # always leave capture mode
            slot.graphs[n] = cuda("cudaGraphInstantiate", graph, 0)
        except Exception as exc:  # CudaError, or TensorRT refusing to enqueue while capturing
            slot.no_graph.add(n)
            rt.cudaGetLastError()  # clear the error a failed capture leaves behind
            log.info("tensorrt_graph_capture_failed", context=slot.index, batch=n, reason=str(exc))
        finally:
            if graph is not None:
                rt.cudaGraphDestroy(graph)  # the instantiated graph does not need it


def _open(settings: TensorRtSettings, card: ModelCard, max_batch: int) -> Engine:
    return TensorRtEngine(
        settings.path,
        card,
        max_batch=max_batch,
        contexts=settings.contexts,
        precision=settings.precision,
        cuda_graphs=settings.cuda_graphs,
    )


PLUGIN = EnginePlugin(TensorRtSettings, _open)
