"""Format version 2: float16 scales and omitted zero points (docs/FORMAT.md).

Both encodings are lossless, so a round trip gives back the same float32 scales and
zero points, from the Python reader and from the C reader; files without them stay
version 1, byte for byte what a version-1 writer produced.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qcore.format import layout as L
from qcore.format import load_tensors, save_tensors
from qcore.format.native import CReader
from qcore.reference.tensor import QuantizedTensor
from qcore._native import ffi, lib


def _half_exact(rng, shape):
    """Positive float32 scales that float16 holds exactly."""
    return rng.uniform(1e-3, 4.0, shape).astype(np.float16).astype(np.float32)


def _tensors(rng):
    return {
        "sym8": QuantizedTensor(rng.integers(-127, 128, (6, 5)).astype(np.int8), _half_exact(rng, 6),
                                np.zeros(6, np.int8), "int8", axis=0),
        "blk4": QuantizedTensor(rng.integers(-8, 8, (4, 70)).astype(np.int8), _half_exact(rng, (4, 3)),
                                np.zeros((4, 3), np.int8), "int4", axis=1, block_size=32),
        "aff4": QuantizedTensor(rng.integers(0, 16, (3, 64)).astype(np.uint8), _half_exact(rng, (3, 2)),
                                rng.integers(0, 16, (3, 2)).astype(np.uint8), "uint4", axis=1, block_size=32),
        "f32s": QuantizedTensor(rng.integers(-127, 128, (5,)).astype(np.int8), np.array(0.1, np.float32),
                                np.array(0, np.int8), "int8"),
        "u8": QuantizedTensor(rng.integers(0, 256, (7,)).astype(np.uint8), np.array(0.1, np.float32),
                              np.array(3, np.uint8), "uint8"),
        "plain": rng.standard_normal(9).astype(np.float32),
    }


def test_round_trip_with_half_scales_and_omitted_zero_points(tmp_path):
    rng = np.random.default_rng(50)
    tensors = _tensors(rng)
    path = tmp_path / "v2.qcm"
    save_tensors(path, tensors)
    data = path.read_bytes()
    with load_tensors(path) as f:
        assert f.version == 2
        for name, want in tensors.items():
            got = f[name]
            if isinstance(want, np.ndarray):
                np.testing.assert_array_equal(got, want, strict=True)
                continue
            np.testing.assert_array_equal(got.data, want.data, strict=True)
            np.testing.assert_array_equal(got.scale, want.scale, strict=True)  # float32, same values
            np.testing.assert_array_equal(got.zero_point, want.zero_point, strict=True)
            assert (got.axis, got.block_size, got.dtype) == (want.axis, want.block_size, want.dtype)
        assert f.info("sym8::scale").element_type == "float16"
        assert f.info("sym8").zero_point_index is None and "sym8::zero_point" not in [i.name for i in f.infos()]
        assert f.info("aff4::zero_point").element_type == "uint8"   # non-zero zero points stay
        assert f.info("f32s::scale").element_type == "float32"      # 0.1 is not a float16
        assert f.info("f32s").zero_point_index is None
        assert f.info("u8").zero_point_index is not None
    c = CReader(data)
    assert c.reader.version == 2
    for name, want in tensors.items():
        info = c.tensor(c.find(name))
        if isinstance(want, np.ndarray):
            continue
        scale = c.tensor(info["scale_index"])
        raw = scale["data"]
        if scale["element_type"] == lib.QC_QCM_FLOAT16:
            halves = np.frombuffer(raw, "<u2")
            widened = np.array([lib.qc_qcm_half_to_float(int(h)) for h in halves], np.float32)
            np.testing.assert_array_equal(widened, want.scale.reshape(-1), strict=True)
        else:
            np.testing.assert_array_equal(np.frombuffer(raw, "<f4"), want.scale.reshape(-1))
        assert (info["zero_point_index"] == L.NONE) == (not want.zero_point.any())


def test_version_1_is_kept_when_nothing_needs_version_2(tmp_path):
    rng = np.random.default_rng(51)
    tensors = {"q": QuantizedTensor(rng.integers(0, 256, (4, 4)).astype(np.uint8), np.array(0.1, np.float32),
                                    np.array(128, np.uint8), "uint8"), "p": np.ones(3, np.float32)}
    save_tensors(tmp_path / "a.qcm", tensors)
    save_tensors(tmp_path / "b.qcm", tensors, version=1)
    assert (tmp_path / "a.qcm").read_bytes() == (tmp_path / "b.qcm").read_bytes()
    with load_tensors(tmp_path / "a.qcm") as f:
        assert f.version == 1


def test_version_1_on_request_writes_every_record(tmp_path):
    rng = np.random.default_rng(52)
    tensors = _tensors(rng)
    save_tensors(tmp_path / "v1.qcm", tensors, version=1)
    save_tensors(tmp_path / "v2.qcm", tensors)
    with load_tensors(tmp_path / "v1.qcm") as f1, load_tensors(tmp_path / "v2.qcm") as f2:
        assert f1.version == 1
        assert all(i.element_type == "float32" for i in f1.infos() if i.role == "scale")
        assert all(i.zero_point_index is not None for i in f1.infos() if i.scheme != "none")
        for name in tensors:
            a, b = f1[name], f2[name]
            if isinstance(a, np.ndarray):
                np.testing.assert_array_equal(a, b, strict=True)
            else:
                for field in ("data", "scale", "zero_point"):
                    np.testing.assert_array_equal(getattr(a, field), getattr(b, field), strict=True)
    assert (tmp_path / "v2.qcm").stat().st_size < (tmp_path / "v1.qcm").stat().st_size
    CReader((tmp_path / "v1.qcm").read_bytes())
    with pytest.raises(ValueError, match="version"):
        save_tensors(tmp_path / "x.qcm", tensors, version=3)


def test_half_to_float_is_exact_for_every_half():
    """qc_qcm_half_to_float against NumPy's conversion, all 65536 bit patterns."""
    bits = np.arange(1 << 16, dtype=np.uint16)
    want = bits.view(np.float16).astype(np.float32).view(np.uint32)
    got = np.array([lib.qc_qcm_half_to_float(int(b)) for b in bits], np.float32).view(np.uint32)
    finite = np.isfinite(bits.view(np.float16))
    np.testing.assert_array_equal(got[finite], want[finite], strict=True)
    nan = np.isnan(bits.view(np.float16))
    assert np.isnan(got[nan].view(np.float32)).all()
    assert (got[np.isinf(bits.view(np.float16))] & 0x7FFFFFFF == 0x7F800000).all()


# -- a file written before version 2 -----------------------------------------------------

GOLDEN = Path(__file__).with_name("data") / "format_v1_model.qcm"


def _golden_graph():
    """The content of tests/data/format_v1_model.qcm, which the qcore of commit f564d87
    wrote (format version 1, graph schema 1: float32 scales, every zero-point record,
    the structure base64 in the metadata) from exactly this graph."""
    from qcore.graph.ir import Graph, Node, ValueInfo
    from qcore.reference.quantize import quantize_tensor

    rng = np.random.default_rng(2026)
    w8 = quantize_tensor(rng.standard_normal((16, 8)).astype(np.float32), "int8", granularity="per_channel", axis=1)
    w4 = quantize_tensor(rng.standard_normal((8, 4)).astype(np.float32), "int4", granularity="per_block", axis=0,
                         block_size=4, symmetric=False)
    b = rng.standard_normal(8).astype(np.float32)
    nodes = [Node("WMatMul", ["x", "w8"], ["h"], {}, "m0"), Node("Add", ["h", "b"], ["h1"], {}, "a0"),
             Node("WMatMul", ["h1", "w4"], ["y"], {}, "m1")]
    return Graph(nodes, [ValueInfo("x", "float32", ["n", 16])], [ValueInfo("y", "float32", None)],
                 {"w8": w8, "w4": w4, "b": b})


def test_files_written_before_version_2_still_open(tmp_path):
    import qcore.api as api
    from qcore.graph.serialize import save_graph

    data = GOLDEN.read_bytes()
    CReader(data)
    with load_tensors(GOLDEN) as f:
        assert f.version == 1 and f.info("w8::zero_point").role == "zero_point"
        assert f.info("w8::scale").element_type == "float32"
    want = _golden_graph()
    old = api.load(GOLDEN)
    for name, tensor in want.initializers.items():
        got = old.graph.initializers[name]
        if isinstance(tensor, np.ndarray):
            np.testing.assert_array_equal(got, tensor, strict=True)
        else:
            for field in ("data", "scale", "zero_point"):
                np.testing.assert_array_equal(getattr(got, field), getattr(tensor, field), strict=True)
    # and the old file computes what the same graph written today computes
    save_graph(want, tmp_path / "again.qcm", pack_limit=0)
    x = np.random.default_rng(1).standard_normal((3, 16)).astype(np.float32)
    np.testing.assert_array_equal(api.load(tmp_path / "again.qcm").run({"x": x})["y"], old.run({"x": x})["y"],
                                  strict=True)


@pytest.mark.parametrize("bits", [1, 2, 4])
@pytest.mark.parametrize("signed", [False, True])
def test_unpack_subbyte_round_trip_in_little_memory(bits, signed):
    """Sub-byte values unpack exactly, and a large table's unpacking allocates about one
    byte per value (a 30522 x 384 int4 embedding loaded at six bytes per value before)."""
    import tracemalloc

    rng = np.random.default_rng(bits)
    lo, hi = (-(1 << (bits - 1)), 1 << (bits - 1)) if signed else (0, 1 << bits)
    for count in (0, 1, 7, 9, 1001):
        values = rng.integers(lo, hi, count).astype(np.int8 if signed else np.uint8)
        unpacked = L.unpack_subbyte(L.pack_subbyte(values, bits), count, bits, signed)
        assert unpacked.dtype == values.dtype and np.array_equal(unpacked, values)
    count = 1 << 20
    packed = L.pack_subbyte(rng.integers(lo, hi, count).astype(np.int8 if signed else np.uint8), bits)
    tracemalloc.start()
    try:
        L.unpack_subbyte(packed, count, bits, signed)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1.7 * count
