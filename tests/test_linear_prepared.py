"""qcore._linear.DynamicLinear (a linear layer prepared once) gives linear_dynamic's bits and checks its calls."""

from __future__ import annotations

import numpy as np
import pytest

from qcore import _activation, _gemm, _linear
from qcore.errors import DTypeError, ModelError, NonFiniteError, QuantParamError, ShapeError
from qcore.reference.tensor import QuantizedTensor
from qcore import _native
from qcore.runtime import kernels

ISAS = _native.available_isas()


def _layer(seed: int, k: int, n: int):
    rng = np.random.default_rng(seed)
    w = rng.integers(-128, 128, (k, n)).astype(np.int8)
    zw = np.zeros(n, np.int8)
    ws = (rng.random(n) * 0.02 + 1e-4).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    smooth = (rng.random(k) * 2 + 0.1).astype(np.float32)
    return rng, _gemm.PackedWeights(w, zw), ws, bias, smooth


@pytest.mark.parametrize("m, k, n", [(1, 8, 5), (7, 33, 17), (128, 96, 40)])
def test_same_bits_as_linear_dynamic(m, k, n):
    rng, packed, ws, bias, smooth = _layer(m + k + n, k, n)
    x = (rng.standard_normal((m, k)) * rng.choice([1e-3, 1.0, 50.0], (m, 1))).astype(np.float32)
    for b, s in ((None, None), (bias, None), (None, smooth), (bias, smooth)):
        call = _linear.DynamicLinear(packed, ws, b, s)
        out = np.empty((m, n), np.float32)
        assert call(x, out) is out
        expected = _linear.linear_dynamic(x, packed, ws, b, x_mul=s)
        np.testing.assert_array_equal(out.view(np.uint32), expected.view(np.uint32), strict=True)
        call(x, out)  # a second call on the same buffers: the same bits again
        np.testing.assert_array_equal(out.view(np.uint32), expected.view(np.uint32), strict=True)


def test_bad_layers_and_calls_raise():
    rng, packed, ws, bias, smooth = _layer(1, 16, 6)
    with pytest.raises(DTypeError, match="PackedWeights"):
        _linear.DynamicLinear(np.zeros((16, 6), np.int8), ws)
    with pytest.raises(ShapeError, match="w_scale"):
        _linear.DynamicLinear(packed, ws[:4])
    with pytest.raises(ShapeError, match="bias"):
        _linear.DynamicLinear(packed, ws, bias[:5])
    with pytest.raises(DTypeError, match="x_mul"):
        _linear.DynamicLinear(packed, ws, x_mul=smooth.astype(np.float64))
    with pytest.raises(ShapeError, match="x_mul"):
        _linear.DynamicLinear(packed, ws, x_mul=smooth[:3])
    call = _linear.DynamicLinear(packed, ws, bias, smooth)
    x = rng.standard_normal((4, 16)).astype(np.float32)
    out = np.empty((4, 6), np.float32)
    with pytest.raises(DTypeError, match="float32"):
        call(x.astype(np.float64), out)
    with pytest.raises(ShapeError, match="C-contiguous"):
        call(np.asfortranarray(x), out)
    with pytest.raises(ShapeError, match=r"\(M, 16\)"):
        call(x[:, :8], out)
    with pytest.raises(ShapeError, match="out"):
        call(x, np.empty((4, 5), np.float32))
    read_only = np.empty((4, 6), np.float32)
    read_only.flags.writeable = False
    with pytest.raises(ShapeError, match="out"):
        call(x, read_only)
    x[2, 3] = np.nan
    with pytest.raises(NonFiniteError):
        call(x, out)
    assert call(np.empty((0, 16), np.float32), np.empty((0, 6), np.float32)).shape == (0, 6)


def test_runtime_layer_prepares_the_same_call():
    rng = np.random.default_rng(3)
    w = QuantizedTensor(rng.integers(-127, 128, (24, 10)).astype(np.int8), (rng.random(10) * 0.01).astype(np.float32),
                        np.zeros(10, np.int8), "int8", axis=1)
    layer = kernels.PackedLinear.from_matmul(w, rng.standard_normal(10).astype(np.float32))
    x = rng.standard_normal((5, 24)).astype(np.float32)
    got = layer.dynamic_rows_call()(x, np.empty((5, 10), np.float32))
    np.testing.assert_array_equal(got, layer.run_dynamic_rows(x), strict=True)
    numpy_layer = kernels.PackedLinear.from_matmul(w, None, engine="numpy")
    with pytest.raises(ModelError, match="one C call"):
        numpy_layer.dynamic_rows_call()


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("m, k, n", [(1, 8, 5), (9, 33, 17), (130, 64, 1536)])
def test_post_ops_give_the_separate_calls_bits(isa, m, k, n):
    """GELU / residual layer norm fused after the layer: what the separate kernels give."""
    rng, packed, ws, bias, smooth = _layer(m * 7 + n, k, n)
    x = (rng.standard_normal((m, k)) * rng.choice([1e-3, 1.0, 50.0], (m, 1))).astype(np.float32)
    residual = (rng.standard_normal((m, n)) * 3).astype(np.float32)
    gamma = rng.standard_normal(n).astype(np.float32)
    beta = rng.standard_normal(n).astype(np.float32)
    for s in (None, smooth):
        layer = _linear.linear_dynamic(x, packed, ws, bias, x_mul=s, isa=isa)
        got = _linear.linear_dynamic(x, packed, ws, bias, x_mul=s, post="gelu", isa=isa)
        np.testing.assert_array_equal(got.view(np.uint32), _activation.gelu(layer, isa=isa).view(np.uint32),
                                      strict=True)
        for r, b, eps in ((residual, beta, 1e-5), (None, None, 0.0), (residual, None, 1e-12)):
            call = _linear.DynamicLinear(packed, ws, bias, s, post="layer_norm", gamma=gamma, beta=b, epsilon=eps,
                                         isa=isa)
            out = np.empty((m, n), np.float32)
            call(x, out, r)
            expected = _activation.layer_norm(layer, gamma, b, eps, residual=r, isa=isa)
            np.testing.assert_array_equal(out.view(np.uint32), expected.view(np.uint32), strict=True)


def test_post_op_arguments_are_checked():
    rng, packed, ws, bias, smooth = _layer(3, 16, 6)
    gamma = np.ones(6, np.float32)
    x = rng.standard_normal((4, 16)).astype(np.float32)
    out = np.empty((4, 6), np.float32)
    with pytest.raises(QuantParamError, match="post must be"):
        _linear.DynamicLinear(packed, ws, post="relu")
    with pytest.raises(QuantParamError, match="needs gamma"):
        _linear.DynamicLinear(packed, ws, post="layer_norm")
    for eps in (-1.0, float("inf"), float("nan")):
        with pytest.raises(QuantParamError, match="epsilon"):
            _linear.DynamicLinear(packed, ws, post="layer_norm", gamma=gamma, epsilon=eps)
    with pytest.raises(DTypeError, match="gamma must be float32"):
        _linear.DynamicLinear(packed, ws, post="layer_norm", gamma=gamma.astype(np.float64))
    with pytest.raises(ShapeError, match="beta has 5 values"):
        _linear.DynamicLinear(packed, ws, post="layer_norm", gamma=gamma, beta=np.ones(5, np.float32))
    plain = _linear.DynamicLinear(packed, ws, post="gelu")
    with pytest.raises(ShapeError, match="needs post='layer_norm'"):
        plain(x, out, np.ones((4, 6), np.float32))
    norm = _linear.DynamicLinear(packed, ws, post="layer_norm", gamma=gamma)
    with pytest.raises(ShapeError, match="residual must be"):
        norm(x, out, np.ones((4, 5), np.float32))
    with pytest.raises(ShapeError, match="residual must be"):
        norm(x, out, np.ones((4, 6), np.float64))
    with pytest.raises(ShapeError, match="overlaps"):
        norm(x, out, out)
    x[1, 3] = np.nan
    with pytest.raises(NonFiniteError):
        norm(x, out, np.ones((4, 6), np.float32))
