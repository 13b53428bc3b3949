"""The .qcm writer and reader: round trips, determinism, zero copy, atomicity, errors."""

from __future__ import annotations

import json
import math
import os
import signal
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import qcore
from qcore._native import ffi, lib
from qcore.format import (
    GRAPH_SCHEMA_VERSION_KEY, QcmWriter, crc32c, errors as E, layout as L, load_tensors, save_tensors,
)
from qcore.format.native import CReader
from qcore.reference.dtypes import INT_TYPES
from qcore.reference.tensor import QuantizedTensor


# ---- CRC-32C ----------------------------------------------------------------------------

def _crc32c_bitwise(data: bytes) -> int:
    """The definition: reflected CRC with polynomial 0x82F63B78, init and xorout ~0."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def test_crc32c_check_value():
    # The standard check value of CRC-32C (RFC 3720 / iSCSI).
    assert crc32c(b"123456789") == 0xE3069283
    assert lib.qc_crc32c_portable(0, b"123456789", 9) == 0xE3069283
    assert crc32c(bytes(32)) == 0x8A9136AA  # RFC 3720 B.4: 32 bytes of zeros


@pytest.mark.parametrize("size", [0, 1, 3, 7, 8, 9, 31, 32, 33, 63, 64, 65, 1000, 4099])
def test_crc32c_paths_agree(size):
    rng = np.random.default_rng(size)
    data = rng.integers(0, 256, size + 8, dtype=np.uint8).tobytes()
    for start in range(8):  # every alignment of the start
        chunk = data[start:start + size]
        want = _crc32c_bitwise(chunk)
        assert lib.qc_crc32c_portable(0, chunk, len(chunk)) == want
        assert lib.qc_crc32c_hardware(0, chunk, len(chunk)) == want
        assert crc32c(chunk) == want


def test_crc32c_is_incremental():
    data = np.random.default_rng(1).integers(0, 256, 10000, dtype=np.uint8).tobytes()
    assert crc32c(data[3000:], crc32c(data[:3000])) == crc32c(data)


# ---- round trips ------------------------------------------------------------------------

PLAIN_DTYPES = ["float32", "float16", "float64", "int8", "uint8", "int16", "uint16", "int32", "uint32",
                "int64", "uint64"]
SCHEMES = ["per_tensor", "per_axis", "blocked"]
shapes = st.lists(st.integers(0, 6), min_size=0, max_size=4).map(tuple)


@st.composite
def plain_arrays(draw) -> np.ndarray:
    dtype = np.dtype(draw(st.sampled_from(PLAIN_DTYPES)))
    shape = draw(shapes)
    raw = draw(st.binary(min_size=math.prod(shape) * dtype.itemsize, max_size=math.prod(shape) * dtype.itemsize))
    array = np.frombuffer(raw, dtype).reshape(shape)  # every bit pattern, NaNs included
    if draw(st.booleans()):
        array = array.astype(array.dtype.newbyteorder(">"))  # big-endian input
    if array.ndim and draw(st.booleans()):
        array = array[..., ::-1]  # non-contiguous input
    return array


@st.composite
def quantized_tensors(draw) -> QuantizedTensor:
    itype = INT_TYPES[draw(st.sampled_from(list(INT_TYPES)))]
    scheme = draw(st.sampled_from(SCHEMES))
    shape = draw(st.lists(st.integers(1 if scheme != "per_tensor" else 0, 7), min_size=1 if scheme != "per_tensor" else 0,
                          max_size=3).map(tuple))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    data = rng.integers(itype.qmin, itype.qmax, shape, endpoint=True).astype(itype.container)
    axis, block = None, 0
    if scheme == "per_tensor":
        pshape = draw(st.sampled_from([(), (1,)]))
    else:
        axis = draw(st.integers(0, len(shape) - 1))
        if scheme == "per_axis":
            pshape = (shape[axis],)
        else:
            block = draw(st.integers(1, 8))
            pshape = tuple(-(-d // block) if k == axis else d for k, d in enumerate(shape))
    scale = rng.uniform(1e-6, 10, pshape).astype(np.float32)
    zero_point = rng.integers(itype.qmin, itype.qmax, pshape, endpoint=True).astype(itype.container)
    convention = draw(st.sampled_from(["onnx", "tflite", "pytorch"]))
    return QuantizedTensor(data, scale, zero_point, itype.name, axis, block, convention)


metadata_scalars = (st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=20)
                    | st.integers(-(1 << 63), (1 << 63) - 1) | st.floats(allow_nan=False) | st.booleans())
metadata_values = metadata_scalars | st.one_of(
    st.lists(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=8), max_size=5),
    st.lists(st.integers(-(1 << 63), (1 << 63) - 1), max_size=5),
    st.lists(st.floats(allow_nan=False), max_size=5),
    st.lists(st.booleans(), max_size=5),
)
metadata_keys = st.from_regex(r"[A-Za-z0-9_.\-]{1,20}", fullmatch=True).filter(lambda k: not k.startswith("qcore.graph."))


def assert_same_tensor(got, want) -> None:
    if isinstance(want, QuantizedTensor):
        assert isinstance(got, QuantizedTensor)
        np.testing.assert_array_equal(got.data, want.data, strict=True)
        np.testing.assert_array_equal(got.scale, want.scale, strict=True)
        np.testing.assert_array_equal(got.zero_point, want.zero_point, strict=True)
        assert (got.dtype, got.axis, got.block_size, got.convention) == (
            want.dtype, want.axis, want.block_size, want.convention)
    else:
        assert got.dtype == want.dtype.newbyteorder("<") and got.shape == want.shape
        assert got.tobytes() == np.ascontiguousarray(want, want.dtype.newbyteorder("<")).tobytes()


@given(tensors=st.dictionaries(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
                                       min_size=1, max_size=12).filter(lambda n: "::" not in n),
                               plain_arrays() | quantized_tensors(), max_size=5),
       metadata=st.dictionaries(metadata_keys, metadata_values, max_size=6))
def test_round_trip(tmp_path_factory, tensors, metadata):
    path = tmp_path_factory.mktemp("rt") / "model.qcm"
    save_tensors(path, tensors, metadata)
    data = path.read_bytes()
    with load_tensors(path) as f:
        assert list(f) == list(tensors)
        for name, want in tensors.items():
            assert_same_tensor(f[name], want)
        assert f.metadata == {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in metadata.items()}
        assert all(type(f.metadata[k]) is type(v) for k, v in metadata.items())
        # The C reader sees the same records and metadata.
        reader = CReader(data)
        assert reader.metadata() == f.metadata
        for info in f.infos():
            t = reader.tensor(info.index)
            assert (t["name"], t["shape"], t["offset"]) == (info.name, info.shape, info.offset)
            assert reader.find(info.name) == info.index
            assert t["data"] == f.raw(info.name).tobytes()
        assert reader.find("::no such tensor") is None


@pytest.mark.parametrize("dtype", ["int4", "uint4", "int2", "uint2"])
def test_subbyte_is_stored_packed(tmp_path, dtype):
    itype = INT_TYPES[dtype]
    data = np.arange(itype.qmin, itype.qmax + 1, dtype=itype.container)
    data = np.resize(data, 13)  # odd count: the last byte is partly used
    qt = QuantizedTensor(data, np.array(0.5, np.float32), np.array(itype.qmin, itype.container), dtype)
    save_tensors(tmp_path / "p.qcm", {"q": qt})
    with load_tensors(tmp_path / "p.qcm") as f:
        raw = f.raw("q")
        per_byte = 8 // itype.bits
        assert raw.dtype == np.uint8 and raw.size == -(-13 // per_byte)
        # First element in the low bits of the first byte.
        assert raw[0] & ((1 << itype.bits) - 1) == data[0] & ((1 << itype.bits) - 1)
        np.testing.assert_array_equal(f["q"].data, data, strict=True)
        assert f.info("q").nbytes == raw.size


@pytest.mark.parametrize("dtype", ["int4", "uint2"])
def test_subbyte_packing_across_write_chunks(tmp_path, dtype):
    """The writer packs sub-byte data 1 Mi elements at a time; the bytes equal one-shot packing."""
    itype = INT_TYPES[dtype]
    rng = np.random.default_rng(5)
    data = rng.integers(itype.qmin, itype.qmax, (3, (1 << 20) // 3 + 5), endpoint=True).astype(itype.container)
    qt = QuantizedTensor(data, np.ones(3, np.float32), np.zeros(3, itype.container), dtype, axis=0)
    save_tensors(tmp_path / "c.qcm", {"q": qt})
    with load_tensors(tmp_path / "c.qcm") as f:
        assert f.raw("q").tobytes() == L.pack_subbyte(data, itype.bits).tobytes()
        np.testing.assert_array_equal(f["q"].data, data, strict=True)


def test_large_json_metadata(tmp_path):
    graph = {"nodes": [{"op": "Gemm", "name": f"n{i}", "inputs": [f"x{i}", f"w{i}"]} for i in range(8000)]}
    text = json.dumps(graph)
    assert len(text) > 300_000
    meta = {"qcore.graph.json": text, GRAPH_SCHEMA_VERSION_KEY: 1, "qcore.graph.inputs": ["x0"],
            "qcore.graph.shape": [1, 3, 224, 224]}
    save_tensors(tmp_path / "g.qcm", {"w": np.ones(4, np.float32)}, meta)
    with load_tensors(tmp_path / "g.qcm") as f:
        assert json.loads(f.metadata["qcore.graph.json"]) == graph
        assert f.metadata["qcore.graph.shape"] == [1, 3, 224, 224]


def test_float_metadata_is_bit_exact(tmp_path):
    values = [float("nan"), float("inf"), -0.0, 5e-324, 1.7976931348623157e308]
    save_tensors(tmp_path / "f.qcm", {}, {"v": values, "n": float("-inf")})
    with load_tensors(tmp_path / "f.qcm") as f:
        assert [struct.pack("<d", v) for v in f.metadata["v"]] == [struct.pack("<d", v) for v in values]
        assert f.metadata["n"] == float("-inf")


def test_empty_file(tmp_path):
    save_tensors(tmp_path / "e.qcm", {})
    assert (tmp_path / "e.qcm").stat().st_size == L.PREAMBLE_SIZE
    with load_tensors(tmp_path / "e.qcm") as f:
        assert len(f) == 0 and f.metadata == {}


# ---- determinism ------------------------------------------------------------------------

def _model():
    rng = np.random.default_rng(3)
    return {
        "a": rng.standard_normal((16, 8)).astype(np.float32),
        "b": QuantizedTensor(rng.integers(-8, 8, (16, 9)).astype(np.int8), rng.uniform(0.1, 1, 16).astype(np.float32),
                             np.arange(-8, 8, dtype=np.int8), "int4", axis=0),
    }


def test_deterministic(tmp_path):
    meta = {"z": 1, "a": "x", GRAPH_SCHEMA_VERSION_KEY: 2}
    save_tensors(tmp_path / "1.qcm", _model(), meta)
    save_tensors(tmp_path / "2.qcm", _model(), dict(reversed(list(meta.items()))))
    assert (tmp_path / "1.qcm").read_bytes() == (tmp_path / "2.qcm").read_bytes()
    # Same bytes from a fresh process (no dependence on hashing, time or addresses).
    env = dict(os.environ, PYTHONHASHSEED="123")
    env["PYTHONPATH"] = os.pathsep.join([str(Path(qcore.__file__).parents[1]), env.get("PYTHONPATH", "")])
    script = textwrap.dedent(f"""
        import importlib.util
        spec = importlib.util.spec_from_file_location("t", {str(Path(__file__))!r})
        t = importlib.util.module_from_spec(spec); spec.loader.exec_module(t)
        from qcore.format import save_tensors
        save_tensors({str(tmp_path / '3.qcm')!r}, t._model(), {meta!r})
    """)
    subprocess.run([sys.executable, "-c", script], check=True, env=env, cwd=tmp_path)
    assert (tmp_path / "1.qcm").read_bytes() == (tmp_path / "3.qcm").read_bytes()


# ---- zero copy and lifetime -------------------------------------------------------------

def test_views_share_memory_with_the_map(tmp_path):
    save_tensors(tmp_path / "m.qcm", _model())
    with load_tensors(tmp_path / "m.qcm") as f:
        whole = np.frombuffer(f._map, np.uint8)
        a = f["a"]
        b = f["b"]
        assert np.shares_memory(a, whole)
        assert np.shares_memory(b.scale, whole) and np.shares_memory(b.zero_point, whole)
        assert np.shares_memory(f.raw("b"), whole)
        assert not np.shares_memory(b.data, whole)  # int4 is unpacked into a new array
        assert not a.flags.writeable
        assert a.ctypes.data % L.ALIGNMENT == whole.ctypes.data % L.ALIGNMENT  # 64-byte aligned in the file
        del whole
    # Views outlive close(): they keep the map alive.
    np.testing.assert_array_equal(a, _model()["a"], strict=True)
    with pytest.raises(ValueError, match="closed"):
        f["a"]


def test_mapping_interface(tmp_path):
    save_tensors(tmp_path / "m.qcm", _model())
    with load_tensors(tmp_path / "m.qcm") as f:
        assert list(f) == ["a", "b"] and len(f) == 2 and "b" in f
        assert "b::scale" not in f
        with pytest.raises(KeyError):
            f["b::scale"]
        with pytest.raises(KeyError):
            f["nope"]
        assert f.info("b::scale").role == "scale" and f.info("b").scheme == "per_axis"
        assert [i.name for i in f.infos()] == ["a", "b", "b::scale", "b::zero_point"]


def test_verify_false_reads_no_tensor_data(tmp_path):
    """A 16 GiB sparse file opens with verify=False: only the header-level rules run."""
    size = 16 << 30
    name = b"big"
    record = L.RECORD.pack(64, size, 0, len(name), 5, 1, 0, 0, 0, 0, 0, 0, L.NONE, L.NONE, L.NONE, 0, 0,
                           size, 0, 0, 0, 0, 0, 0, 0)
    directory = record + struct.pack("<I", 0) + name + b"\0"
    dir_offset = 64 + size
    head = L.PREAMBLE.pack(L.MAGIC, L.BYTE_ORDER_MARK, 1, 0, 64, dir_offset + len(directory), dir_offset,
                           len(directory), 1, 0, len(name) + 1, 0)[:60]
    path = tmp_path / "sparse.qcm"
    try:
        with open(path, "wb") as out:
            out.write(head + L.crc32c(directory, L.crc32c(head)).to_bytes(4, "little"))
            out.seek(dir_offset)
            out.write(directory)
    except OSError as exc:  # pragma: no cover - file system without sparse files
        pytest.skip(f"cannot create a sparse file: {exc}")
    with load_tensors(path, verify=False) as f:
        assert f["big"].shape == (size,)
        import mmap

        with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            reader = CReader(mm, verify=False)
            assert reader.tensor_count == 1
            del reader


# ---- writer errors ----------------------------------------------------------------------

def _broken_qt(data, scale, zero_point, dtype, axis=None, block_size=0):
    """A QuantizedTensor whose invariants do not hold.

    The constructor refuses these, but the arrays of a valid tensor are mutable and can be
    changed afterwards, so the writer validates again; this builds such a tensor directly.
    """
    qt = object.__new__(QuantizedTensor)
    for field, value in dict(data=data, scale=scale, zero_point=zero_point, dtype=dtype, axis=axis,
                             block_size=block_size, convention="onnx").items():
        object.__setattr__(qt, field, value)
    return qt

@pytest.mark.parametrize(
    "tensors, metadata, error",
    [
        ({"x": np.zeros(2, bool)}, None, qcore.DTypeError),
        ({"x": np.zeros(2, np.complex64)}, None, qcore.DTypeError),
        ({"x": [1, 2]}, None, qcore.DTypeError),
        ({"": np.zeros(2)}, None, E.BadNameError),
        ({"a\0b": np.zeros(2)}, None, E.BadNameError),
        ({"x" * 1025: np.zeros(2)}, None, E.BadNameError),
        ({"x": np.zeros((1,) * 9)}, None, E.RankError),
        ({"x": _broken_qt(np.zeros(4, np.int8), np.array([1.0, np.nan, 1, 1], np.float32), np.zeros(4, np.int8),
                               "int8", axis=0)}, None, E.BadScaleError),
        ({"x": _broken_qt(np.zeros(4, np.int8), np.array(-1.0, np.float32), np.array(0, np.int8), "int8")},
         None, E.BadScaleError),
        ({"x": _broken_qt(np.zeros(4, np.int8), np.array(1.0, np.float32), np.array(8, np.int8), "int4")},
         None, E.ZeroPointRangeError),
        ({"x": _broken_qt(np.zeros((4, 3), np.int8), np.ones(3, np.float32), np.zeros(3, np.int8), "int8",
                               axis=0)}, None, E.ScaleCountError),
        ({"x": _broken_qt(np.zeros((4, 3), np.int8), np.ones((4, 1), np.float32), np.zeros((4, 1), np.int8),
                               "int8", axis=1, block_size=2)}, None, E.ScaleCountError),
        ({"x": _broken_qt(np.zeros(4, np.int8), np.array(1.0, np.float64), np.array(0, np.int8), "int8")},
         None, E.QuantTypeError),
        ({"x": _broken_qt(np.zeros(4, np.int8), np.array(1.0, np.float32), np.array(0, np.uint8), "int8")},
         None, E.QuantTypeError),
        ({"x": _broken_qt(np.array([8], np.int8), np.array(1.0, np.float32), np.array(0, np.int8), "int4")},
         None, E.DataRangeError),
        ({"x": np.zeros(1), "x::scale": np.zeros(1)}, None, None),  # a plain name with '::' is fine alone
        ({}, {"bad key": 1}, E.BadMetadataKeyError),
        ({}, {"k" * 257: 1}, E.BadMetadataKeyError),
        ({}, {"k": [1, "a"]}, E.BadMetadataValueError),
        ({}, {"k": 1 << 63}, E.BadMetadataValueError),
        ({}, {"k": "a\0b"}, E.BadMetadataValueError),
        ({}, {"k": {"a": 1}}, E.UnknownMetadataTypeError),
        ({}, {"k": [[1]]}, E.UnknownMetadataTypeError),
        ({}, {"qcore.graph.json": "{}"}, E.GraphSchemaError),
        ({}, {"qcore.graph.json": "{}", GRAPH_SCHEMA_VERSION_KEY: "1"}, E.GraphSchemaError),
    ],
)
def test_writer_refuses_invalid_content(tmp_path, tensors, metadata, error):
    path = tmp_path / "w.qcm"
    if error is None:
        save_tensors(path, tensors, metadata)
        return
    with pytest.raises(error):
        save_tensors(path, tensors, metadata)
    assert list(tmp_path.iterdir()) == []  # nothing left behind


def test_duplicate_and_derived_names(tmp_path):
    qt = _model()["b"]
    with pytest.raises(E.DuplicateNameError, match="'b::scale'"):
        with QcmWriter(tmp_path / "d.qcm") as w:
            w.add_tensor("b", qt)
            w.add_tensor("b::scale", np.zeros(1))
    with pytest.raises(E.DuplicateNameError):
        with QcmWriter(tmp_path / "d.qcm") as w:
            w.add_tensor("a", np.zeros(1))
            w.add_tensor("a", np.zeros(1))
    assert list(tmp_path.iterdir()) == []


# ---- atomicity --------------------------------------------------------------------------

def test_exception_inside_writer_leaves_old_file(tmp_path):
    path = tmp_path / "model.qcm"
    save_tensors(path, {"old": np.arange(3, dtype=np.int32)})
    old = path.read_bytes()
    with pytest.raises(RuntimeError, match="boom"):
        with QcmWriter(path) as w:
            w.add_tensor("new", np.zeros(1000, np.float32))
            raise RuntimeError("boom")
    assert path.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.qcm"]


_KILL_SCRIPT = """
import sys, numpy as np
from qcore.format import QcmWriter
path = sys.argv[1]
chunk = np.ones(8 << 20, np.float32)   # 32 MiB per tensor
with QcmWriter(path) as w:
    for i in range(1000):               # 32 GB in all: killed long before the end
        w.add_tensor(f"t{i}", chunk)
        if i == 1:
            print("writing", flush=True)
"""


@pytest.mark.parametrize("existing", [False, True])
def test_sigkill_mid_write_leaves_no_partial_file(tmp_path, existing):
    path = tmp_path / "model.qcm"
    if existing:
        save_tensors(path, {"old": np.arange(3, dtype=np.int32)})
    old = path.read_bytes() if existing else None
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(qcore.__file__).parents[1]), env.get("PYTHONPATH", "")])
    proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, str(path)], stdout=subprocess.PIPE, env=env,
                            cwd=tmp_path)
    try:
        assert proc.stdout.readline().strip() == b"writing"
        temps = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
        assert len(temps) == 1 and temps[0].stat().st_size > (32 << 20)  # really mid-write
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    if existing:
        assert path.read_bytes() == old
        with load_tensors(path) as f:
            assert list(f) == ["old"]
    else:
        assert not path.exists()
    for temp in tmp_path.glob("*.tmp"):  # what a killed writer leaves: only its temporary file
        temp.unlink()


def test_writer_rejects_use_outside_context(tmp_path):
    w = QcmWriter(tmp_path / "x.qcm")
    with pytest.raises(RuntimeError):
        w.add_tensor("a", np.zeros(1))


def test_c_reader_null_and_range_arguments(tmp_path):
    reader = ffi.new("qc_qcm_reader *")
    assert lib.qc_qcm_open_memory(ffi.NULL, 0, reader) == lib.QC_E_NULL_POINTER
    buf = ffi.from_buffer(b"\0" * 10)
    assert lib.qc_qcm_open_memory(buf, 10, reader) == lib.QC_E_FORMAT_TRUNCATED
    assert reader.error_value == 10 and reader.error_expected == 64
    save_tensors(tmp_path / "a.qcm", _model(), {"k": 1})
    c = CReader((tmp_path / "a.qcm").read_bytes())
    info = ffi.new("qc_qcm_tensor *")
    assert lib.qc_qcm_tensor_info(c.reader, 99, info) == lib.QC_E_INVALID_ARGUMENT
    assert lib.qc_qcm_verify_tensor(c.reader, 99) == lib.QC_E_INVALID_ARGUMENT
    assert lib.qc_qcm_verify_tensor(c.reader, 1) == lib.QC_OK
    entry = ffi.new("qc_qcm_metadata *")
    assert lib.qc_qcm_find_metadata(c.reader, b"k", entry) == lib.QC_OK and entry.int_value == 1
    assert lib.qc_qcm_find_metadata(c.reader, b"x", entry) == lib.QC_E_FORMAT_NOT_FOUND
