"""float16 scale storage (docs/ARITHMETIC.md, "Stored float16 scales").

The quantizer rounds each scale up to a float16 value and quantizes with it; the file
stores two bytes per scale; the reader widens them exactly, once; the C kernels and the
NumPy reference then agree bit for bit on the widened float32 scales.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import qcore.reference as ref
from qcore import _elementwise, _gemm
from qcore._native import available_isas
from qcore.errors import QuantParamError
from qcore.format import load_tensors, save_tensors
from qcore.reference.onnx_ops import quantize_linear
from qcore.reference.params import FLOAT16_SCALE_MAX, FLOAT16_SCALE_MIN, float16_scale
from qcore.reference.quantize import quantize_tensor

ISAS = available_isas()


@given(st.lists(st.floats(FLOAT16_SCALE_MIN, FLOAT16_SCALE_MAX, width=32), min_size=1, max_size=20))
def test_float16_scale_is_the_smallest_half_not_below(values):
    s = np.array(values, np.float32)
    h = float16_scale(s)
    assert h is not None and h.dtype == np.float32
    assert (h >= s).all()
    assert (h.astype(np.float16).astype(np.float32) == h).all()  # a float16 value
    below = np.nextafter(h.astype(np.float16), np.float16(0)).astype(np.float32)
    assert (below < s).all()  # the next float16 down is too small
    assert (h / s - 1 < 2.0 ** -10).all()


def test_float16_scale_refuses_values_outside_the_normal_range():
    assert float16_scale(np.array([1e-6, 0.5], np.float32)) is None
    assert float16_scale(np.array([70000.0], np.float32)) is None
    assert float16_scale(np.array([np.nan], np.float32)) is None
    np.testing.assert_array_equal(float16_scale(np.array([0.5, 2.0 ** -14], np.float32)),
                                  np.array([0.5, 2.0 ** -14], np.float32), strict=True)


@pytest.mark.parametrize("kwargs", [
    dict(dtype="int8", granularity="per_channel", axis=1),
    dict(dtype="int8", granularity="per_tensor", symmetric=False),
    dict(dtype="int4", granularity="per_block", axis=0, block_size=32),
    dict(dtype="uint4", granularity="per_block", axis=0, block_size=32, symmetric=False),
    dict(dtype="int8", granularity="per_channel", axis=1, convention="pytorch"),
])
def test_quantize_tensor_quantizes_with_the_stored_scale(kwargs):
    rng = np.random.default_rng(60)
    x = rng.standard_normal((70, 12)).astype(np.float32)
    qt = quantize_tensor(x, scale_dtype="float16", **kwargs)
    wide = quantize_tensor(x, scale_dtype="float32", **kwargs)
    assert qt.scale.dtype == np.float32
    np.testing.assert_array_equal(qt.scale.astype(np.float16).astype(np.float32), qt.scale, strict=True)
    assert (qt.scale >= wide.scale).all()
    if kwargs.get("convention", "onnx") == "onnx":  # the data is QuantizeLinear with the stored scale
        want = quantize_linear(x, qt.scale, qt.zero_point, axis=qt.axis if qt.axis is not None else 1,
                               block_size=qt.block_size, output_dtype=qt.dtype)
        np.testing.assert_array_equal(qt.data, np.asarray(want, qt.data.dtype), strict=True)
    # no value is clipped by the rounding: the float16 tensor is at least as close
    assert np.abs(qt.dequantize() - x).max() <= np.abs(wide.dequantize() - x).max() * 1.01 + 1e-7


def test_quantize_tensor_rejects_bad_scale_dtype():
    x = np.ones((4, 4), np.float32)
    with pytest.raises(QuantParamError, match="scale_dtype"):
        quantize_tensor(x, scale_dtype="bfloat16")
    with pytest.raises(QuantParamError, match="tflite"):
        quantize_tensor(x, convention="tflite", scale_dtype="float16")


def test_tiny_scales_stay_float32(tmp_path):
    x = np.full((4, 4), 1e-7, np.float32)  # scale ~1e-9: below float16's normal range
    qt = quantize_tensor(x, "int8", granularity="per_channel", axis=1, scale_dtype="float16")
    save_tensors(tmp_path / "t.qcm", {"w": qt})
    with load_tensors(tmp_path / "t.qcm") as f:
        assert f.info("w::scale").element_type == "float32"
        np.testing.assert_array_equal(f["w"].scale, qt.scale, strict=True)


@pytest.mark.parametrize("isa", ISAS)
def test_int4_kernel_matches_reference_with_widened_scales(tmp_path, isa):
    """Blocked int4 weights through a file (float16 scales, no zero points; and affine
    with zero points): the C int4 linear layer equals DequantizeLinear + the float32 sum."""
    rng = np.random.default_rng(61)
    w = rng.standard_normal((96, 24)).astype(np.float32)
    a = rng.standard_normal((5, 96)).astype(np.float32)
    tensors = {"sym": quantize_tensor(w, "int4", granularity="per_block", axis=0, block_size=32,
                                      scale_dtype="float16"),
               "aff": quantize_tensor(w, "uint4", granularity="per_block", axis=0, block_size=32, symmetric=False,
                                      scale_dtype="float16")}
    save_tensors(tmp_path / "w.qcm", tensors)
    with load_tensors(tmp_path / "w.qcm") as f:
        assert f.version == 2 and f.info("sym::scale").element_type == "float16"
        assert f.info("sym").zero_point_index is None
        for name, qt in tensors.items():
            got = f[name]
            np.testing.assert_array_equal(got.scale, qt.scale, strict=True)
            zp = None if name == "sym" else got.zero_point
            weights = _gemm.Int4Weights.from_values(got.data, got.scale, zp, block_size=32, dtype=got.dtype)
            deq = ref.dequantize_linear(got.data, got.scale, got.zero_point, axis=0, block_size=32)
            expected = np.zeros((5, 24), np.float32)
            for k in range(96):
                expected = expected + a[:, k:k + 1] * deq[k:k + 1, :]
            np.testing.assert_array_equal(_gemm.linear_int4(a, weights, isa=isa), expected, strict=True)


@pytest.mark.parametrize("isa", ISAS)
def test_int8_dequantize_matches_reference_with_widened_scales(tmp_path, isa):
    rng = np.random.default_rng(62)
    w = (rng.standard_normal((40, 33)) * rng.uniform(0.01, 10, 33)).astype(np.float32)
    qt = quantize_tensor(w, "int8", granularity="per_channel", axis=1, scale_dtype="float16")
    save_tensors(tmp_path / "w.qcm", {"w": qt})
    with load_tensors(tmp_path / "w.qcm") as f:
        got = f["w"]
        assert f.info("w::scale").element_type == "float16" and f.info("w").zero_point_index is None
        c = _elementwise.dequantize_linear(got.data, got.scale, got.zero_point, axis=1, isa=isa)
        np.testing.assert_array_equal(c, ref.dequantize_linear(got.data, got.scale, got.zero_point, axis=1),
                                      strict=True)
        np.testing.assert_array_equal(c, qt.dequantize(), strict=True)


def test_passes_store_half_scales_and_no_zero_points_by_default(tmp_path):
    import os
    import sys
    sys.path.insert(0, os.path.dirname(__file__))
    pytest.importorskip("onnx")
    import onnx

    import model_builders as mb
    import qcore.graph.quantize as q
    from qcore.runtime import Model

    path = tmp_path / "m.onnx"
    onnx.save(mb.transformer(np.random.default_rng(0), vocab=200, hidden=64, heads=4, ffn=128, layers=1,
                             positions="gather"), path)
    model = Model.from_onnx(path)
    for make in (lambda m, **k: q.quantize_dynamic(m, **k), lambda m, **k: q.quantize_weight_only(m, bits=4,
                                                                                                   block_size=32, **k)):
        # no pack (docs/GRAPH.md): every quantized weight is a file tensor with its records
        make(model).save(tmp_path / "half.qcm", pack_limit=0)
        make(model, scale_dtype="float32").save(tmp_path / "wide.qcm", pack_limit=0)
        with load_tensors(tmp_path / "half.qcm") as half, load_tensors(tmp_path / "wide.qcm") as wide:
            h = [i for i in half.infos() if i.role == "scale"]
            assert h and all(i.element_type == "float16" for i in h)
            assert not [i for i in half.infos() if i.role == "zero_point"]
            assert all(i.element_type == "float32" for i in wide.infos() if i.role == "scale")
        assert (tmp_path / "half.qcm").stat().st_size < (tmp_path / "wide.qcm").stat().st_size
        with pytest.raises(QuantParamError):
            make(model, scale_dtype="float64")


def test_gptq_scales_are_float16_and_agree_with_the_data():
    from qcore.graph.transformer import gptq_quantize

    rng = np.random.default_rng(63)
    w = rng.standard_normal((64, 16)).astype(np.float32)
    x = rng.standard_normal((200, 64)).astype(np.float32)
    for kwargs in (dict(bits=8), dict(bits=4, block_size=32), dict(bits=4, block_size=32, symmetric=False)):
        qt = gptq_quantize(w, x, **kwargs)
        np.testing.assert_array_equal(qt.scale.astype(np.float16).astype(np.float32), qt.scale, strict=True)
        wide = gptq_quantize(w, x, scale_dtype="float32", **kwargs)
        # the scales chosen before any error feedback (all columns at 8 bits, the first
        # block at 4) differ only by the rounding up
        first = wide.scale if kwargs["bits"] == 8 else wide.scale[:1]
        half = qt.scale if kwargs["bits"] == 8 else qt.scale[:1]
        assert (half >= first).all() and np.abs(half / first - 1).max() < 2.0 ** -10
