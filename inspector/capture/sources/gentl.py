"""GenICam cameras (GigE Vision, USB3 Vision, CoaXPress) through a GenTL producer, with
``harvesters`` (extra ``[genicam]``).

The camera's own block ID is the frame_id, and its timestamp the capture time where it
has one. A buffer is copied exactly once, by the conversion to the model's pixels, and
requeued at once. Gaps in block IDs and incomplete buffers count as lost frames. With
``TriggerMode = On`` a fetch timeout only means no part came by: not a fault.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from inspector.capture.sources._industrial import (
    FeatureValue,
    IndustrialSettings,
    IndustrialSource,
    parse_selector,
)
from inspector.capture.sources.base import SourcePlugin
from inspector.errors import ConfigError, first_line

# GenICam access modes (GenApi EAccessMode).
_RW, _WO = 4, 2


class GenTlSettings(IndustrialSettings):
    """``type = "gentl"``: a GenICam camera through its vendor's GenTL producer."""

    type: Literal["gentl"] = "gentl"
    cti: Path = Field(description="the GenTL producer (.cti) of a gentl camera")


def apply_features(node_map: Any, features: dict[str, FeatureValue], camera: str) -> None:
    """Set each feature, or raise ConfigError naming the feature and what is wrong."""
    for name, value in features.items():
        where = f"camera {camera}: features.{name}"
        if not node_map.has_node(name):
            raise ConfigError(f"{where}: the camera has no such feature")
        node = getattr(node_map, name)
        if node.node.get_access_mode() not in (_RW, _WO):
            raise ConfigError(f"{where}: the feature is not writable (read-only or unavailable)")
        try:
            node.value = value
        except Exception as exc:  # genicam raises its own exception types
            raise ConfigError(f"{where}: cannot set {value!r}: {first_line(exc)}") from None


def _selector(source: str) -> dict[str, Any]:
    kind, value = parse_selector(source)
    if kind == "serial":
        return {"serial_number": value}
    if kind == "name":
        return {"user_defined_name": value}
    return {}  # index: handled by position


class _Harvesters:
    """One Harvester per producer file, shared by the cameras that use it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_cti: dict[Path, Any] = {}

    def get(self, cti: Path) -> Any:
        try:
            from harvesters.core import Harvester
        except ImportError:
            raise ConfigError(
                "type = 'gentl' needs the [genicam] extra: pip install 'line-inspector[genicam]'"
            ) from None
        with self._lock:
            if cti not in self._by_cti:
                if not cti.is_file():
                    raise ConfigError(f"{cti}: GenTL producer file not found")
                harvester = Harvester()
                harvester.add_file(str(cti), check_existence=True)
                harvester.update()
                self._by_cti[cti] = harvester
            return self._by_cti[cti]

    def refresh(self, cti: Path) -> Any:
        harvester = self.get(cti)
        with self._lock:
            harvester.update()  # a replugged camera shows up again only after an update
        return harvester


HARVESTERS = _Harvesters()


class GenTlSource(IndustrialSource[GenTlSettings]):
    def __init__(self, settings: GenTlSettings) -> None:
        super().__init__(settings, f"{settings.source} via {settings.cti.name}")
        self.cti = settings.cti

    def _connect(self) -> Any:
        harvester = HARVESTERS.refresh(self.cti)
        devices = harvester.device_info_list
        kind, value = parse_selector(self.settings.source)
        try:
            if kind == "index":
                return harvester.create(int(value))
            return harvester.create(_selector(self.settings.source))
        except (ValueError, IndexError) as exc:
            raise self._fault(
                f"{self.settings.source} not among the "
                f"{len(devices)} devices of {self.cti.name} ({first_line(exc)})"
            ) from None
        except Exception as exc:
            raise self._cannot_open(exc) from None

    def _start(self, device: Any) -> None:
        apply_features(device.remote_device.node_map, self.settings.features, self.settings.id)
        device.start()

    def _discard(self, device: Any) -> None:
        device.destroy()

    def _trigger(self, device: Any) -> None:
        device.remote_device.node_map.TriggerSoftware.execute()

    def _fetch(self, device: Any) -> Any | None:
        try:
            return device.fetch(timeout=self.settings.read_timeout_s)
        except Exception as exc:
            if type(exc).__name__ == "TimeoutException":
                return None
            raise

    def _block_id(self, buffer: Any) -> int | None:
        module = buffer.module
        block_id = int(module.frame_id)
        return block_id if module.is_complete() else None

    def _pixels(self, device: Any, buffer: Any) -> tuple[Any, int, int, str]:
        component = buffer.payload.components[0]
        return (
            component.data, int(component.width), int(component.height),
            str(component.data_format),
        )  # fmt: skip

    def _timestamp_ns(self, buffer: Any) -> int | None:
        try:
            value = int(buffer.timestamp_ns)
        except Exception:  # GenTL NotAvailable: the device has no clock to share
            return None
        return value or None

    def _release(self, buffer: Any) -> None:
        buffer.queue()  # what leaving ``with buffer`` does

    def _frame_rate(self, device: Any) -> float | None:
        node_map = device.remote_device.node_map
        if node_map.has_node("AcquisitionFrameRate"):
            return float(node_map.AcquisitionFrameRate.value)
        return None

    def _stop(self, device: Any) -> None:
        try:
            device.stop()
        finally:
            device.destroy()


PLUGIN = SourcePlugin(GenTlSettings, GenTlSource)
