"""Mutated .qcm files: both readers raise only format errors, never crash, and agree.

Mutations of valid (and catalogue) files: bit flips, truncation, deletions, splices from
other files, and rewrites of preamble and record fields to edge values; half of the
examples then recompute the header CRC (and the tensor CRCs) so the mutation reaches the
structural rules behind the checksum. The Python reader and the C reader check the rules
in the same order, so they must also report the same rule.
"""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from qcore.format import errors as E
from qcore.format import layout as L
from qcore.format import load_tensors
from qcore.format.native import CReader

_spec = importlib.util.spec_from_file_location(
    "make_corrupt_catalogue", Path(__file__).with_name("make_corrupt_catalogue.py"))
catalogue_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(catalogue_module)

VALID = list(catalogue_module.valid_files().values())
SEEDS = VALID + list(catalogue_module.catalogue().values())
EDGE = [0, 1, 2, 7, 8, 63, 64, 65, 127, 128, 255, 256, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 1 << 32,
        (1 << 63) - 1, 1 << 63, (1 << 64) - 1]
FIELD_MASKS = {"B": 0xFF, "H": 0xFFFF, "I": 0xFFFFFFFF, "Q": (1 << 64) - 1}


def _fields(fmt: str) -> list[tuple[int, str]]:
    """(offset, code) of every integer field of a little-endian struct format."""
    out, offset = [], 0
    spec = fmt.lstrip("<")
    count = ""
    for ch in spec:
        if ch.isdigit():
            count += ch
            continue
        n = int(count or 1)
        count = ""
        if ch == "s":
            offset += n
            continue
        for _ in range(n):
            out.append((offset, ch))
            offset += struct.calcsize("<" + ch)
    return out


PREAMBLE_FIELDS = _fields(L.PREAMBLE.format)
RECORD_FIELDS = _fields(L.RECORD.format)


def _fix_checksums(buf: bytearray) -> None:
    """Recompute tensor and header CRCs where the layout fields allow it."""
    if len(buf) < L.PREAMBLE_SIZE:
        return
    pre = L.PREAMBLE.unpack_from(buf, 0)
    d0, dl, n = pre[6], pre[7], pre[8]
    if d0 > len(buf) or dl > len(buf) - d0:
        return
    for i in range(min(n, (dl // L.RECORD_SIZE))):
        at = d0 + i * L.RECORD_SIZE
        offset, size = struct.unpack_from("<QQ", buf, at)
        if offset <= len(buf) and size <= len(buf) - offset:
            struct.pack_into("<I", buf, at + 52, L.crc32c(bytes(buf[offset:offset + size])))
    crc = L.crc32c(bytes(buf[d0:d0 + dl]), L.crc32c(bytes(buf[:60])))
    struct.pack_into("<I", buf, 60, crc)


@st.composite
def mutated_files(draw) -> bytes:
    buf = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "truncate", "delete", "splice", "preamble", "record", "byte"]))
        size = len(buf)
        if kind == "flip" and size:
            pos = draw(st.integers(0, size - 1))
            buf[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "truncate":
            del buf[draw(st.integers(0, size)):]
        elif kind == "delete" and size:
            start = draw(st.integers(0, size - 1))
            del buf[start:start + draw(st.integers(1, 64))]
        elif kind == "splice":
            other = draw(st.sampled_from(SEEDS))
            if other:
                start = draw(st.integers(0, len(other) - 1))
                chunk = other[start:start + draw(st.integers(1, 256))]
                at = draw(st.integers(0, size))
                if draw(st.booleans()):
                    buf[at:at + len(chunk)] = chunk
                else:
                    buf[at:at] = chunk
        elif kind == "preamble" and size >= L.PREAMBLE_SIZE:
            offset, code = draw(st.sampled_from(PREAMBLE_FIELDS))
            value = draw(st.sampled_from(EDGE) | st.integers(0, FIELD_MASKS[code]))
            struct.pack_into("<" + code, buf, offset, value & FIELD_MASKS[code])
        elif kind == "record" and size >= L.PREAMBLE_SIZE:
            d0, n = struct.unpack_from("<Q", buf, 32)[0], struct.unpack_from("<I", buf, 48)[0]
            if n and d0 + n * L.RECORD_SIZE <= size:
                at = d0 + draw(st.integers(0, n - 1)) * L.RECORD_SIZE
                offset, code = draw(st.sampled_from(RECORD_FIELDS))
                value = draw(st.sampled_from(EDGE) | st.integers(0, FIELD_MASKS[code]))
                struct.pack_into("<" + code, buf, at + offset, value & FIELD_MASKS[code])
        elif kind == "byte" and size:
            buf[draw(st.integers(0, size - 1))] = draw(st.sampled_from([0, 1, 2, 5, 9, 0x7F, 0x80, 0xC0, 0xFF]))
    if draw(st.booleans()):
        _fix_checksums(buf)
    return bytes(buf)


@st.composite
def structural_mutations(draw) -> bytes:
    """Rewrites inside the directory of a valid file, checksums always recomputed: these
    reach the record, reference, name-index and metadata rules."""
    buf = bytearray(draw(st.sampled_from([v for v in VALID if len(v) > 1000])))
    d0 = struct.unpack_from("<Q", buf, 32)[0]
    n, _, names_length = struct.unpack_from("<III", buf, 48)
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(["record", "record", "index", "names", "metadata"]))
        if where == "record":
            at = d0 + draw(st.integers(0, n - 1)) * L.RECORD_SIZE
            offset, code = draw(st.sampled_from(RECORD_FIELDS))
            old = struct.unpack_from("<" + code, buf, at + offset)[0]
            value = draw(st.sampled_from(EDGE) | st.integers(0, 20) | st.sampled_from([old + 1, old - 1, old + 64]))
            struct.pack_into("<" + code, buf, at + offset, value & FIELD_MASKS[code])
        elif where == "index":
            at = d0 + n * L.RECORD_SIZE + 4 * draw(st.integers(0, n - 1))
            struct.pack_into("<I", buf, at, draw(st.integers(0, n + 1)))
        else:
            start = d0 + n * (L.RECORD_SIZE + 4) + (0 if where == "names" else names_length)
            end = start + names_length if where == "names" else len(buf)
            if end > start:
                buf[draw(st.integers(start, end - 1))] = draw(st.integers(0, 255))
    _fix_checksums(buf)
    return bytes(buf)


@settings(max_examples=300)
@given(data=structural_mutations())
def test_structural_mutations_readers_agree(tmp_path_factory, data):
    path = tmp_path_factory.getbasetemp() / "fuzz-structural.qcm"
    assert python_verdict(path, data) == c_verdict(data)


def python_verdict(path: Path, data: bytes) -> tuple[str, object]:
    path.write_bytes(data)
    try:
        with load_tensors(path) as f:
            tensors = {name: f[name] for name in f}
            infos = [(i.name, i.element_type, i.shape, i.offset) for i in f.infos()]
            return "ok", (repr(f.metadata), infos, len(tensors))
    except E.QcmError as exc:
        return type(exc).__name__, None


def c_verdict(data: bytes) -> tuple[str, object]:
    try:
        reader = CReader(data)
    except E.QcmError as exc:
        return type(exc).__name__, None
    infos = []
    for i in range(reader.tensor_count):
        t = reader.tensor(i)
        assert reader.find(t["name"]) == i
        infos.append((t["name"], L.ELEMENT_TYPES[t["element_type"]].name, t["shape"], t["offset"]))
    data_tensors = sum(1 for i in range(reader.tensor_count) if reader.tensor(i)["role"] == L.ROLE_DATA)
    return "ok", (repr(reader.metadata()), infos, data_tensors)


@settings(max_examples=300)
@given(data=mutated_files())
def test_mutations_raise_only_format_errors_and_readers_agree(tmp_path_factory, data):
    path = tmp_path_factory.getbasetemp() / "fuzz.qcm"
    py = python_verdict(path, data)
    c = c_verdict(data)
    assert py == c


def test_seeds_are_accepted_or_rejected_identically(tmp_path):
    for k, data in enumerate(SEEDS):
        assert python_verdict(tmp_path / f"{k}.qcm", data) == c_verdict(data)


def test_regression_duplicate_key_with_unknown_type(tmp_path):
    """Two faults in one metadata entry: the value type is checked before the key order."""
    image = catalogue_module.Image(catalogue_module.write_bytes({}, {"k1": 1, "k2": 2}))
    at = image.entry_value_at("k2")
    image.buf[at - 2] = ord("1")  # "k2" -> "k1": a duplicate key ...
    image.buf[at] = 9             # ... whose value type is unknown
    data = image.fix_header_crc().bytes()
    assert python_verdict(tmp_path / "r.qcm", data) == c_verdict(data) == ("UnknownMetadataTypeError", None)


def test_random_bytes_with_valid_preamble(tmp_path):
    """Garbage directories behind a self-consistent preamble and header CRC."""
    rng = np.random.default_rng(4)
    for k in range(200):
        n = int(rng.integers(0, 4))
        directory = rng.integers(0, 256, int(rng.integers(0, 700)), dtype=np.uint8).tobytes()
        head = L.PREAMBLE.pack(L.MAGIC, L.BYTE_ORDER_MARK, 1, 0, 64, 64 + len(directory), 64, len(directory), n,
                               int(rng.integers(0, 3)), int(rng.integers(0, 40)), 0)[:60]
        crc = L.crc32c(directory, L.crc32c(head))
        data = head + crc.to_bytes(4, "little") + directory
        py = python_verdict(tmp_path / "r.qcm", data)
        assert py == c_verdict(data)
        assert py[0] != "ok" or n == 0
