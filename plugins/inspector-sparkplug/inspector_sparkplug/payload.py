"""Sparkplug B payloads, encoded by hand: the few fields of Eclipse Tahu's ``sparkplug_b.proto``
(``Payload`` and ``Metric``) that an edge node writes, and enough decoding to read a command.

Protocol Buffers on the wire are only varints, 64-bit little-endian numbers and
length-prefixed bytes; writing them here spares the daemon a protobuf runtime and a generated
module for four scalar types. Field numbers are the specification's and must never change.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

# Payload fields
_P_TIMESTAMP, _P_METRICS, _P_SEQ = 1, 2, 3
# Metric fields
_M_NAME, _M_ALIAS, _M_TIMESTAMP, _M_DATATYPE, _M_IS_NULL = 1, 2, 3, 4, 7
_M_INT, _M_LONG, _M_FLOAT, _M_DOUBLE, _M_BOOLEAN, _M_STRING = 10, 11, 12, 13, 14, 15

_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5
_U64 = (1 << 64) - 1


class DataType(IntEnum):
    """The specification's data type codes, for the types this edge node publishes."""

    UINT64 = 8
    DOUBLE = 10
    BOOLEAN = 11
    STRING = 12


Value = int | float | bool | str


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    datatype: DataType
    value: Value | None  # None: published with is_null, as the specification asks
    timestamp_ms: int


def _varint(value: int) -> bytes:
    if not 0 <= value <= _U64:
        raise ValueError(f"not a uint64: {value}")
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _bytes_field(field: int, data: bytes) -> bytes:
    return _key(field, _BYTES) + _varint(len(data)) + data


def _metric(metric: Metric) -> bytes:
    out = _bytes_field(_M_NAME, metric.name.encode())
    out += _key(_M_TIMESTAMP, _VARINT) + _varint(metric.timestamp_ms)
    out += _key(_M_DATATYPE, _VARINT) + _varint(int(metric.datatype))
    value, kind = metric.value, metric.datatype
    if value is None:
        return out + _key(_M_IS_NULL, _VARINT) + b"\x01"
    if kind is DataType.UINT64 and isinstance(value, int) and not isinstance(value, bool):
        return out + _key(_M_LONG, _VARINT) + _varint(value)
    if kind is DataType.DOUBLE and isinstance(value, int | float) and not isinstance(value, bool):
        return out + _key(_M_DOUBLE, _FIXED64) + struct.pack("<d", float(value))
    if kind is DataType.BOOLEAN and isinstance(value, bool):
        return out + _key(_M_BOOLEAN, _VARINT) + (b"\x01" if value else b"\x00")
    if kind is DataType.STRING and isinstance(value, str):
        return out + _bytes_field(_M_STRING, value.encode())
    raise ValueError(f"metric {metric.name}: {value!r} is not a {kind.name}")


def encode_payload(timestamp_ms: int, metrics: list[Metric], seq: int | None) -> bytes:
    """A ``Payload``: the time it is sent, its metrics, and its sequence number (NDEATH has
    none)."""
    out = _key(_P_TIMESTAMP, _VARINT) + _varint(timestamp_ms)
    for metric in metrics:
        out += _bytes_field(_P_METRICS, _metric(metric))
    if seq is not None:
        out += _key(_P_SEQ, _VARINT) + _varint(seq)
    return out


# -- decoding, for the commands a host sends (NCMD) ------------------------------------------

Field = tuple[int, int, int | bytes]  # (number, wire type, value)


def _read_varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise ValueError("truncated or overlong varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, at


def _fields(data: bytes) -> list[Field]:
    fields: list[Field] = []
    at = 0
    while at < len(data):
        key, at = _read_varint(data, at)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == _VARINT:
            value, at = _read_varint(data, at)
        elif wire in (_FIXED64, _FIXED32):
            size = 8 if wire == _FIXED64 else 4
            if at + size > len(data):
                raise ValueError("truncated fixed-size field")
            value, at = data[at : at + size], at + size
        elif wire == _BYTES:
            size, at = _read_varint(data, at)
            if at + size > len(data):
                raise ValueError("truncated length-delimited field")
            value, at = data[at : at + size], at + size
        else:
            raise ValueError(f"unsupported wire type {wire}")
        fields.append((number, wire, value))
    return fields


@dataclass(frozen=True, slots=True)
class Command:
    """One metric of a command: its name (or alias) and value, where it is a scalar."""

    name: str | None
    alias: int | None
    value: Value | None


def decode_commands(data: bytes) -> list[Command]:
    """The metrics of an NCMD or DCMD payload; ValueError for bytes that are no payload."""
    commands: list[Command] = []
    for number, _wire, raw in _fields(data):
        if number != _P_METRICS or not isinstance(raw, bytes):
            continue
        name: str | None = None
        alias: int | None = None
        datatype: int | None = None
        value: Value | None = None
        for field, _kind, item in _fields(raw):
            if field == _M_NAME and isinstance(item, bytes):
                name = item.decode(errors="replace")
            elif field == _M_ALIAS and isinstance(item, int):
                alias = item
            elif field == _M_DATATYPE and isinstance(item, int):
                datatype = item
            elif field in (_M_INT, _M_LONG) and isinstance(item, int):
                value = item
            elif field == _M_BOOLEAN and isinstance(item, int):
                value = bool(item)
            elif field == _M_DOUBLE and isinstance(item, bytes):
                value = struct.unpack("<d", item)[0]
            elif field == _M_FLOAT and isinstance(item, bytes):
                value = struct.unpack("<f", item)[0]
            elif field == _M_STRING and isinstance(item, bytes):
                value = item.decode(errors="replace")
        if datatype == DataType.BOOLEAN and isinstance(value, int):
            value = bool(value)
        commands.append(Command(name, alias, value))
    return commands
