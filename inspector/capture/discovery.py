"""What a line engineer needs to write a camera's config: the cameras a GenTL producer or
pylon sees, and the features each one lets you set."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from inspector.capture.sources._industrial import parse_selector
from inspector.capture.sources.gentl import HARVESTERS, _selector
from inspector.capture.sources.pylon import _pylon, find_device
from inspector.capture.sources.usb import video_devices
from inspector.errors import SourceError

# GenApi EInterfaceType -> a word for the listing; categories, ports and registers are not
# features a config sets.
_KINDS = {2: "integer", 3: "boolean", 4: "command", 5: "float", 6: "string", 9: "enumeration"}
_ACCESS = {
    0: "not implemented",
    1: "not available",
    2: "write-only",
    3: "read-only",
    4: "read-write",
}


def _safe(read: Any) -> Any:
    try:
        return read()
    except Exception:  # a feature not readable in the camera's current state
        return None


def usb_cameras() -> list[dict[str, Any]]:
    """The V4L2 devices (UVC cameras), for ``source = "/dev/videoN"`` or its index."""
    return [
        {"producer": "v4l2", "index": Path(path).name.removeprefix("video"), "model": name,
         "name": path, "interface": "usb"}
        for path, name in video_devices()
    ]  # fmt: skip


def gentl_cameras(cti: Path) -> list[dict[str, Any]]:
    harvester = HARVESTERS.refresh(cti)
    return [
        {
            "producer": str(cti),
            "index": index,
            "vendor": _safe(lambda i=info: i.vendor),
            "model": _safe(lambda i=info: i.model),
            "serial": _safe(lambda i=info: i.serial_number),
            "name": _safe(lambda i=info: i.user_defined_name),
            "interface": _safe(lambda i=info: i.tl_type),
        }
        for index, info in enumerate(harvester.device_info_list)
    ]


def gentl_features(cti: Path, source: str) -> list[dict[str, Any]]:
    harvester = HARVESTERS.refresh(cti)
    kind, value = parse_selector(source)
    try:
        acquirer = harvester.create(int(value) if kind == "index" else _selector(source))
    except Exception as exc:
        raise SourceError(f"{source}: no such camera on {cti.name}: {exc}") from None
    try:
        features = []
        for node in acquirer.remote_device.node_map.nodes:
            info = node.node
            interface = info.principal_interface_type
            if interface not in _KINDS:
                continue
            access = info.get_access_mode()
            readable = access in (3, 4) and interface != 4
            features.append(
                {
                    "name": info.name,
                    "type": _KINDS[interface],
                    "access": _ACCESS.get(access, str(access)),
                    "value": _safe(lambda n=node: n.value) if readable else None,
                }
            )
        return features
    finally:
        acquirer.destroy()


def pylon_cameras() -> list[dict[str, Any]]:
    pylon, _ = _pylon()
    return [
        {
            "producer": "pylon",
            "index": index,
            "vendor": device.GetVendorName(),
            "model": device.GetModelName(),
            "serial": device.GetSerialNumber(),
            "name": device.GetUserDefinedName(),
            "interface": device.GetDeviceClass(),
        }
        for index, device in enumerate(pylon.TlFactory.GetInstance().EnumerateDevices())
    ]


def pylon_features(source: str) -> list[dict[str, Any]]:
    pylon, genicam = _pylon()
    factory = pylon.TlFactory.GetInstance()
    device = find_device(factory, source)
    if device is None:
        raise SourceError(f"{source}: no such pylon camera")
    camera = pylon.InstantCamera(factory.CreateDevice(device))
    camera.Open()
    try:
        features = []
        for node in camera.GetNodeMap().GetNodes():
            interface = node.GetNode().GetPrincipalInterfaceType()
            if interface not in _KINDS or not genicam.IsImplemented(node):
                continue
            writable, readable = genicam.IsWritable(node), genicam.IsReadable(node)
            access = "read-write" if writable and readable else (
                "write-only" if writable else "read-only" if readable else "not available"
            )  # fmt: skip
            features.append(
                {
                    "name": node.GetNode().GetName(),
                    "type": _KINDS[interface],
                    "access": access,
                    "value": _safe(node.ToString) if readable and interface != 4 else None,
                }
            )
        return features
    finally:
        camera.Close()
