"""Basler cameras through pylon's own stack, with ``pypylon`` (extra ``[pylon]``).

Same behaviour as the GenTL source: features from config checked against the node map,
the camera's block ID as frame_id, one copy per frame, lost frames counted, triggered
cameras that wait without it being a fault, a software trigger for test benches.
``PYLON_CAMEMU=N`` gives N emulated cameras, which the tests use.
"""

from __future__ import annotations

from typing import Any, Literal

from inspector.capture.sources._industrial import (
    FeatureValue,
    IndustrialSettings,
    IndustrialSource,
    parse_selector,
)
from inspector.capture.sources.base import SourcePlugin
from inspector.errors import ConfigError, first_line


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


class PylonSource(IndustrialSource[PylonSettings]):
    def __init__(self, settings: PylonSettings) -> None:
        super().__init__(settings, f"pylon {settings.source}")

    def _connect(self) -> Any:
        pylon, _ = _pylon()
        factory = pylon.TlFactory.GetInstance()
        info = find_device(factory, self.settings.source)
        if info is None:
            raise self._fault(f"no pylon camera {self.settings.source}")
        try:
            camera = pylon.InstantCamera(factory.CreateDevice(info))
            camera.Open()
        except Exception as exc:
            raise self._cannot_open(exc) from None
        return camera

    def _start(self, device: Any) -> None:
        pylon, _ = _pylon()
        apply_features(device.GetNodeMap(), self.settings.features, self.settings.id)
        device.StartGrabbing(pylon.GrabStrategy_OneByOne)

    def _discard(self, device: Any) -> None:
        device.Close()

    def _trigger(self, device: Any) -> None:
        pylon, _ = _pylon()
        if device.WaitForFrameTriggerReady(self._timeout_ms, pylon.TimeoutHandling_Return):
            device.ExecuteSoftwareTrigger()

    def _fetch(self, device: Any) -> Any | None:
        pylon, _ = _pylon()
        result = device.RetrieveResult(self._timeout_ms, pylon.TimeoutHandling_Return)
        return result if result.IsValid() else None

    @property
    def _timeout_ms(self) -> int:
        return int(self.settings.read_timeout_s * 1000)

    def _block_id(self, buffer: Any) -> int | None:
        block_id = int(buffer.BlockID)
        return block_id if buffer.GrabSucceeded() else None

    def _pixels(self, device: Any, buffer: Any) -> tuple[Any, int, int, str]:
        pixel_format = str(device.GetNodeMap().GetNode("PixelFormat").ToString())
        return buffer.Array, buffer.Width, buffer.Height, pixel_format

    def _timestamp_ns(self, buffer: Any) -> int | None:
        return int(buffer.TimeStamp) or None

    def _release(self, buffer: Any) -> None:
        buffer.Release()

    def _frame_rate(self, device: Any) -> float | None:
        for name in ("AcquisitionFrameRate", "AcquisitionFrameRateAbs"):
            try:
                return float(device.GetNodeMap().GetNode(name).GetValue())
            except Exception:
                continue
        return None

    def _stop(self, device: Any) -> None:
        device.StopGrabbing()
        device.Close()


PLUGIN = SourcePlugin(PylonSettings, PylonSource)
