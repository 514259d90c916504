"""Basler cameras through pylon's own stack, with ``pypylon`` (extra ``[pylon]``).

Same behaviour as the GenTL source: features from config checked against the node map,
the camera's block ID as frame_id, one copy per frame, lost frames counted, triggered
cameras that wait without it being a fault, a software trigger for test benches.
``PYLON_CAMEMU=N`` gives N emulated cameras, which the tests use.
"""

from __future__ import annotations

from typing import Any, Literal

from inspector.capture.industrial import (
    FeatureValue,
    IndustrialSettings,
    LostFrames,
    TriggerPacer,
    first_line,
    parse_selector,
    to_bgr,
    trigger_mode_on,
)
from inspector.capture.source import Grab, NoFrameYet
from inspector.capture.sources.base import SourcePlugin
from inspector.errors import ConfigError, SourceError


class PylonSettings(IndustrialSettings):
    """``type = "pylon"``: a Basler camera through pylon's own stack."""

    type: Literal["pylon"] = "pylon"


def _pylon() -> tuple[Any, Any]:
    try:
        from pypylon import genicam, pylon
    except ImportError:
        raise ConfigError(
            "type = 'pylon' needs the [pylon] extra: pip install 'line-inspector[pylon]'"
        ) from None
    return pylon, genicam


def apply_features(node_map: Any, features: dict[str, FeatureValue], camera: str) -> None:
    _, genicam = _pylon()
    for name, value in features.items():
        where = f"camera {camera}: features.{name}"
        try:
            node = node_map.GetNode(name)
        except Exception:
            node = None
        if node is None or not genicam.IsAvailable(node):
            raise ConfigError(f"{where}: the camera has no such feature")
        if not genicam.IsWritable(node):
            raise ConfigError(f"{where}: the feature is not writable (read-only or unavailable)")
        try:
            if isinstance(value, str):
                node.FromString(value)
            else:
                node.SetValue(value)
        except Exception as exc:
            raise ConfigError(f"{where}: cannot set {value!r}: {first_line(exc)}") from None


def find_device(factory: Any, source: str) -> Any:
    kind, value = parse_selector(source)
    devices = list(factory.EnumerateDevices())
    if kind == "index":
        index = int(value)
        return devices[index] if 0 <= index < len(devices) else None
    for device in devices:
        key = device.GetSerialNumber() if kind == "serial" else device.GetUserDefinedName()
        if key == value:
            return device
    return None


class PylonSource:
    live = True
    paced = False

    def __init__(self, settings: PylonSettings) -> None:
        self.settings = settings
        self.description = f"pylon {settings.source}"
        self._camera: Any | None = None
        self._lost = LostFrames()
        self._triggered = trigger_mode_on(settings.features)
        hz = settings.software_trigger_hz
        self._pacer = TriggerPacer(hz) if hz is not None else None

    @property
    def lost(self) -> int:
        return self._lost.lost

    @property
    def is_open(self) -> bool:
        return self._camera is not None

    def open(self) -> None:
        self.close()
        pylon, _ = _pylon()
        factory = pylon.TlFactory.GetInstance()
        device = find_device(factory, self.settings.source)
        if device is None:
            raise SourceError(f"camera {self.settings.id}: no pylon camera {self.settings.source}")
        try:
            camera = pylon.InstantCamera(factory.CreateDevice(device))
            camera.Open()
        except Exception as exc:
            raise SourceError(
                f"camera {self.settings.id}: cannot open {self.settings.source}: {first_line(exc)}"
            ) from None
        try:
            apply_features(camera.GetNodeMap(), self.settings.features, self.settings.id)
            camera.StartGrabbing(pylon.GrabStrategy_OneByOne)
        except BaseException:
            camera.Close()
            raise
        self._camera = camera
        self._lost.restart()

    def _fire_trigger(self) -> None:
        if self._pacer is None or self._camera is None:
            return
        pylon, _ = _pylon()
        self._pacer.due()
        timeout_ms = int(self.settings.read_timeout_s * 1000)
        if self._camera.WaitForFrameTriggerReady(timeout_ms, pylon.TimeoutHandling_Return):
            self._camera.ExecuteSoftwareTrigger()

    def grab(self) -> Grab | None:
        if self._camera is None:
            raise SourceError(f"camera {self.settings.id}: {self.description} is not open")
        pylon, _ = _pylon()
        self._fire_trigger()
        try:
            result = self._camera.RetrieveResult(
                int(self.settings.read_timeout_s * 1000), pylon.TimeoutHandling_Return
            )
        except Exception as exc:  # device removed, stream error
            raise SourceError(
                f"camera {self.settings.id}: {self.description}: {first_line(exc)}"
            ) from None
        if not result.IsValid():
            if self._triggered:
                raise NoFrameYet()
            raise SourceError(
                f"camera {self.settings.id}: no frame within {self.settings.read_timeout_s:g} s"
            )
        try:
            block_id = int(result.BlockID)
            if not result.GrabSucceeded():
                self._lost.incomplete()
                raise NoFrameYet()
            self._lost.seen(block_id)
            pixel_format = str(self._camera.GetNodeMap().GetNode("PixelFormat").ToString())
            image = to_bgr(result.Array, result.Width, result.Height, pixel_format)
            timestamp = int(result.TimeStamp) or None
        finally:
            result.Release()  # back to the camera's buffer pool at once
        return Grab(image=image, frame_id=block_id, timestamp_ns=timestamp)

    def nominal_fps(self) -> float | None:
        if self._camera is None:
            return None
        for name in ("AcquisitionFrameRate", "AcquisitionFrameRateAbs"):
            try:
                return float(self._camera.GetNodeMap().GetNode(name).GetValue())
            except Exception:
                continue
        return None

    def close(self) -> None:
        if self._camera is not None:
            try:
                self._camera.StopGrabbing()
                self._camera.Close()
            finally:
                self._camera = None


PLUGIN = SourcePlugin(PylonSettings, PylonSource)
