"""The typed key-value metadata section (docs/FORMAT.md, "Metadata").

Values are strings, 64-bit signed integers, 64-bit floats, bools, or homogeneous arrays of
one of those. Keys are 1..256 characters of ``[A-Za-z0-9_.-]``, stored in ascending byte
order. Keys under ``qcore.graph.`` belong to the model graph (docs/GRAPH.md) and require an
integer ``qcore.graph.schema_version`` >= 1.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Mapping
from typing import Any, Union

import numpy as np

from . import errors as E
from .layout import MAX_KEY, MAX_METADATA

STRING, INT64, FLOAT64, BOOL, ARRAY = 1, 2, 3, 4, 5
GRAPH_PREFIX = "qcore.graph."
GRAPH_SCHEMA_VERSION_KEY = "qcore.graph.schema_version"
_KEY = re.compile(r"[A-Za-z0-9_.\-]{1,%d}" % MAX_KEY)
_I64 = struct.Struct("<q")
_F64 = struct.Struct("<d")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")

MetadataValue = Union[str, int, float, bool, list]


# ---- writing ----------------------------------------------------------------------------

def _scalar_type(value: Any, key: str) -> int:
    if isinstance(value, (bool, np.bool_)):
        return BOOL
    if isinstance(value, (int, np.integer)):
        if not -(1 << 63) <= int(value) < (1 << 63):
            raise E.BadMetadataValueError(f"key {key!r}: integer {int(value)} does not fit in int64")
        return INT64
    if isinstance(value, (float, np.floating)):
        return FLOAT64
    if isinstance(value, str):
        if "\0" in value:
            raise E.BadMetadataValueError(f"key {key!r}: strings may not contain NUL")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise E.BadMetadataValueError(f"key {key!r}: string is not encodable as UTF-8 ({exc})") from None
        return STRING
    raise E.UnknownMetadataTypeError(
        f"key {key!r}: {type(value).__name__} is not a metadata type (str, int, float, bool, or a list of one)"
    )


def _encode_scalar(kind: int, value: Any) -> bytes:
    if kind == STRING:
        raw = value.encode("utf-8")
        return _U32.pack(len(raw)) + raw + b"\0"
    if kind == INT64:
        return _I64.pack(int(value))
    if kind == FLOAT64:
        return _F64.pack(float(value))
    return b"\x01" if value else b"\x00"


def encode_value(key: str, value: Any) -> bytes:
    """Encode one value (type tag and payload); raises the metadata-value/-type errors."""
    if isinstance(value, np.ndarray):
        if value.ndim != 1:
            raise E.BadMetadataValueError(f"key {key!r}: arrays must be 1-D, got shape {value.shape}")
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        kinds = {_scalar_type(v, key) for v in value}
        if len(kinds) > 1:
            raise E.BadMetadataValueError(f"key {key!r}: array mixes element types; arrays are homogeneous")
        kind = kinds.pop() if kinds else INT64
        if kind == INT64:
            body = np.asarray([int(v) for v in value], dtype="<i8").tobytes()
        elif kind == FLOAT64:
            body = np.asarray([float(v) for v in value], dtype="<f8").tobytes()
        elif kind == BOOL:
            body = bytes(1 if v else 0 for v in value)
        else:
            body = b"".join(_encode_scalar(STRING, v) for v in value)
        return bytes([ARRAY, kind]) + _U64.pack(len(value)) + body
    kind = _scalar_type(value, key)
    return bytes([kind]) + _encode_scalar(kind, value)


def check_key(key: Any) -> str:
    """Return ``key`` if it is a valid metadata key, else raise BadMetadataKeyError."""
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise E.BadMetadataKeyError(
            f"metadata key {key!r} must be 1..{MAX_KEY} characters of [A-Za-z0-9_.-]"
        )
    return key


def check_graph_schema(keys, value_of) -> None:
    """Rule graph-schema over a set of keys; ``value_of(key)`` gives a decoded value."""
    if any(k.startswith(GRAPH_PREFIX) for k in keys):
        version = value_of(GRAPH_SCHEMA_VERSION_KEY) if GRAPH_SCHEMA_VERSION_KEY in keys else None
        if not (isinstance(version, int) and not isinstance(version, bool) and version >= 1):
            raise E.GraphSchemaError(
                f"keys under {GRAPH_PREFIX!r} need an integer {GRAPH_SCHEMA_VERSION_KEY!r} >= 1, "
                f"got {version!r}"
            )


def encode_metadata(metadata: Mapping[str, Any] | None) -> tuple[bytes, int]:
    """Encode a metadata mapping; returns the section bytes and the entry count.

    Keys are written in ascending order, so equal mappings give equal bytes.

    Raises
    ------
    BadMetadataKeyError, BadMetadataValueError, UnknownMetadataTypeError,
    TooManyMetadataError, GraphSchemaError
    """
    if not metadata:
        return b"", 0
    if len(metadata) > MAX_METADATA:
        raise E.TooManyMetadataError(f"{len(metadata)} metadata entries, the cap is {MAX_METADATA}")
    keys = sorted(check_key(k) for k in metadata)
    check_graph_schema(set(keys), lambda k: metadata[k])
    parts = []
    for key in keys:
        raw = key.encode("ascii")
        parts.append(_U16.pack(len(raw)) + raw + b"\0" + encode_value(key, metadata[key]))
    return b"".join(parts), len(keys)


# ---- reading ----------------------------------------------------------------------------

def _utf8(raw: bytes, key: str) -> str:
    if b"\0" in raw:
        raise E.BadMetadataValueError(f"key {key!r}: string contains NUL")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise E.BadMetadataValueError(f"key {key!r}: string is not valid UTF-8 ({exc.reason})") from None


def decode_metadata(section: bytes | memoryview, count: int) -> dict[str, MetadataValue]:
    """Parse and validate the metadata section (rules metadata-key .. graph-schema).

    Returns
    -------
    dict
        key -> str, int, float, bool, or list of one of those, in key order.
    """
    buf = bytes(section)
    end = len(buf)
    pos = 0
    out: dict[str, MetadataValue] = {}
    prev: bytes | None = None
    for entry in range(count):
        at = f"metadata entry {entry} at byte {pos} of the section"
        if end - pos < 2:
            raise E.MetadataBoundsError(f"{at}: runs past the end of the section")
        key_length = _U16.unpack_from(buf, pos)[0]
        if key_length == 0 or key_length > MAX_KEY:
            raise E.BadMetadataKeyError(f"{at}: key length {key_length} not in 1..{MAX_KEY}")
        pos += 2
        if end - pos < key_length + 2:
            raise E.MetadataBoundsError(f"{at}: key runs past the end of the section")
        raw_key = buf[pos:pos + key_length]
        if not _KEY.fullmatch(raw_key.decode("latin-1")) or buf[pos + key_length] != 0:
            raise E.BadMetadataKeyError(f"{at}: key {raw_key!r} is not [A-Za-z0-9_.-] followed by NUL")
        key = raw_key.decode("ascii")
        pos += key_length + 1
        kind = buf[pos]
        pos += 1
        array = kind == ARRAY
        count_items = 1
        if array:
            if end - pos < 9:
                raise E.MetadataBoundsError(f"key {key!r}: array header runs past the end of the section")
            kind = buf[pos]
            if not STRING <= kind <= BOOL:
                raise E.UnknownMetadataTypeError(f"key {key!r}: array element type {kind} unknown")
            count_items = _U64.unpack_from(buf, pos + 1)[0]
            pos += 9
        elif not STRING <= kind <= BOOL:
            raise E.UnknownMetadataTypeError(f"key {key!r}: value type {kind} unknown")
        remaining = end - pos
        if kind in (INT64, FLOAT64):
            if count_items > remaining // 8:
                raise E.MetadataBoundsError(f"key {key!r}: {count_items} 8-byte values run past the section")
            values = np.frombuffer(buf, "<i8" if kind == INT64 else "<f8", count_items, pos).tolist()
            pos += 8 * count_items
        elif kind == BOOL:
            if count_items > remaining:
                raise E.MetadataBoundsError(f"key {key!r}: {count_items} bools run past the section")
            raw = buf[pos:pos + count_items]
            bad = next((b for b in raw if b > 1), None)
            if bad is not None:
                raise E.BadMetadataValueError(f"key {key!r}: bool byte {bad} is not 0 or 1")
            values = [b == 1 for b in raw]
            pos += count_items
        else:
            if count_items > remaining // 5:
                raise E.MetadataBoundsError(f"key {key!r}: {count_items} strings cannot fit in the section")
            values = []
            for _ in range(count_items):
                if end - pos < 4:
                    raise E.MetadataBoundsError(f"key {key!r}: string length runs past the section")
                length = _U32.unpack_from(buf, pos)[0]
                pos += 4
                if end - pos < length + 1:
                    raise E.MetadataBoundsError(f"key {key!r}: string of {length} bytes runs past the section")
                text = _utf8(buf[pos:pos + length], key)
                if buf[pos + length] != 0:
                    raise E.BadMetadataValueError(f"key {key!r}: string not followed by NUL")
                values.append(text)
                pos += length + 1
        # Order is checked once the entry has been parsed (as the C reader does).
        if prev is not None:
            if prev == raw_key:
                raise E.DuplicateKeyError(f"key {key!r} appears twice")
            if prev > raw_key:
                raise E.MetadataOrderError(f"key {key!r} follows {prev.decode()!r}; keys must ascend")
        prev = raw_key
        out[key] = values if array else values[0]
    if pos != end:
        raise E.MetadataBoundsError(f"{end - pos} bytes left after the last metadata entry")
    check_graph_schema(set(out), out.__getitem__)
    return out
