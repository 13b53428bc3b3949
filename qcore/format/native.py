"""The C reader (csrc/src/format.c) from Python: same rules, same error classes.

Used by the tests to hold the two readers to the same verdict, and usable to validate a
buffer the way a board running the C runtime will.
"""

from __future__ import annotations

from typing import Any

from .._native import ffi, lib
from . import errors as E


class CReader:
    """A C ``qc_qcm_reader`` over a bytes-like buffer (kept alive by this object).

    Raises
    ------
    QcmError
        The subclass mapped from the C status (``E.STATUS_ERRORS``), with the offending
        tensor index and value the C reader reported.
    """

    def __init__(self, data: bytes | bytearray | memoryview, *, verify: bool = True) -> None:
        self._data = data
        self._buf = ffi.from_buffer("uint8_t[]", data)
        self.reader = ffi.new("qc_qcm_reader *")
        self._check(lib.qc_qcm_open_memory(self._buf, len(self._buf), self.reader), "qc_qcm_open_memory")
        if verify:
            self._check(lib.qc_qcm_verify(self.reader), "qc_qcm_verify")

    def _check(self, status: int, what: str) -> None:
        if status == lib.QC_OK:
            return
        r = self.reader
        detail = (f"{what}: {ffi.string(lib.qc_status_string(status)).decode()} "
                  f"(qc_status {status}; tensor #{r.error_tensor}, entry {r.error_entry}, "
                  f"value {r.error_value}, expected {r.error_expected})")
        cls = E.STATUS_ERRORS.get(status)
        if cls is None:
            from .._native import check

            check(status, what)
        raise cls(detail)

    @property
    def tensor_count(self) -> int:
        """Number of tensor records the C reader found."""
        return lib.qc_qcm_tensor_count(self.reader)

    def tensor(self, index: int) -> dict[str, Any]:
        """The decoded record ``index`` as a dict (``data`` is the stored bytes)."""
        info = ffi.new("qc_qcm_tensor *")
        self._check(lib.qc_qcm_tensor_info(self.reader, index, info), "qc_qcm_tensor_info")
        return {
            "name": ffi.string(info.name, info.name_length).decode("utf-8"),
            "element_type": info.element_type,
            "shape": tuple(info.shape[d] for d in range(info.rank)),
            "data": bytes(ffi.buffer(info.data, info.data_size)),
            "offset": info.data_offset,
            "crc32c": info.crc32c,
            "role": info.role,
            "scheme": info.scheme,
            "axis": info.axis,
            "block_size": info.block_size,
            "convention": info.convention,
            "scale_index": info.scale_index,
            "zero_point_index": info.zero_point_index,
            "owner_index": info.owner_index,
        }

    def find(self, name: str) -> int | None:
        """Table index of ``name`` by binary search over the name index, or None."""
        index = ffi.new("uint32_t *")
        status = lib.qc_qcm_find_tensor(self.reader, name.encode("utf-8"), index)
        if status == lib.QC_E_FORMAT_NOT_FOUND:
            return None
        self._check(status, "qc_qcm_find_tensor")
        return index[0]

    def metadata(self) -> dict[str, Any]:
        """Every metadata entry, decoded through the C accessors."""
        out: dict[str, Any] = {}
        cursor = ffi.new("uint64_t *", 0)
        entry = ffi.new("qc_qcm_metadata *")
        while lib.qc_qcm_metadata_next(self.reader, cursor, entry) == lib.QC_OK:
            key = ffi.string(entry.key, entry.key_length).decode("ascii")
            out[key] = _decode(entry)
        return out


def _scalar(kind: int, entry) -> Any:
    if kind == lib.QC_QCM_META_INT64:
        return int(entry.int_value)
    if kind == lib.QC_QCM_META_FLOAT64:
        return float(entry.float_value)
    if kind == lib.QC_QCM_META_BOOL:
        return bool(entry.int_value)
    return ffi.string(entry.string, entry.count).decode("utf-8") if entry.count else ""


def _decode(entry) -> Any:
    import numpy as np

    if entry.type != lib.QC_QCM_META_ARRAY:
        return _scalar(entry.type, entry)
    raw = bytes(ffi.buffer(entry.array_data, entry.array_bytes)) if entry.array_bytes else b""
    kind = entry.element_type
    if kind == lib.QC_QCM_META_INT64:
        return np.frombuffer(raw, "<i8").tolist()
    if kind == lib.QC_QCM_META_FLOAT64:
        return np.frombuffer(raw, "<f8").tolist()
    if kind == lib.QC_QCM_META_BOOL:
        return [b == 1 for b in raw]
    text = ffi.new("char **")
    length = ffi.new("uint64_t *")
    values = []
    for k in range(entry.count):
        lib.qc_qcm_metadata_array_string(entry, k, text, length)
        values.append(ffi.string(text[0], length[0]).decode("utf-8") if length[0] else "")
    return values


def c_validate(data: bytes | bytearray | memoryview, *, verify: bool = True) -> None:
    """Run the C reader over ``data``; raise the rule's error class if it rejects it."""
    CReader(data, verify=verify)
