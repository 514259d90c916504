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


class GenTlSource:
    live = True
    paced = False

    def __init__(self, settings: GenTlSettings) -> None:
        self.settings = settings
        self.cti = settings.cti
        self.description = f"{settings.source} via {settings.cti.name}"
        self._acquirer: Any | None = None
        self._lost = LostFrames()
        self._triggered = trigger_mode_on(settings.features)
        hz = settings.software_trigger_hz
        self._pacer = TriggerPacer(hz) if hz is not None else None

    @property
    def lost(self) -> int:
        return self._lost.lost

    @property
    def is_open(self) -> bool:
        return self._acquirer is not None

    def open(self) -> None:
        self.close()
        harvester = HARVESTERS.refresh(self.cti)
        devices = harvester.device_info_list
        kind, value = parse_selector(self.settings.source)
        try:
            if kind == "index":
                acquirer = harvester.create(int(value))
            else:
                acquirer = harvester.create(_selector(self.settings.source))
        except (ValueError, IndexError) as exc:
            raise SourceError(
                f"camera {self.settings.id}: {self.settings.source} not among the "
                f"{len(devices)} devices of {self.cti.name} ({first_line(exc)})"
            ) from None
        except Exception as exc:
            raise SourceError(
                f"camera {self.settings.id}: cannot open {self.settings.source}: {first_line(exc)}"
            ) from None
        try:
            apply_features(
                acquirer.remote_device.node_map, self.settings.features, self.settings.id
            )
            acquirer.start()
        except BaseException:
            acquirer.destroy()
            raise
        self._acquirer = acquirer
        self._lost.restart()

    def _fire_trigger(self) -> None:
        if self._pacer is None or self._acquirer is None:
            return
        self._pacer.due()
        self._acquirer.remote_device.node_map.TriggerSoftware.execute()

    def grab(self) -> Grab | None:
        if self._acquirer is None:
            raise SourceError(f"camera {self.settings.id}: {self.description} is not open")
        self._fire_trigger()
        try:
            buffer = self._acquirer.fetch(timeout=self.settings.read_timeout_s)
        except Exception as exc:
            if type(exc).__name__ == "TimeoutException":
                if self._triggered:
                    raise NoFrameYet() from None
                raise SourceError(
                    f"camera {self.settings.id}: no frame within {self.settings.read_timeout_s:g} s"
                ) from None
            raise SourceError(
                f"camera {self.settings.id}: {self.description}: {first_line(exc)}"
            ) from None
        with buffer:  # requeued on leaving the block: convert first, then hand it back
            module = buffer.module
            block_id = int(module.frame_id)
            if not module.is_complete():
                self._lost.incomplete()
                raise NoFrameYet()
            self._lost.seen(block_id)
            component = buffer.payload.components[0]
            image = to_bgr(
                component.data, int(component.width), int(component.height),
                str(component.data_format),
            )  # fmt: skip
            timestamp = _timestamp_ns(buffer)
        return Grab(image=image, frame_id=block_id, timestamp_ns=timestamp)

    def nominal_fps(self) -> float | None:
        if self._acquirer is None:
            return None
        node_map = self._acquirer.remote_device.node_map
        if node_map.has_node("AcquisitionFrameRate"):
            return float(node_map.AcquisitionFrameRate.value)
        return None

    def close(self) -> None:
        if self._acquirer is not None:
            try:
                self._acquirer.stop()
            finally:
                self._acquirer.destroy()
                self._acquirer = None


def _timestamp_ns(buffer: Any) -> int | None:
    try:
        value = int(buffer.timestamp_ns)
    except Exception:  # GenTL NotAvailable: the device has no clock to share
        return None
    return value or None


PLUGIN = SourcePlugin(GenTlSettings, GenTlSource)
