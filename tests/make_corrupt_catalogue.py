"""Write the catalogue of hand-made corrupt .qcm files, one (or more) per validation rule.

Each file is a valid base file with exactly one rule broken; every other checksum and
size is recomputed so that the named rule is the first one a reader hits. A file is named
``<rule>[.<variant>].qcm`` after the rule of docs/FORMAT.md it breaks, and both readers
must reject it with that rule's error class (tests/test_format_catalogue.py).

    python tests/make_corrupt_catalogue.py OUTDIR [--valid]

``--valid`` also writes a few valid files (``valid.*.qcm``): the fuzzer's seed corpus.
"""

from __future__ import annotations

import argparse
import struct
import sys
import tempfile
from pathlib import Path

import numpy as np

from qcore.format import layout as L
from qcore.format import save_tensors
from qcore.reference.tensor import QuantizedTensor

# Field positions in layout.RECORD.
F_OFFSET, F_SIZE, F_NAME_OFFSET, F_NAME_LENGTH, F_ETYPE, F_RANK, F_ROLE, F_SCHEME, F_CONVENTION = range(9)
F_RESERVED0, F_AXIS, F_BLOCK, F_SCALE, F_ZERO_POINT, F_OWNER, F_CRC, F_RESERVED1, F_DIMS = range(9, 18)
# Field positions in layout.PREAMBLE.
P_MAGIC, P_MARK, P_VERSION, P_FLAGS, P_ALIGNMENT, P_FILE_SIZE, P_DIR_OFFSET, P_DIR_LENGTH = range(8)
P_TENSORS, P_METADATA, P_NAMES, P_CRC = range(8, 12)

# Table indices of the base file's records.
T_PLAIN, T_INT4, T_INT4_SCALE, T_INT4_ZP, T_PER_TENSOR, T_PT_SCALE, T_PT_ZP = range(7)
T_BLOCKED, T_BLOCKED_SCALE, T_BLOCKED_ZP, T_INT64 = range(7, 11)


def base_tensors() -> dict:
    """The content of the base file: every scheme, convention and a packed odd-sized tensor."""
    rng = np.random.default_rng(20261126)
    return {
        "t1": rng.standard_normal((3, 5)).astype(np.float32),
        "t2": QuantizedTensor(rng.integers(-8, 8, (5, 7)).astype(np.int8), np.linspace(0.1, 0.5, 5, dtype=np.float32),
                              np.array([0, 1, -1, 7, -8], np.int8), "int4", axis=0, convention="onnx"),
        "t3": QuantizedTensor(rng.integers(0, 256, (4, 4)).astype(np.uint8), np.array(0.05, np.float32),
                              np.array(128, np.uint8), "uint8", convention="tflite"),
        "t4": QuantizedTensor(rng.integers(-128, 128, (3, 10)).astype(np.int8),
                              rng.uniform(0.01, 1, (3, 3)).astype(np.float32), np.zeros((3, 3), np.int8), "int8",
                              axis=1, block_size=4, convention="pytorch"),
        "t5": np.array([-(1 << 62), 12345], np.int64),
    }


def base_metadata() -> dict:
    return {
        "k1": "hello", "k2": 42, "k3": 1.5, "k4": True, "k5": [1, 2, 3], "k6": ["a", "bc"], "k7": [0.5],
        "k8": [True, False], "qcore.graph.json": '{"nodes": []}', "qcore.graph.schema_version": 1,
    }


def v2_tensors() -> dict:
    """Content that needs format version 2: an omitted zero-point record (u1, u3) and
    float16 scales (u2, u3)."""
    rng = np.random.default_rng(20261127)
    return {
        "u1": QuantizedTensor(rng.integers(-127, 128, (4, 6)).astype(np.int8),
                              np.linspace(0.1, 0.5, 4, dtype=np.float32), np.zeros(4, np.int8), "int8", axis=0),
        "u2": QuantizedTensor(rng.integers(-8, 8, (3, 9)).astype(np.int8),
                              np.array([[0.125, 0.25, 0.5], [1.0, 2.0, 0.0625], [3.0, 0.375, 1.5]], np.float32),
                              np.array([[0, 1, -1], [2, 0, 0], [7, -8, 3]], np.int8), "int4", axis=1, block_size=4),
        "u3": QuantizedTensor(rng.integers(0, 256, (5,)).astype(np.uint8), np.array(0.0625, np.float32),
                              np.array(0, np.uint8), "uint8", convention="tflite"),
    }


# Table indices of the version-2 base file's records.
U1, U1_SCALE, U2, U2_SCALE, U2_ZP, U3, U3_SCALE = range(7)


def write_bytes(tensors: dict, metadata: dict | None, version: int | None = 1) -> bytes:
    """The bytes of a file; version 1 unless asked (the corruptions of the version-1
    rules keep the version-1 base file they were made from)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.qcm"
        save_tensors(path, tensors, metadata, version=version)
        return path.read_bytes()


class Image:
    """A mutable .qcm file with helpers that keep everything but the targeted rule valid."""

    def __init__(self, data: bytes) -> None:
        self.buf = bytearray(data)

    @property
    def pre(self) -> list:
        return list(L.PREAMBLE.unpack_from(self.buf, 0))

    def set_pre(self, field: int, value) -> "Image":
        fields = self.pre
        fields[field] = value
        L.PREAMBLE.pack_into(self.buf, 0, *fields)
        return self

    def rec_at(self, i: int) -> int:
        return self.pre[P_DIR_OFFSET] + L.RECORD_SIZE * i

    def rec(self, i: int) -> list:
        return list(L.RECORD.unpack_from(self.buf, self.rec_at(i)))

    def set_rec(self, i: int, field: int, value) -> "Image":
        fields = self.rec(i)
        fields[field] = value
        L.RECORD.pack_into(self.buf, self.rec_at(i), *fields)
        return self

    def set_dims(self, i: int, dims: list[int]) -> "Image":
        fields = self.rec(i)
        fields[F_DIMS:] = list(dims) + [0] * (L.MAX_RANK - len(dims))
        fields[F_RANK] = len(dims)
        L.RECORD.pack_into(self.buf, self.rec_at(i), *fields)
        return self

    def index_at(self, k: int) -> int:
        return self.pre[P_DIR_OFFSET] + L.RECORD_SIZE * self.pre[P_TENSORS] + 4 * k

    def names_at(self) -> int:
        return self.pre[P_DIR_OFFSET] + (L.RECORD_SIZE + 4) * self.pre[P_TENSORS]

    def name_at(self, i: int) -> int:
        return self.names_at() + self.rec(i)[F_NAME_OFFSET]

    def metadata_at(self) -> int:
        return self.names_at() + self.pre[P_NAMES]

    def entry_value_at(self, key: str) -> int:
        """Offset of the type byte of metadata entry ``key``."""
        raw = key.encode()
        needle = struct.pack("<H", len(raw)) + raw + b"\0"
        at = self.buf.index(needle, self.metadata_at())
        return at + len(needle)

    def data(self, i: int) -> tuple[int, int]:
        r = self.rec(i)
        return r[F_OFFSET], r[F_SIZE]

    def fix_tensor_crc(self, i: int) -> "Image":
        offset, size = self.data(i)
        return self.set_rec(i, F_CRC, L.crc32c(bytes(self.buf[offset:offset + size])))

    def fix_header_crc(self) -> "Image":
        pre = self.pre
        d0, dl = pre[P_DIR_OFFSET], pre[P_DIR_LENGTH]
        crc = L.crc32c(bytes(self.buf[d0:d0 + dl]), L.crc32c(bytes(self.buf[:60])))
        struct.pack_into("<I", self.buf, 60, crc)
        return self

    def append_to_directory(self, extra: bytes) -> "Image":
        self.buf += extra
        pre = self.pre
        self.set_pre(P_DIR_LENGTH, pre[P_DIR_LENGTH] + len(extra))
        return self.set_pre(P_FILE_SIZE, len(self.buf))

    def bytes(self) -> bytes:
        return bytes(self.buf)


def catalogue() -> dict[str, bytes]:
    """Every corrupt file: name -> bytes. The name's first dotted part is the rule."""
    base = write_bytes(base_tensors(), base_metadata())
    out: dict[str, bytes] = {}

    def new() -> Image:
        return Image(base)

    def add(name: str, image: Image, *, fix: bool = True) -> None:
        if fix:
            image.fix_header_crc()
        out[name + ".qcm"] = image.bytes()

    # Preamble and file-level rules.
    out["truncated.preamble.qcm"] = base[:40]
    out["truncated.empty.qcm"] = b""
    out["truncated.data.qcm"] = base[:200]
    out["truncated.directory.qcm"] = base[:-10]
    add("magic", new().set_pre(P_MAGIC, b"\x89QCN\r\n\x1a\n"), fix=False)
    add("magic.gguf", Image(b"GGUF" + base[4:]), fix=False)
    add("byte-order.big-endian", Image(base[:8] + struct.pack(">I", L.BYTE_ORDER_MARK) + base[12:]))
    add("byte-order.garbage", new().set_pre(P_MARK, 0xDEADBEEF))
    add("version", new().set_pre(P_VERSION, 3))
    add("version.zero", new().set_pre(P_VERSION, 0))
    add("flags", new().set_pre(P_FLAGS, 1))
    add("alignment", new().set_pre(P_ALIGNMENT, 32))
    add("trailing-data", Image(base + bytes(64)))
    add("header-size", new().set_pre(P_DIR_LENGTH, 200 << 20))
    add("tensor-count", new().set_pre(P_TENSORS, L.MAX_TENSORS + 1))
    add("metadata-count", new().set_pre(P_METADATA, L.MAX_METADATA + 1))
    img = new()
    add("directory-bounds.offset", img.set_pre(P_DIR_OFFSET, img.pre[P_DIR_OFFSET] + 64))
    add("directory-bounds.names", new().set_pre(P_NAMES, 0x7FFFFFFF))
    img = new()
    img.buf[img.metadata_at() + 3] ^= 0x01
    add("header-checksum.directory", img, fix=False)
    img = new()
    img.buf[60] ^= 0x80
    add("header-checksum.stored", img, fix=False)

    # Tensor records.
    add("name.empty", new().set_rec(T_PLAIN, F_NAME_LENGTH, 0))
    img = new()
    img.buf[img.name_at(T_PLAIN)] = 0xFF
    add("name.utf8", img)
    img = new()
    img.buf[img.name_at(T_PLAIN) + 2] = 0x41  # the NUL terminator of "t1"
    add("name.terminator", img)
    add("element-type", new().set_rec(T_PLAIN, F_ETYPE, 99))
    add("rank", new().set_rec(T_PLAIN, F_RANK, 9))
    add("reserved", new().set_rec(T_PLAIN, F_RESERVED1, 1))
    add("reserved.dims", new().set_rec(T_INT64, F_DIMS + 3, 7))
    add("shape-overflow", new().set_dims(T_PLAIN, [1 << 62, 4]))
    img = new()
    add("data-size", img.set_rec(T_PLAIN, F_SIZE, img.rec(T_PLAIN)[F_SIZE] + 1))
    img = new()
    add("misaligned", img.set_rec(T_INT4, F_OFFSET, img.rec(T_INT4)[F_OFFSET] + 8))
    img = new()
    add("overlap", img.set_rec(T_INT4, F_OFFSET, img.rec(T_PLAIN)[F_OFFSET]))
    img = new()
    add("hole", img.set_rec(T_INT4, F_OFFSET, img.rec(T_INT4)[F_OFFSET] + 64))
    add("role", new().set_rec(T_PLAIN, F_ROLE, 7))
    add("scheme", new().set_rec(T_PLAIN, F_SCHEME, 9))
    add("convention", new().set_rec(T_INT4, F_CONVENTION, 9))
    add("convention.unquantized", new().set_rec(T_PLAIN, F_CONVENTION, 1))
    add("quant-type", new().set_rec(T_PLAIN, F_SCHEME, 1).set_rec(T_PLAIN, F_CONVENTION, 1))
    add("quant-type.scale", new().set_rec(T_INT4_SCALE, F_ETYPE, 8))  # int32, same size as float32
    add("axis", new().set_rec(T_INT4, F_AXIS, 5))
    add("block-size", new().set_rec(T_BLOCKED, F_BLOCK, 0))
    add("reference", new().set_rec(T_INT4, F_SCALE, L.NONE))
    add("reference.owner", new().set_rec(T_PT_SCALE, F_OWNER, T_INT4))
    add("scale-count", new().set_rec(T_INT4, F_AXIS, 1))
    add("scale-count.blocked", new().set_rec(T_BLOCKED, F_BLOCK, 5))
    add("zero-point-shape", new().set_dims(T_INT4_ZP, [1, 5]))
    # Version-2 encodings (float16 scales, omitted zero points) in a file stamped version 1,
    # and broken references around an omitted zero point.
    v2 = write_bytes(v2_tensors(), None, version=None)
    assert Image(v2).pre[P_VERSION] == 2
    add("reference.v1-omitted-zero-point", Image(v2).set_pre(P_VERSION, 1))
    half_only = write_bytes({"u2": v2_tensors()["u2"]}, None, version=None)
    add("quant-type.v1-half-scale", Image(half_only).set_pre(P_VERSION, 1))
    add("reference.dangling-zero-point", Image(v2).set_rec(U2, F_ZERO_POINT, L.NONE))
    add("reference.omitted-zero-point-owner", Image(v2).set_rec(U2_ZP, F_OWNER, U1))
    img = new()
    img.buf[img.name_at(T_INT4) + 1] = ord("1")  # "t2" -> "t1", its neighbour in name order
    add("duplicate-name", img)
    img = new()
    a, b = img.index_at(0), img.index_at(1)
    img.buf[a:a + 4], img.buf[b:b + 4] = img.buf[b:b + 4], img.buf[a:a + 4]
    add("name-index", img)
    img = new()
    struct.pack_into("<I", img.buf, img.index_at(3), 1000)
    add("name-index.range", img)

    # Metadata.
    img = new()
    img.buf[img.entry_value_at("k2") - 2] = ord("!")  # "k2" -> "k!"
    add("metadata-key", img)
    img = new()
    img.buf[img.entry_value_at("k2") - 2] = ord("1")  # "k2" -> "k1"
    add("duplicate-key", img)
    img = new()
    img.buf[img.entry_value_at("k2") - 2] = ord("0")  # "k2" -> "k0", after "k1"
    add("metadata-order", img)
    img = new()
    img.buf[img.entry_value_at("k2")] = 9
    add("metadata-type", img)
    img = new()
    img.buf[img.entry_value_at("k4") + 1] = 2  # bool True -> 2
    add("metadata-value", img)
    img = new()
    img.buf[img.entry_value_at("k1") + 5] = 0xC0  # "hello" -> invalid UTF-8
    add("metadata-value.utf8", img)
    add("metadata-bounds.leftover", new().append_to_directory(b"\0"))
    img = new()
    struct.pack_into("<Q", img.buf, img.entry_value_at("k5") + 2, 1 << 60)  # array count
    add("metadata-bounds.count", img)
    img = new()
    struct.pack_into("<q", img.buf, img.entry_value_at("qcore.graph.schema_version") + 1, 0)
    add("graph-schema", img)

    # Value rules (verify).
    img = new()
    offset, _ = img.data(T_PLAIN)
    img.buf[offset] ^= 0x10
    add("tensor-checksum", img)
    img = new()
    offset, size = img.data(T_PLAIN)
    img.buf[offset + size] = 1
    add("padding", img)
    img = new()
    offset, size = img.data(T_INT4)
    img.buf[offset + size - 1] |= 0xF0  # 35 int4 values: the last high nibble is unused
    add("padding.nibble", img.fix_tensor_crc(T_INT4))
    img = new()
    offset, _ = img.data(T_INT4_SCALE)
    struct.pack_into("<f", img.buf, offset + 4, float("nan"))
    add("scale-value.nan", img.fix_tensor_crc(T_INT4_SCALE))
    img = new()
    offset, _ = img.data(T_PT_SCALE)
    struct.pack_into("<f", img.buf, offset, -0.5)
    add("scale-value.negative", img.fix_tensor_crc(T_PT_SCALE))
    img = new()
    offset, _ = img.data(T_INT4_ZP)
    img.buf[offset + 2] = 9  # int4 zero point 9 (stored in int8)
    add("zero-point-range", img.fix_tensor_crc(T_INT4_ZP))
    for variant, bits in (("half-infinity", 0x7C00), ("half-nan", 0x7E01), ("half-zero", 0x0000),
                          ("half-negative", 0xB400), ("half-negative-zero", 0x8000)):
        img = Image(v2)
        offset, _ = img.data(U2_SCALE)
        struct.pack_into("<H", img.buf, offset + 6, bits)
        add(f"scale-value.{variant}", img.fix_tensor_crc(U2_SCALE))
    img = Image(v2)
    offset, _ = img.data(U2_ZP)
    img.buf[offset + 1] = 0xF7  # int4 zero point -9
    add("zero-point-range.v2", img.fix_tensor_crc(U2_ZP))
    return out


def valid_files() -> dict[str, bytes]:
    """A few valid files: the base, an empty file, plain-only, metadata-only."""
    rng = np.random.default_rng(7)
    return {
        "valid.base.qcm": write_bytes(base_tensors(), base_metadata()),
        "valid.empty.qcm": write_bytes({}, None),
        "valid.plain.qcm": write_bytes({"x": rng.standard_normal(100).astype(np.float16),
                                        "y": np.arange(6, dtype=np.uint16).reshape(2, 3)}, None),
        "valid.metadata.qcm": write_bytes({}, {"a": [1.0, float("inf")], "b": "", "c": []}),
        "valid.many.qcm": write_bytes({**{f"layer.{k}.{kind}": tensor for k in range(4)
                                          for kind, tensor in base_tensors().items()}}, base_metadata()),
        "valid.v2.qcm": write_bytes(v2_tensors(), base_metadata(), version=None),
        "valid.int2.qcm": write_bytes({"q": QuantizedTensor(
            rng.integers(-2, 2, (3, 3)).astype(np.int8), np.array([1.0], np.float32), np.array([0], np.int8),
            "int2")}, None),
    }


def rule_of(filename: str) -> str:
    """The rule a catalogue file breaks (its name up to the first dot)."""
    return filename.split(".", 1)[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--valid", action="store_true", help="also write valid seed files")
    args = parser.parse_args(argv)
    args.outdir.mkdir(parents=True, exist_ok=True)
    files = catalogue()
    if args.valid:
        files.update(valid_files())
    for name, data in files.items():
        (args.outdir / name).write_bytes(data)
    print(f"wrote {len(files)} files to {args.outdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
