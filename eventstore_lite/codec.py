"""Hand-rolled protobuf encoding of ``ReadResp`` event messages.

Reads and subscriptions send one ``ReadResp`` per event; building them through the
protobuf classes costs more than concatenating the wire format directly, so the
Read RPC yields pre-encoded bytes (its response serializer is the identity).
The layout follows ``streams.proto``: ReadResp.event(1) -> ReadEvent
{event(1): RecordedEvent, commit_position(3)}.
"""

from __future__ import annotations

import uuid
from typing import Callable, Final

# A stored event as selected from SQLite, in this column order.
Row = tuple[int, str, int, str, str, str, int, bytes, bytes]
POSITION: Final = 0
STREAM: Final = 1
REVISION: Final = 2
EVENT_ID: Final = 3
TYPE: Final = 4
CONTENT_TYPE: Final = 5
CREATED: Final = 6
METADATA: Final = 7
DATA: Final = 8

_SMALL_VARINTS = [bytes((i,)) for i in range(128)]


def varint(value: int) -> bytes:
    """Encode a non-negative int as a protobuf varint."""
    if value < 128:
        return _SMALL_VARINTS[value]
    out = bytearray()
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    return tag + varint(len(payload)) + payload


def _map_entry(key: bytes, value: str) -> bytes:
    encoded = value.encode()
    return _field(b"\x32", b"\x0a" + varint(len(key)) + key + b"\x12" + varint(len(encoded)) + encoded)


_TYPE_KEY, _CONTENT_TYPE_KEY, _CREATED_KEY = b"type", b"content-type", b"created"
# Event types and content types repeat endlessly: cache their encoded map entries.
_ENTRY_CACHE: dict[tuple[bytes, str], bytes] = {}
_ENTRY_CACHE_LIMIT = 10_000


def _cached_entry(key: bytes, value: str) -> bytes:
    entry = _ENTRY_CACHE.get((key, value))
    if entry is None:
        entry = _map_entry(key, value)
        if len(_ENTRY_CACHE) >= _ENTRY_CACHE_LIMIT:
            _ENTRY_CACHE.clear()
        _ENTRY_CACHE[(key, value)] = entry
    return entry


def uuid_string(event_id: str) -> bytes:
    """``UUID{string}`` message body."""
    encoded = event_id.encode()
    return b"\x12" + varint(len(encoded)) + encoded


def uuid_structured(event_id: str) -> bytes:
    """``UUID{structured{msb, lsb}}`` message body, as the server's Uuid.ToDto."""
    raw = uuid.UUID(event_id).bytes
    msb = int.from_bytes(raw[:8], "big") & 0xFFFFFFFFFFFFFFFF
    lsb = int.from_bytes(raw[8:], "big") & 0xFFFFFFFFFFFFFFFF
    return _field(b"\x0a", b"\x08" + varint(msb) + b"\x10" + varint(lsb))


def recorded_event(row: Row, id_encoder: Callable[[str], bytes] = uuid_string) -> bytes:
    """The ``RecordedEvent`` message for a stored row (commit = prepare = position)."""
    position = varint(row[POSITION])
    stream = row[STREAM].encode()
    metadata, data = row[METADATA], row[DATA]
    return b"".join(
        (
            _field(b"\x0a", id_encoder(row[EVENT_ID])),
            _field(b"\x12", b"\x1a" + varint(len(stream)) + stream),
            b"\x18",
            varint(row[REVISION]),
            b"\x20",
            position,
            b"\x28",
            position,
            _cached_entry(_TYPE_KEY, row[TYPE]),
            _cached_entry(_CONTENT_TYPE_KEY, row[CONTENT_TYPE]),
            _map_entry(_CREATED_KEY, str(row[CREATED])),
            b"\x3a",
            varint(len(metadata)),
            metadata,
            b"\x42",
            varint(len(data)),
            data,
        )
    )


def read_resp_event(row: Row, id_encoder: Callable[[str], bytes] = uuid_string) -> bytes:
    """A whole serialized ``ReadResp{event}`` for a stored row."""
    read_event = _field(b"\x0a", recorded_event(row, id_encoder)) + b"\x18" + varint(row[POSITION])
    return _field(b"\x0a", read_event)
