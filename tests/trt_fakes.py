"""Fakes of TensorRT and cuda-python (neither can exist on these machines): real data flows
through host memory, so the TensorRT backend's logic runs and is compared with ONNX Runtime."""

from __future__ import annotations

import ctypes
import enum
import itertools
import json
import types
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

# --- fakes of TensorRT and cuda-python -----------------------------------------------------------


class Err(enum.IntEnum):
    cudaSuccess = 0
    cudaErrorNoDevice = 100
    cudaErrorStreamCaptureUnsupported = 900


OK = (Err.cudaSuccess,)


def _create(kind: str) -> Callable[..., tuple[Err, int]]:
    def create(self: FakeCudart, *flags: Any) -> tuple[Err, int]:
        handle = next(self.handles)
        self.live[handle] = kind
        return Err.cudaSuccess, handle

    return create


def _destroy(kind: str) -> Callable[..., tuple[Err]]:
    def destroy(self: FakeCudart, handle: int) -> tuple[Err]:
        assert self.live.pop(handle) == kind
        return OK

    return destroy


class FakeCudart:
    """cuda.bindings.runtime on host memory: work runs at once, captured work replays."""

    cudaError_t = Err
    cudaMemcpyKind = types.SimpleNamespace(cudaMemcpyHostToDevice=1, cudaMemcpyDeviceToHost=2)
    cudaStreamCaptureMode = types.SimpleNamespace(cudaStreamCaptureModeThreadLocal=1)
    cudaStreamNonBlocking, cudaEventDisableTiming, cudaEventBlockingSync = 1, 2, 1
    cudaStreamCreateWithFlags, cudaEventCreateWithFlags = _create("stream"), _create("event")
    cudaStreamDestroy, cudaEventDestroy = _destroy("stream"), _destroy("event")
    cudaGraphDestroy, cudaGraphExecDestroy = _destroy("graph"), _destroy("exec")

    def __init__(self, devices: int, capture: bool) -> None:
        self.devices, self.capture, self.launches = devices, capture, 0
        self.memory: dict[int, Any] = {}
        self.live: dict[int, str] = {}
        self.steps: dict[int, list[Callable[[], Any]]] = {}  # of capturing streams and graphs
        self.handles = itertools.count(1)

    def run(self, stream: int, step: Callable[[], Any]) -> None:
        if stream in self.steps:
            self.steps[stream].append(step)  # capturing: recorded, not run
        else:
            step()

    def cudaGetDeviceCount(self) -> tuple[Err, int]:
        return (Err.cudaSuccess, self.devices) if self.devices else (Err.cudaErrorNoDevice, 0)

    def cudaGetDevice(self) -> tuple[Err, int]:
        return Err.cudaSuccess, 0

    def cudaGetDeviceProperties(self, device: int) -> tuple[Err, Any]:
        return Err.cudaSuccess, types.SimpleNamespace(name=b"Fake GPU\0\0", major=9, minor=0)

    def cudaGetErrorName(self, err: int) -> tuple[Err, bytes]:
        return Err.cudaSuccess, Err(err).name.encode()

    def cudaMalloc(self, nbytes: int) -> tuple[Err, int]:
        buffer = ctypes.create_string_buffer(nbytes)
        self.memory[ctypes.addressof(buffer)] = buffer
        return Err.cudaSuccess, ctypes.addressof(buffer)

    def cudaFree(self, pointer: int) -> tuple[Err]:
        del self.memory[pointer]
        return OK

    def cudaEventSynchronize(self, *args: Any) -> tuple[Err]:
        return OK

    cudaMallocHost, cudaFreeHost = cudaMalloc, cudaFree
    cudaGetLastError = cudaEventRecord = cudaStreamSynchronize = cudaEventSynchronize

    def cudaMemcpyAsync(self, dst: int, src: int, nbytes: int, kind: int, stream: int) -> Any:
        self.run(stream, lambda: ctypes.memmove(dst, src, nbytes))
        return OK

    def cudaStreamBeginCapture(self, stream: int, mode: int) -> tuple[Err]:
        if not self.capture:
            return (Err.cudaErrorStreamCaptureUnsupported,)
        self.steps[stream] = []
        return OK

    def cudaStreamEndCapture(self, stream: int) -> tuple[Err, int]:
        err, graph = _create("graph")(self)
        self.steps[graph] = self.steps.pop(stream)
        return err, graph

    def cudaGraphInstantiate(self, graph: int, flags: int) -> tuple[Err, int]:
        err, executable = _create("exec")(self)
        self.steps[executable] = list(self.steps[graph])
        return err, executable

    def cudaGraphLaunch(self, executable: int, stream: int) -> tuple[Err]:
        self.launches += 1
        for step in self.steps[executable]:
            step()
        return OK


def _floats(pointer: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.ctypeslib.as_array(ctypes.cast(pointer, ctypes.POINTER(ctypes.c_float)), shape)


class FakeContext:
    def __init__(self, engine: FakeEngine) -> None:
        self.engine, self.shape, self.addresses = engine, (0,), dict[str, int]()

    def set_optimization_profile_async(self, index: int, stream: int) -> bool:
        return index < len(self.engine.profiles)

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
        self.shape = tuple(shape)
        return name == "input" and 1 <= shape[0] <= self.engine.profiles[0][2][0]

    def set_tensor_address(self, name: str, pointer: int) -> bool:
        self.addresses[name] = pointer
        return True

    def execute_async_v3(self, stream: int) -> bool:
        # Shape and addresses are read now, as a captured graph bakes them in.
        shape, src, dst, plan = (
            self.shape,
            self.addresses["input"],
            self.addresses["logits"],
            self.engine,
        )

        def step() -> None:  # the demo network: channel means -> Gemm
            _floats(dst, (shape[0], 3))[:] = (
                _floats(src, shape).mean(axis=(2, 3)) @ plan.weights + plan.bias
            )

        plan.cudart.run(stream, step)
        return True


class FakeEngine:
    num_io_tensors = 2

    def __init__(self, cudart: FakeCudart, plan: dict[str, Any]) -> None:
        self.cudart, self.profiles = cudart, plan["profiles"]
        self.weights, self.bias = np.array(plan["weights"]), np.array(plan["bias"])
        self.num_optimization_profiles = len(self.profiles)
        self.get_tensor_name = ("input", "logits").__getitem__
        self.get_tensor_mode = {"input": "INPUT", "logits": "OUTPUT"}.__getitem__
        self.get_tensor_dtype = {"input": "float32", "logits": "float32"}.__getitem__

    def get_tensor_profile_shape(self, name: str, profile: int) -> list[list[int]]:
        return self.profiles[profile]  # type: ignore[no-any-return]

    def create_execution_context(self) -> FakeContext:
        return FakeContext(self)


class FakeConfig:
    def __init__(self) -> None:
        self.flags, self.profiles, self.cache = list[str](), list[Any](), None

    def set_memory_pool_limit(self, pool: str, size: int) -> None:
        assert pool == "workspace" and size > 0

    def add_optimization_profile(self, profile: Any) -> int:
        self.profiles.append(profile.shapes)
        return len(self.profiles) - 1

    def create_timing_cache(self, data: bytes) -> Any:
        return types.SimpleNamespace(serialize=lambda: bytes(data) + b"+timings")

    def set_timing_cache(self, cache: Any, ignore_mismatch: bool) -> bool:
        self.cache = cache
        return True

    def set_flag(self, flag: str) -> None:
        self.flags.append(flag)

    def get_timing_cache(self) -> Any:
        return self.cache


class FakeTrt:
    """The tensorrt module: builds a JSON 'plan' holding the model's weights, runs it on the CPU."""

    class ILogger:
        pass

    TensorIOMode = types.SimpleNamespace(INPUT="INPUT", OUTPUT="OUTPUT")
    NetworkDefinitionCreationFlag = types.SimpleNamespace(STRONGLY_TYPED=0)
    MemoryPoolType = types.SimpleNamespace(WORKSPACE="workspace")
    float32 = "float32"

    def __init__(self, version: str, cudart: FakeCudart) -> None:
        self.__version__, self.cudart, self.builds = version, cudart, list[dict[str, Any]]()
        # TensorRT 11 removed the precision flags.
        flags = {"FP16": "fp16"} if version.startswith("10.") else {}
        self.BuilderFlag = types.SimpleNamespace(**flags)

    def Runtime(self, logger: Any) -> Any:
        return types.SimpleNamespace(
            deserialize_cuda_engine=lambda data: FakeEngine(self.cudart, json.loads(data))
        )

    def OnnxParser(self, network: Any, logger: Any) -> Any:
        return types.SimpleNamespace(
            parse=lambda data, path: setattr(network, "model", data) or True
        )

    def Builder(self, logger: Any) -> Any:
        def build(network: Any, config: FakeConfig) -> bytes:
            self.builds.append({"network": network.flags, "flags": config.flags})
            model = onnx.load_from_string(network.model)
            weights = {t.name: numpy_helper.to_array(t).tolist() for t in model.graph.initializer}
            plan = {"weights": weights["weights"], "bias": weights["bias"]}
            return json.dumps(plan | {"profiles": config.profiles}).encode()

        def profile() -> Any:
            shape = types.SimpleNamespace(shapes=None)
            shape.set_shape = lambda name, *shapes: setattr(shape, "shapes", shapes)
            return shape

        return types.SimpleNamespace(
            create_network=lambda flags: types.SimpleNamespace(flags=flags),
            create_builder_config=FakeConfig,
            create_optimization_profile=profile,
            build_serialized_network=build,
        )
