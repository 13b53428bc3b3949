"""Parameter choice and quantize_tensor: against onnxruntime's quantization tools and
PyTorch's observers (each skipped when that package is missing), plus the API contract."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from qcore.errors import CalibrationError, DTypeError, NonFiniteError, QuantParamError, ShapeError
from qcore.reference.onnx_ops import quantize_linear
from qcore.reference.params import choose_qparams, quant_range
from qcore.reference.quantize import quantize_tensor
from qcore.reference.tensor import QuantizedTensor


def random_ranges(rng, n):
    kind = rng.integers(0, 4, n)
    lo = -np.exp(rng.uniform(-12, 6, n))
    hi = np.exp(rng.uniform(-12, 6, n))
    lo = np.where(kind == 1, np.abs(lo) * 1e-3, lo)  # all-positive ranges
    hi = np.where(kind == 2, -np.abs(hi) * 1e-3, hi)  # all-negative ranges
    lo = np.where(kind == 2, np.minimum(lo, hi), lo)
    hi = np.where(kind == 1, np.maximum(lo, hi), hi)
    return lo.astype(np.float32), hi.astype(np.float32)


ORT_TYPES = ["int8", "uint8", "int16", "uint16", "int4", "uint4"]


@pytest.mark.parametrize("dtype", ORT_TYPES)
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("reduce_range", [False, True])
def test_onnx_convention_matches_onnxruntime_tools(dtype, symmetric, reduce_range):
    quant_utils = pytest.importorskip("onnxruntime.quantization.quant_utils")
    from onnx import TensorProto

    qtype = getattr(TensorProto, dtype.upper())
    qmin, qmax = quant_utils.get_qmin_qmax_for_qType(qtype, reduce_range=reduce_range, symmetric=symmetric)
    assert quant_range(dtype, symmetric=symmetric, convention="onnx", reduce_range=reduce_range) == (int(qmin), int(qmax))
    lo, hi = random_ranges(np.random.default_rng(5), 300)
    lo = np.append(lo, [0, 0, -1e-39]).astype(np.float32)
    hi = np.append(hi, [0, 1e-40, 0]).astype(np.float32)
    scale, zp = choose_qparams(lo, hi, dtype, symmetric=symmetric, convention="onnx", reduce_range=reduce_range)
    for i in range(len(lo)):
        ort_zp, ort_scale = quant_utils.compute_scale_zp(lo[i], hi[i], qmin, qmax, symmetric=symmetric)
        assert scale[i] == ort_scale and scale[i].dtype == np.float32, (lo[i], hi[i])
        assert int(zp[i]) == int(ort_zp), (lo[i], hi[i])


@pytest.mark.parametrize("symmetric", [True, False])
def test_onnx_quantize_tensor_matches_onnxruntime_quantize_data(symmetric):
    quant_utils = pytest.importorskip("onnxruntime.quantization.quant_utils")
    from onnx import TensorProto

    rng = np.random.default_rng(11)
    for dtype in ("int8", "uint8"):
        x = (rng.standard_normal(1000) * 3 + 0.5).astype(np.float32)
        ort_zp, ort_scale, ort_data = quant_utils.quantize_data(x, getattr(TensorProto, dtype.upper()), symmetric)
        q = quantize_tensor(x, dtype, symmetric=symmetric)
        assert q.scale == ort_scale and q.zero_point == ort_zp
        np.testing.assert_array_equal(q.data, ort_data, strict=True)


def _torch():
    torch = pytest.importorskip("torch")
    warnings.filterwarnings("ignore", message=".*reduce_range will be deprecated.*")
    return torch


@pytest.mark.parametrize(
    ("dtype", "symmetric", "reduce_range"),
    [("int8", True, False), ("int8", False, False), ("uint8", True, False), ("uint8", False, False),
     ("uint8", False, True), ("int8", True, True), ("int8", False, True)],
)
def test_pytorch_convention_matches_torch_observers(dtype, symmetric, reduce_range):
    torch = _torch()
    from torch.ao.quantization.observer import MinMaxObserver

    tdtype = {"int8": torch.qint8, "uint8": torch.quint8}[dtype]
    scheme = torch.per_tensor_symmetric if symmetric else torch.per_tensor_affine
    lo, hi = random_ranges(np.random.default_rng(9), 200)
    lo = np.append(lo, [0, -1e-9]).astype(np.float32)
    hi = np.append(hi, [0, 1e-9]).astype(np.float32)
    scale, zp = choose_qparams(lo, hi, dtype, symmetric=symmetric, convention="pytorch", reduce_range=reduce_range)
    for i in range(len(lo)):
        obs = MinMaxObserver(dtype=tdtype, qscheme=scheme, reduce_range=reduce_range)
        obs(torch.tensor([lo[i], hi[i]]))
        t_scale, t_zp = obs.calculate_qparams()
        assert scale[i] == t_scale.item(), (lo[i], hi[i])
        assert int(zp[i]) == t_zp.item(), (lo[i], hi[i])
        assert quant_range(dtype, symmetric=symmetric, convention="pytorch", reduce_range=reduce_range) == (
            obs.quant_min, obs.quant_max)


def test_pytorch_quantize_matches_torch():
    torch = _torch()
    rng = np.random.default_rng(13)
    x = (rng.standard_normal(20_000) * 2).astype(np.float32)
    scale = np.float32(0.00214854861)
    # many reciprocal-vs-division disagreements: x = (k + 0.5) * scale
    ties = ((rng.integers(-120, 120, 5000) + 0.5) * scale).astype(np.float32)
    x = np.concatenate([x, ties, np.float32([0.273939937])])
    from qcore.reference.pytorch import quantize

    for dtype, tdtype, zp in (("uint8", torch.quint8, 128), ("int8", torch.qint8, -3), ("uint8", torch.quint8, 7)):
        expected = torch.quantize_per_tensor(torch.from_numpy(x), float(scale), zp, tdtype).int_repr().numpy()
        np.testing.assert_array_equal(quantize(x, scale, zp, dtype), expected, strict=True)
        # per channel: every channel the same parameters, 5 channels on the last axis
        xc = x[: len(x) // 5 * 5].reshape(-1, 5)
        expected = torch.quantize_per_channel(
            torch.from_numpy(xc), torch.full((5,), float(scale), dtype=torch.float64), torch.full((5,), zp), 1, tdtype
        ).int_repr().numpy()
        np.testing.assert_array_equal(quantize(xc, scale, zp, dtype, per_channel=True), expected, strict=True)
        # the two kernels really differ (fused vs unfused zero-point add)
        assert np.any(quantize(x, scale, zp, dtype) != quantize(x, scale, zp, dtype, per_channel=True)) or zp == 0
    w = rng.standard_normal((8, 5, 3)).astype(np.float32)
    q = quantize_tensor(w, "int8", granularity="per_channel", axis=1, convention="pytorch")
    tq = torch.quantize_per_channel(
        torch.from_numpy(w), torch.from_numpy(q.scale.astype(np.float64)), torch.zeros(5, dtype=torch.int64), 1, torch.qint8
    )
    np.testing.assert_array_equal(q.data, tq.int_repr().numpy(), strict=True)
    a = quantize_tensor(x, "uint8", symmetric=False, convention="pytorch")
    ta = torch.quantize_per_tensor(torch.from_numpy(x), float(a.scale), int(a.zero_point), torch.quint8)
    np.testing.assert_array_equal(a.data, ta.int_repr().numpy(), strict=True)


def test_pytorch_per_channel_observer_params():
    torch = _torch()
    from torch.ao.quantization.observer import PerChannelMinMaxObserver

    w = np.random.default_rng(2).standard_normal((6, 10)).astype(np.float32)
    obs = PerChannelMinMaxObserver(ch_axis=0, dtype=torch.qint8, qscheme=torch.per_channel_symmetric)
    obs(torch.from_numpy(w))
    t_scale, t_zp = obs.calculate_qparams()
    q = quantize_tensor(w, "int8", granularity="per_channel", axis=0, convention="pytorch")
    np.testing.assert_array_equal(q.scale, t_scale.numpy().astype(np.float32))
    np.testing.assert_array_equal(q.zero_point.astype(np.int64), t_zp.numpy())


@pytest.mark.parametrize("convention", ["onnx", "tflite", "pytorch"])
@pytest.mark.parametrize("dtype", ["int8", "uint8", "int4", "uint4", "int16"])
def test_zero_exactly_representable(convention, dtype):
    lo, hi = random_ranges(np.random.default_rng(4), 200)
    for symmetric in (False, True):
        try:
            scale, zp = choose_qparams(lo, hi, dtype, symmetric=symmetric, convention=convention)
        except QuantParamError:
            assert convention == "tflite" and symmetric and dtype.startswith("u")
            continue
        assert np.all(scale > 0) and np.all(np.isfinite(scale))
        qmin, qmax = quant_range(dtype, symmetric=symmetric, convention=convention)
        assert np.all((zp >= qmin) & (zp <= qmax))


def test_quantize_tensor_result_layout():
    x = np.random.default_rng(0).standard_normal((3, 7, 4)).astype(np.float32)
    q = quantize_tensor(x, "int4", granularity="per_block", axis=1, block_size=3, symmetric=False)
    assert isinstance(q, QuantizedTensor)
    assert q.scale.shape == (3, 3, 4) and q.zero_point.shape == (3, 3, 4)
    assert q.data.dtype == np.int8 and q.dtype == "int4" and q.axis == 1 and q.block_size == 3
    assert q.data.min() >= -8 and q.data.max() <= 7
    # the last, partial block has its own range
    last = x[:, 6:7, :]
    np.testing.assert_array_equal(
        q.scale[:, 2:3, :], choose_qparams(last, last, "int4", symmetric=False)[0]
    )
    qc = quantize_tensor(x, "uint8", granularity="per_channel", axis=-1, symmetric=False)
    assert qc.axis == 2 and qc.scale.shape == (4,) and qc.granularity == "per_axis"
    same = quantize_tensor(x, "uint8", granularity=qc.granularity, axis=2, symmetric=False)
    np.testing.assert_array_equal(same.data, qc.data, strict=True)
    expected = quantize_linear(x, qc.scale, qc.zero_point, axis=2)
    np.testing.assert_array_equal(qc.data, expected, strict=True)


def test_quantize_tensor_with_observer():
    from qcore.reference.observers import MinMaxObserver

    x = np.linspace(-1, 1, 50, dtype=np.float32).reshape(5, 10)
    obs = MinMaxObserver()
    obs.update(x * 2)
    q = quantize_tensor(x, "int8", observer=obs)
    assert q.scale == choose_qparams(-2, 2, "int8")[0]
    per_ch = MinMaxObserver(axis=0)
    per_ch.update(x)
    q = quantize_tensor(x, "int8", granularity="per_channel", axis=0, observer=per_ch)
    np.testing.assert_array_equal(q.scale, quantize_tensor(x, "int8", granularity="per_channel").scale)
    with pytest.raises(QuantParamError):
        quantize_tensor(x, "int8", granularity="per_channel", axis=1, observer=per_ch)
    with pytest.raises(QuantParamError):
        quantize_tensor(x, "int8", observer=per_ch)
    with pytest.raises(CalibrationError):
        quantize_tensor(x, "int8", observer=MinMaxObserver())


def test_quantize_tensor_bad_input():
    x = np.ones((2, 3), np.float32)
    with pytest.raises(DTypeError):
        quantize_tensor(np.ones(3, np.int32))
    with pytest.raises(DTypeError):
        quantize_tensor(x, "int7")
    with pytest.raises(QuantParamError):
        quantize_tensor(x, "int32")
    with pytest.raises(ShapeError):
        quantize_tensor(np.zeros((0, 3), np.float32))
    with pytest.raises(NonFiniteError):
        quantize_tensor(np.array([1.0, np.nan], np.float32))
    with pytest.raises(NonFiniteError):
        quantize_tensor(np.array([1.0, np.inf], np.float32))
    with pytest.raises(QuantParamError):
        quantize_tensor(x, granularity="per_row")
    with pytest.raises(QuantParamError):
        quantize_tensor(x, granularity="per_channel", axis=2)
    with pytest.raises(QuantParamError):
        quantize_tensor(x, granularity="per_block", block_size=0)
    with pytest.raises(QuantParamError):
        quantize_tensor(x, granularity="per_block")
    with pytest.raises(QuantParamError):
        quantize_tensor(x, block_size=2)
    with pytest.raises(QuantParamError):
        quantize_tensor(x, convention="tensorrt")
    with pytest.raises(QuantParamError):
        quantize_tensor(x, "uint8", convention="tflite")  # symmetric unsigned
    with pytest.raises(QuantParamError):
        quantize_tensor(x, "int8", convention="tflite", reduce_range=True)


def test_choose_qparams_bad_input():
    with pytest.raises(QuantParamError):
        choose_qparams(1.0, -1.0)
    with pytest.raises(NonFiniteError):
        choose_qparams(np.nan, 1.0)
    with pytest.raises(NonFiniteError):
        choose_qparams(-np.inf, 1.0)
    with pytest.raises(ShapeError):
        choose_qparams(np.zeros(3), np.ones(4))
    with pytest.raises(QuantParamError):
        quant_range("uint8", symmetric=True, convention="pytorch", reduce_range=True)
    with pytest.raises(QuantParamError):
        quant_range("int2", convention="onnx", reduce_range=True)


def test_torch_dequantize_is_the_onnx_formula():
    torch = _torch()
    rng = np.random.default_rng(21)
    for zp, tdtype, dtype in ((77, torch.quint8, "uint8"), (-3, torch.qint8, "int8")):
        x = (rng.standard_normal(20_000) * 0.5).astype(np.float32)
        q = quantize_tensor(x, dtype, symmetric=False, convention="pytorch")
        tq = torch.quantize_per_tensor(torch.from_numpy(x), float(q.scale), int(q.zero_point), tdtype)
        np.testing.assert_array_equal(q.dequantize(), tq.dequantize().numpy(), strict=True)


def test_quantized_tensor_validates_its_parameters():
    data = np.zeros((4, 6), np.int8)
    with pytest.raises(ShapeError):
        QuantizedTensor(data, np.ones(4, np.float32), np.zeros(4, np.int8), "int8", axis=1)
    with pytest.raises(ShapeError):
        QuantizedTensor(data, np.ones((4, 2), np.float32), np.zeros((4, 2), np.int8), "int8", axis=1, block_size=2)
    QuantizedTensor(data, np.ones((4, 2), np.float32), np.zeros((4, 2), np.int8), "int8", axis=1, block_size=3)
    with pytest.raises(QuantParamError):
        QuantizedTensor(data, np.float32(0), np.int8(0), "int8")
    with pytest.raises(QuantParamError):
        QuantizedTensor(data, np.float32(np.nan), np.int8(0), "int8")
    with pytest.raises(QuantParamError):
        QuantizedTensor(data, np.float32(1), np.int8(8), "int4")
