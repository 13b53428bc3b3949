"""Error metrics: hand-computed values and their edge cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from qcore.errors import NonFiniteError, QuantParamError, ShapeError
from qcore.reference.metrics import cosine_similarity, fraction_clipped, max_error_in_steps, sqnr
from qcore.reference.quantize import quantize_tensor
from qcore.reference.tensor import QuantizedTensor


def test_sqnr_hand_computed():
    ref = np.array([3.0, 4.0])
    assert sqnr(ref, ref + np.array([0.3, 0.4])) == pytest.approx(20.0)  # 25 / 0.25 = 100
    assert sqnr(ref, ref) == math.inf
    assert sqnr(np.zeros(2), np.ones(2)) == -math.inf


def test_cosine_similarity():
    assert cosine_similarity([1.0, 0.0], [0.0, 2.0]) == 0.0
    assert cosine_similarity([1.0, 1.0], [2.0, 2.0]) == pytest.approx(1.0)
    assert cosine_similarity([1.0, 1.0], [-1.0, -1.0]) == pytest.approx(-1.0)
    assert cosine_similarity(np.zeros(3), np.zeros(3)) == 1.0
    assert cosine_similarity(np.zeros(3), np.ones(3)) == 0.0


def test_max_error_in_steps_and_quantized_tensor_input():
    ref = np.array([0.0, 0.26, -0.74], np.float32)
    assert max_error_in_steps(ref, np.array([0.0, 0.25, -0.75]), 0.5) == pytest.approx(0.02, abs=1e-6)
    x = np.random.default_rng(0).standard_normal((8, 5)).astype(np.float32)
    q = quantize_tensor(x, "int8", granularity="per_channel", axis=1, symmetric=False)
    steps = max_error_in_steps(x, q)
    assert 0.3 < steps <= 0.5 + 1e-5
    assert sqnr(x, q) > 35 and cosine_similarity(x, q) > 0.999
    # per-channel scale is used per element: a global scale gives another figure
    assert max_error_in_steps(x, q, float(q.scale.max())) < steps
    with pytest.raises(QuantParamError):
        max_error_in_steps(x, q.dequantize())
    with pytest.raises(QuantParamError):
        max_error_in_steps(x, q, 0.0)
    with pytest.raises(ShapeError):
        max_error_in_steps(x, q, np.ones(3))


def test_fraction_clipped():
    q = QuantizedTensor(np.zeros(6, np.int8), np.float32(0.5), np.int8(0), "int8")
    # representable up to (127 + 0.5) * 0.5 = 63.75 and down to -64.25
    x = np.array([0.0, 63.7, 63.8, -64.2, -64.3, 100.0], np.float32)
    assert fraction_clipped(x, q) == pytest.approx(3 / 6)
    w = np.random.default_rng(1).standard_normal(1000).astype(np.float32)
    assert fraction_clipped(w, quantize_tensor(w)) == 0.0
    with pytest.raises(ShapeError):
        fraction_clipped(np.zeros(5, np.float32), q)
    with pytest.raises(QuantParamError):
        fraction_clipped(x, x)


@pytest.mark.parametrize("metric", [sqnr, cosine_similarity])
def test_bad_input(metric):
    with pytest.raises(ShapeError):
        metric(np.zeros(3), np.zeros(4))
    with pytest.raises(ShapeError):
        metric(np.zeros(0), np.zeros(0))
    with pytest.raises(NonFiniteError):
        metric(np.array([np.nan]), np.zeros(1))
