"""Sub-byte tensors read from a .qcm file stay packed (a view of the mapped file) until
something reads their values: the int4 weight-only layers and the int4 embedding gathers
run on the packed bytes, with the same bits as on unpacked values."""

from __future__ import annotations

import numpy as np
import pytest

from qcore.errors import ShapeError
from qcore.format import load_tensors, save_tensors
from qcore.reference.packing import pack_int4, unpack_int4
from qcore.reference.tensor import QuantizedTensor
from qcore.runtime import kernels


def _int4(rng, shape, axis, block_size, signed=True):
    lo, hi = (-8, 8) if signed else (0, 16)
    data = rng.integers(lo, hi, shape).astype(np.int8 if signed else np.uint8)
    pshape = list(shape)
    if block_size:
        pshape[axis] = -(-shape[axis] // block_size)
    else:
        pshape = [shape[axis]]
    scale = rng.uniform(0.01, 0.1, pshape).astype(np.float32)
    zp = rng.integers(lo, hi, pshape).astype(data.dtype)
    return QuantizedTensor(data, scale, zp, "int4" if signed else "uint4", axis=axis, block_size=block_size)


def _read_back(tmp_path, tensor):
    path = tmp_path / "t.qcm"
    save_tensors(path, {"t": tensor})
    return load_tensors(path)["t"]


def test_from_packed_keeps_bytes_and_unpacks_once_on_demand():
    rng = np.random.default_rng(0)
    values = rng.integers(-8, 8, (5, 7)).astype(np.int8)
    calls = []

    def unpack():
        calls.append(1)
        return unpack_int4(pack_int4(values), values.shape)

    packed = pack_int4(values)
    scale, zp = np.full(7, 0.5, np.float32), np.zeros(7, np.int8)
    t = QuantizedTensor.from_packed(packed, (5, 7), unpack, scale, zp, "int4", axis=1)
    assert t.shape == (5, 7) and t.packed is not None and np.array_equal(t.packed, packed) and not calls
    assert np.array_equal(t.data, values) and np.array_equal(t.data, values) and len(calls) == 1
    np.testing.assert_array_equal(t.dequantize(), QuantizedTensor(values, scale, zp, "int4", axis=1).dequantize())
    assert QuantizedTensor(values, scale, zp, "int4", axis=1).packed is None
    with pytest.raises(ShapeError, match="sub-byte"):
        QuantizedTensor.from_packed(packed, (5, 7), unpack, scale, zp.astype(np.int8), "int8", axis=1)
    with pytest.raises(ShapeError, match="18 uint8 bytes"):
        QuantizedTensor.from_packed(packed[:-1], (5, 7), unpack, scale, zp, "int4", axis=1)
    with pytest.raises(ShapeError, match="per-axis scale"):
        QuantizedTensor.from_packed(packed, (5, 7), unpack, scale[:3], zp[:3], "int4", axis=1)
    with pytest.raises(AttributeError):
        t.no_such_attribute  # noqa: B018


@pytest.mark.parametrize("signed", [True, False])
def test_file_tensors_stay_packed_and_give_the_same_values(tmp_path, signed):
    rng = np.random.default_rng(1)
    tensor = _int4(rng, (37, 9), 0, 16, signed)
    read = _read_back(tmp_path, tensor)
    assert read.packed is not None and read.shape == (37, 9) and "data" not in read.__dict__
    assert np.array_equal(read.data, tensor.data) and read.data.dtype == tensor.data.dtype


@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("rows", [1, 15, 16, 40])
def test_int4_linear_on_the_file_bytes_equals_on_values(tmp_path, signed, rows):
    """Both paths (the C int4 kernel below 16 rows, dequantized panels from 16 on)."""
    rng = np.random.default_rng(2)
    tensor = _int4(rng, (64, 24), 0, 32, signed)
    read = _read_back(tmp_path, tensor)
    bias = rng.standard_normal(24).astype(np.float32)
    x = rng.standard_normal((rows, 64)).astype(np.float32)
    got = kernels.Int4Linear(read, bias).run(x)
    assert "data" not in read.__dict__  # never unpacked
    np.testing.assert_array_equal(got, kernels.Int4Linear(tensor, bias).run(x), strict=True)


@pytest.mark.parametrize("signed", [True, False])
def test_packed_embedding_rows_equal_the_unpacked_gather(tmp_path, signed):
    rng = np.random.default_rng(3)
    table = _int4(rng, (50, 12), 0, 0, signed)
    read = _read_back(tmp_path, table)
    idx = np.array([[0, 49, 7], [7, 3, 3]])
    got = kernels.dequantize_rows(read, idx)
    assert got.shape == (2, 3, 12) and "data" not in read.__dict__
    np.testing.assert_array_equal(got, kernels.dequantize_rows(table, idx), strict=True)
    odd = _read_back(tmp_path, _int4(rng, (50, 11), 0, 0, signed))  # rows straddle bytes: unpacked path
    np.testing.assert_array_equal(kernels.dequantize_rows(odd, idx), odd.dequantize()[idx], strict=True)


def test_resaving_clears_padding_bits_a_lenient_read_let_through(tmp_path):
    """An odd count leaves the last byte's high nibble unused; a file read with
    verify=False may carry other bits there, and a file written from it must not."""
    from qcore.format import layout as L

    values = np.array([1, -2, 3], np.int8)
    tensor = QuantizedTensor(values, np.full((), 0.5, np.float32), np.zeros((), np.int8), "int4")
    path = tmp_path / "pad.qcm"
    save_tensors(path, {"t": tensor})
    raw = bytearray(path.read_bytes())
    with load_tensors(path) as f:
        info = f.info("t")
    raw[info.offset + 1] |= 0xF0  # the unused high nibble of the second (last) byte
    bad = tmp_path / "bad.qcm"
    bad.write_bytes(bytes(raw))
    read = load_tensors(bad, verify=False)["t"]
    assert read.packed[-1] >> 4 == 0xF
    save_tensors(tmp_path / "again.qcm", {"t": read})
    again = load_tensors(tmp_path / "again.qcm")["t"]
    np.testing.assert_array_equal(again.data, values)
    assert [int(c[-1]) for c in L.packed_chunks(np.array([0xF3, 0xF3], np.uint8), 3, 4)] == [0xF3, 0x03]


def test_unpacked_values_of_a_file_tensor_are_read_only_and_picklable(tmp_path):
    import pickle

    rng = np.random.default_rng(4)
    read = _read_back(tmp_path, _int4(rng, (6, 5), 1, 0))
    with pytest.raises(ValueError, match="read-only"):
        read.data[0, 0] = 7
    clone = pickle.loads(pickle.dumps(read))
    np.testing.assert_array_equal(clone.data, read.data)
    assert clone.shape == read.shape and clone.dtype == read.dtype


def test_concurrent_first_reads_unpack_once(tmp_path):
    import threading

    rng = np.random.default_rng(5)
    read = _read_back(tmp_path, _int4(rng, (400, 100), 0, 32))
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(read.data)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 8 and all(a is seen[0] for a in seen)


@pytest.mark.parametrize("signed", [True, False])
def test_packed_table_with_no_indices(tmp_path, signed):
    rng = np.random.default_rng(6)
    read = _read_back(tmp_path, _int4(rng, (10, 4), 0, 0, signed))
    for shape in ((0,), (2, 0)):
        out = kernels.dequantize_rows(read, np.zeros(shape, np.int64))
        assert out.shape == shape + (4,) and out.dtype == np.float32


@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("layout", ["per_tensor", "row_blocks"])
def test_packed_tables_of_every_layout_gather_only_their_rows(tmp_path, signed, layout):
    """Per-tensor and row-blocked int4 tables (``qcore quantize --mode weight-only
    --weight-bits 4`` blocks embeddings along their rows) gather from the packed bytes too."""
    rng = np.random.default_rng(7)
    if layout == "per_tensor":
        data = rng.integers(-8, 8, (30, 10)).astype(np.int8) if signed else \
            rng.integers(0, 16, (30, 10)).astype(np.uint8)
        table = QuantizedTensor(data, np.full((), 0.25, np.float32), np.full((), 1, data.dtype),
                                "int4" if signed else "uint4")
    else:
        table = _int4(rng, (30, 10), 1, 4, signed)
    read = _read_back(tmp_path, table)
    idx = np.array([[29, 0], [5, 5]])
    got = kernels.dequantize_rows(read, idx)
    assert "data" not in read.__dict__
    np.testing.assert_array_equal(got, kernels.dequantize_rows(table, idx), strict=True)
    np.testing.assert_array_equal(got, table.dequantize()[idx], strict=True)
