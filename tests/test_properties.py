"""Properties of quantization and calibration, checked with hypothesis."""

from __future__ import annotations

import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from qcore.reference import pytorch as pt
from qcore.reference.dtypes import int_type
from qcore.reference.observers import EntropyObserver, MinMaxObserver, MSEObserver, PercentileObserver
from qcore.reference.params import quant_range
from qcore.reference.quantize import quantize_tensor

CONVENTIONS = ["onnx", "tflite", "pytorch"]
DTYPES = ["int8", "uint8", "int4", "uint4", "int16"]

finite32 = st.floats(-1e6, 1e6, width=32, allow_nan=False, allow_infinity=False, allow_subnormal=True)


def arrays(min_dims=1, max_dims=3, max_side=6):
    return hnp.arrays(np.float32, hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, max_side=max_side), elements=finite32)


def scheme():
    """A (convention, dtype, symmetric) the convention defines."""
    return st.tuples(st.sampled_from(CONVENTIONS), st.sampled_from(DTYPES), st.booleans()).filter(
        lambda c: not (c[0] == "tflite" and c[2] and c[1].startswith("u"))
    )


def granularity(x: np.ndarray):
    return st.one_of(
        st.just({"granularity": "per_tensor"}),
        st.integers(0, x.ndim - 1).map(lambda a: {"granularity": "per_channel", "axis": a}),
        st.tuples(st.integers(0, x.ndim - 1), st.integers(1, 4)).map(
            lambda t: {"granularity": "per_block", "axis": t[0], "block_size": t[1]}
        ),
    )


@given(data=st.data(), x=arrays(), sch=scheme())
def test_round_trip_within_half_a_step_inside_the_range(data, x, sch):
    convention, dtype, symmetric = sch
    gran = data.draw(granularity(x))
    q = quantize_tensor(x, dtype, symmetric=symmetric, convention=convention, **gran)
    scale, _ = q.expanded_params()
    back = q.dequantize().astype(np.float64)
    qmin, qmax = quant_range(dtype, symmetric=symmetric, convention=convention)
    # float32 arithmetic in x / scale and in the dequantization
    slack = scale * ((qmax - qmin) * 2.0**-22) + np.abs(x) * 2.0**-22
    err = np.abs(x.astype(np.float64) - back)
    assert np.all(err <= 0.5 * scale.astype(np.float64) + slack), (err / scale).max()


@given(
    lo=st.floats(-100, 0, width=32),
    hi=st.floats(0, 100, width=32),
    far=st.floats(1, 2.0**90, width=32),
    sch=scheme(),
)
def test_saturation_outside_the_range(lo, hi, far, sch):
    from qcore.reference import tflite
    from qcore.reference.onnx_ops import quantize_linear

    convention, dtype, symmetric = sch
    itype = int_type(dtype)
    q = quantize_tensor(np.float32([lo, hi]), dtype, symmetric=symmetric, convention=convention)
    s, zp = float(q.scale), int(q.zero_point)
    low, high = (itype.qmin, itype.qmax) if not (convention == "tflite" and symmetric) else (-itype.qmax, itype.qmax)
    # at least one step beyond the representable range [(low - zp) s, (high - zp) s], then further
    x = np.float32([((low - zp) * s - s) * far, ((high - zp) * s + s) * far, -np.inf, np.inf])
    if convention == "onnx":
        data = quantize_linear(x, q.scale, q.zero_point, output_dtype=dtype)
    elif convention == "tflite" and symmetric:
        data, _ = tflite.quantize_symmetric(x, max(abs(lo), abs(hi)), dtype)
    elif convention == "tflite":
        data = tflite.quantize(x, q.scale, q.zero_point, dtype)
    else:
        data = pt.quantize(x, q.scale, q.zero_point, dtype)
    np.testing.assert_array_equal(data.astype(np.int64), [low, high, low, high])


@given(lo=st.floats(-(2.0**100), 2.0**100, width=32), width=st.floats(0, 2.0**100, width=32), sch=scheme())
def test_zero_is_exactly_representable(lo, width, sch):
    convention, dtype, symmetric = sch
    hi = np.float32(lo + width)
    assume(np.isfinite(hi) and hi >= lo)
    q = quantize_tensor(np.float32([lo, hi, 0.0]), dtype, symmetric=symmetric, convention=convention)
    assert int(q.data[2]) == int(q.zero_point)
    assert q.dequantize()[2] == 0.0


OBSERVERS = [
    MinMaxObserver,
    lambda: MinMaxObserver(axis=-1),
    lambda: PercentileObserver(97.5),
    lambda: PercentileObserver(90.0, symmetric=False),
    lambda: MSEObserver("uint8", symmetric=False, num_candidates=8),
    lambda: EntropyObserver(num_bins=64, num_quantized_bins=16),
]


@given(
    batches=st.lists(hnp.arrays(np.float32, st.tuples(st.integers(1, 5), st.just(3)), elements=finite32), min_size=2, max_size=8),
    split=st.integers(1, 7),
    which=st.integers(0, len(OBSERVERS) - 1),
)
def test_merge_equals_concatenation(batches, split, which):
    split = min(split, len(batches) - 1)
    whole, first, second = OBSERVERS[which](), OBSERVERS[which](), OBSERVERS[which]()
    for i, b in enumerate(batches):
        whole.update(b)
        (first if i < split else second).update(b)
    merged = first.merge(second)
    for key, value in vars(whole).items():
        np.testing.assert_array_equal(vars(merged)[key], value, strict=True, err_msg=key)
    for got, expected in zip(merged.compute_range(), whole.compute_range()):
        np.testing.assert_array_equal(got, expected, strict=True)


@given(data=st.data(), x=arrays(min_dims=2), sch=scheme())
def test_per_channel_equals_per_tensor_channel_by_channel(data, x, sch):
    convention, dtype, symmetric = sch
    axis = data.draw(st.integers(0, x.ndim - 1))
    q = quantize_tensor(x, dtype, granularity="per_channel", axis=axis, symmetric=symmetric, convention=convention)
    for c in range(x.shape[axis]):
        channel = np.take(x, c, axis=axis)
        single = quantize_tensor(channel, dtype, symmetric=symmetric, convention=convention)
        assert q.scale[c] == single.scale and q.zero_point[c] == single.zero_point
        if convention == "pytorch":
            # torch's per-channel kernel adds the zero point unfused; its per-tensor kernel fuses
            expected = pt.quantize(channel, single.scale, single.zero_point, dtype, per_channel=True)
        else:
            expected = single.data
        np.testing.assert_array_equal(np.take(q.data, c, axis=axis), expected, strict=True)


@given(data=st.data(), x=arrays(min_dims=1, max_dims=1, max_side=12), sch=scheme())
def test_per_block_equals_per_tensor_block_by_block(data, x, sch):
    convention, dtype, symmetric = sch
    block = data.draw(st.integers(1, 5))
    q = quantize_tensor(x, dtype, granularity="per_block", axis=0, block_size=block, symmetric=symmetric,
                        convention=convention)
    assert q.scale.shape == (-(-x.size // block),)
    for j, start in enumerate(range(0, x.size, block)):
        part = x[start : start + block]
        single = quantize_tensor(part, dtype, symmetric=symmetric, convention=convention)
        assert q.scale[j] == single.scale and q.zero_point[j] == single.zero_point
        if convention == "pytorch":
            expected = pt.quantize(part, single.scale, single.zero_point, dtype, per_channel=True)
        else:
            expected = single.data
        np.testing.assert_array_equal(q.data[start : start + block], expected, strict=True)


@given(x=arrays(min_dims=2, max_dims=2), sch=scheme())
def test_one_block_per_column_is_per_channel(x, sch):
    convention, dtype, symmetric = sch
    blocked = quantize_tensor(x, dtype, granularity="per_block", axis=0, block_size=x.shape[0], symmetric=symmetric,
                              convention=convention)
    per_channel = quantize_tensor(x, dtype, granularity="per_channel", axis=1, symmetric=symmetric,
                                  convention=convention)
    np.testing.assert_array_equal(blocked.scale[0], per_channel.scale, strict=True)
    np.testing.assert_array_equal(blocked.data, per_channel.data, strict=True)
    np.testing.assert_array_equal(blocked.dequantize(), per_channel.dequantize(), strict=True)
